"""Masked-language-model pre-training: text -> packed token blocks -> masked batches -> the engine.

`pretrain(cfg, out_dir)` is the whole pipeline the CLI and the notebooks run: load the corpus,
train (or load) a tokenizer, pack, build a model from a preset, train with `training.train`, save
the final model with its tokenizer.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM

from . import loading, runs, store, watch
from .config import MaskingConfig, PretrainConfig, TrainConfig, to_dict
from .data import iter_texts, load_corpus
from .masking import IGNORE_INDEX, Masker, generator_for
from .model import build_mlm_model, mlm_parts, parameter_count
from .pairs import make_pair_task
from .probes import Probe, ProbeScores, load_probes, score_probes
from .tokenizer import load_tokenizer, train_tokenizer
from .training import Callback, batch_indices, finish_run, make_accelerator, start_run, train, write_run_config
from .warmstart import apply_initialisation

# The target metric's masks: 15% of positions, every one replaced by [MASK]. The training masks'
# 80/10/10 accuracy is inflated by the 10% of predicted tokens left visible (copying them is free), so
# each evaluation also scores these "[MASK]-only" positions: what fill-mask users see.
MASK_ONLY = MaskingConfig(mlm_probability=0.15, mask_fraction=1.0, random_fraction=0.0)


# ---- text -> fixed-length blocks -----------------------------------------------------------------

def tokenize(texts: datasets.Dataset, tokenizer, desc: str = "tokenize") -> datasets.Dataset:
    """Token ids per document, without special tokens (packing adds them), through datasets.map."""
    return texts.map(
        lambda b: {"input_ids": tokenizer(b["text"], add_special_tokens=False, verbose=False)["input_ids"]},
        batched=True, batch_size=500, remove_columns=texts.column_names, desc=desc,
    )


def pack(token_lists: Iterable[list[int]], seq_len: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """run_mlm's group_texts, with BERT's framing: documents are joined with [SEP], the stream is cut
    into pieces of seq_len-2 and each becomes [CLS] piece [SEP]. No padding anywhere; the
    incomplete tail is dropped. Returns int64 [blocks, seq_len]."""
    if seq_len < 3:
        raise ValueError(f"seq_len {seq_len} is too short for packing (need room for [CLS] and [SEP])")
    parts = []
    for ids in token_lists:
        if ids:
            parts.append(np.asarray(ids, dtype=np.int64))
            parts.append(np.asarray([sep_id], dtype=np.int64))
    if not parts:
        return torch.empty(0, seq_len, dtype=torch.long)
    stream = np.concatenate(parts)
    body = seq_len - 2
    n = len(stream) // body
    blocks = np.empty((n, seq_len), dtype=np.int64)
    blocks[:, 0] = cls_id
    blocks[:, 1:-1] = stream[: n * body].reshape(n, body)
    blocks[:, -1] = sep_id
    return torch.from_numpy(blocks)


def line_by_line(texts: Iterable[str], tokenizer, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The unpacked alternative: one non-empty line per sequence, truncated and padded to seq_len.
    Returns (input_ids, attention_mask)."""
    lines = [line for t in texts for line in t.split("\n") if line.strip()]
    enc = tokenizer(lines, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def make_blocks(texts: datasets.Dataset, tokenizer, train_cfg: TrainConfig,
                desc: str = "tokenize") -> dict[str, torch.Tensor]:
    if train_cfg.packing:
        ids = tokenize(texts, tokenizer, desc)["input_ids"]
        return {"input_ids": pack(ids, train_cfg.seq_len, tokenizer.cls_token_id, tokenizer.sep_token_id)}
    ids, attn = line_by_line(texts["text"], tokenizer, train_cfg.seq_len)
    return {"input_ids": ids, "attention_mask": attn}


# ---- the MLM task the engine trains ---------------------------------------------------------------

class MLMLoss(torch.nn.Module):
    """forward(**batch) -> summed cross-entropy over the predicted positions.

    For BERT-family models the output layer runs on the masked positions only: the encoder gives
    hidden states, we keep the ~15% rows whose label is set, and only those go through the
    prediction head (a [positions, vocab] matmul instead of [all tokens, vocab]). Other models use
    their own forward and full logits."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.parts = mlm_parts(model)

    def forward(self, input_ids, labels, attention_mask=None, **_) -> torch.Tensor:
        if self.parts is None:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                                   reduction="sum")
        encoder, head = self.parts
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        picked = labels != IGNORE_INDEX
        logits = head(hidden[picked])
        return F.cross_entropy(logits.float(), labels[picked], reduction="sum")

    def predict(self, input_ids, labels, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, number of correct top-1 predictions) at the predicted positions."""
        picked = labels != IGNORE_INDEX
        if self.parts is None:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits[picked]
        else:
            encoder, head = self.parts
            logits = head(encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[picked])
        target = labels[picked]
        loss = F.cross_entropy(logits.float(), target, reduction="sum")
        return loss, (logits.argmax(-1) == target).sum()


@dataclass
class MLMTask:
    """Packed blocks + a masker -> the engine's Task. The batch of a step is a pure function of
    (seed, step): an epoch-seeded permutation picks the blocks, generator_for(seed, step) the masks.
    Validation blocks are masked once, with a fixed seed, so validation metrics are deterministic."""

    train_blocks: dict[str, torch.Tensor]
    val_blocks: dict[str, torch.Tensor]
    masker: Masker
    batch_size: int
    seed: int = 0
    eval_batches: int = 20
    eval_batch_size: int = 64
    probes: Sequence[Probe] = ()  # cloze probes scored at every evaluation (with `tokenizer`)
    tokenizer: object = None
    probe_sink: Optional[Callable[[ProbeScores], None]] = None  # gets each evaluation's per-probe results

    def __post_init__(self) -> None:
        n = len(self.train_blocks["input_ids"])
        if n < self.batch_size:
            raise ValueError(f"the training set has {n} blocks, fewer than one batch of {self.batch_size}: "
                             "use more text, a smaller --batch-size or a shorter --seq-len")
        ids = self.val_blocks["input_ids"][: self.eval_batches * self.eval_batch_size]
        self.val_fixed = self._fixed(ids, self.masker)
        self.val_mask_only = self._fixed(ids, dataclasses.replace(self.masker, cfg=MASK_ONLY))

    def _fixed(self, ids: torch.Tensor, masker: Masker) -> dict[str, torch.Tensor]:
        corrupted, labels = masker(ids, generator_for(self.seed + 7919, 0))
        fixed = {"input_ids": corrupted, "labels": labels}
        if "attention_mask" in self.val_blocks:
            fixed["attention_mask"] = self.val_blocks["attention_mask"][: len(ids)]
        return fixed

    def steps_per_epoch(self) -> int:
        return len(self.train_blocks["input_ids"]) // self.batch_size

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(self.train_blocks["input_ids"]), self.batch_size, self.seed, step)
        ids = self.train_blocks["input_ids"][idx]
        corrupted, labels = self.masker(ids, generator_for(self.seed, step))
        out = {"input_ids": corrupted, "labels": labels}
        if "attention_mask" in self.train_blocks:
            out["attention_mask"] = self.train_blocks["attention_mask"][idx]
        return out

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()

    def training_module(self, model) -> torch.nn.Module:
        return MLMLoss(model)

    def evaluate(self, module, accelerator) -> dict[str, float]:
        """val_loss / val_perplexity / val_accuracy on the training masks (80/10/10 by default), and
        val_mask_loss / val_mask_accuracy on the fixed [MASK]-only masks (MASK_ONLY)."""
        if len(self.val_fixed["input_ids"]) == 0:
            return {}
        loss, accuracy = _score_fixed(self.val_fixed, module, accelerator, self.eval_batch_size)
        mask_loss, mask_accuracy = _score_fixed(self.val_mask_only, module, accelerator, self.eval_batch_size)
        metrics = {"val_loss": round(loss, 5), "val_perplexity": round(float(np.exp(min(loss, 50))), 3),
                   "val_accuracy": round(accuracy, 5), "val_mask_loss": round(mask_loss, 5),
                   "val_mask_accuracy": round(mask_accuracy, 5)}
        if self.probes and self.tokenizer is not None:
            scores = score_probes(accelerator.unwrap_model(module).model, self.tokenizer, self.probes)
            metrics.update(scores.summary())
            if self.probe_sink is not None:  # RUN/probes.jsonl (watch.ProbeRecorder)
                self.probe_sink(scores)
        return metrics


