"""Experiments built from pre-training and fine-tuning runs: the downstream benchmark, the learning
curve and the comparison of pre-training objectives at equal compute (notebook 06).

    benchmark("runs/mini", "runs/mini/benchmark", BenchmarkConfig())
    learning_curve("runs/mini", "sentiment", sizes=(100, 300, 1000, None))

`benchmark` fine-tunes a pre-trained model and (with cfg.scratch) the same architecture from random
weights on every task, each with learning rates chosen on validation and several seeds, beside a
bag-of-words baseline, and prints a GLUE-style table; `learning_curve` compares the two for growing
training-set sizes; `compare_pretraining` pre-trains one short run per variant (objective,
masking rate, strategy) and scores each with standard masks and a short fine-tuning.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import numbers
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from . import plots, runs
from .baselines import bag_of_words
from .config import (
    BenchmarkConfig,
    MaskingConfig,
    PretrainConfig,
    from_dict,
    to_dict,
)
from .data import load_corpus
from .finetune import FinetuneConfig, FinetuneError, check_model, finetune
from .pretrain import evaluate_mlm, pretrain
from .tasks import TaskError, known_tasks, load_task, subsample

# ---- benchmark: pre-trained vs from scratch vs bag of words on every task ----------------------

def _finetune_config(model: str, task: str, bcfg: BenchmarkConfig, from_scratch: bool, lr: Optional[float] = None,
                     seed: Optional[int] = None) -> FinetuneConfig:
    cfg = FinetuneConfig(model=model, task=task, strategy=bcfg.strategy, freeze_layers=bcfg.freeze_layers,
                         pooling=bcfg.pooling,
                         from_scratch=from_scratch, train_examples=bcfg.train_examples,
                         eval_examples=bcfg.eval_examples,
                         train=copy.deepcopy(bcfg.train))
    if lr is not None:
        cfg.train.lr = lr
    if seed is not None:
        cfg.train.seed = seed
    return cfg


def _std(values: Sequence[float]) -> Optional[float]:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def aggregate_seeds(pretrained: Sequence[float], scratch: Optional[Sequence[float]] = None) -> dict:
    """Mean and sample standard deviation (n - 1 in the denominator; None for one seed) of each
    arm's test scores over fine-tuning seeds, and of the paired differences pretrained[i] - scratch[i]
    (seed i of both arms shares the batch order and the classifier-head seed). The difference's
    spread is the standard deviation of those per-seed differences, not a standard error."""
    out = {"pretrained": {"scores": [float(v) for v in pretrained], "mean": float(np.mean(pretrained)),
                          "std": _std(pretrained)}}
    if scratch is not None:
        if len(scratch) != len(pretrained):
            raise ValueError(f"{len(pretrained)} pre-trained scores but {len(scratch)} from scratch")
        diff = [float(a) - float(b) for a, b in zip(pretrained, scratch)]
        out["scratch"] = {"scores": [float(v) for v in scratch], "mean": float(np.mean(scratch)), "std": _std(scratch)}
        out["difference"] = {"scores": diff, "mean": float(np.mean(diff)), "std": _std(diff)}
    return out


def choose_by_validation(sweep: Sequence[dict]) -> int:
    """Index of the sweep point with the best `validation` score; ties go to the lower validation
    loss, then to the earlier point. Test scores, if a point carries any, are never looked at."""
    if not sweep:
        raise ValueError("an empty sweep has nothing to choose from")
    return max(range(len(sweep)), key=lambda i: (sweep[i]["validation"], -sweep[i].get("val_loss", 0.0), -i))


def _pm(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat.get("std") is not None else "")


def benchmark_table(results: dict) -> str:
    """A GLUE-style Markdown table (x100): a row per task and an average; per arm the mean ± standard
    deviation over seeds at its chosen learning rate, the difference pre-trained minus scratch (mean ±
    standard deviation of the per-seed differences) and the bag-of-words score with its chosen C."""
    rows, avg = results["tasks"], results["average"]
    scratch, bow = "scratch" in avg, "bow" in avg

    def line(task: str, metric: str, pretrained: str, from_scratch, difference, bag_of_words) -> str:
        """A table row; the columns of absent arms are left out (their values are then False)."""
        cells = [task, metric, pretrained] + ([from_scratch, difference] if scratch else []) + \
            ([bag_of_words] if bow else [])
        return "|" + "".join(f" {c} |" if c else " |" for c in cells)

    lines = [line("task", "metric", "pre-trained", "from scratch", "difference", "bag of words"),
             "|---|---|---:|" + ("---:|---:|" if scratch else "") + ("---:|" if bow else "")]
    for r in rows:
        a = r["arms"]
        lines.append(line(r["task"], r["metric"], f"{_pm(a['pretrained'])} (lr {a['pretrained']['lr']:g})",
                          scratch and f"{_pm(a['scratch'])} (lr {a['scratch']['lr']:g})",
                          scratch and _pm(r["difference"]),
                          bow and f"{100 * a['bow']['score']:.1f} (C {a['bow']['C']:g})"))
    lines.append(line("**average**", "", f"**{_pm(avg['pretrained'])}**", scratch and f"**{_pm(avg['scratch'])}**",
                      scratch and f"**{_pm(avg['difference'])}**", bow and f"**{100 * avg['bow']:.1f}**"))
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    """Every grid point's validation score (x100); the chosen one is starred."""
    lines = ["| task | arm | setting | validation |", "|---|---|---|---:|"]
    for r in results["tasks"]:
        for arm, a in r["arms"].items():
            key = "C" if arm == "bow" else "lr"
            for p in a["sweep"]:
                star = " *" if p[key] == a[key] else ""
                lines.append(f"| {r['task']} | {arm} | {key} {p[key]:g}{star} | {100 * p['validation']:.1f} |")
    return "\n".join(lines)


