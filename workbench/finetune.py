"""Fine-tuning for sequence classification (one sentence or a sentence pair) on the shared engine.

    finetune(FinetuneConfig(model="runs/mini", task="sentiment"), "runs/mini-sentiment")

loads a checkpoint (a run directory, a checkpoint or model directory, or a hub id), puts a fresh
classification head on it, and trains it with `training.train` through `ClassificationTask`, so
fine-tuning gets the same schedule, time budget, metrics.jsonl, atomic checkpoints and exact resume
as pre-training. The run directory gets, besides the engine's files:

    RUN/model/                 the fine-tuned classifier + tokenizer (AutoModelForSequenceClassification)
    RUN/tokenizer/             the tokenizer (lets checkpoints be loaded too)
    RUN/task.json              the task: labels, sizes and label counts per split, source, licence
    RUN/test_metrics.json      accuracy, macro-F1, per-class precision/recall/F1, confusion matrix
    RUN/predictions_test.csv   one row per test example: text, label, prediction, probabilities

Strategies: `full` (everything trains), `frozen` (embeddings and all encoder layers frozen: only the
pooler and the classifier train; a probe of the frozen features), `partial` (embeddings and the lower
`freeze_layers` layers frozen). Frozen modules also stay in eval mode (no dropout) while training.
The pooler of a BERT model is not pre-trained by MLM, so it is initialised fresh like the classifier
and always trains.
A ModernBERT classifier reads the mean of the tokens when any layer attends locally (`pooling="auto"`,
`resolve_pooling`): a local layer lets [CLS] see only its window, not the whole input.

`from_scratch=True` builds the same architecture with random weights: the baseline that shows what
pre-training bought (`workbench.experiments` runs both: the benchmark and the learning curve).

Metrics come from `workbench.metrics`; a fine-tuned model is used with `loading.classify`.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from . import loading, runs
from .config import CLASSIFIER_POOLINGS, FinetuneConfig, FinetuneError
from .metrics import classification_metrics
from .tasks import TaskData, TaskError, load_task
from .training import Callback, batch_indices, finish_run, make_accelerator, start_run, train, write_run_config

# ---- encoding and the task the engine trains ----------------------------------------------------

def encode_split(ds, tokenizer, max_length: int) -> dict[str, list]:
    """Token ids (and token types) per example, truncated to max_length, unpadded."""
    texts = list(ds["text"])
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, verbose=False) if pairs is not None else \
        tokenizer(texts, truncation=True, max_length=max_length, verbose=False)
    out = {"input_ids": enc["input_ids"], "labels": list(ds["label"])}
    if pairs is not None and "token_type_ids" in enc:
        out["token_type_ids"] = enc["token_type_ids"]
    return out


def collate(encoded: dict[str, list], idx: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the selected examples to the longest of them."""
    ids = [encoded["input_ids"][i] for i in idx]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        input_ids[r, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, :len(x)] = 1
    out = {"input_ids": input_ids, "attention_mask": mask,
           "labels": torch.tensor([encoded["labels"][i] for i in idx], dtype=torch.long)}
    if "token_type_ids" in encoded:
        tt = torch.zeros((len(ids), width), dtype=torch.long)
        for r, i in enumerate(idx):
            t = encoded["token_type_ids"][i]
            tt[r, :len(t)] = torch.tensor(t, dtype=torch.long)
        out["token_type_ids"] = tt
    return out


class ClassificationLoss(torch.nn.Module):
    """forward(**batch) -> summed cross-entropy of the batch; `frozen` modules stay in eval mode."""

    def __init__(self, model: torch.nn.Module, frozen: Sequence[torch.nn.Module] = ()):
        super().__init__()
        self.model = model
        self._frozen = list(frozen)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    def logits(self, input_ids, attention_mask=None, token_type_ids=None, **_) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).logits

    def forward(self, input_ids, labels, attention_mask=None, token_type_ids=None, **_) -> torch.Tensor:
        return F.cross_entropy(self.logits(input_ids, attention_mask, token_type_ids).float(), labels, reduction="sum")


