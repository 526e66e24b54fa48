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

`from_scratch=True` builds the same architecture with random weights: the baseline that shows what
pre-training bought (`workbench.experiments` runs both: the benchmark and the learning curve).

Metrics are computed in numpy: precision of a class never predicted is 0, recall of a class absent
from the evaluated split is 0, and macro averages run over all the task's labels (sklearn's
`zero_division=0` convention).
"""

from __future__ import annotations

import argparse
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

from . import runs
from .config import TrainConfig, add_arguments, from_dict, load_config_file, overrides_from_args, save_config
from .tasks import TaskData, TaskError, load_task
from .training import Callback, batch_indices, make_accelerator, train


class FinetuneError(ValueError):
    """A fine-tuning request we cannot carry out; the message is meant for the user as is."""


def _finetune_train_defaults() -> TrainConfig:
    # eval_every=0 means once per epoch here; save_every=0 saves only at the end
    return TrainConfig(batch_size=32, seq_len=128, packing=False, lr=2e-4, weight_decay=0.01, warmup=0.1,
                       schedule="linear", epochs=3.0, eval_every=0, log_every=10, save_every=0, keep_checkpoints=1)


@dataclass
class FinetuneConfig:
    model: str = ""  # run directory, checkpoint, model directory or hub id
    task: str = "sentiment"  # a built-in task, a CSV/JSONL file or folder, or hf:NAME
    text_column: Optional[str] = None  # user files: default "text"; hub datasets: guessed
    label_column: str = "label"
    text_pair_column: Optional[str] = None
    unseen: str = "error"  # labels absent from training at validation/test time: error | drop
    strategy: str = "full"  # full | frozen | partial
    freeze_layers: int = 0  # partial: embeddings + this many lower layers frozen
    from_scratch: bool = False  # same architecture, random weights (the baseline)
    train_examples: Optional[int] = None  # subsample the training split (seeded, nested)
    eval_examples: Optional[int] = None  # cap on validation examples per evaluation (test is always whole)
    classifier_dropout: Optional[float] = None  # None = the model's hidden dropout
    layer_lr_decay: float = 1.0  # < 1: layer-wise learning-rate decay (layer l of L gets lr * decay^(L-l))
    train: TrainConfig = field(default_factory=_finetune_train_defaults)

    def __post_init__(self) -> None:
        if self.strategy not in ("full", "frozen", "partial"):
            raise FinetuneError(f"strategy must be full, frozen or partial, got {self.strategy!r}")
        if self.freeze_layers < 0:
            raise FinetuneError(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        if self.strategy == "full" and self.freeze_layers > 0:
            self.strategy = "partial"
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise FinetuneError(f"layer_lr_decay must be in (0, 1], got {self.layer_lr_decay}")
        if self.strategy == "partial" and self.freeze_layers == 0:
            raise FinetuneError("strategy partial needs freeze_layers >= 1 (how many lower layers to freeze)")


# ---- metrics (numpy) -----------------------------------------------------------------------------

def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Counts [true, predicted]."""
    m = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> dict:
    """accuracy, macro precision/recall/F1, per-class precision/recall/F1/support and the confusion
    matrix (rows true, columns predicted)."""
    k = len(label_names)
    m = confusion(y_true, y_pred, k)
    tp = np.diag(m).astype(float)
    predicted, support = m.sum(0).astype(float), m.sum(1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(m.sum())
    return {
        "examples": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(label_names)},
        "labels": list(label_names),
        "confusion": m.tolist(),
    }


def confusion_figure(labels: Sequence[str], matrix, normalise: bool = False):
    """A plotly heatmap of a confusion matrix (delegates to workbench.plots when it has one)."""
    try:
        from .plots import confusion_matrix

        return confusion_matrix(labels, matrix, normalise=normalise)
    except ImportError:
        import plotly.graph_objects as go

        m = np.asarray(matrix, dtype=float)
        fig = go.Figure(go.Heatmap(z=m, x=list(labels), y=list(labels), colorscale="Blues", text=m.astype(int),
                                   texttemplate="%{text}"))
        fig.update_layout(title="Confusion matrix", xaxis_title="predicted", yaxis=dict(title="true", autorange="reversed"))
        return fig


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
def predict_logits(core: ClassificationLoss, encoded: dict[str, list], pad_id: int, device, batch_size: int = 64) -> np.ndarray:
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
        return {"val_loss": round(loss, 5), "val_accuracy": round(m["accuracy"], 5), "val_macro_f1": round(m["macro_f1"], 5)}


# ---- models ---------------------------------------------------------------------------------------

def _locate(path: str) -> tuple[str, str]:
    """(model location, tokenizer location): local paths through runs.resolve_model_dir, else a hub id."""
    if not path:
        raise FinetuneError("no model given: pass a run directory, a model directory or a hub id")
    p = Path(path).expanduser()
    if p.exists():
        try:
            m, t = runs.resolve_model_dir(p)
        except runs.RunError as e:
            raise FinetuneError(str(e)) from None
        return str(m), str(t)
    if str(path).startswith((".", "/", "~")) or str(path).count("/") > 1:
        raise FinetuneError(f"{path}: no such run or model directory")
    return str(path), str(path)


