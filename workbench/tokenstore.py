"""The token store on disk: its layout, the manifest, and reading blocks back from its shards.

The design is nanoGPT's `prepare.py` -> `train.bin`: every document's token ids followed by [SEP]
are appended to flat binary files (uint16 when the vocabulary has fewer than 65,536 entries, else
uint32) that training reads back block by block. The token stream is exactly the one
`pretrain.pack` builds in memory, so block i is `[CLS] stream[i*(L-2):(i+1)*(L-2)] [SEP]` and a store
trains the same blocks as the in-memory path would on the same documents.

STORE/
  manifest.json     format, tokenizer hash, dtype, sources (with fingerprints), document and token
                    counts per split, the validation rule, the shard list; "complete" when done
  tokenizer/        the tokenizer the ids belong to (runs load it from here)
  train/SSS-CCCCC.bin       token ids of chunk C of source S (documents each followed by [SEP])
  train/SSS-CCCCC.docs.npy  int64 end offset of every document in that shard (its boundaries)
  validation/...            the same for held-out documents

`workbench.prepare` writes a store; `workbench.store` pre-trains from one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import torch

from . import runs
from .config import ConfigError

MANIFEST = "manifest.json"
FORMAT = "workbench-token-store"
VERSION = 1
SPLITS = ("train", "validation")


class StoreError(ValueError):
    """A token store cannot be written or read as asked; the message says why."""


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


def read_manifest(path: str | os.PathLike) -> dict:
    f = Path(path) / MANIFEST
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"{path}: not a readable token store ({e})") from None
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        raise StoreError(f"{path}: not a {FORMAT} version {VERSION} manifest")
    return m


def describe(manifest: dict) -> str:
    """What a store holds, in one line: documents and tokens per split, dtype, text and tokenizing time."""
    train, val = manifest["splits"]["train"], manifest["splits"]["validation"]
    return (f"{train['documents']:,} train / {val['documents']:,} validation documents; {train['tokens']:,} / "
            f"{val['tokens']:,} tokens ({manifest['dtype']}); {manifest['text_bytes'] / 1e6:,.1f} MB of text in "
            f"{manifest['seconds']:.1f}s of tokenizing")


class TokenStore:
    """Read access to a complete store: token counts, and blocks gathered from its shards.

    Blocks are read with plain file reads (seek + readinto), not through `numpy.memmap`: every page a
    memmap touches stays mapped into the process and counts in its resident memory, so random blocks
    from a 1 GB store grew a `pretrain` process by ~3 MB/s (200 MB in 60 s) and more on a bigger
    store. Read, the pages live in the kernel's page cache, shared and reclaimable, and the process
    stays the same size whatever the store's size (nanoGPT re-creates its memmap every batch for the
    same reason)."""

    max_open = 256  # shard files kept open at once (each holds a file descriptor)

    def __init__(self, path: str | os.PathLike):
        self._open: OrderedDict[str, BinaryIO] = OrderedDict()  # first: __del__ needs it if a check below fails
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

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / runs.TOKENIZER

    def tokens(self, split: str = "train") -> int:
        return int(self.starts[split][-1])

    def documents(self, split: str = "train") -> int:
        return int(self.manifest["splits"][split]["documents"])

    def num_blocks(self, split: str, seq_len: int) -> int:
        return self.tokens(split) // (seq_len - 2)

    def _file(self, file: str) -> BinaryIO:
        f = self._open.get(file)
        if f is None:
            f = self._open[file] = open(self.path / file, "rb", buffering=0)
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(file)
        return f

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __del__(self):
        self.close()

    def read(self, split: str, start: int, n: int) -> np.ndarray:
        """Tokens [start, start+n) of a split's stream (across shard boundaries)."""
        out = np.empty(n, dtype=self.dtype)
        starts, shards = self.starts[split], self.shards[split]
        i = int(np.searchsorted(starts, start, side="right")) - 1
        done = 0
        while done < n:
            lo = start + done - int(starts[i])
            take = min(n - done, shards[i]["tokens"] - lo)
            f = self._file(shards[i]["file"])
            f.seek(lo * self.dtype.itemsize)
            into = memoryview(out[done:done + take]).cast("B")
            got = 0
            while got < len(into):  # a raw read may return fewer bytes than asked; only 0 is the end of the file
                part = f.readinto(into[got:])
                if not part:
                    break
                got += part
            if got != len(into):
                raise StoreError(f"{self.path / shards[i]['file']}: shorter than its manifest says (the store is "
                                 "damaged; prepare it again)")
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
