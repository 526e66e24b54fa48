"""Experiments built from fine-tuning runs: the downstream benchmark and the learning curve.

    benchmark("runs/mini", "runs/mini/benchmark", BenchmarkConfig())
    learning_curve("runs/mini", "sentiment", sizes=(100, 300, 1000, None))

`benchmark` fine-tunes a pre-trained model and (with cfg.scratch) the same architecture from random
weights on every task with the same budget and prints a GLUE-style table; `learning_curve` does it
for growing training-set sizes.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .config import BenchmarkConfig, add_arguments, to_dict
from .finetune import FinetuneConfig, FinetuneError, _cfg_from_args, finetune
from .tasks import TaskError, known_tasks, load_task, subsample


# ---- benchmark: pre-trained vs from scratch on every task ---------------------------------------

def _finetune_config(model: str, task: str, bcfg: BenchmarkConfig, from_scratch: bool) -> FinetuneConfig:
    return FinetuneConfig(model=model, task=task, strategy=bcfg.strategy, freeze_layers=bcfg.freeze_layers,
                          from_scratch=from_scratch, train_examples=bcfg.train_examples, eval_examples=bcfg.eval_examples,
                          train=copy.deepcopy(bcfg.train))


def benchmark_table(results: dict) -> str:
    """A GLUE-style Markdown table: a row per task, pre-trained and from-scratch columns (x100)."""
    rows = results["tasks"]
    scratch = any("scratch" in r for r in rows)
    head = "| task | metric | pre-trained |" + (" from scratch | difference |" if scratch else "")
    sep = "|---|---|---:|" + ("---:|---:|" if scratch else "")
    lines = [head, sep]
    for r in rows:
        line = f"| {r['task']} | {r['metric']} | {100 * r['pretrained']:.1f} |"
        if scratch:
            line += f" {100 * r['scratch']:.1f} | {100 * (r['pretrained'] - r['scratch']):+.1f} |"
        lines.append(line)
    avg = results["average"]
    line = f"| **average** | | **{100 * avg['pretrained']:.1f}** |"
    if scratch:
        line += f" **{100 * avg['scratch']:.1f}** | **{100 * (avg['pretrained'] - avg['scratch']):+.1f}** |"
    lines.append(line)
    return "\n".join(lines)


def benchmark(pretrained_path: str | Path, out_dir: str | Path, cfg: Optional[BenchmarkConfig] = None, *,
              overwrite: bool = False, progress: bool = False, verbose: bool = True) -> dict:
    """Fine-tune the pre-trained model and (with cfg.scratch) the same architecture from random
    weights on every task with the same budget; write OUT/benchmark.json and OUT/benchmark.md and
    print the table. Run directories: OUT/<task>/pretrained, OUT/<task>/scratch."""
    cfg = cfg or BenchmarkConfig()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FinetuneError(f"{out}: exists; pass overwrite=True (--overwrite) to replace it")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [t for t in cfg.tasks if t not in known_tasks() and not t.startswith("hf:") and not Path(t).exists()]
    if unknown:
        raise FinetuneError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(known_tasks())}")
    t0, cpu0 = time.perf_counter(), time.process_time()
    rows = []
    for name in cfg.tasks:
        seed = cfg.train.seed
        try:
            data = load_task(name, train_examples=cfg.train_examples, seed=seed)
        except TaskError as e:
            raise FinetuneError(str(e)) from None
        row = {"task": data.name, "metric": data.metric, "train_examples": len(data["train"]), "test_examples": len(data["test"])}
        variants = [("pretrained", False)] + ([("scratch", True)] if cfg.scratch else [])
        for label, scratch in variants:
            fcfg = _finetune_config(str(pretrained_path), name, cfg, scratch)
            run = out / data.name.replace(":", "_").replace("/", "_") / label
            s = finetune(fcfg, run, overwrite=True, progress=progress, task_data=data)
            row[label] = s["test"]["score"]
            row[f"{label}_accuracy"] = s["test"]["accuracy"]
            row[f"{label}_macro_f1"] = s["test"]["macro_f1"]
            row[f"{label}_steps"] = s["steps"]
            row[f"{label}_wall_time"] = s["wall_time"]
            row[f"{label}_cpu_time"] = s["cpu_time"]
            if verbose:
                print(f"{data.name:>10} {label:>10}: {data.metric} {100 * s['test']['score']:.1f} "
                      f"({s['steps']} steps, {s['wall_time']:.0f}s)", flush=True)
        rows.append(row)
    average = {"pretrained": float(np.mean([r["pretrained"] for r in rows]))}
    if cfg.scratch:
        average["scratch"] = float(np.mean([r["scratch"] for r in rows]))
    results = {"model": str(pretrained_path), "config": to_dict(cfg), "tasks": rows, "average": average,
               "wall_time": round(time.perf_counter() - t0, 1), "cpu_time": round(time.process_time() - cpu0, 1),
               "threads": torch.get_num_threads()}
    table = benchmark_table(results)
    results["table"] = table
    (out / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "benchmark.md").write_text(
        f"# Fine-tuning benchmark\n\nModel: `{pretrained_path}`; scores on each task's test split (x100); "
        f"budget: {cfg.train_examples or 'all'} training examples, at most {cfg.train.max_steps or '-'} steps / "
        f"{cfg.train.epochs or '-'} epochs, lr {cfg.train.lr}, batch {cfg.train.batch_size}, seq_len {cfg.train.seq_len}, "
        f"strategy {cfg.strategy}.\n\n{table}\n\nWall time {results['wall_time']:.0f} s, process CPU time "
        f"{results['cpu_time']:.0f} s.\n", encoding="utf-8")
    if verbose:
        print(table, flush=True)
    return results


# ---- learning curve ------------------------------------------------------------------------------

def learning_curve(pretrained_path: str | Path, task: str = "sentiment", sizes: Sequence[Optional[int]] = (100, 300, 1000, None),
                   cfg: Optional[FinetuneConfig] = None, *, out_dir: str | Path | None = None, scratch: bool = True,
                   min_steps: int = 50, progress: bool = False, verbose: bool = True):
    """Test score against training-set size, pre-trained vs from scratch. Each point trains for
    cfg.train.epochs epochs but at least `min_steps` steps (small sets need several passes); the
    samples are nested (a seeded shuffle's prefixes). Returns (results, plotly figure)."""
    import plotly.graph_objects as go

    base = copy.deepcopy(cfg) if cfg is not None else FinetuneConfig()
    base.model, base.task = str(pretrained_path), task
    try:
        full = load_task(task, seed=base.train.seed, text_column=base.text_column, label_column=base.label_column,
                         text_pair_column=base.text_pair_column, unseen=base.unseen)
    except TaskError as e:
        raise FinetuneError(str(e)) from None
    tmp = None
    if out_dir is None:
        tmp = tempfile.mkdtemp(prefix="learning-curve-")
        out_dir = tmp
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
    fig = go.Figure()
    xs = [r["size"] for r in results]
    fig.add_trace(go.Scatter(x=xs, y=[r["pretrained"] for r in results], mode="lines+markers", name="pre-trained"))
    if scratch:
        fig.add_trace(go.Scatter(x=xs, y=[r["scratch"] for r in results], mode="lines+markers", name="from scratch"))
    fig.update_layout(title=f"Learning curve: {task}", xaxis=dict(title="training examples", type="log"),
                      yaxis_title=f"test {full.metric}")
    if out_dir is not None and tmp is None:
        (Path(out_dir) / "learning_curve.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results, fig


# ---- CLI hooks (workbench/cli.py calls add_<name>_command(sub)) ------------------------------

def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench benchmark MODEL [--out DIR] [--tasks sentiment spam] [--no-scratch] [--max-steps N]`"""
    parser.add_argument("model", help="pre-trained run directory, model directory or hub id")
    parser.add_argument("--out", "-o", default=None, help="output folder (default: MODEL/benchmark for a run directory, else runs/benchmark)")
    parser.add_argument("--config", default=None, help="YAML/JSON file with BenchmarkConfig values")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per run")
    add_arguments(parser, BenchmarkConfig, skip=("train.packing", "train.eval_batches"))


def run_benchmark_cli(args: argparse.Namespace) -> int:
    cfg = _cfg_from_args(args, BenchmarkConfig)
    out = args.out or (str(Path(args.model) / "benchmark") if Path(args.model).is_dir() else str(Path("runs") / "benchmark"))
    benchmark(args.model, out, cfg, overwrite=args.overwrite, progress=args.progress)
    print(f"written {Path(out) / 'benchmark.md'} and {Path(out) / 'benchmark.json'}")
    return 0


def add_learning_curve_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench learning-curve MODEL --task sentiment --sizes 100 300 1000 all --out DIR`"""
    parser.add_argument("model", help="pre-trained run directory, model directory or hub id")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "all"], help="training-set sizes ('all' = whole)")
    parser.add_argument("--out", "-o", default="runs/learning-curve", help="output folder (runs, JSON, HTML figure)")
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch baseline")
    parser.add_argument("--min-steps", type=int, default=50)


def run_learning_curve_cli(args: argparse.Namespace) -> int:
    sizes = [None if s.lower() in ("all", "none", "full") else int(s) for s in args.sizes]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results, fig = learning_curve(args.model, args.task, sizes, out_dir=args.out, scratch=not args.no_scratch,
                                  min_steps=args.min_steps)
    # plotly.js is written beside the page, so it opens offline (a CDN link would not)
    fig.write_html(str(Path(args.out) / "learning_curve.html"), include_plotlyjs="directory")
    print(f"written {Path(args.out) / 'learning_curve.json'} and learning_curve.html")
    return 0


def add_benchmark_command(sub) -> None:
    p = sub.add_parser("benchmark", help="fine-tune on every task, pre-trained vs from scratch (GLUE-style table)",
                       description="Fine-tune MODEL and the same architecture from random weights on each task with the "
                       "same budget; prints the table and writes benchmark.json and benchmark.md.")
    add_benchmark_arguments(p)
    p.set_defaults(func=run_benchmark_cli)


def add_learning_curve_command(sub) -> None:
    p = sub.add_parser("learning-curve", help="test score against training-set size, pre-trained vs from scratch")
    add_learning_curve_arguments(p)
    p.set_defaults(func=run_learning_curve_cli)
