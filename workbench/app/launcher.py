"""Pre-training runs started from the app: one `workbench pretrain` subprocess at a time, writing to
RUNS/NAME, with its state in the server process (a page reload finds it again).

- The form's values become a PretrainConfig through the same typed config as the CLI (checked
  before anything starts) and then `workbench pretrain` flags, so the run's command.txt is a command
  a user can type.
- Stop sends SIGTERM: the engine finishes the current step, writes a checkpoint and a summary with
  `"stopped": true`, and exits 0 (workbench.training); Resume runs `pretrain --resume` on it.
- Limits are enforced here, on the server: the time budget is capped (`workbench app --max-budget`),
  names are sanitised (workbench.limits.run_name) and stay inside the runs folder, a corpus file must
  lie inside the runs folder, an upload is at most limits.MAX_UPLOAD_BYTES and is stored there.
- The job is ended cleanly when the app exits (atexit, and SIGTERM of the app in `install_exit_handlers`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import config as C
from .. import limits, runs

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding workbench/, for the subprocess
UPLOADS = "uploads"  # RUNS/uploads/: corpus files uploaded through the app
LOGS = ".app-logs"  # RUNS/.app-logs/NAME.log: the output of the app's runs
RESERVED = (UPLOADS, LOGS)


class LaunchError(ValueError):
    """A start, resume, stop or upload the launcher refuses; the message says why."""


@dataclass
class Job:
    name: str
    run_dir: Path
    command: list[str]
    proc: subprocess.Popen
    log_path: Path
    budget_s: Optional[float]
    max_steps: Optional[int]
    started: float = field(default_factory=time.time)
    stop_requested: bool = False
    ended: bool = False


def form_config(preset: str, architecture: str, time_budget: str, mlm_probability: float, mask_strategy: str,
                data: Optional[str], max_steps: int = 0, eval_every: int = 50) -> C.PretrainConfig:
    """The run's typed config from the form's values (a preset, then the fields the form sets): the
    CLI's checks run here, so a bad value is refused before anything starts."""
    base = C.preset(preset, architecture)  # an unknown preset is refused here; BERT gets its own rate
    overrides = {"model": {"architecture": architecture},
                 "masking": {"mlm_probability": float(mlm_probability), "mask_strategy": mask_strategy},
                 "train": {"time_budget": time_budget, "max_steps": int(max_steps) or None,
                           "eval_every": int(eval_every)},
                 "data": {"data": [data] if data else []}}
    return C.from_dict(C.PretrainConfig, overrides, base)


def form_flags(preset: str, cfg: C.PretrainConfig) -> list[str]:
    """The `workbench pretrain` flags that give `cfg` (tests parse them back with the CLI's parser)."""
    flags = ["--preset", preset, "--architecture", cfg.model.architecture, "--time-budget", str(cfg.train.time_budget),
             "--mlm-probability", repr(cfg.masking.mlm_probability), "--mask-strategy", cfg.masking.mask_strategy,
             "--eval-every", str(cfg.train.eval_every)]
    if cfg.train.max_steps:
        flags += ["--max-steps", str(cfg.train.max_steps)]
    if cfg.data.data:
        flags += ["--data", *cfg.data.data]
    return flags


