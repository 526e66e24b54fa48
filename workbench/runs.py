"""The run directory: one folder per pre-training or fine-tuning run.

    RUN/config.json          the full typed config of the run
    RUN/tokenizer/           the tokenizer (transformers fast-tokenizer layout)
    RUN/metrics.jsonl        one JSON record per line (see below)
    RUN/checkpoints/step-00000500/   model (safetensors) + optimizer.pt + state.json + COMPLETE
    RUN/model/               the final model *and* tokenizer: a plain Hugging Face model directory
    RUN/summary.json         final metrics
    RUN/command.txt          the command line(s) that made the run (one per start or resume)

A finished run's model leaves as a plain Hugging Face folder with its model card: workbench.export.

metrics.jsonl records have `kind`:
    {"kind": "train", "step", "time", "tokens", "loss", "lr", "tokens_per_s"}
    {"kind": "eval",  "step", "time", "tokens", "val_loss", "val_perplexity", "val_accuracy", ...}
`time` is seconds of training (wall clock, excluding evaluation and checkpointing), `tokens` the
number of input tokens seen so far (all processes).

A checkpoint directory counts only once its COMPLETE marker exists; it is written under a temporary
name and renamed into place, so a kill during a save never leaves one that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from safetensors.torch import load_file, save_file

CONFIG = "config.json"
TOKENIZER = "tokenizer"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
MODEL = "model"
SUMMARY = "summary.json"
PROBES = "probes.jsonl"  # per-probe cloze records of every evaluation (workbench.watch)
SNAPSHOTS = "snapshots"  # weights-only float16 snapshots at log-spaced steps (workbench.watch)
COMMAND = "command.txt"
COMPLETE = "COMPLETE"


class RunError(ValueError):
    pass


def is_model_dir(path: Path) -> bool:
    weights = any(path.glob("*.safetensors"))
    return (path / "config.json").is_file() and weights or (path / "pytorch_model.bin").is_file()


_STEP_DIR = re.compile(r"step-(\d+)")  # checkpoints/step-00000500; not step-N.tmp or step-N.deleting


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first. A folder counts when its name is exactly step-N
    and it holds the COMPLETE marker (a save killed before its rename leaves step-N.tmp, which does not)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.fullmatch(p.name) and (p / COMPLETE).exists()]
    return sorted(done, key=lambda p: int(_STEP_DIR.fullmatch(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def resolve_model_dir(path: str | Path) -> tuple[Path, Path]:
    """(model directory, tokenizer directory) for a run directory, a checkpoint or a model directory.
    A run prefers its final model, then its latest complete checkpoint."""
    p = Path(path).expanduser()
    if not p.exists():
        raise RunError(f"{path}: no such run or model directory")
    if (p / MODEL).is_dir() and is_model_dir(p / MODEL):
        return p / MODEL, p / MODEL
    if is_model_dir(p):
        tok = p if (p / "tokenizer_config.json").exists() else p.parent.parent / TOKENIZER
        if not (tok / "tokenizer_config.json").exists() and not (tok / "tokenizer.json").exists():
            raise RunError(f"{path}: model without its tokenizer (looked in {p} and {tok})")
        return p, tok
    ckpt = latest_checkpoint(p)
    if ckpt is not None:
        return ckpt, p / TOKENIZER
    raise RunError(f"{path}: neither a model directory (config.json + weights) nor a run with a model or a complete "
                   "checkpoint")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All records of a run's metrics.jsonl (a partly written last line, from a live run, is skipped)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def list_runs(runs_dir: str | Path) -> list[Path]:
    """Run directories (holding a metrics.jsonl or a model) directly under `runs_dir`, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and ((p / METRICS).exists() or (p / MODEL).is_dir() or is_model_dir(p))]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def inside(root: str | Path, candidate: str | Path) -> Path:
    """`candidate` resolved, if it lies inside `root`; otherwise RunError (used by the app's pickers)."""
    root_r = Path(root).resolve()
    cand = Path(candidate)
    cand_r = (cand if cand.is_absolute() else root_r / cand).resolve()
    if cand_r != root_r and root_r not in cand_r.parents:
        raise RunError(f"{candidate}: outside the runs directory {root}")
    return cand_r