def _slug(name: str) -> str:
    return name.replace(":", "_").replace("/", "_")


def benchmark(pretrained_path: str | Path, out_dir: str | Path, cfg: Optional[BenchmarkConfig] = None, *,
              overwrite: bool = False, progress: bool = False, verbose: bool = True) -> dict:
    """On every task: fine-tune the pre-trained model and (with cfg.scratch) the same architecture
    from random weights. Each arm tries every learning rate of its grid once (seed train.seed) and
    keeps the one with the best validation score; that rate is run with cfg.seeds seeds (the first is
    the sweep's run) and only those runs' test scores are reported. With cfg.bow a TF-IDF logistic
    regression (C chosen on validation) gets a row too. Every run fine-tunes on the same training
    subsample (with cfg.resample, seed i's runs on subsample i, the same for both arms; the sweep and bag
    of words on the first) and validates on the same examples. Writes OUT/benchmark.json and OUT/benchmark.md and
    prints the table. Run directories: OUT/<task>/<arm>/lr<lr>-seed<seed>."""
    cfg = cfg or BenchmarkConfig()
    out = Path(out_dir)
    unknown = [t for t in cfg.tasks if t not in known_tasks() and not t.startswith("hf:") and not Path(t).exists()]
    if unknown:
        raise FinetuneError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(known_tasks())}")
    seeds = [cfg.train.seed + i for i in range(cfg.seeds)]
    try:  # every task (and, with resample, every seed's subsample) and the model are read before the folder is made
        full = {name: load_task(name) for name in cfg.tasks}
        drawn = seeds if cfg.resample else seeds[:1]  # without resample every seed uses the first seed's
        samples = {name: {seed: subsample(task, cfg.train_examples, seed) for seed in drawn}
                   for name, task in full.items()}
    except TaskError as e:
        raise FinetuneError(str(e)) from None
    check_model(str(pretrained_path), cfg.pooling)
    try:
        runs.prepare_output_dir(out, overwrite, kind="benchmark")  # an old one is moved to OUT.old-N
    except runs.RunError as e:
        raise FinetuneError(str(e)) from None
    t0, cpu0 = time.perf_counter(), time.process_time()
    arms = [("pretrained", False, cfg.pretrained_lrs)] + ([("scratch", True, cfg.scratch_lrs)] if cfg.scratch else [])
    rows = []
    for name, by_seed in samples.items():
        data = by_seed[seeds[0]]  # the sweep's (and bag of words') subsample
        row = {"task": data.name, "metric": data.metric, "train_examples": len(data["train"]),
               "validation_examples": min(len(data["validation"]), cfg.eval_examples or len(data["validation"])),
               "test_examples": len(data["test"]), "arms": {}}

        def run(label: str, scratch: bool, lr: float, seed: int) -> dict:
            path = out / _slug(data.name) / label / f"lr{lr:g}-seed{seed}"
            s = finetune(_finetune_config(str(pretrained_path), name, cfg, scratch, lr, seed), path, overwrite=True,
                         progress=progress, task_data=by_seed.get(seed, data))
            if not cfg.keep_models:  # ~75 MB a mini run; metrics, summary and test predictions stay
                for sub in (runs.CHECKPOINTS, runs.MODEL):
                    shutil.rmtree(path / sub, ignore_errors=True)
            return s

        for label, scratch, grid in arms:
            sweep, first = [], []
            for lr in grid:
                s = run(label, scratch, lr, seeds[0])
                if f"val_{data.metric}" not in s:
                    raise FinetuneError(f"{data.name}: no validation examples to choose a learning rate on")
                sweep.append({"lr": lr, "validation": s[f"val_{data.metric}"], "val_loss": s["val_loss"],
                              "steps": s["steps"], "wall_time": s["wall_time"]})
                first.append(s)
                if verbose:
                    print(f"{data.name:>10} {label:>10} lr {lr:g}: validation {data.metric} "
                          f"{100 * sweep[-1]['validation']:.1f} ({s['steps']} steps, {s['wall_time']:.0f}s)",
                          flush=True)
            best = choose_by_validation(sweep)
            lr = sweep[best]["lr"]
            summaries = [first[best]] + [run(label, scratch, lr, seed) for seed in seeds[1:]]
            scores = [s["test"]["score"] for s in summaries]
            row["arms"][label] = {"lr": lr, "sweep": sweep, "seeds": seeds, "scores": scores,
                                  "mean": float(np.mean(scores)), "std": _std(scores),
                                  "wall_time": round(sum(p["wall_time"] for p in sweep) +
                                                     sum(s["wall_time"] for s in summaries[1:]), 1)}
            if verbose:
                print(f"{data.name:>10} {label:>10}: lr {lr:g} chosen on validation; test {data.metric} "
                      f"{_pm(row['arms'][label])} over {len(seeds)} seed(s)", flush=True)
        if cfg.scratch:
            row["difference"] = aggregate_seeds(row["arms"]["pretrained"]["scores"],
                                                row["arms"]["scratch"]["scores"])["difference"]
        if cfg.bow:
            tb = time.perf_counter()
            row["arms"]["bow"] = bag_of_words(data, cfg.bow_cs, cfg.eval_examples)
            row["arms"]["bow"]["wall_time"] = round(time.perf_counter() - tb, 1)
            if verbose:
                print(f"{data.name:>10} {'bow':>10}: C {row['arms']['bow']['C']:g} chosen on validation; test "
                      f"{data.metric} {100 * row['arms']['bow']['score']:.1f}", flush=True)
        # flat columns: each arm's mean test score
        row.update({label: row["arms"][label]["mean"] for label, _, _ in arms})
        rows.append(row)
    # the average over tasks, per seed, so its spread is over seeds too
    per_seed = {label: [float(np.mean([r["arms"][label]["scores"][i] for r in rows])) for i in range(len(seeds))]
                for label, _, _ in arms}
    agg = aggregate_seeds(per_seed["pretrained"], per_seed.get("scratch"))
    average = {k: v for k, v in agg.items()}
    if cfg.bow:
        average["bow"] = float(np.mean([r["arms"]["bow"]["score"] for r in rows]))
    results = {"model": str(pretrained_path), "config": to_dict(cfg), "tasks": rows, "average": average,
               "difference_spread": "standard deviation over seeds of the per-seed difference (pre-trained minus "
                                    "scratch, seed i against seed i)",
               "wall_time": round(time.perf_counter() - t0, 1), "cpu_time": round(time.process_time() - cpu0, 1),
               "threads": torch.get_num_threads()}
    table, sweeps = benchmark_table(results), sweep_table(results)
    results["table"], results["sweep_table"] = table, sweeps
    (out / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "benchmark.md").write_text(
        f"# Fine-tuning benchmark\n\nModel: `{pretrained_path}`; scores on each task's test split (x100), mean ± "
        f"standard deviation over {len(seeds)} fine-tuning seed(s) at each arm's learning rate, chosen on "
        f"{cfg.eval_examples or 'all'} validation examples; the difference's spread is the standard deviation of the "
        f"per-seed differences. Budget per run: {cfg.train_examples or 'all'} training examples"
        f"{' (a subsample per seed)' if cfg.resample else ''}, at most "
        f"{cfg.train.max_steps or '-'} steps / {cfg.train.epochs or '-'} epochs, batch {cfg.train.batch_size}, seq_len "
        f"{cfg.train.seq_len}, strategy {cfg.strategy}.\n\n{table}\n\n## Learning-rate (and C) sweep, validation "
        f"split\n\n{sweeps}\n\nWall time {results['wall_time']:.0f} s, process CPU time {results['cpu_time']:.0f} s.\n",
        encoding="utf-8")
    if verbose:
        print(table + "\n\nvalidation sweep (* = chosen):\n" + sweeps, flush=True)
    return results