def _score_fixed(fixed: dict[str, torch.Tensor], module, accelerator, batch_size: int) -> tuple[float, float]:
    """(mean loss, top-1 accuracy) over the predicted positions of fixed masked blocks, split over
    processes."""
    core = accelerator.unwrap_model(module)
    n = len(fixed["input_ids"])
    rank, world = accelerator.process_index, accelerator.num_processes
    loss = torch.zeros((), device=accelerator.device)
    correct = torch.zeros((), device=accelerator.device)
    count = torch.zeros((), device=accelerator.device)
    for start in range(rank * batch_size, n, world * batch_size):
        b = {k: v[start:start + batch_size].to(accelerator.device) for k, v in fixed.items()}
        l, c = core.predict(**b)
        loss += l.float()
        correct += c
        count += (b["labels"] != IGNORE_INDEX).sum()
    loss, correct, count = (accelerator.reduce(x, reduction="sum").item() for x in (loss, correct, count))
    return loss / max(count, 1), correct / max(count, 1)


# ---- the whole pipeline --------------------------------------------------------------------------

def prepare_tokenizer(cfg: PretrainConfig, corpus: datasets.DatasetDict):
    if cfg.tokenizer.tokenizer_from:
        return load_tokenizer(cfg.tokenizer.tokenizer_from)
    if cfg.model.init_from:
        return load_tokenizer(cfg.model.init_from)  # continued pre-training keeps the model's vocabulary
    return train_tokenizer(iter_texts(corpus), cfg.tokenizer, length=len(corpus["train"]))