@torch.no_grad()
def predict_logits(core: ClassificationLoss, encoded: dict[str, list], pad_id: int, device,
                   batch_size: int = 64) -> np.ndarray:
    """Logits [examples, labels] in the original order; batches are formed by length (little padding)."""
    n = len(encoded["input_ids"])
    order = sorted(range(n), key=lambda i: len(encoded["input_ids"][i]))
    out = [None] * n
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        b = {k: v.to(device) for k, v in collate(encoded, idx, pad_id).items() if k != "labels"}
        logits = core.logits(**b).float().cpu().numpy()
        for r, i in enumerate(idx):
            out[i] = logits[r]
    return np.stack(out) if out else np.zeros((0, 0))


@dataclass
class ClassificationTask:
    """Encoded splits -> the engine's Task. The batch of a step is a pure function of (seed, step):
    an epoch-seeded permutation picks the examples, padded to the longest in the global batch."""

    train_enc: dict[str, list]
    val_enc: dict[str, list]
    label_names: list[str]
    batch_size: int
    pad_id: int
    seed: int = 0
    frozen: list = field(default_factory=list)
    eval_batch_size: int = 64
    layer_lr_decay: float = 1.0

    def __post_init__(self) -> None:
        n = len(self.train_enc["input_ids"])
        if n < self.batch_size:
            raise FinetuneError(f"the training set has {n} examples, fewer than one batch of {self.batch_size}: "
                                "use a smaller --batch-size or more examples")

    def steps_per_epoch(self) -> int:
        return len(self.train_enc["input_ids"]) // self.batch_size

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(self.train_enc["input_ids"]), self.batch_size, self.seed, step).tolist()
        return collate(self.train_enc, idx, self.pad_id)

    def count(self, batch) -> int:
        return int(batch["labels"].shape[0])

    def tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum())

    def training_module(self, model) -> torch.nn.Module:
        return ClassificationLoss(model, self.frozen)

    def lr_scales(self, model) -> dict[str, float]:
        """Layer-wise learning-rate decay (ELECTRA/BEiT style): the head gets the full rate, layer l
        of L gets decay^(L-l), the embeddings decay^(L+1). Lower layers hold more general features
        and move less."""
        if self.layer_lr_decay == 1.0:
            return {}
        emb, layers = encoder_parts(model)
        depth = len(layers)
        owner = {id(p): depth - i for i, layer in enumerate(layers) for p in layer.parameters()}
        if emb is not None:
            owner.update({id(p): depth + 1 for p in emb.parameters()})
        return {name: self.layer_lr_decay ** owner[id(p)] for name, p in model.named_parameters() if id(p) in owner}

    def evaluate(self, module, accelerator) -> dict[str, float]:
        if not self.val_enc["input_ids"]:
            return {}
        core = accelerator.unwrap_model(module)
        logits = predict_logits(core, self.val_enc, self.pad_id, accelerator.device, self.eval_batch_size)
        y = np.asarray(self.val_enc["labels"])
        loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)))
        m = classification_metrics(y, logits.argmax(-1), self.label_names)
        return {"val_loss": round(loss, 5), "val_accuracy": round(m["accuracy"], 5),
                "val_macro_f1": round(m["macro_f1"], 5)}


# ---- models ---------------------------------------------------------------------------------------

def resolve_pooling(config, pooling: str = "auto") -> Optional[str]:
    """The ModernBERT `classifier_pooling` a fine-tune uses, or None to leave the model's own.

    `auto` pools the mean of the tokens when any layer attends locally: a sliding-window layer lets the
    [CLS] position see only its window (8 tokens in the recipe), so with local layers only, [CLS] holds the
    first few tokens of the input and a classifier on it never reads the rest of a sentence. A model whose
    layers are all global keeps its own setting. BERT classifies from its pooled [CLS] and has no mean
    pooling, so `mean` refuses it; `cls` is what BERT does anyway."""
    if pooling not in CLASSIFIER_POOLINGS:
        raise FinetuneError(f"pooling must be {', '.join(CLASSIFIER_POOLINGS)}, got {pooling!r}")
    if getattr(config, "model_type", None) != "modernbert":
        if pooling == "mean":
            raise FinetuneError(f"pooling mean needs a ModernBERT model; this one is "
                                f"{getattr(config, 'model_type', None)!r}, which classifies from its pooled [CLS]")
        return None
    if pooling == "auto":
        return "mean" if "sliding_attention" in (getattr(config, "layer_types", None) or ()) else None
    return pooling


