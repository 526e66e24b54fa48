"""Contrastive sentence embeddings (unsupervised SimCSE) on top of a pre-trained encoder.

Gao, Yao & Chen (2021): pass every sentence of a batch through the encoder twice; the two dropout
masks make two slightly different views z_i and z'_i. Each z_i must pick its own partner among all
z'_j of the batch (in-batch negatives):

    loss_i = -log( exp(cos(z_i, z'_i) / tau) / sum_j exp(cos(z_i, z'_j) / tau) ),   tau = 0.05

Sentence vectors are mean-pooled last hidden states over the non-padding tokens. `train_simcse`
runs it on the shared engine (metrics.jsonl, checkpoints, resume) through `SimCSETask`; evaluation is
same-label retrieval precision@k on a labelled task (TREC question types by default) before and after.
Negatives are the other sentences of the same micro-batch on the same process, so with
`grad_accum > 1` or several processes each sentence sees fewer negatives than the global batch.

For the app's Similarity tab: `load_encoder(path)` once, then `embeddings.sentence_similarity(model,
tok, a, b)` or `embeddings.nearest_neighbours(query, texts, model, tok)`: the embedding utilities
(pooling, similarity, neighbours, retrieval metrics) live in `workbench.embeddings`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from transformers import AutoModel

from . import loading, runs
from .config import ConfigError, SimCSEConfig
from .data import load_corpus
from .embeddings import embed, encode_batch, retrieval_precision_at_k, retrieval_report, uniformity
from .pairs import split_sentences
from .tasks import load_task
from .training import batch_indices, finish_run, make_accelerator, start_run, train, write_run_config


def simcse_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.05, reduction: str = "mean") -> torch.Tensor:
    """InfoNCE with in-batch negatives: row i of the cosine-similarity matrix cos(z1_i, z2_j) / tau
    is a softmax over j whose right answer is j = i. `reduction`: mean | sum | none."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be [batch, dim], got {tuple(z1.shape)} and {tuple(z2.shape)}")
    sim = F.normalize(z1.float(), dim=-1) @ F.normalize(z2.float(), dim=-1).T / temperature
    return F.cross_entropy(sim, torch.arange(len(z1), device=z1.device), reduction=reduction)


def corpus_sentences(texts: Sequence[str], n: Optional[int] = None, seed: int = 0, min_words: int = 5,
                     max_words: int = 60) -> list[str]:
    """Distinct sentences of `min_words`..`max_words` words from documents; `n` of them in a seeded
    random order (all, shuffled, when n is None)."""
    seen, out = set(), []
    for t in texts:
        for s in split_sentences(t):
            w = len(s.split())
            if min_words <= w <= max_words and s not in seen:
                seen.add(s)
                out.append(s)
    order = torch.randperm(len(out), generator=torch.Generator().manual_seed(seed)).tolist()
    return [out[i] for i in order[:n]] if n else [out[i] for i in order]


def load_encoder(path: str | Path, dropout: Optional[float] = None, attention: bool = False,
                 error: type[ValueError] = loading.LoadError):
    """(encoder, tokenizer) from a run directory, checkpoint, SimCSE run or any transformers model
    directory: an AutoModel without task head (for masked-LM checkpoints, the encoder part), in
    float32. `dropout` overrides the config's dropout rates; `attention` asks for eager attention."""
    config = loading.load_config(path, error, "an encoder")
    if dropout is not None:
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, name):
                setattr(config, name, dropout)
    model = loading.load_model(AutoModel, path, eager=attention, error=error, what="an encoder", config=config)
    return model, loading.load_tokenizer(path, error)


class SimCSELoss(torch.nn.Module):
    """forward(input_ids, attention_mask) -> summed SimCSE loss of the batch: the batch goes through
    the encoder once, duplicated, so the two copies of each sentence get different dropout masks."""

    def __init__(self, model: torch.nn.Module, temperature: float, pooling: str = "mean"):
        super().__init__()
        self.model, self.temperature, self.pooling = model, temperature, pooling

    def forward(self, input_ids, attention_mask, **_) -> torch.Tensor:
        n = len(input_ids)
        z = encode_batch(self.model, input_ids.repeat(2, 1), attention_mask.repeat(2, 1), pooling=self.pooling)
        return simcse_loss(z[:n], z[n:], self.temperature, reduction="sum")


def _pad(token_lists: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(token_lists), width), dtype=torch.long)
    for r, t in enumerate(token_lists):
        ids[r, :len(t)] = torch.tensor(list(t), dtype=torch.long)
        attn[r, :len(t)] = 1
    return {"input_ids": ids, "attention_mask": attn}


