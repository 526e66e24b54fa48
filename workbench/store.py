"""Pre-training from a token store (`workbench.tokenstore`, written by `workbench.prepare`), with O(1)
memory on one process or many.

`StoreTask` is the MLM task of `pretrain` read from a store: the batch of step s is a pure function
of (seed, s), as for every task: a keyed pseudo-random permutation of the block numbers per epoch
(`permute`, a Feistel network: O(batch) memory and time, where `torch.randperm` would need the whole
range), masks from `generator_for(seed, s)`. Under `accelerate launch` process r reads only rows
r*B/P ... (r+1)*B/P of each global batch from the shards; the other rows stay [PAD] placeholders
(never masked), and the loss normaliser is summed over processes, so P processes compute exactly
what one process computes. `open_for_pretrain` picks the store a run trains from (--data STORE, or
--streaming, which prepares RUN/store first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .config import ConfigError, PrepareConfig, PretrainConfig, TrainConfig
from .masking import IGNORE_INDEX, Masker, generator_for
from .prepare import check_prepare, prepare
from .tokenizer import load_tokenizer
from .tokenstore import SPLITS, StoreError, TokenStore, is_store, tokenizer_hash

# ---- the training order --------------------------------------------------------------------------

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
                f"{self.blocks_total:,} blocks of {self.seq_len} tokens ({self.store.dtype.name} on disk, "
                "read block by block)")

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


def evaluation_blocks(cfg: PretrainConfig, split: str, batches: int, eval_batch_size: int = 64) -> Optional[dict]:
    """The blocks `evaluate_mlm` scores for a run trained from a store (its first batches x 64 blocks
    of `split`, read from its shards); None for a run trained in memory."""
    if not wanted(cfg.data):
        return None
    # --streaming runs keep their store in RUN/store, whose tokenizer the run's config names
    path = Path(cfg.tokenizer.tokenizer_from).parent if cfg.data.streaming else Path(cfg.data.data[0])
    ts = TokenStore(path)
    n = min(ts.num_blocks(split, cfg.train.seq_len), batches * eval_batch_size)
    if n == 0:
        raise StoreError(f"{path}: the {split} split holds fewer than {cfg.train.seq_len - 2} tokens")
    return {"input_ids": ts.blocks(split, np.arange(n), cfg.train.seq_len)}