def load_for_classification(path: str, label_names: Sequence[str], from_scratch: bool = False, seed: int = 0,
                            classifier_dropout: Optional[float] = None, pooling: str = "auto"):
    """(model, tokenizer): AutoModelForSequenceClassification with a fresh head for `label_names`,
    from the checkpoint's weights, or randomly initialised (`from_scratch`) with the same config.
    `pooling`: see `resolve_pooling` (both arms of a comparison get the same)."""
    tokenizer = loading.load_tokenizer(path, FinetuneError)
    id2label = {i: n for i, n in enumerate(label_names)}
    kwargs = dict(num_labels=len(label_names), id2label=id2label, label2id={n: i for i, n in id2label.items()})
    if classifier_dropout is not None:
        kwargs["classifier_dropout"] = classifier_dropout
    what = "a model for sequence classification"
    classifier_pooling = resolve_pooling(loading.load_config(path, FinetuneError, what), pooling)
    if classifier_pooling is not None:
        kwargs["classifier_pooling"] = classifier_pooling
    torch.manual_seed(seed)
    if from_scratch:
        config = loading.load_config(path, FinetuneError, what, **kwargs)
        config.architectures = None
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    else:
        model = loading.load_model(AutoModelForSequenceClassification, path, error=FinetuneError, what=what,
                                   ignore_mismatched_sizes=True, **kwargs)
    if tokenizer.pad_token_id is None:
        raise FinetuneError(f"{path}: the tokenizer has no padding token")
    return model, tokenizer


def check_model(path: str, pooling: str = "auto") -> None:
    """Refuse a model that cannot be fine-tuned (its tokenizer or config does not load, or it cannot
    pool as asked) with a FinetuneError; cheap, so experiments call it before they make a folder."""
    loading.load_tokenizer(path, FinetuneError)
    resolve_pooling(loading.load_config(path, FinetuneError, "a model for sequence classification"), pooling)


def encoder_parts(model) -> tuple[Optional[torch.nn.Module], list[torch.nn.Module]]:
    """(embeddings, transformer layers bottom-up) of BERT-family models (BERT, RoBERTa, ELECTRA,
    DistilBERT and relatives)."""
    base = getattr(model, "base_model", model)
    emb = getattr(base, "embeddings", None)
    for path in ("encoder.layer", "encoder.layers", "transformer.layer", "layers", "layer"):
        obj = base
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return emb, list(obj)
    return emb, []


def apply_strategy(model, strategy: str, freeze_layers: int = 0) -> list[torch.nn.Module]:
    """Set requires_grad for the strategy; returns the frozen modules (kept in eval mode in training)."""
    if strategy == "full":
        return []
    emb, layers = encoder_parts(model)
    if emb is None or not layers:
        raise FinetuneError(f"cannot find the embeddings and layers of {type(model).__name__} to freeze; use strategy "
                            "full")
    n = len(layers) if strategy == "frozen" else freeze_layers
    if n > len(layers):
        raise FinetuneError(f"freeze_layers={n} but the model has only {len(layers)} layers")
    frozen = [emb] + layers[:n]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return frozen


def parameter_counts(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable}


# ---- the fine-tuning run --------------------------------------------------------------------------

def _load_task(cfg: FinetuneConfig) -> TaskData:
    try:
        return load_task(cfg.task, train_examples=cfg.train_examples, seed=cfg.train.seed, text_column=cfg.text_column,
                         label_column=cfg.label_column, text_pair_column=cfg.text_pair_column, unseen=cfg.unseen)
    except TaskError as e:
        raise FinetuneError(str(e)) from None


def write_predictions(path: str | Path, split, label_names: Sequence[str], probs: np.ndarray) -> None:
    """CSV: text, [text_pair], label, prediction, correct, p_<label> per label."""
    pair = "text_pair" in split.column_names
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text"] + (["text_pair"] if pair else []) + ["label", "prediction", "correct"]
                   + [f"p_{n}" for n in label_names])
        for i, row in enumerate(split):
            pred = int(probs[i].argmax())
            w.writerow([row["text"]] + ([row["text_pair"]] if pair else []) +
                       [label_names[row["label"]], label_names[pred],
                        int(pred == row["label"])] + [f"{p:.5f}" for p in probs[i]])