class RunLauncher:
    """The app's one pre-training job. Thread-safe; every method returns `status()`'s dict."""

    def __init__(self, runs_dir: str | Path, max_budget: str | float = "30m"):
        self.runs_dir = Path(runs_dir)
        self.max_budget_s = C.parse_duration(max_budget)
        if self.max_budget_s <= 0:
            raise C.ConfigError(f"--max-budget must be positive, got {max_budget!r}")
        self.job: Optional[Job] = None
        self.ended_jobs = 0  # jobs that ended since the app started: the pickers rescan when it changes
        self._lock = threading.RLock()
        self._exit_registered = False

    # -- checks ----------------------------------------------------------------------------------
    def _name(self, value) -> str:
        try:
            name = limits.run_name(value)
        except limits.LimitError as e:
            raise LaunchError(str(e)) from None
        if name in RESERVED:
            raise LaunchError(f"the run name {name!r} is reserved by the app; choose another")
        runs.inside(self.runs_dir, name)  # a single sanitised path component: always inside
        return name

    def _budget(self, text) -> float:
        if not isinstance(text, str) or not text.strip():
            raise LaunchError(f"give a time budget (e.g. 2m); the app runs at most {self.max_budget_s / 60:g} min")
        seconds = C.parse_duration(text)
        if not 0 < seconds <= self.max_budget_s:
            raise LaunchError(f"the time budget {text} is over this app's limit of {self.max_budget_s / 60:g} min "
                              "(`workbench app --max-budget`); longer runs: `workbench pretrain --time-budget`")
        return seconds

    def corpus_path(self, value: Optional[str]) -> Optional[str]:
        """'' = the default corpus; else a .txt/.jsonl/.csv file inside the runs folder (its path)."""
        value = limits.check_model_field(value)
        if not value:
            return None
        try:
            path = runs.inside(self.runs_dir, value)
        except runs.RunError:
            raise LaunchError(f"refused: the corpus {value} is outside the runs folder {self.runs_dir}; the app "
                              f"trains on the default corpus or a file under {self.runs_dir} (upload one)") from None
        if not path.is_file() or path.suffix.lower() not in limits.UPLOAD_SUFFIXES:
            raise LaunchError(f"the corpus {value} is not a {', '.join(limits.UPLOAD_SUFFIXES)} file under "
                              f"{self.runs_dir}")
        return str(path)

    def corpus_files(self) -> list[str]:
        """Corpus files the form offers: RUNS/*.{txt,jsonl,csv} and RUNS/uploads/*, relative to RUNS."""
        found = []
        for folder in (self.runs_dir, self.runs_dir / UPLOADS):
            if folder.is_dir():
                found += sorted(str(p.relative_to(self.runs_dir)) for p in folder.iterdir()
                                if p.is_file() and p.suffix.lower() in limits.UPLOAD_SUFFIXES)
        return found

    def store_upload(self, path: str | Path, original_name: Optional[str] = None) -> str:
        """Copy an uploaded corpus into RUNS/uploads/ (a sanitised name; never over another file) and
        return its path relative to RUNS. Refused over the size limit or with another suffix."""
        path = Path(path)
        name = original_name or path.name
        try:
            limits.check_upload(path.stat().st_size, name)
            stem = limits.run_name(Path(name).stem)
        except limits.LimitError as e:
            raise LaunchError(str(e)) from None
        folder = self.runs_dir / UPLOADS
        folder.mkdir(parents=True, exist_ok=True)
        suffix = Path(name).suffix.lower()
        target, n = folder / f"{stem}{suffix}", 1
        while target.exists():
            if target.stat().st_size == path.stat().st_size and target.read_bytes() == path.read_bytes():
                break  # the same file uploaded again
            n += 1
            target = folder / f"{stem}-{n}{suffix}"
        else:
            shutil.copyfile(path, target)
        return str(target.relative_to(self.runs_dir))

    # -- the job ---------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.job is not None and self.job.proc.poll() is None

    def _refuse_if_running(self) -> None:
        if self.running():
            raise LaunchError(f"refused: the run {self.job.name!r} is still running (one run at a time); stop it "
                              "or wait for it to finish")

    def start(self, name, preset: str = "mini", architecture: str = "modernbert", time_budget: str = "2m",
              mlm_probability: float = 0.15, mask_strategy: str = "token", corpus: str = "", max_steps: int = 0,
              eval_every: int = 50) -> dict:
        with self._lock:
            self._refuse_if_running()
            name = self._name(name)
            run_dir = self.runs_dir / name
            if run_dir.exists():
                raise LaunchError(f"{run_dir} exists: resume it, or choose another name (the app never "
                                  "overwrites a run)")
            budget = self._budget(time_budget)
            cfg = form_config(preset, architecture, time_budget, mlm_probability, mask_strategy,
                              self.corpus_path(corpus), max_steps, eval_every)
            flags = form_flags(preset, cfg) + ["--out", str(run_dir)]
            self._launch(name, flags, budget, cfg.train.max_steps)
            return self.status()

    def resume(self, name, time_budget: str = "", max_steps: int = 0) -> dict:
        """Continue RUNS/NAME from its last checkpoint with its own settings; a new time budget (within
        the cap) or step limit may be given, else the run's own budget must be within the cap."""
        with self._lock:
            self._refuse_if_running()
            name = self._name(name)
            run_dir = self.runs_dir / name
            saved = runs.run_config(run_dir)
            if runs.run_kind(run_dir) != "pretrain" or not saved:
                raise LaunchError(f"{run_dir} is not a pre-training run to resume (no config.json of a pretrain run)")
            budget_text = time_budget or (saved.get("train") or {}).get("time_budget") or ""
            budget = self._budget(budget_text)
            flags = ["--out", str(run_dir), "--resume", "--time-budget", str(budget_text)]
            steps = int(max_steps) or (saved.get("train") or {}).get("max_steps")
            if max_steps:
                flags += ["--max-steps", str(int(max_steps))]
            self._launch(name, flags, budget, steps)
            return self.status()

    def _launch(self, name: str, flags: list[str], budget: float, max_steps: Optional[int]) -> None:
        log_path = self.runs_dir / LOGS / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "workbench.cli", "pretrain", *flags]
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)}
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command[1:])}\n")
            log.flush()
            # its own session: a Ctrl-C in the app's terminal reaches the app, which stops the run once
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self.job = Job(name, self.runs_dir / name, command, proc, log_path, budget, max_steps)
        if not self._exit_registered:
            atexit.register(self.shutdown)
            self._exit_registered = True

    def stop(self) -> dict:
        """Ask the running job to stop after its current step (SIGTERM; see workbench.training)."""
        with self._lock:
            if not self.running():
                raise LaunchError("no run is running")
            if not self.job.stop_requested:
                self.job.stop_requested = True
                self.job.proc.send_signal(signal.SIGTERM)
            return self.status()

    def shutdown(self, timeout: float = 60.0) -> None:
        """End the job (the app is exiting): stop it gracefully, kill it if it does not end in time."""
        job = self.job
        if job is None or job.proc.poll() is not None:
            return
        if not job.stop_requested:
            job.stop_requested = True
            job.proc.send_signal(signal.SIGTERM)
        try:
            job.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            job.proc.kill()
            job.proc.wait()

    # -- what the page shows -----------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            job = self.job
            if job is None:
                return {"state": "idle", "name": None, "message": "No run started from this app yet.",
                        "max_budget_s": self.max_budget_s}
            rc = job.proc.poll()
            if rc is not None and not job.ended:
                job.ended = True
                self.ended_jobs += 1
            records = runs.read_metrics(job.run_dir) if job.run_dir.is_dir() else []
            train = [r for r in records if r.get("kind") == "train"]
            last = train[-1] if train else {}
            step, spent = last.get("step", 0), last.get("time", 0.0)
            fractions = [spent / job.budget_s] if job.budget_s else []
            if job.max_steps:
                fractions.append(step / job.max_steps)
            summary = runs.summary_of(job.run_dir) if rc == 0 else None
            state = _state(job, rc, summary)
            out = {"state": state, "name": job.name, "run_dir": str(job.run_dir), "step": step, "time": spent,
                   "tokens": last.get("tokens", 0), "loss": last.get("loss"), "budget_s": job.budget_s,
                   "max_steps": job.max_steps, "progress": round(min(1.0, max(fractions, default=0.0)), 4),
                   "returncode": rc, "pid": job.proc.pid, "ended_jobs": self.ended_jobs,
                   "max_budget_s": self.max_budget_s, "log": _tail(job.log_path)}
            out["message"] = _message(out, summary)
            return out


