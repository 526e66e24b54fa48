"""Stopping a training run gracefully.

SIGTERM or SIGINT (Ctrl-C, `kill PID`, what the app's Stop button and job schedulers send) is the
primary way to stop a run early: the engine (workbench.training) finishes the current step, logs it,
writes a checkpoint and a summary.json with `"stopped": true`, and returns normally (the CLI exits 0),
so `workbench pretrain --out RUN --resume` continues it exactly. A second signal stops at once.
Where the process cannot be signalled (a run on another machine sharing the run directory), creating
the file RUN/STOP does the same; the run that honours it (or finishes anyway) removes it. With several
processes the decision is agreed every step: any process asked, all stop after the same step.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import torch

STOP_FILE = "STOP"  # RUN/STOP: asks a running run to stop after its current step (see the module docstring)


class StopRequest:
    """While a run trains: SIGTERM/SIGINT handlers (main thread only; elsewhere signals keep their
    handlers) and the RUN/STOP file. `requested` says, once per step, whether to stop after it."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STOP_FILE
        self.reason: Optional[str] = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:  # asked twice: stop now, as without this handler
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.reason = name
        print(f"\n{name}: stopping after this step and writing a checkpoint (--resume continues the run); "
              f"{name} again stops at once", file=sys.stderr, flush=True)

    def requested(self, accelerator) -> bool:
        """Whether to stop after this step: a signal or RUN/STOP seen by this process (one stat call)
        or, with several processes, by any of them (one all-reduce of a flag)."""
        if self.reason is None and self.path.exists():
            self.reason = f"the stop file {self.path}"
        local = self.reason is not None
        if accelerator.num_processes == 1:
            return local
        flag = torch.tensor(1.0 if local else 0.0, device=accelerator.device)
        agreed = accelerator.reduce(flag, reduction="sum").item() > 0
        if agreed and not local:
            self.reason = "another process's stop request"
        return agreed

    def clear_file(self) -> None:
        """A stop file is consumed by the run that honours it (or finishes anyway): --resume trains on."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