# ---- learning curve ------------------------------------------------------------------------------

def learning_curve(pretrained_path: str | Path, task: str = "sentiment",
                   sizes: Sequence[Optional[int]] = (100, 300, 1000, None),
                   cfg: Optional[FinetuneConfig] = None, *, out_dir: str | Path | None = None, scratch: bool = True,
                   min_steps: int = 50, overwrite: bool = False, progress: bool = False, verbose: bool = True):
    """Test score against training-set size, pre-trained vs from scratch. Each point trains for
    cfg.train.epochs epochs but at least `min_steps` steps (small sets need several passes); the
    samples are nested (a seeded shuffle's prefixes). Returns (results, plotly figure). The task, the
    sizes and the model are checked before `out_dir` is made (an old one is moved aside with
    `overwrite`, as for `benchmark`); without `out_dir` the runs go to a temporary folder."""
    base = copy.deepcopy(cfg) if cfg is not None else FinetuneConfig()
    base.model, base.task = str(pretrained_path), task
    bad = [s for s in sizes if s is not None and (isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1)]
    if bad or not sizes:
        raise FinetuneError(f"training-set sizes must be positive whole numbers or all (None); got {list(sizes)}")
    try:
        full = load_task(task, seed=base.train.seed, text_column=base.text_column, label_column=base.label_column,
                         text_pair_column=base.text_pair_column, unseen=base.unseen)
    except TaskError as e:
        raise FinetuneError(str(e)) from None
    check_model(base.model, base.pooling)
    tmp = None
    if out_dir is None:
        tmp = tempfile.mkdtemp(prefix="learning-curve-")
        out_dir = tmp
    else:
        try:
            runs.prepare_output_dir(out_dir, overwrite, kind="learning-curve")  # an old one is moved to OUT.old-N
        except runs.RunError as e:
            raise FinetuneError(str(e)) from None
    results = []
    try:
        for size in sizes:
            data = subsample(full, size, base.train.seed)
            n = len(data["train"])
            point = {"size": n, "requested": size}
            for label, is_scratch in [("pretrained", False)] + ([("scratch", True)] if scratch else []):
                c = copy.deepcopy(base)
                c.from_scratch = is_scratch
                c.train.batch_size = min(c.train.batch_size, n)
                spe = n // c.train.batch_size
                c.train.max_steps = max(min_steps, round((c.train.epochs or 1) * spe))
                c.train.epochs = None
                s = finetune(c, Path(out_dir) / f"n{n}" / label, overwrite=True, progress=progress, task_data=data)
                point[label] = s["test"]["score"]
                point[f"{label}_steps"] = s["steps"]
                if verbose:
                    print(f"{n:>6} examples {label:>10}: {data.metric} {100 * s['test']['score']:.1f}", flush=True)
            results.append(point)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    fig = plots.learning_curve(results, task, full.metric, scratch=scratch)
    if out_dir is not None and tmp is None:
        (Path(out_dir) / "learning_curve.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results, fig


# ---- comparing pre-training objectives at equal compute (notebook 06) ----------------------------

def compare_pretraining(variants: dict[str, dict], base: PretrainConfig, out_dir: str | Path, *, corpus=None,
                        finetune_task: str = "trec", finetune_steps: int = 200, finetune_examples: int = 1000,
                        finetune_seq_len: int = 48, finetune_lr: float = 1e-3, scratch_baseline: bool = True,
                        verbose: bool = True):
    """Pre-train one short run per variant (overrides of `base`, e.g. {"objective": "mlm+sop"} or
    {"masking": {"mlm_probability": 0.3}}) with the same time budget, fine-tune each for the same
    number of steps on `finetune_task`, and return a pandas DataFrame, one row per variant (plus a
    'no pre-training' row with `scratch_baseline`: the first variant's architecture, random weights).
    Each variant's own `train.seed` also seeds its fine-tuning. Run directories: OUT/<variant>/pretrain
    and OUT/<variant>/finetune (the variant name with anything but letters, digits and _.+- as '-').
    `mlm15_*` columns score every model with the same standard masks (15% tokens), so runs trained
    with other masking rates or strategies compare on one scale."""
    out = Path(out_dir)
    corpus = corpus if corpus is not None else load_corpus(base.data, seed=base.train.seed)
    task_data = load_task(finetune_task, train_examples=finetune_examples, seed=base.train.seed)

    def ft(model: str, run: Path, seed: int, scratch: bool = False) -> dict:
        fcfg = FinetuneConfig(model=model, task=finetune_task, from_scratch=scratch, train_examples=finetune_examples,
                              eval_examples=200)
        fcfg.train.max_steps, fcfg.train.epochs = finetune_steps, None
        fcfg.train.seq_len, fcfg.train.lr = finetune_seq_len, finetune_lr
        fcfg.train.seed = seed
        fcfg.train.precision, fcfg.train.device = base.train.precision, base.train.device
        fcfg.train.threads = base.train.threads
        with contextlib.redirect_stdout(io.StringIO()):  # one line per variant is printed below instead
            s = finetune(fcfg, run, overwrite=True, progress=False, task_data=task_data)
        return {"downstream_accuracy": round(s["test"]["accuracy"], 4),
                "downstream_macro_f1": round(s["test"]["macro_f1"], 4)}

    rows = []
    first_run = None
    for name, overrides in variants.items():
        cfg = from_dict(PretrainConfig, overrides, copy.deepcopy(base))
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-") or "variant"
        run = out / slug / "pretrain"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            s = pretrain(cfg, run, overwrite=True, progress=False, corpus=corpus)
        first_run = first_run or run
        row = {"variant": name, "objective": cfg.objective, "mask_rate": cfg.masking.mlm_probability,
               "strategy": cfg.masking.mask_strategy, "steps": s["steps"], "tokens": s["tokens"],
               "train_s": s["train_time"], "val_mlm_accuracy": s.get("val_accuracy"),
               "val_pair_accuracy": s.get("val_pair_accuracy")}
        # every model on the same standard masks (15% tokens, 80/10/10): other rates and strategies compare
        m = evaluate_mlm(run, cfg, batches=8, masking=MaskingConfig(seed=base.train.seed), corpus=corpus)
        row.update({"mlm15_loss": round(m["val_loss"], 4), "mlm15_accuracy": round(m["val_accuracy"], 4)})
        row.update(ft(str(run), out / slug / "finetune", cfg.train.seed))
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        if verbose:
            print(f"{name}: {row['steps']} steps, {row['tokens']:,} tokens; MLM accuracy (15% token masks) "
                  f"{row['mlm15_accuracy']:.3f}; {finetune_task} test accuracy {row['downstream_accuracy']:.3f} "
                  f"({row['wall_s']:.0f}s)", flush=True)
    if scratch_baseline and first_run is not None:
        row = {"variant": "no pre-training", "objective": "-", "mask_rate": None, "strategy": "-", "steps": 0,
               "tokens": 0,
               "train_s": 0.0, "val_mlm_accuracy": None, "val_pair_accuracy": None, "mlm15_loss": None,
               "mlm15_accuracy": None}
        row.update(ft(str(first_run), out / "no-pretraining" / "finetune", base.train.seed, scratch=True))
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")