def pretrain(cfg: PretrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             callbacks: tuple[Callback, ...] = (), progress: bool = True, corpus: Optional[datasets.DatasetDict] = None,
             force: bool = False) -> dict:
    """Run MLM pre-training as configured; returns the summary (final validation metrics included).
    The run directory is laid out as described in `workbench.runs`. `resume` refuses a config or
    corpus that differs from the run's in anything but its length and logging (runs.RESUMABLE)
    unless `force`."""
    from .training import make_accelerator

    accelerator = make_accelerator(cfg.train)
    # the corpus is read before the run folder is made: a missing or empty --data leaves nothing behind
    if corpus is None and not store.wanted(cfg.data):
        corpus = load_corpus(cfg.data, seed=cfg.train.seed)
    run_dir = start_run(out_dir, accelerator, overwrite=overwrite, resume=resume)
    resumed = resume and (run_dir / runs.CONFIG).exists()  # config.json is written before any checkpoint
    # --data STORE or --streaming (else None); sets cfg's tokenizer to the store's, as the run saved it
    token_store = store.open_for_pretrain(cfg, run_dir, accelerator)
    if resumed:
        from .config import load_config_file

        # Whatever shapes the trajectory (corpus, tokenizer, model, masking, batch, schedule, seed) must
        # match the run's; how long to train and how often to log/evaluate/save may change (runs.RESUMABLE).
        differs = runs.resume_differences(to_dict(load_config_file(run_dir / runs.CONFIG)), to_dict(cfg))
        if differs and not force:
            raise runs.RunError(f"{run_dir}: --resume with settings that differ from the run's ({'; '.join(differs)}); "
                                "resume with the run's own settings, start a new run, or pass --force to continue "
                                "with the new ones")
        if differs:
            accelerator.print("note: --force: continuing with changed settings: " + "; ".join(differs))
    t0 = time.perf_counter()
    if corpus is None:  # a store's documents stay on disk: only their counts stand in for the corpus
        corpus = store.documents(token_store) if token_store else load_corpus(cfg.data, seed=cfg.train.seed)
    fingerprint = runs.corpus_fingerprint(corpus)
    if resumed and not force:
        before = runs.config_field(run_dir, "corpus_fingerprint")
        if before and fingerprint and before != fingerprint:
            raise runs.RunError(f"{run_dir}: --resume with a different corpus than the run was trained on (its text "
                                f"differs: fingerprint {before[:12]} -> {fingerprint[:12]}); pass the same --data, or "
                                "--force to continue on the new corpus")
    tok_dir = run_dir / runs.TOKENIZER
    if not resumed:
        # Trained once, on the main process: `tokenizers` breaks frequency ties in hash order, so
        # two trainings on the same text can differ slightly; every process loads the saved one.
        if accelerator.is_main_process:
            with runs.atomic_output(tok_dir) as tmp:  # a kill while saving leaves no half tokenizer
                prepare_tokenizer(cfg, corpus).save_pretrained(str(tmp))
            write_run_config(run_dir, cfg, "pretrain")
            runs.set_config_field(run_dir, "corpus_fingerprint", fingerprint)
        accelerator.wait_for_everyone()
    tokenizer = load_tokenizer(tok_dir)
    masker = Masker.from_tokenizer(tokenizer, cfg.masking)
    recorder = watch.ProbeRecorder(run_dir)  # per-probe records of every evaluation: RUN/probes.jsonl
    if cfg.objective != "mlm":  # MLM + a sentence-pair objective (NSP / SOP): workbench.pairs
        task = make_pair_task(corpus, tokenizer, masker, cfg)
        units = f"{task.size():,} sentence pairs ({cfg.objective}) of up to {cfg.train.seq_len} tokens"
    elif token_store is not None:  # blocks packed on the fly from the store's shards (workbench.store)
        task = store.StoreTask(token_store, masker, cfg.train, lambda train_blocks, val_blocks: MLMTask(
            train_blocks, val_blocks, masker, cfg.train.batch_size, seed=cfg.train.seed,
            eval_batches=cfg.train.eval_batches, probes=_probes(cfg.probes), tokenizer=tokenizer,
            probe_sink=recorder.take))
        train_blocks, units = task.train_blocks, task.describe()
    else:
        with accelerator.main_process_first():
            train_blocks = make_blocks(corpus["train"], tokenizer, cfg.train, "tokenize train")
            val_blocks = make_blocks(corpus["validation"], tokenizer, cfg.train, "tokenize validation")
        task = MLMTask(train_blocks, val_blocks, masker, cfg.train.batch_size, seed=cfg.train.seed,
                       eval_batches=cfg.train.eval_batches, probes=_probes(cfg.probes), tokenizer=tokenizer,
                       probe_sink=recorder.take)
        units = f"{len(train_blocks['input_ids']):,} blocks of {cfg.train.seq_len} tokens"
    torch.manual_seed(cfg.train.seed)
    model = build_mlm_model(cfg.model, tokenizer, with_sentence_head=cfg.objective != "mlm")
    warm_start = cfg.model.output_bias != "zero" or cfg.model.embedding_init != "random"
    from_checkpoint = resumed and runs.latest_checkpoint(run_dir) is not None  # its weights replace any init
    if not cfg.model.init_from and not from_checkpoint and warm_start:
        t_init = time.perf_counter()
        ids = torch.as_tensor(task.train.segments.ids) if cfg.objective != "mlm" else train_blocks["input_ids"]
        done = apply_initialisation(model, _statistics_sample(ids, cfg.train.seq_len),
                                    output_bias=cfg.model.output_bias,
                                    embedding_init=cfg.model.embedding_init, special_ids=tokenizer.all_special_ids,
                                    seed=cfg.train.seed)
        accelerator.print(f"initialised from the corpus in {time.perf_counter() - t_init:.1f}s: "
                          + "; ".join(f"{k} = {v}" for k, v in done.items()))
    accelerator.print(
        f"corpus: {len(corpus['train']):,} train / {len(corpus['validation']):,} validation documents; "
        f"{units}; model: {parameter_count(model) / 1e6:.2f}M parameters; "
        f"prepared in {time.perf_counter() - t0:.1f}s"
    )
    # weights-only snapshots at steps N, 2N, 4N, ... and the last (cfg.snapshots; 0 = off)
    kept = (recorder, watch.Snapshots(run_dir, model, cfg.snapshots)) if cfg.snapshots else (recorder,)
    summary = train(model, task, cfg.train, run_dir, resume=resume, callbacks=(*kept, *callbacks),
                    accelerator=accelerator, progress=progress, desc="pretrain")
    finish_run(run_dir, accelerator, model=model, tokenizer=tokenizer)
    summary["parameters"] = parameter_count(model)
    summary["run_dir"] = str(run_dir)
    return summary