def finetune(cfg: FinetuneConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             callbacks: tuple[Callback, ...] = (), progress: bool = True, task_data: Optional[TaskData] = None) -> dict:
    """Fine-tune `cfg.model` on `cfg.task`; returns the summary (validation metrics of the last
    evaluation, `test` metrics, timings), also written to RUN/summary.json."""
    t_start, cpu_start = time.perf_counter(), time.process_time()
    task_data = task_data if task_data is not None else _load_task(cfg)
    accelerator = make_accelerator(cfg.train)
    # the model is loaded (and a bad one refused) before the run directory is made
    model, tokenizer = load_for_classification(cfg.model, task_data.label_names, cfg.from_scratch, cfg.train.seed,
                                               cfg.classifier_dropout, cfg.pooling)
    try:
        run_dir = start_run(out_dir, accelerator, overwrite=overwrite, resume=resume)
    except runs.RunError as e:
        raise FinetuneError(str(e)) from None
    frozen = apply_strategy(model, cfg.strategy, cfg.freeze_layers)
    if accelerator.is_main_process:
        write_run_config(run_dir, cfg, "finetune")
        tokenizer.save_pretrained(str(run_dir / runs.TOKENIZER))
        (run_dir / "task.json").write_text(json.dumps(task_data.describe(), indent=2) + "\n", encoding="utf-8")
    seq_len = cfg.train.seq_len
    train_enc = encode_split(task_data["train"], tokenizer, seq_len)
    val = task_data["validation"]
    if cfg.eval_examples and cfg.eval_examples < len(val):
        val = val.select(range(cfg.eval_examples))
    task = ClassificationTask(train_enc, encode_split(val, tokenizer, seq_len), task_data.label_names,
                              cfg.train.batch_size, tokenizer.pad_token_id, seed=cfg.train.seed, frozen=frozen,
                              layer_lr_decay=cfg.layer_lr_decay)
    train_cfg = copy.deepcopy(cfg.train)
    if not train_cfg.eval_every:
        train_cfg.eval_every = task.steps_per_epoch()
    counts = parameter_counts(model)
    accelerator.print(
        f"{task_data.name}: {len(task_data['train']):,} train / {len(val):,} validation / {len(task_data['test']):,} "
                      "test; "
        f"{len(task_data.label_names)} labels; model {counts['parameters'] / 1e6:.2f}M parameters, "
        f"{counts['trainable_parameters'] / 1e6:.2f}M trainable "
                      f"({cfg.strategy}{', from scratch' if cfg.from_scratch else ''})")
    summary = train(model, task, train_cfg, run_dir, resume=resume, callbacks=callbacks, accelerator=accelerator,
                    progress=progress, desc=f"finetune {task_data.name}")
    # test metrics with the final model
    module = ClassificationLoss(model)
    module.eval()
    test = task_data["test"]
    with accelerator.autocast():
        logits = predict_logits(module, encode_split(test, tokenizer, seq_len), tokenizer.pad_token_id,
                                accelerator.device)
    probs = torch.from_numpy(logits).softmax(-1).numpy()
    test_metrics = classification_metrics(list(test["label"]), probs.argmax(-1), task_data.label_names)
    test_metrics["primary_metric"] = task_data.metric
    test_metrics["score"] = test_metrics[task_data.metric]
    summary.update(counts)
    summary.update(task=task_data.name, metric=task_data.metric, strategy=cfg.strategy, from_scratch=cfg.from_scratch,
                   model=cfg.model, train_examples=len(task_data["train"]),
                   test={k: test_metrics[k] for k in ("accuracy", "macro_f1", "score")},
                   wall_time=round(time.perf_counter() - t_start, 2),
                   cpu_time=round(time.process_time() - cpu_start, 2),
                   run_dir=str(run_dir))
    if accelerator.is_main_process:
        write_predictions(run_dir / "predictions_test.csv", test, task_data.label_names, probs)
    finish_run(run_dir, accelerator, model=model, tokenizer=tokenizer, summary=summary,
               files={"test_metrics.json": test_metrics})
    return summary