def _quiet_transformers():
    import transformers

    class _Quiet:
        def __enter__(self):
            self.level = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()

        def __exit__(self, *exc):
            transformers.logging.set_verbosity(self.level)

    return _Quiet()


def load_for_classification(path: str, label_names: Sequence[str], from_scratch: bool = False, seed: int = 0,
                            classifier_dropout: Optional[float] = None):
    """(model, tokenizer): AutoModelForSequenceClassification with a fresh head for `label_names`,
    from the checkpoint's weights, or randomly initialised (`from_scratch`) with the same config."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from .tokenizer import TokenizerError, load_tokenizer

    model_loc, tok_loc = _locate(path)
    try:
        tokenizer = load_tokenizer(tok_loc)
    except TokenizerError as e:
        raise FinetuneError(str(e)) from None
    id2label = {i: n for i, n in enumerate(label_names)}
    kwargs = dict(num_labels=len(label_names), id2label=id2label, label2id={n: i for i, n in id2label.items()})
    if classifier_dropout is not None:
        kwargs["classifier_dropout"] = classifier_dropout
    torch.manual_seed(seed)
    try:
        with _quiet_transformers():
            if from_scratch:
                config = AutoConfig.from_pretrained(model_loc, **kwargs)
                config.architectures = None
                model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(model_loc, ignore_mismatched_sizes=True, dtype=torch.float32, **kwargs)
    except Exception as e:  # transformers raises many types for a bad directory or hub id
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise FinetuneError(f"{path}: cannot load a model for sequence classification ({type(e).__name__}: {first})") from None
    if tokenizer.pad_token_id is None:
        raise FinetuneError(f"{path}: the tokenizer has no padding token")
    return model, tokenizer


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
        raise FinetuneError(f"cannot find the embeddings and layers of {type(model).__name__} to freeze; use strategy full")
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
        w.writerow(["text"] + (["text_pair"] if pair else []) + ["label", "prediction", "correct"] + [f"p_{n}" for n in label_names])
        for i, row in enumerate(split):
            pred = int(probs[i].argmax())
            w.writerow([row["text"]] + ([row["text_pair"]] if pair else []) +
                       [label_names[row["label"]], label_names[pred], int(pred == row["label"])] + [f"{p:.5f}" for p in probs[i]])


def finetune(cfg: FinetuneConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             callbacks: tuple[Callback, ...] = (), progress: bool = True, task_data: Optional[TaskData] = None) -> dict:
    """Fine-tune `cfg.model` on `cfg.task`; returns the summary (validation metrics of the last
    evaluation, `test` metrics, timings), also written to RUN/summary.json."""
    t_start, cpu_start = time.perf_counter(), time.process_time()
    task_data = task_data if task_data is not None else _load_task(cfg)
    accelerator = make_accelerator(cfg.train)
    run_dir = Path(out_dir)
    if accelerator.is_main_process:
        try:
            runs.prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
        except runs.RunError as e:
            raise FinetuneError(str(e)) from None
    accelerator.wait_for_everyone()
    model, tokenizer = load_for_classification(cfg.model, task_data.label_names, cfg.from_scratch, cfg.train.seed,
                                               cfg.classifier_dropout)
    frozen = apply_strategy(model, cfg.strategy, cfg.freeze_layers)
    if accelerator.is_main_process:
        save_config(cfg, run_dir / runs.CONFIG)
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
        f"{task_data.name}: {len(task_data['train']):,} train / {len(val):,} validation / {len(task_data['test']):,} test; "
        f"{len(task_data.label_names)} labels; model {counts['parameters'] / 1e6:.2f}M parameters, "
        f"{counts['trainable_parameters'] / 1e6:.2f}M trainable ({cfg.strategy}{', from scratch' if cfg.from_scratch else ''})")
    summary = train(model, task, train_cfg, run_dir, resume=resume, callbacks=callbacks, accelerator=accelerator,
                    progress=progress, desc=f"finetune {task_data.name}")
    # test metrics with the final model
    module = ClassificationLoss(model)
    module.eval()
    test = task_data["test"]
    with accelerator.autocast():
        logits = predict_logits(module, encode_split(test, tokenizer, seq_len), tokenizer.pad_token_id, accelerator.device)
    probs = torch.from_numpy(logits).softmax(-1).numpy()
    test_metrics = classification_metrics(list(test["label"]), probs.argmax(-1), task_data.label_names)
    test_metrics["primary_metric"] = task_data.metric
    test_metrics["score"] = test_metrics[task_data.metric]
    summary.update(counts)
    summary.update(task=task_data.name, metric=task_data.metric, strategy=cfg.strategy, from_scratch=cfg.from_scratch,
                   model=cfg.model, train_examples=len(task_data["train"]),
                   test={k: test_metrics[k] for k in ("accuracy", "macro_f1", "score")},
                   wall_time=round(time.perf_counter() - t_start, 2), cpu_time=round(time.process_time() - cpu_start, 2),
                   run_dir=str(run_dir))
    if accelerator.is_main_process:
        model.save_pretrained(str(run_dir / runs.MODEL), safe_serialization=True)
        tokenizer.save_pretrained(str(run_dir / runs.MODEL))
        (run_dir / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2) + "\n", encoding="utf-8")
        write_predictions(run_dir / "predictions_test.csv", test, task_data.label_names, probs)
        (run_dir / runs.SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    return summary


# ---- using a fine-tuned model ---------------------------------------------------------------------

def classify(model_path: str | Path, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
             batch_size: int = 32, max_length: Optional[int] = None) -> dict[str, float] | list[dict[str, float]]:
    """Label -> probability for each text (a dict for a single string, else a list of dicts), from a
    fine-tuned run directory, model directory or hub id."""
    from transformers import AutoModelForSequenceClassification

    from .tokenizer import TokenizerError, load_tokenizer

    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    if text_pairs is not None:
        text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
        if len(text_pairs) != len(texts):
            raise FinetuneError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    if not texts:
        return []
    model_loc, tok_loc = _locate(str(model_path))
    try:
        tokenizer = load_tokenizer(tok_loc)
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(model_loc, dtype=torch.float32)
    except (TokenizerError, OSError, ValueError) as e:
        raise FinetuneError(f"{model_path}: cannot load a sequence classifier ({str(e).splitlines()[0][:300]})") from None
    model.eval()
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    max_length = min(max_length or limit, limit)
    names = model.config.id2label or {}
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            a = texts[start:start + batch_size]
            b = text_pairs[start:start + batch_size] if text_pairs is not None else None
            enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            probs = model(**enc).logits.float().softmax(-1)
            for row in probs.tolist():
                out.append({str(names.get(i, f"LABEL_{i}")): float(p) for i, p in enumerate(row)})
    return out[0] if single else out


# ---- CLI helpers (workbench/cli.py wires these) -------------------------------------------------

def _cfg_from_args(args: argparse.Namespace, cls: type):
    base = load_config_file(args.config, cls) if getattr(args, "config", None) else cls()
    return from_dict(cls, overrides_from_args(args, cls), base)


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench finetune MODEL --task sentiment [--out RUN] [--strategy frozen] [--lr ...]`"""
    parser.add_argument("model", nargs="?", default=None, help="run directory, checkpoint, model directory or hub id")
    parser.add_argument("--out", "-o", default=None, help="run directory (default: runs/finetune-TASK-STRATEGY)")
    parser.add_argument("--config", default=None, help="YAML/JSON file with FinetuneConfig values (flags override it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory (kept as RUN.old-N)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_arguments(parser, FinetuneConfig, skip=("model", "train.packing", "train.eval_batches"))


def run_finetune_cli(args: argparse.Namespace) -> int:
    cfg = _cfg_from_args(args, FinetuneConfig)
    if not cfg.model:
        raise FinetuneError("no model given: workbench finetune RUN_DIR --task sentiment")
    out = args.out or str(Path("runs") / f"finetune-{Path(cfg.task).stem.replace(':', '_')}-{cfg.strategy}{'-scratch' if cfg.from_scratch else ''}")
    s = finetune(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"{s['task']}: test accuracy {s['test']['accuracy']:.4f}, macro-F1 {s['test']['macro_f1']:.4f} "
          f"({s['steps']} steps, {s['wall_time']:.0f}s); model in {Path(out) / runs.MODEL}")
    return 0


def add_classify_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench classify MODEL "text" ["text" ...] [--pair "second text"] [--json]`"""
    parser.add_argument("model", help="fine-tuned run directory, model directory or hub id")
    parser.add_argument("texts", nargs="+", help="text(s) to classify")
    parser.add_argument("--pair", nargs="+", default=None, help="second sentence(s) for sentence-pair tasks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_classify_cli(args: argparse.Namespace) -> int:
    results = classify(args.model, list(args.texts), args.pair)
    if args.json:
        print(json.dumps([{"text": t, "probabilities": r} for t, r in zip(args.texts, results)], indent=2))
        return 0
    for text, probs in zip(args.texts, results):
        best = max(probs, key=probs.get)
        print(f"{best}\t{probs[best]:.3f}\t{text}")
        for label, p in sorted(probs.items(), key=lambda kv: -kv[1]):
            print(f"    {label:<20} {p:.4f}")
    return 0


# ---- sub-command hooks: workbench/cli.py calls add_<name>_command(sub) when they exist -------------

def add_finetune_command(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model for text classification",
                       description="Fine-tune a pre-trained run/model on a built-in task (sentiment, spam, trec, bbc), a "
                       "CSV/JSONL file or folder, or hf:NAME; writes a run directory with metrics, checkpoints, the "
                       "final classifier, test metrics and test predictions.")
    add_finetune_arguments(p)
    p.set_defaults(func=run_finetune_cli)


def add_classify_command(sub) -> None:
    p = sub.add_parser("classify", help="label probabilities of texts from a fine-tuned model",
                       description="Classify TEXT(s) with a fine-tuned run directory, model directory or hub id.")
    add_classify_arguments(p)
    p.set_defaults(func=run_classify_cli)
