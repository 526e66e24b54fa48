"""Time to accuracy: pre-training recipes at equal wall-clock budgets, scored the same way.

Recipes (all on the default corpus, one shared WordPiece tokenizer, the same validation text):
- `hf`: Hugging Face's run_mlm recipe at its best here: BertForMaskedLM (mini size), Trainer +
  DataCollatorForLanguageModeling (15%, 80/10/10), packed blocks, bf16 where the CPU has fast bf16
  (AVX512-BF16 or AMX; the same rule as the workbench's `--precision auto`), its learning rate chosen by a
  short sweep that this script runs first and prints; the step count is set from the sweep's measured
  speed so its linear schedule ends at the budget (a callback stops it at the budget in any case).
- `old`: this workbench's default before the recipe study (`workbench pretrain --preset mini`, BERT).
- `new`: today's default recipe (`workbench pretrain` with no flags: ModernBERT mini; configs/recipe-long.yaml).
- `tiny`: the 2-minute recipe (`--preset tiny`, configs/recipe-2m.yaml): the same recipe at 2 x 128 with
  lr 3e-3 and batch 16, which led the README's 2-minute study.

Each is scored on fixed validation masks at 15% of positions, every one replaced by [MASK]
("[MASK]-only accuracy", the target metric), beside the 80/10/10 accuracy, and on the cloze probes
(assets/probes, top-1 / top-5). Runs go one after another in this one process: do not run anything
else on the machine meanwhile. Prints one table and the speed-up line: the training time the new
recipe (`tiny` when it ran, else `new`) needs to reach the hf recipe's accuracy at the largest budget.

    python benchmarks/time_to_accuracy.py                      # hf, old, tiny at 2m and 5m: ~25 minutes on 2 cores
    python benchmarks/time_to_accuracy.py --recipes hf,old,new,tiny --budgets 2m 5m 10m  # ~75 minutes
    python benchmarks/time_to_accuracy.py --budgets 1m --recipes new --sweep-budget 20s   # smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch

from workbench import config as C
from workbench.data import iter_texts, load_corpus
from workbench.model import build_mlm_model
from workbench.pretrain import evaluate_mlm, make_blocks, pretrain
from workbench.tokenizer import train_tokenizer
from workbench.training import cpu_supports_bf16

OLD_DEFAULT = {"model": C.ORIGINAL_BERT}  # the mini preset as it was: BERT, dropout 0.1, lr 1e-3, plain init


def recipe_config(name: str, budget: str, tokenizer_dir: str, eval_every: int) -> C.PretrainConfig:
    if name == "new":
        cfg = C.PretrainConfig()
    elif name == "tiny":
        cfg = C.preset("tiny")
    elif name == "old":
        cfg = C.from_dict(C.PretrainConfig, OLD_DEFAULT, C.preset("mini"))
    else:
        raise ValueError(name)
    cfg.tokenizer.tokenizer_from = tokenizer_dir
    cfg.train.time_budget = budget
    cfg.train.eval_every = eval_every
    cfg.train.save_every = 0
    return cfg


def run_hf(blocks, tokenizer, lr: float, seconds: float, steps: int, out: Path) -> dict:
    """run_mlm's training loop on our packed blocks; stops at `seconds` of training at the latest."""
    import datasets
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    cfg = C.preset("mini")
    cfg.model.architecture = "bert"
    t = cfg.train
    state = {"start": None, "steps": 0}

    class Budget(TrainerCallback):
        def on_step_begin(self, args, st, control, **kw):
            if state["start"] is None:
                state["start"] = time.perf_counter()

        def on_step_end(self, args, st, control, **kw):
            state["steps"] = st.global_step
            if time.perf_counter() - state["start"] >= seconds:
                control.should_training_stop = True

    ds = datasets.Dataset.from_dict({"input_ids": blocks["input_ids"].tolist()})
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    torch.manual_seed(0)
    model = build_mlm_model(cfg.model, tokenizer)
    args = TrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=t.batch_size, max_steps=steps, learning_rate=lr,
        warmup_steps=max(1, int(t.warmup * steps)), lr_scheduler_type="linear", weight_decay=t.weight_decay,
        adam_beta2=0.98, adam_epsilon=1e-6, max_grad_norm=t.grad_clip, bf16=cpu_supports_bf16(), use_cpu=True,
        logging_steps=50,
        report_to="none", save_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
    )
    Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=[Budget()]).train()
    elapsed = time.perf_counter() - state["start"]
    model.save_pretrained(str(out / "model"))
    tokenizer.save_pretrained(str(out / "model"))
    return {"steps": state["steps"], "train_time": elapsed,
            "tokens_per_s": state["steps"] * t.batch_size * t.seq_len / elapsed, "model": out / "model"}