# ---- output folders: never lose what a user gave us ---------------------------------------------
# Every folder the workbench makes for its output gets a marker file naming what it is. `--overwrite`
# moves such a folder aside to PATH.old-N (never deletes it) and refuses a folder that holds files
# the workbench did not write (`--out runs`, a home folder, a folder with a user's notes).

MARKER = ".workbench"


def _legacy_output(p: Path) -> bool:
    """Folders written before the marker existed: a run, benchmark or learning-curve folder, a model
    or a tokenizer directory."""
    if (p / CONFIG).is_file() and any((p / n).exists() for n in (METRICS, SUMMARY, CHECKPOINTS, TOKENIZER, MODEL)):
        return True
    return any((p / n).is_file() for n in ("benchmark.json", "learning_curve.json",
                                           "tokenizer_config.json")) or is_model_dir(p)


def made_by_workbench(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / MARKER).is_file() or _legacy_output(p))


def check_output_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> None:
    """Raise RunError unless `path` can be used as an output folder; touches nothing. Usable: a new
    or empty folder; an existing output of the workbench with `overwrite` (it will be moved aside)
    or `resume`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RunError(f"{p}: exists and is not a folder")
    if not p.exists() or not any(p.iterdir()) or resume:
        return
    if not overwrite:
        raise RunError(f"{p} exists and is not empty; choose another --out or pass --overwrite "
                       f"(the old one is then kept as {p}.old-N)")
    if not made_by_workbench(p):
        names = sorted(c.name for c in p.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise RunError(f"{p} holds files the workbench did not write ({shown}); --overwrite only replaces "
                       "a folder the workbench made: choose a new or empty --out")


def move_aside(path: str | Path) -> Path:
    """Rename `path` to PATH.old-N (the first free N) and return the new name; nothing is deleted."""
    p = Path(path)
    n = 1
    while Path(f"{p}.old-{n}").exists():
        n += 1
    aside = Path(f"{p}.old-{n}")
    p.rename(aside)
    return aside


def prepare_output_dir(path: str | Path, overwrite: bool = False, kind: str = "output", marker: bool = True) -> Path:
    """A fresh, empty output folder at `path`, checked as `check_output_dir` does; an existing
    output of the workbench is moved aside with `overwrite`. The folder gets the marker (naming
    `kind`) unless `marker` is False (exported models stay plain Hugging Face directories)."""
    p = Path(path)
    check_output_dir(p, overwrite)
    if p.exists() and any(p.iterdir()):
        move_aside(p)
    p.mkdir(parents=True, exist_ok=True)
    if marker:
        (p / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
    return p


def prepare_run_dir(path: str | Path, overwrite: bool = False, resume: bool = False, marker: bool = True) -> Path:
    """Create a fresh run directory. An existing non-empty one is never replaced unless `overwrite`
    (then it is moved aside to PATH.old-N first, not deleted, and only if the workbench made it) and
    is reused as is with `resume`."""
    p = Path(path)
    if p.exists() and p.is_dir() and any(p.iterdir()):
        if resume:
            return p
        if not overwrite:
            raise RunError(f"{p}: the run directory exists; use --resume to continue it or --overwrite to start over "
                           f"(the old one is then kept as {p}.old-N)")
    return prepare_output_dir(p, overwrite=overwrite, kind="run", marker=marker)


def summary_of(path: str | Path) -> Optional[dict]:
    """The training summary of a run, a run's model directory or an exported model, if there is one."""
    p = Path(path)
    for candidate in (p / SUMMARY, p.parent / SUMMARY):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except json.JSONDecodeError:
                return None
    return None


def record_command(run_dir: str | Path, argv: list[str]) -> None:
    """Append the command line to RUN/command.txt, so a model card can say exactly what made it."""
    with open(Path(run_dir) / COMMAND, "a", encoding="utf-8") as f:
        f.write(shlex.join(argv) + "\n")


# ---- atomic folders and files: a kill at any moment leaves the old state or the new, never half ----