def _statistics_sample(ids: torch.Tensor, seq_len: int, max_tokens: int = 20_000_000) -> torch.Tensor:
    """Rows of training token ids for workbench.warmstart's counts: the blocks themselves (or a flat
    stream cut into rows of seq_len), at most `max_tokens` of them, so a large store costs seconds too."""
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)
    return ids[: max(1, max_tokens // ids.shape[1])].long()


def _probes(spec: Optional[str]) -> list[Probe]:
    """The probe set a run scores: the shipped one by default, a file, or none ("none")."""
    return [] if spec == "none" else load_probes(spec)


def evaluate_mlm(model_path: str | Path, cfg: Optional[PretrainConfig] = None, batches: int = 50,
                 split: str = "validation", masking: Optional[MaskingConfig] = None,
                 corpus: Optional[datasets.DatasetDict] = None) -> dict:
    """Validation metrics of a saved model (a run directory, a checkpoint or any masked-LM directory):
    MLM loss, perplexity and accuracy on fixed masks drawn with `masking` (default: the run's own
    masking config `cfg.masking`), [MASK]-only loss and accuracy (MASK_ONLY), and the cloze probes'
    top-1 / top-5 (`cfg.probes`). `corpus`: the text to use instead of loading `cfg.data` again."""
    cfg = cfg or PretrainConfig()
    model_dir, tok_dir = runs.resolve_model_dir(model_path)
    tokenizer = load_tokenizer(tok_dir)
    model = loading.load_model(AutoModelForMaskedLM, model_dir, error=runs.RunError, what="a masked language model")
    blocks = store.evaluation_blocks(cfg, split, batches)  # a run trained from a token store, else None
    if blocks is None:
        corpus = corpus if corpus is not None else load_corpus(cfg.data, seed=cfg.train.seed)
        blocks = make_blocks(corpus[split], tokenizer, cfg.train, f"tokenize {split}")
    task = MLMTask(blocks, blocks, Masker.from_tokenizer(tokenizer, masking or cfg.masking), batch_size=1,
                   seed=cfg.train.seed, eval_batches=batches, probes=_probes(cfg.probes), tokenizer=tokenizer)
    accelerator = make_accelerator(cfg.train)
    module = accelerator.prepare(task.training_module(model))
    module.eval()
    with torch.no_grad(), accelerator.autocast():
        metrics = task.evaluate(module, accelerator)
    return {"model": str(model_dir), "split": split, "sequences": len(task.val_fixed["input_ids"]), **metrics}