def _state(job: Job, rc: Optional[int], summary: Optional[dict]) -> str:
    if rc is None:
        return "stopping" if job.stop_requested else "running"
    if rc == 0:
        return "stopped" if summary and summary.get("stopped") else "finished"
    return "stopped" if job.stop_requested and rc == -signal.SIGTERM else "failed"


def _message(s: dict, summary: Optional[dict]) -> str:
    name, state = s["name"], s["state"]
    where = f"step {s['step']:,}"
    if s["budget_s"]:
        where += f" · {s['time'] / 60:.1f} of {s['budget_s'] / 60:.1f} min"
    loss = f" · loss {s['loss']:.3f}" if s.get("loss") is not None else ""
    if state == "running":
        return f"{name}: running, {where}{loss}" if s["step"] else f"{name}: preparing (corpus, tokenizer, model)…"
    if state == "stopping":
        return f"{name}: stopping after the current step (writing a checkpoint)…"
    if state == "finished":
        return f"{name}: finished at {where}{loss}; its model is in the model pickers"
    if state == "stopped":
        if summary and summary.get("stopped"):
            return f"{name}: stopped at step {summary['steps']:,} with a checkpoint; Resume continues it"
        return f"{name}: stopped before its first step (nothing to resume: start it again)"
    lines = [line for line in s["log"].splitlines() if line.strip()]
    error = next((line for line in reversed(lines) if "error:" in line), lines[-1] if lines else "")
    return f"{name}: failed (exit code {s['returncode']}): {error}"


def _tail(path: Path, chars: int = 2000) -> str:
    """The end of a log; progress-bar redraws (\\r) count as line ends."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - chars))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(line for line in text.replace("\r", "\n").splitlines() if line.strip())


def install_exit_handlers(launcher: RunLauncher) -> None:
    """For the app's own process (`workbench app`): SIGTERM is handled like Ctrl-C (gradio closes the
    server and `launch` returns), so the process exits through atexit, where the launcher stops its job
    with a checkpoint instead of leaving it training without its app."""
    atexit.register(launcher.shutdown)  # idempotent: also registered when a job starts
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
