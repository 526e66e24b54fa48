"""Fault injection: SIGKILL a `workbench pretrain` subprocess at random moments, resume it, repeat.

Every run is killed several times (during a training step, while a checkpoint is being written, or
at start-up while the tokenizer and config are written), resumed with `--resume` each time, and
finally left to finish. Each finished run must equal one uninterrupted run step for step: the
same training loss at every step (each step logged exactly once), the same final validation loss,
and bit-identical final weights.

    python benchmarks/fault_injection.py                 # 24 kills over 6 runs, seed 0
    python benchmarks/fault_injection.py --kills 40 --seed 3 --keep /tmp/fi

Tiny model (1 layer, hidden 64), 200 steps of batch 8 x 64 tokens, one thread: a few minutes on a
2-core CPU, most of it process start-up. Exit status 0 when every run matched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("step", "checkpoint", "startup")


def prepare(work: Path, documents: int = 150) -> tuple[Path, Path]:
    """A small text corpus and a tokenizer trained on it, shared by every run (so runs can match)."""
    from workbench.config import DataConfig, TokenizerConfig
    from workbench.data import load_corpus
    from workbench.tokenizer import train_tokenizer

    corpus = load_corpus(DataConfig(max_documents=documents, validation_fraction=0.1))
    text = work / "corpus.txt"
    # one document per paragraph (blank-line separated), as the text loader reads them
    text.write_text("\n\n".join(t.replace("\n\n", "\n") for split in ("train", "validation")
                                for t in corpus[split]["text"]),
                    encoding="utf-8")
    tok = work / "tokenizer"
    train_tokenizer(corpus["train"]["text"], TokenizerConfig(vocab_size=1500)).save_pretrained(str(tok))
    return text, tok


def command(run: Path, text: Path, tok: Path, steps: int, resume: bool) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", "pretrain", "--out", str(run), "--data", str(text),
            "--tokenizer-from", str(tok), "--size", "tiny", "--layers", "1", "--hidden", "64", "--heads", "2",
            "--batch-size", "8", "--seq-len", "64", "--lr", "2e-3", "--max-steps", str(steps), "--log-every", "1",
            "--eval-every", "50", "--eval-batches", "2", "--save-every", "20", "--keep-checkpoints", "2",
            "--precision", "fp32", "--threads", "1", "--probes", "none"] + (["--resume"] if resume else [])


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError):
            continue
    return 0


def _writing_checkpoint(run: Path, since: float) -> bool:
    """A checkpoint save of this process is under way (a .tmp folder made after `since`; a killed
    earlier attempt may have left an old one)."""
    root = run / "checkpoints"
    try:
        return root.is_dir() and any(p.name.endswith(".tmp") and p.stat().st_mtime >= since for p in root.iterdir())
    except OSError:  # renamed or removed while we looked
        return False


def attempt(cmd: list[str], run: Path, mode: str | None, rng: random.Random, steps: int, log) -> bool:
    """Start the command; with a mode, SIGKILL it when that moment comes. True if it was killed."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    start, wall_start, step0 = time.monotonic(), time.time(), _last_step(run)
    target = rng.randint(step0 + 1, max(step0 + 1, steps - 1))
    delay = rng.uniform(0, 0.02)
    started = None
    while proc.poll() is None and mode is not None:
        if mode == "startup" and time.monotonic() - start > rng.uniform(1.0, 6.0):
            break
        if mode == "step" and _last_step(run) >= target:
            time.sleep(delay)
            break
        if mode == "checkpoint" and _writing_checkpoint(run, wall_start):
            started = started or time.monotonic()
            if time.monotonic() - started >= delay / 4:
                break
        time.sleep(0.002)
    if mode is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    out = proc.communicate()[0]
    killed = proc.returncode == -signal.SIGKILL
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    log(f"  {'killed' if killed else 'finished'} ({mode or 'no kill'}) at step {_last_step(run)}"
        f" after {time.monotonic() - start:.1f}s")
    return killed


def outcome(run: Path) -> dict:
    """What must match: per-step losses (each step once), final validation loss, final weights."""
    from safetensors.torch import load_file

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r["step"] for r in records if r["kind"] == "train"]
    evals = [r["step"] for r in records if r["kind"] == "eval"]
    if len(train) != len(set(train)) or len(evals) != len(set(evals)):
        raise AssertionError(f"{run}: a step was logged twice (train {train}, eval {evals})")
    return {"loss": {r["step"]: r["loss"] for r in records if r["kind"] == "train"},
            "val_loss": {r["step"]: r["val_loss"] for r in records if r["kind"] == "eval"},
            "summary_steps": json.loads((run / "summary.json").read_text())["steps"],
            "weights": load_file(str(run / "model" / "model.safetensors"))}


def same(a: dict, b: dict) -> list[str]:
    import torch

    problems = [f"{k} differs" for k in ("loss", "val_loss", "summary_steps") if a[k] != b[k]]
    same = a["weights"].keys() == b["weights"].keys() and all(torch.equal(a["weights"][k], b["weights"][k])
                                                              for k in a["weights"])
    if not same:
        problems.append("final weights differ")
    return problems


def run_trials(work: Path, kills: int = 24, runs: int = 6, steps: int = 200, seed: int = 0, log=print) -> dict:
    """Kill `kills` times over `runs` runs; returns {"kills", "by_mode", "failures"}."""
    rng = random.Random(seed)
    text, tok = prepare(work)
    log("reference run (no kill)")
    attempt(command(work / "reference", text, tok, steps, False), work / "reference", None, rng, steps, log)
    reference = outcome(work / "reference")
    by_mode = {m: 0 for m in MODES}
    failures, done = [], 0
    for i in range(runs):
        run = work / f"run-{i}"
        quota = (kills - done) // (runs - i)
        log(f"run {i}: {quota} kills")
        first, tries = True, 0
        while quota and tries < 4 * quota + 4:
            tries += 1
            mode = "startup" if first else rng.choice(MODES)
            if attempt(command(run, text, tok, steps, not first), run, mode, rng, steps, log):
                by_mode[mode] += 1
                done += 1
                quota -= 1
                first = False
            elif (run / "summary.json").exists():  # it finished before the moment came: start over
                os.rename(run, work / f"run-{i}.finished-{tries}")
                first = True
        attempt(command(run, text, tok, steps, not first), run, None, rng, steps, log)
        problems = same(outcome(run), reference)
        log(f"run {i}: {'equal to the uninterrupted run' if not problems else '; '.join(problems)}")
        failures += [f"run {i}: {p}" for p in problems]
    return {"kills": done, "by_mode": by_mode, "failures": failures}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        result = run_trials(Path(args.keep), args.kills, args.runs, args.steps, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="fault-injection-") as d:
            result = run_trials(Path(d), args.kills, args.runs, args.steps, args.seed)
    print(f"\n{result['kills']} SIGKILLs ({', '.join(f'{k} {m}' for m, k in result['by_mode'].items())}) over "
          f"{args.runs} runs in {time.perf_counter() - t0:.0f}s; "
          + ("every resumed run equals the uninterrupted one step for step" if not result["failures"]
             else f"{len(result['failures'])} failure(s):\n" + "\n".join(result["failures"])))
    return 0 if not result["failures"] and result["kills"] >= args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
