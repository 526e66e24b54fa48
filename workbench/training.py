"""The training engine shared by pre-training and fine-tuning.

A plain loop you can read in one sitting (nanoGPT-style), on top of `accelerate` for devices,
mixed precision and multi-process runs. What it trains is a `Task`: an object that hands out the
global batch of a step and computes a summed loss on part of it. The engine owns everything else:
the learning-rate schedule (which can follow a wall-clock budget), gradient accumulation and
clipping, metrics.jsonl, progress bars, atomic checkpoints and exact resume.

Exact resume works because nothing random is hidden in iterator state: the batch of step `s` is a
pure function of (seed, s) (see Task.batch), masks come from `masking.generator_for(seed, s)`, and
the torch RNG (dropout) is saved in each checkpoint.

Stopping gracefully (workbench.stopping): on SIGTERM or SIGINT, or the file RUN/STOP, the engine
finishes the current step, logs it, writes a checkpoint and summary.json with `"stopped": true`, and
returns normally (the CLI exits 0), so `workbench pretrain --out RUN --resume` continues it exactly.

Loss scaling: each process computes the *sum* of its per-item losses and divides by the number of
items in the whole global batch (times the number of processes, since DDP averages gradients). The
gradient is then exactly that of the global-batch mean, however the batch is split across
processes or accumulation steps, which is what makes a 2-process run match a 1-process run.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm

from . import heap, runs
from .config import ConfigError, TrainConfig, to_dict
from .dropout import fast_cpu_dropout
from .loading import quiet_transformers
from .stopping import StopRequest

# called as callback(kind, record) with kind "train" | "eval" | "end"; also "step" after every step when the
# callback has an attribute every_step = True (workbench.watch snapshots weights at chosen steps)
Callback = Callable[[str, dict], None]


class Task(Protocol):
    def steps_per_epoch(self) -> int: ...

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The global batch of `step` (all processes, all accumulation steps), on the CPU."""

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        """How many loss items (predicted tokens, examples) the batch holds: the loss normaliser."""

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Input tokens in the batch (for throughput)."""

    def training_module(self, model: torch.nn.Module) -> torch.nn.Module:
        """A module sharing `model`'s parameters whose forward(**batch) returns the summed loss of
        (part of) a batch. Training goes through it so that DDP sees every forward."""

    def evaluate(self, module: torch.nn.Module, accelerator) -> dict[str, float]:
        """Validation metrics, computed with the training module in eval mode."""


@dataclass
class TrainState:
    step: int = 0
    tokens: int = 0
    train_time: float = 0.0  # seconds spent in training steps (no evaluation, no saving)
    epoch_steps: int = 0
    extra: dict = field(default_factory=dict)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The examples of global batch `step` out of `n`: epoch e is a permutation seeded by seed + e,
    cut into consecutive batches (an epoch's incomplete last batch is skipped). A pure function of
    its arguments, which is what makes resume exact; every task draws its batches with it."""
    epoch, within = divmod(step, n // batch_size)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    return order[within * batch_size:(within + 1) * batch_size]


# ---- devices and precision -----------------------------------------------------------------------

def cpu_supports_bf16() -> bool:
    """bf16 matmuls are fast on CPUs with AVX512-BF16 or AMX; elsewhere they are emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """'auto' -> bf16 where the device runs it fast, fp16 on older GPUs, fp32 otherwise.
    Returns accelerate's names: 'bf16' | 'fp16' | 'no'."""
    p = precision.lower()
    if p not in ("auto", "bf16", "fp16", "fp32", "no"):
        raise ConfigError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    if device == "cpu" and p == "fp16":
        raise ConfigError("fp16 on a CPU runs at about 1 GFLOP/s (no fp16 matmul units): use bf16 or fp32")
    if p == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_bf16() else "no"
    return "no" if p == "fp32" else p


def make_accelerator(cfg: TrainConfig):
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {cfg.device!r}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device (is a CUDA build of torch "
                          "installed?)")
    device = "cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(True)  # a notebook may train twice with different precisions
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Accelerator(cpu=device == "cpu", mixed_precision=resolve_precision(cfg.precision, device))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, lr: Optional[float] = None,
                   lr_scales: Optional[dict[str, float]] = None) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights; the fused kernel where torch has
    one for the device (CPU and CUDA in torch >= 2.4), else foreach. `lr_scales` maps parameter
    names to a multiplier of the scheduled learning rate (layer-wise decay); groups keep it as
    `lr_scale`, which the loop applies every step."""
    groups_by_key: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower()
        scale = (lr_scales or {}).get(name, 1.0)
        groups_by_key.setdefault((no_decay, scale), []).append(p)
    groups = [{"params": ps, "weight_decay": 0.0 if no_decay else cfg.weight_decay, "lr_scale": scale}
              for (no_decay, scale), ps in sorted(groups_by_key.items())]
    try:
        return torch.optim.AdamW(groups, lr=lr or cfg.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr or cfg.lr, betas=(0.9, 0.98), eps=1e-6, foreach=True)


def lr_factor(progress: float, warmup: float, schedule: str) -> float:
    """Multiplier of the peak learning rate at `progress` in [0, 1] of the whole schedule."""
    if schedule not in ("linear", "cosine", "constant"):
        raise ConfigError(f"schedule must be linear, cosine or constant, got {schedule!r}")
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 1e-3)
    if schedule == "constant":
        return 1.0
    rest = min(1.0, (progress - warmup) / max(1e-9, 1.0 - warmup))
    return max(0.0, 1.0 - rest) if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * rest))


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> Optional[int]:
    """Steps from --max-steps or --epochs; None when only the time budget bounds the run."""
    candidates = []
    if cfg.max_steps:
        candidates.append(cfg.max_steps)
    if cfg.epochs:
        candidates.append(max(1, round(cfg.epochs * steps_per_epoch)))
    if not candidates and not cfg.time_budget:
        candidates.append(steps_per_epoch)  # nothing given: one epoch
    return min(candidates) if candidates else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---- the run lifecycle: start_run -> train -> finish_run -------------------------------------------

KINDS = ("pretrain", "finetune", "simcse")  # what a run directory holds; config.json records it as `kind`


def start_run(run_dir: str | Path, accelerator, *, overwrite: bool = False, resume: bool = False) -> Path:
    """The first thing a run does: its directory is made on the main process (an existing one is
    refused, moved aside with `overwrite`, or continued with `resume`: runs.prepare_run_dir) before
    any work starts, and every process waits for it."""
    run_dir = Path(run_dir)
    if accelerator.is_main_process:
        runs.prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
    accelerator.wait_for_everyone()
    return run_dir


def write_run_config(run_dir: str | Path, cfg, kind: str) -> None:
    """RUN/config.json: the run's typed config plus its `kind` (pretrain | finetune | simcse), which
    the app and the CLI read instead of guessing from the config's keys. Call on the main process."""
    if kind not in KINDS:
        raise ConfigError(f"run kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(run_dir) / runs.CONFIG
    runs.write_atomic(path, json.dumps({"kind": kind, **to_dict(cfg)}, indent=2) + "\n")  # never half written


def finish_run(run_dir: str | Path, accelerator, *, model=None, tokenizer=None, summary: Optional[dict] = None,
               files: Optional[dict[str, object]] = None) -> None:
    """The last thing a run does, on the main process: RUN/model/ (the final model with its
    tokenizer: a plain Hugging Face model directory), any extra JSON `files` {name: data}, and the
    final `summary.json` (when a summary is given: `train` wrote the engine's one already). Every
    process waits for it."""
    run_dir = Path(run_dir)
    if accelerator.is_main_process:
        if model is not None:  # written whole or not at all: a half-written model/ must not hide the checkpoints
            model = getattr(model, "module", model)
            with quiet_transformers(), runs.atomic_output(run_dir / runs.MODEL) as tmp:
                model.save_pretrained(str(tmp), safe_serialization=True)
                if tokenizer is not None:
                    tokenizer.save_pretrained(str(tmp))
        elif tokenizer is not None:
            tokenizer.save_pretrained(str(run_dir / runs.MODEL))
        for name, data in (files or {}).items():
            (run_dir / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        if summary is not None:
            (run_dir / runs.SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()


# ---- checkpoints ---------------------------------------------------------------------------------

def save_checkpoint(run_dir: Path, model, optimizer, state: TrainState, accelerator, keep: int) -> Path:
    # `model` is the plain transformers model (not the DDP wrapper), saved with save_pretrained
    """Write checkpoints/step-N atomically (temporary folder, COMPLETE marker, rename) and keep the
    newest `keep` checkpoints."""
    final = Path(run_dir) / runs.CHECKPOINTS / f"step-{state.step:08d}"
    if accelerator.is_main_process:
        tmp = runs.atomic_dir(final)
        model.save_pretrained(str(tmp), safe_serialization=True)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        # numpy's state as plain tensors and numbers, so rng.pt loads with weights_only=True (no pickled objects)
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
               "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                         "has_gauss": int(has_gauss), "gauss": float(gauss)}}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state.__dict__, indent=2))
        runs.commit_dir(tmp, final)  # every file fsynced, COMPLETE written, then renamed into place
        for old in runs.checkpoints(run_dir)[:-keep] if keep > 0 else []:
            runs.remove_dir(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(ckpt: Path, model, optimizer, accelerator) -> TrainState:
    from safetensors.torch import load_file

    weights = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        weights.update(load_file(str(f)))
    unwrapped = model
    missing, unexpected = unwrapped.load_state_dict(weights, strict=False)
    tied = set(getattr(unwrapped, "all_tied_weights_keys", {}) or {})
    real_missing = [k for k in missing if k not in tied and "decoder" not in k and not k.endswith("predictions.bias")]
    if real_missing or unexpected:
        raise runs.RunError(f"{ckpt}: checkpoint does not match the model (missing {real_missing[:3]}, unexpected "
                            f"{unexpected[:3]})")
    if hasattr(unwrapped, "tie_weights"):
        unwrapped.tie_weights()
    # weights_only: a run directory someone sends you cannot run code when it is resumed
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
    rng = _load_rng(ckpt / "rng.pt")
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    if isinstance(n, dict):
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    else:
        np.random.set_state(n)
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return TrainState(**json.loads((ckpt / "state.json").read_text()))


def _load_rng(path: Path) -> dict:
    """rng.pt with weights_only=True. Checkpoints written before numpy's state was stored as tensors
    hold a numpy array: allowed through numpy's array reconstruction only (no other globals)."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        core = getattr(np, "_core", None) or np.core
        allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, weights_only=True)


def resume_checkpoint(run_dir: Path, model, optimizer, accelerator) -> tuple[TrainState, Optional[Path]]:
    """Load the newest complete checkpoint that reads back; one that does not (a truncated
    optimizer.pt, say) is reported and the previous one is used. (TrainState(), None) without any."""
    found = runs.checkpoints(run_dir)
    problems = []
    for ckpt in reversed(found):
        try:
            state = load_checkpoint(ckpt, model, optimizer, accelerator)
        except runs.RunError:
            raise  # the checkpoint is readable but does not fit this model: falling back would not help
        except Exception as e:  # noqa: BLE001 - any unreadable file (zip, safetensors, json) counts
            problems.append(f"{ckpt.name}: {type(e).__name__}: {str(e)[:200]}")
            accelerator.print(f"warning: checkpoint {ckpt} cannot be read ({problems[-1]}); "
                              "falling back to the previous complete checkpoint")
            continue
        return state, ckpt
    if found:
        raise runs.RunError(f"{run_dir}: no checkpoint can be read: " + "; ".join(problems))
    return TrainState(), None


# ---- the loop ------------------------------------------------------------------------------------

class MetricsWriter:
    """Appends records to RUN/metrics.jsonl (main process only), flushed per line so a live
    dashboard can follow the run."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = Path(run_dir) / runs.METRICS

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _shard(batch: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    n = next(iter(batch.values())).shape[0]
    if n % world:
        raise ConfigError(f"global batch {n} is not divisible by {world} processes")
    per = n // world
    return {k: v[rank * per:(rank + 1) * per] for k, v in batch.items()}


def _micro_batches(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    n = next(iter(batch.values())).shape[0]
    if n % parts:
        raise ConfigError(f"per-process batch {n} is not divisible by grad_accum={parts}")
    size = n // parts
    return [{k: v[i * size:(i + 1) * size] for k, v in batch.items()} for i in range(parts)]


def train(model: torch.nn.Module, task: Task, cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          callbacks: tuple[Callback, ...] = (), accelerator=None, progress: bool = True, desc: str = "train") -> dict:
    """Train `model` on `task`; write metrics, checkpoints and the final model into `run_dir`.
    Returns a summary dict (also written to RUN/summary.json). The caller saves the final model."""
    accelerator = accelerator or make_accelerator(cfg)
    # torch's own dropout is slow on CPU; the fast one keeps the rate (see workbench.dropout)
    faster = fast_cpu_dropout(model) if cfg.fast_dropout and accelerator.device.type == "cpu" else nullcontext()
    with faster, StopRequest(Path(run_dir)) as stopper:
        return _train(model, task, cfg, Path(run_dir), resume, callbacks, accelerator, progress, desc, stopper)


def _train(model, task: Task, cfg: TrainConfig, run_dir: Path, resume: bool, callbacks: tuple[Callback, ...],
           accelerator, progress: bool, desc: str, stopper: StopRequest) -> dict:
    seed_everything(cfg.seed)
    steps = total_steps(cfg, task.steps_per_epoch())
    budget = cfg.budget_seconds()
    if cfg.compile:
        for child in model.children():  # in place, so parameter names and checkpoints are unchanged
            child.compile()
    scales = task.lr_scales(model) if hasattr(task, "lr_scales") else None
    optimizer = make_optimizer(model, cfg, lr_scales=scales)
    module, optimizer = accelerator.prepare(task.training_module(model), optimizer)
    state, resumed_eval = TrainState(), {}
    if resume and runs.latest_checkpoint(run_dir) is not None:
        state, ckpt = resume_checkpoint(run_dir, model, optimizer, accelerator)
        accelerator.print(f"resumed from {ckpt} at step {state.step}")
        if accelerator.is_main_process:  # records written after the checkpoint will be written again
            runs.truncate_metrics(run_dir, state.step)
        accelerator.wait_for_everyone()
        kept = runs.read_metrics(run_dir)  # every process decides alike whether the final evaluation is done
        resumed_eval = next((r for r in reversed(kept) if r.get("kind") == "eval" and r["step"] == state.step), {})
    elif resume and accelerator.is_main_process:  # stopped before its first checkpoint: the log starts over
        runs.truncate_metrics(run_dir, 0)
    metrics = MetricsWriter(run_dir, accelerator.is_main_process)

    def emit(kind: str, record: dict) -> None:
        metrics.write(record)
        for cb in callbacks:
            if accelerator.is_main_process:
                cb(kind, record)

    world, rank = accelerator.num_processes, accelerator.process_index
    bar = tqdm(total=steps, initial=state.step, desc=desc, disable=not (progress and accelerator.is_local_main_process),
               unit="step", dynamic_ncols=True)
    if steps is None and budget:
        bar.total = None
    last_log = (state.step, state.tokens, state.train_time)
    running_loss = torch.zeros((), device=accelerator.device)
    running_items = 0
    eval_record: dict = resumed_eval  # resumed at the last step: its evaluation is not repeated
    module.train()

    def progress_of(s: TrainState) -> float:
        fractions = []
        if steps:
            fractions.append(s.step / steps)
        if budget:
            fractions.append(s.train_time / budget)
        return max(fractions)

    while progress_of(state) < 1.0:
        t0 = time.perf_counter()
        lr = cfg.lr * lr_factor(progress_of(state), cfg.warmup, cfg.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        global_batch = task.batch(state.step)
        normaliser = max(1, task.count(global_batch))
        micro = _micro_batches(_shard(global_batch, rank, world), cfg.grad_accum)
        for i, mb in enumerate(micro):
            mb = {k: v.to(accelerator.device, non_blocking=True) for k, v in mb.items()}
            sync = accelerator.no_sync(module) if (i < len(micro) - 1 and world > 1) else nullcontext()
            with sync, accelerator.autocast():
                loss_sum = module(**mb)
                accelerator.backward(loss_sum * (world / normaliser))
            running_loss += loss_sum.detach().float()
        running_items += normaliser
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.tokens += task.tokens(global_batch)
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()
        elif state.step % heap.TRIM_EVERY == 0:  # freed CPU buffers back to the OS (workbench.heap: 2.1 -> 1.4 GB)
            heap.release_freed_memory()
        state.train_time += time.perf_counter() - t0
        bar.update(1)
        done = progress_of(state) >= 1.0
        stop = not done and stopper.requested(accelerator)  # finished anyway: the request is moot

        if state.step % cfg.log_every == 0 or done or stop:  # a stopped run logs its last steps too
            loss = accelerator.reduce(running_loss, reduction="sum").item() / max(1, running_items)
            dt = state.train_time - last_log[2]
            record = {"kind": "train", "step": state.step, "time": round(state.train_time, 3), "tokens": state.tokens,
                      "loss": round(loss, 5), "lr": lr,
                      "tokens_per_s": round((state.tokens - last_log[1]) / max(dt, 1e-9), 1)}
            emit("train", record)
            shown = {"loss": f"{loss:.3f}", "lr": f"{lr:.1e}", "tok_s": f"{record['tokens_per_s']:.0f}"}
            if budget:  # a time-budget run has no step total: show how much of the budget is spent
                shown["budget"] = f"{state.train_time / 60:.1f}/{budget / 60:.1f}min"
            bar.set_postfix(shown)
            last_log = (state.step, state.tokens, state.train_time)
            running_loss.zero_()
            running_items = 0
        if cfg.eval_every and (state.step % cfg.eval_every == 0 or done):
            eval_record = _evaluate(module, task, accelerator, state)
            emit("eval", eval_record)
            module.train()
        if (cfg.save_every and state.step % cfg.save_every == 0) or done or stop:
            save_checkpoint(run_dir, model, optimizer, state, accelerator, cfg.keep_checkpoints)
        for cb in callbacks:  # kind "step" after every step, only to callbacks that ask (every_step = True)
            if getattr(cb, "every_step", False) and accelerator.is_main_process:
                cb("step", {"step": state.step, "time": round(state.train_time, 3), "tokens": state.tokens})
        if stop:
            break
    bar.close()
    stopped = stopper.reason if progress_of(state) < 1.0 else None
    if stopped:  # no final evaluation: a stop should be quick; the resumed run evaluates on schedule
        accelerator.print(f"stopped at step {state.step} ({stopped}): checkpoint written; continue with --resume")
    elif not eval_record or eval_record["step"] != state.step:
        eval_record = _evaluate(module, task, accelerator, state)
        emit("eval", eval_record)
    module.eval()
    summary = {"steps": state.step, "tokens": state.tokens, "train_time": round(state.train_time, 2),
               "tokens_per_s": round(state.tokens / max(state.train_time, 1e-9), 1),
               "processes": world, "device": str(accelerator.device),
               # accelerate calls full precision "no"; the summary uses the names of --precision
               "precision": "fp32" if accelerator.mixed_precision == "no" else accelerator.mixed_precision}
    if stopped:
        summary.update(stopped=True, stop_reason=stopped)
    if eval_record and eval_record["step"] == state.step:
        summary.update({k: v for k, v in eval_record.items() if k not in ("kind", "step", "time", "tokens")})
    if accelerator.is_main_process:
        stopper.clear_file()
        runs.write_atomic(run_dir / runs.SUMMARY, json.dumps(summary, indent=2) + "\n")
        for cb in callbacks:
            cb("end", summary)
    return summary


def _evaluate(module, task: Task, accelerator, state: TrainState) -> dict:
    module.eval()
    with torch.no_grad(), accelerator.autocast():
        values = task.evaluate(module, accelerator)
    return {"kind": "eval", "step": state.step, "time": round(state.train_time, 3), "tokens": state.tokens, **values}