def atomic_dir(final: Path) -> Path:
    """A temporary sibling to write a checkpoint into; `commit_dir` moves it into place."""
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: Path, final: Path, marker: bool = True) -> None:
    """Make `tmp`'s contents durable (every file fsynced), add the COMPLETE marker (with `marker`),
    then rename it to `final`. An existing `final` is renamed away first and deleted only after."""
    for f in sorted(tmp.rglob("*")):
        if f.is_file():
            _fsync_file(f)
    if marker:
        (tmp / COMPLETE).write_text("ok\n")
        _fsync_file(tmp / COMPLETE)
    _fsync_dir(tmp)
    old = None
    if final.exists():
        old = final.with_name(final.name + ".replaced")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_output(final: str | Path, marker: bool = False):
    """`with atomic_output(RUN/model) as tmp: save into tmp`: the folder appears whole or not at all
    (used for the final model and the tokenizer; checkpoints add the COMPLETE marker)."""
    final = Path(final)
    tmp = atomic_dir(final)
    yield tmp
    commit_dir(tmp, final, marker=marker)


def remove_dir(path: Path) -> None:
    """Delete a checkpoint so that it vanishes at once: renamed (no longer step-N) before removal."""
    gone = path.with_name(path.name + ".deleting")
    os.replace(path, gone)
    shutil.rmtree(gone, ignore_errors=True)


def halve_weights(folder: str | Path) -> None:
    """Rewrite a saved model folder's safetensors weights as float16 and say so in its config.json
    (snapshots and `export --half`): half the bytes; loaders read them back as float32."""
    folder = Path(folder)
    for f in folder.glob("*.safetensors"):
        weights = load_file(str(f))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, str(f),
                  metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def write_atomic(path: str | Path, text: str) -> None:
    """Replace a file's contents in one step (temporary sibling, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass


# ---- resume --------------------------------------------------------------------------------------

def truncate_metrics(run_dir: str | Path, step: int) -> list[dict]:
    """On resume from the checkpoint of `step`: drop metrics records written after it (they will be
    written again) and a partly written last line; returns the records kept."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    kept, kept_lines = [], []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= step:
            kept.append(record)
            kept_lines.append(line)
    if len(kept_lines) != len(lines):
        write_atomic(path, "".join(line + "\n" for line in kept_lines))
    return kept


# Settings that may change on --resume: how long to train, how often to log, evaluate and save, and
# where/how fast to run. Everything else (corpus, tokenizer, model, masking, batch, schedule, seed)
# shapes the trajectory, so a change is refused unless forced.
RESUMABLE = ("train.time_budget", "train.max_steps", "train.epochs", "train.eval_every", "train.eval_batches",
             "train.log_every", "train.save_every", "train.keep_checkpoints", "train.threads", "train.device",
             "train.precision", "train.compile", "train.fast_dropout", "probes", "snapshots")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_differences(saved: dict, now: dict, allowed: Sequence[str] = RESUMABLE) -> list[str]:
    """'name: RUN -> NOW' for every setting (nested config dicts) that differs and may not change on resume."""
    a, b = _flatten(saved), _flatten(now)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in allowed and k != "kind" and a.get(k) != b.get(k)]


def corpus_fingerprint(corpus) -> Optional[str]:
    """sha256 of every document of every split (in order), for a corpus with a `text` column; None
    for corpora that cannot be read through cheaply (streaming, token stores)."""
    h = hashlib.sha256()
    try:
        for split in sorted(corpus):
            if not hasattr(corpus[split], "__len__"):  # a streaming split: reading it would read it all
                return None
            h.update(f"\0split {split}\0".encode())
            for text in corpus[split]["text"]:
                h.update(text.encode("utf-8", "surrogatepass"))
                h.update(b"\0")
    except (TypeError, KeyError, AttributeError):
        return None
    return h.hexdigest()


def config_field(run_dir: str | Path, name: str):
    """A top-level value of RUN/config.json (e.g. corpus_fingerprint), or None."""
    return (run_config(run_dir) or {}).get(name)


def set_config_field(run_dir: str | Path, name: str, value) -> None:
    path = Path(run_dir) / CONFIG
    data = json.loads(path.read_text(encoding="utf-8"))
    data[name] = value
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def iter_eval(records: list[dict]) -> Iterator[dict]:
    return (r for r in records if r.get("kind") == "eval")


def run_config(run_dir: str | Path) -> Optional[dict]:
    """A run directory's config.json as a dict (with its `kind`: pretrain | finetune | simcse, written
    by training.write_run_config), or None when there is none or it cannot be read."""
    try:
        cfg = json.loads((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def run_kind(run_dir: str | Path) -> Optional[str]:
    """What made a run directory: "pretrain", "finetune" or "simcse" (its config.json's `kind`), else None."""
    cfg = run_config(run_dir)
    return cfg.get("kind") if cfg else None