@dataclass
class SimCSETask:
    """Tokenised sentences -> the engine's Task. A step's batch is an epoch-seeded permutation slice
    (a pure function of (seed, step)), padded to its longest sentence.

    Evaluation: `val_loss` is the SimCSE loss on held-out sentences with dropout on (under a forked,
    fixed-seed RNG, so it is deterministic and leaves training's RNG alone);
    `val_precision_at_<k>` is same-label retrieval precision@k on the labelled examples;
    `val_uniformity` the Wang & Isola uniformity of their embeddings."""

    train_ids: list[list[int]]
    val_ids: list[list[int]]
    eval_texts: list[str]
    eval_labels: list
    tokenizer: Any
    batch_size: int
    temperature: float = 0.05
    pooling: str = "mean"
    k: int = 10
    seed: int = 0
    eval_batches: int = 4
    max_length: int = 32

    def __post_init__(self) -> None:
        if len(self.train_ids) < self.batch_size:
            raise ConfigError(f"{len(self.train_ids)} training sentences, fewer than one batch of {self.batch_size}")

    def steps_per_epoch(self) -> int:
        return len(self.train_ids) // self.batch_size

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(self.train_ids), self.batch_size, self.seed, step).tolist()
        return _pad([self.train_ids[i] for i in idx], self.tokenizer.pad_token_id)

    def count(self, batch) -> int:
        return int(batch["input_ids"].shape[0])

    def tokens(self, batch) -> int:
        return 2 * int(batch["attention_mask"].sum())  # every sentence is encoded twice

    def training_module(self, model) -> torch.nn.Module:
        return SimCSELoss(model, self.temperature, self.pooling)

    def evaluate(self, module, accelerator) -> dict[str, float]:
        core = accelerator.unwrap_model(module)
        out: dict[str, float] = {}
        if len(self.val_ids) >= 2:
            total, n = 0.0, 0
            core.train()
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(self.seed + 7919)
                for b in range(self.eval_batches):
                    chunk = self.val_ids[b * self.batch_size:(b + 1) * self.batch_size]
                    if len(chunk) < 2:
                        break
                    batch = {k: v.to(accelerator.device) for k, v in _pad(chunk, self.tokenizer.pad_token_id).items()}
                    total += float(core(**batch))
                    n += len(chunk)
            core.eval()
            out["val_loss"] = round(total / max(n, 1), 5)
        if len(self.eval_texts) >= 2:
            e = embed(core.model, self.tokenizer, self.eval_texts, max_length=self.max_length, pooling=self.pooling)
            out[f"val_precision_at_{self.k}"] = round(retrieval_precision_at_k(e, self.eval_labels, self.k), 5)
            out["val_uniformity"] = round(uniformity(e), 5)
        return out


def train_simcse(model_path: str | Path, out_dir: str | Path, cfg: Optional[SimCSEConfig] = None, *,
                 resume: bool = False,
                 overwrite: bool = False, progress: bool = True, callbacks: tuple = (), corpus=None,
                 task_data=None) -> dict:
    """Unsupervised SimCSE on top of a pre-trained encoder (a run directory via runs.resolve_model_dir,
    or any AutoModel directory). Writes a run directory (config.json, tokenizer/, metrics.jsonl,
    checkpoints/, model/ = the contrastively trained encoder + tokenizer, summary.json, retrieval.json)
    and returns the summary, with `retrieval` = precision@k on the labelled task's test split before
    and after training."""
    cfg = cfg or SimCSEConfig()
    t0 = time.perf_counter()
    accelerator = make_accelerator(cfg.train)
    # the model, the corpus and the task are read (and bad ones refused) before the run directory is made
    torch.manual_seed(cfg.train.seed)
    model, tokenizer = load_encoder(model_path, dropout=cfg.dropout)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused by mean pooling; keeps every parameter in the graph (DDP)
    drop = getattr(model.config, "hidden_dropout_prob", getattr(model.config, "dropout", None))
    if drop is not None and drop <= 0:
        raise ConfigError("the encoder has no dropout, which is SimCSE's only augmentation: pass dropout=0.1 "
                          "(--dropout 0.1)")
    corpus = corpus if corpus is not None else load_corpus(cfg.data, seed=cfg.train.seed)
    train_sents = corpus_sentences(corpus["train"]["text"], cfg.max_sentences, cfg.train.seed, cfg.min_words)
    val_sents = corpus_sentences(corpus["validation"]["text"], cfg.train.eval_batches * cfg.train.batch_size,
                                 cfg.train.seed, cfg.min_words) if "validation" in corpus else []
    enc = lambda s: tokenizer(s, truncation=True, max_length=cfg.train.seq_len, verbose=False)["input_ids"] if s else []
    task_data = task_data if task_data is not None else load_task(cfg.eval_task)
    run_dir = start_run(out_dir, accelerator, overwrite=overwrite, resume=resume)
    val_split = task_data["validation"].select(range(min(cfg.eval_examples, len(task_data["validation"]))))
    test_split = task_data["test"].select(range(min(cfg.eval_examples, len(task_data["test"]))))
    task = SimCSETask(enc(train_sents), enc(val_sents), list(val_split["text"]), list(val_split["label"]), tokenizer,
                      cfg.train.batch_size, cfg.temperature, cfg.pooling, cfg.k, cfg.train.seed, cfg.train.eval_batches,
                      cfg.train.seq_len)
    before = retrieval_report(model, tokenizer, test_split["text"], test_split["label"], cfg.k, pooling=cfg.pooling)
    if accelerator.is_main_process:
        write_run_config(run_dir, cfg, "simcse")
        tokenizer.save_pretrained(str(run_dir / runs.TOKENIZER))
    accelerator.print(f"SimCSE: {len(train_sents):,} training sentences, {len(val_sents):,} validation sentences; "
                      f"retrieval on {task_data.name} ({len(val_split)} validation / {len(test_split)} test examples); "
                      f"prepared in {time.perf_counter() - t0:.1f}s")
    summary = train(model, task, cfg.train, run_dir, resume=resume, callbacks=callbacks, accelerator=accelerator,
                    progress=progress, desc="simcse")
    model.eval()
    after = retrieval_report(model, tokenizer, test_split["text"], test_split["label"], cfg.k, pooling=cfg.pooling)
    retrieval = {"task": task_data.name, "split": "test", "k": cfg.k, "before": before, "after": after}
    summary.update(retrieval=retrieval, sentences=len(train_sents), run_dir=str(run_dir), model=str(model_path))
    finish_run(run_dir, accelerator, model=model, tokenizer=tokenizer, summary=summary,
               files={"retrieval.json": retrieval})
    return summary
