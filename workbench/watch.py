"""Predictions through training: per-probe records at every evaluation and weights-only snapshots.

Two training callbacks that `pretrain` adds to every run, and the readers the app and the plots use:

- `ProbeRecorder` writes RUN/probes.jsonl: **one line per evaluation**,
  `{"step", "tokens", "time", "cloze_top1", "cloze_top5", "probes": [...]}`, where each entry of
  `probes` is one answerable probe (`probes.ProbeResult.as_dict`): `id` (its position in the probe
  file), `text`, `answers` (those this tokenizer can produce with one token), `answer` (the
  best-ranked of them), `rank` and `p_best` (that answer's rank and probability), `p_answer` (the
  total probability of all accepted answers) and `top1` / `top1_p` (the model's first prediction).
  The numbers are those of the evaluation itself (`MLMTask.evaluate` hands its `score_probes` result
  over): nothing is computed twice. A resumed run rewrites the evaluations after its checkpoint, as
  metrics.jsonl does.
- `Snapshots` keeps the weights at log-spaced steps (N, 2N, 4N, ... and the last step) in
  RUN/snapshots/step-NNNNNNNN/: a model directory (config.json + model.safetensors in float16, half the
  size of a checkpoint and without the optimizer) that `loading.load_model` opens, the tokenizer being
  the run's own (`runs.resolve_model_dir` finds it two levels up, as for checkpoints). For the mini
  ModernBERT (6.4M parameters) a snapshot is about 13 MB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from . import runs
from .loading import quiet_transformers
from .probes import ProbeScores

PROBE_RECORDS = runs.PROBES
SNAPSHOTS = runs.SNAPSHOTS


# ---- per-probe records ---------------------------------------------------------------------------

class ProbeRecorder:
    """Callback writing RUN/probes.jsonl. `MLMTask(probe_sink=recorder.take)` hands it each
    evaluation's ProbeScores; the engine's "eval" record that follows gives the step, tokens and time."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / PROBE_RECORDS
        self.pending: Optional[ProbeScores] = None
        self._checked = False

    def take(self, scores: ProbeScores) -> None:
        self.pending = scores

    def __call__(self, kind: str, record: dict) -> None:
        if not self._checked and "step" in record:
            # the first record of this process: a resumed run redoes every step from here on, so its
            # evaluations' probe records written before the interruption are dropped (not kept twice)
            self._checked = True
            _drop_from(self.path, record["step"])
        if kind != "eval" or self.pending is None:
            return
        scores, self.pending = self.pending, None
        line = {"step": record["step"], "tokens": record.get("tokens"), "time": record.get("time"),
                **{k: v for k, v in scores.summary().items()}, "unanswerable": scores.unanswerable,
                "probes": [r.as_dict() for r in scores.results]}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def _drop_from(path: Path, step: int) -> None:
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [ln for ln in lines if ln.strip() and _step_of(ln) < step]
    if len(kept) != len(lines):
        runs.write_atomic(path, "".join(ln + "\n" for ln in kept))


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
        return 1 << 62  # an unreadable (half-written) line goes


def read_probe_records(path: str | Path) -> list[dict]:
    """The evaluations of RUN/probes.jsonl (a run or model directory, or the file itself), in order;
    [] when there is none. A half-written last line is skipped."""
    p = Path(path)
    p = p / PROBE_RECORDS if p.is_dir() else p
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("probes"), list):
            out.append(rec)
    return out


# ---- weights-only snapshots ----------------------------------------------------------------------

def snapshot_steps(first: int, last: int) -> list[int]:
    """The steps `Snapshots` keeps for a run of `last` steps: first, 2 first, 4 first, ... up to
    `last`, and `last` itself; [] when `first` is 0 (off)."""
    if not first or last < 1:
        return []
    steps, s = [], first
    while s < last:
        steps.append(s)
        s *= 2
    return steps + [last]


def is_snapshot_step(step: int, first: int) -> bool:
    """step == first * 2**k for some k >= 0."""
    if not first or step < first or step % first:
        return False
    q = step // first
    return q & (q - 1) == 0


def snapshot_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"step-{step:08d}"


def snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, directory) of a run's complete snapshots, oldest first."""
    root = Path(run_dir) / SNAPSHOTS
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        name = p.name
        if p.is_dir() and name.startswith("step-") and name[5:].isdigit() and runs.is_model_dir(p):
            found.append((int(name[5:]), p))
    return sorted(found)


def save_snapshot(model, path: str | Path) -> Path:
    """`model`'s weights in float16 with its config, written atomically into `path`."""
    final = Path(path)
    model = getattr(model, "module", model)
    with quiet_transformers(), runs.atomic_output(final) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        runs.halve_weights(tmp)
    return final


class Snapshots:
    """Callback keeping weights-only snapshots at steps first * 2**k and at the last step."""

    every_step = True  # the engine calls it with kind "step" after every step (training.Callback)

    def __init__(self, run_dir: str | Path, model, first: int):
        self.run_dir, self.model, self.first = Path(run_dir), model, first
        self.saved: list[int] = []

    def __call__(self, kind: str, record: dict) -> None:
        if kind == "step" and is_snapshot_step(record["step"], self.first):
            self._save(record["step"])
        elif kind == "end" and self.first and record.get("steps") and record["steps"] not in self.saved:
            self._save(record["steps"])

    def _save(self, step: int) -> None:
        save_snapshot(self.model, snapshot_dir(self.run_dir, step))
        self.saved.append(step)