def score(model_dir: Path, tokenizer_dir: str, eval_batches: int) -> dict:
    cfg = C.PretrainConfig()
    cfg.tokenizer.tokenizer_from = tokenizer_dir
    m = evaluate_mlm(model_dir, cfg, batches=eval_batches)
    return {k: m[k] for k in ("val_mask_accuracy", "val_accuracy", "val_loss", "cloze_top1", "cloze_top5")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", nargs="+", default=["2m", "5m"], help="wall-clock training budgets")
    parser.add_argument("--recipes", default="hf,old,tiny", help="comma-separated subset of hf, old, new, tiny")
    parser.add_argument("--sweep-lrs", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3],
                        help="learning rates tried for the hf recipe (BERT fine-tuning guides use 1e-4 for "
                             "pre-training base; mini models take more)")
    parser.add_argument("--sweep-budget", default="1m", help="training time of each sweep run")
    parser.add_argument("--eval-batches", type=int, default=20, help="validation batches of 64 x 128 tokens")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    unknown = set(recipes) - {"hf", "old", "new", "tiny"}
    if unknown:
        parser.error(f"unknown recipes: {', '.join(sorted(unknown))}")
    budgets = [(b, C.parse_duration(b)) for b in args.budgets]
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    t_start = time.perf_counter()
    corpus = load_corpus(C.DataConfig())
    work = Path(tempfile.mkdtemp(prefix="time-to-accuracy-"))
    tokenizer = train_tokenizer(iter_texts(corpus), C.TokenizerConfig(), length=len(corpus["train"]))
    tok_dir = str(work / "tokenizer")
    tokenizer.save_pretrained(tok_dir)
    results: list[dict] = []
    sweep: list[dict] = []
    curves: dict[str, list[dict]] = {}

    if "hf" in recipes:
        blocks = make_blocks(corpus["train"], tokenizer, C.PretrainConfig().train, "tokenize train")
        sweep_s = C.parse_duration(args.sweep_budget)
        # its speed, from a short probe, sets each run's step count so the schedule ends at the budget
        probe = run_hf(blocks, tokenizer, args.sweep_lrs[0], 20.0, 10**6, work / "hf-speed-probe")
        speed = probe["steps"] / probe["train_time"]
        for lr in args.sweep_lrs:
            r = run_hf(blocks, tokenizer, lr, sweep_s, max(10, int(speed * sweep_s)), work / f"hf-sweep-{lr}")
            s = score(r["model"], tok_dir, args.eval_batches)
            sweep.append({"lr": lr, "steps": r["steps"], "tokens_per_s": round(r["tokens_per_s"]), **s})
            print(f"hf sweep: lr {lr:g}: {r['steps']} steps, [MASK]-only accuracy {s['val_mask_accuracy']:.1%}",
                  flush=True)
        best = max(sweep, key=lambda x: x["val_mask_accuracy"])
        for label, seconds in budgets:
            r = run_hf(blocks, tokenizer, best["lr"], seconds, max(10, int(speed * seconds)), work / f"hf-{label}")
            s = score(r["model"], tok_dir, args.eval_batches)
            results.append({"recipe": "hf", "budget": label, "steps": r["steps"],
                            "tokens_per_s": round(r["tokens_per_s"]), "lr": best["lr"], **s})
            print(json.dumps(results[-1]), flush=True)

    for name in ("old", "new", "tiny"):
        if name not in recipes:
            continue
        for label, seconds in budgets:
            # the largest budget's run is evaluated every 10 steps: its curve gives the speed-up line
            cfg = recipe_config(name, label, tok_dir, eval_every=0 if seconds < max(b for _, b in budgets) else 10)
            run = work / f"{name}-{label}"
            summary = pretrain(cfg, run, progress=False, corpus=corpus)
            s = score(run / "model", tok_dir, args.eval_batches)
            results.append({"recipe": name, "budget": label, "steps": summary["steps"],
                            "tokens_per_s": round(summary["tokens_per_s"]), "lr": cfg.train.lr, **s})
            curves[f"{name}-{label}"] = [r for r in (json.loads(line) for line in (run / "metrics.jsonl").open())
                                         if r["kind"] == "eval"]
            print(json.dumps(results[-1]), flush=True)

    print(f"\n{'recipe':<8}{'budget':>7}{'[MASK]-only acc':>17}{'80/10/10 acc':>14}{'cloze top-1':>13}{'top-5':>8}"
          f"{'steps':>8}{'tokens/s':>10}")
    for r in results:
        print(f"{r['recipe']:<8}{r['budget']:>7}{r['val_mask_accuracy']:>17.1%}{r['val_accuracy']:>14.1%}"
              f"{r['cloze_top1']:>13.1%}{r['cloze_top5']:>8.1%}{r['steps']:>8,}{r['tokens_per_s']:>10,}")
    if sweep:
        print("hf learning-rate sweep (" + args.sweep_budget + " each): "
              + ", ".join(f"{s['lr']:g} -> {s['val_mask_accuracy']:.1%}" for s in sweep))
    largest = budgets[-1][0]
    hf_top = next((r for r in results if r["recipe"] == "hf" and r["budget"] == largest), None)
    fast = "tiny" if "tiny" in recipes else "new"
    curve = curves.get(f"{fast}-{largest}")
    if hf_top and curve:
        reached = next((c for c in curve if c.get("val_mask_accuracy", 0) >= hf_top["val_mask_accuracy"]), None)
        first = next((c for c in curve if "val_mask_accuracy" in c), None)
        if reached and first is not None and reached is first:
            print(f"speed-up: the hf recipe's {largest} [MASK]-only accuracy ({hf_top['val_mask_accuracy']:.1%}) is no "
                  f"better than the {fast} recipe's first evaluation (step {first['step']}, {first['time']:.0f} s): "
                  "it stayed on the plateau, so there is no later time to match")
        elif reached:
            print(f"speed-up: the {fast} recipe reaches the hf recipe's {largest} [MASK]-only accuracy "
                  f"({hf_top['val_mask_accuracy']:.1%}) after {reached['time'] / 60:.1f} min of training: "
                  f"{C.parse_duration(largest) / max(reached['time'], 1e-9):.1f}x sooner")
        else:
            print(f"speed-up: the {fast} recipe did not reach the hf recipe's {largest} accuracy within {largest}")
    print(f"total wall time {(time.perf_counter() - t_start) / 60:.1f} min; work files in {work}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "hf_sweep": sweep, "curves": curves}, indent=2))


if __name__ == "__main__":
    main()
