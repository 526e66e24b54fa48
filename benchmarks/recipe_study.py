"""The recipe study: variants of the default pre-training recipe at one wall-clock budget, over seeds.

Each variant is the default `PretrainConfig` (the recipe) with a few fields changed, trained for the
same wall-clock budget on the default corpus, one run after another in this process (run nothing
else on the machine meanwhile), and scored the same way as benchmarks/time_to_accuracy.py:
[MASK]-only accuracy on fixed validation masks (15% of positions, all [MASK], blocks of 128 tokens),
the 80/10/10 accuracy beside it, and the cloze probes (top-1 / top-5). Variants that share a
vocabulary size share one tokenizer; a variant with another vocabulary has its own, so its token
accuracy counts different (shorter) tokens and is not directly comparable: the table marks it.

    python benchmarks/recipe_study.py --budget 2m --variants recipe tiny tiny-lr3e-3 --seeds 0 1
    python benchmarks/recipe_study.py --list
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

# the same scoring as the time-to-accuracy benchmark (this script's folder is on sys.path when run)
from time_to_accuracy import score

from workbench import config as C
from workbench.data import iter_texts, load_corpus
from workbench.pretrain import pretrain
from workbench.tokenizer import train_tokenizer

# name -> (overrides of the default PretrainConfig, why it is worth a run)
VARIANTS: dict[str, tuple[dict, str]] = {
    "recipe": ({}, "today's default: ModernBERT mini 4 x 256, window 8, PPMI-SVD, unigram bias, lr 1e-3"),
    "tiny": ({"model": {"size": "tiny"}, "train": {"lr": 2e-3}},
             "2 x 128 at the old tiny preset (lr 2e-3, batch 32): ~5x the tokens per second; both layers local"),
    "tiny-lr3e-3": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3}}, "tiny, higher peak learning rate"),
    "tiny-global2": ({"model": {"size": "tiny", "global_every": 2}, "train": {"lr": 2e-3}},
                     "tiny with its second layer global"),
    "narrow-4x128": ({"model": {"layers": 4, "hidden": 128, "heads": 2}, "train": {"lr": 2e-3}},
                     "depth of mini, width of tiny"),
    "wide-2x256": ({"model": {"layers": 2}, "train": {"lr": 1e-3}}, "width of mini, half its depth (both local)"),
    "seq64": ({"train": {"seq_len": 64, "batch_size": 64}}, "same tokens per step in shorter blocks"),
    "vocab4k": ({"tokenizer": {"vocab_size": 4096}}, "half the vocabulary: a cheaper output layer, denser statistics"),
    "warmup2": ({"train": {"warmup": 0.02}}, "a shorter warm-up: 2% instead of 6% of the budget"),
    "batch16": ({"train": {"batch_size": 16}}, "twice the steps for the same tokens"),
    "mask30": ({"masking": {"mlm_probability": 0.3}}, "30% masking (ModernBERT, MosaicBERT)"),
    # tiny at its best learning rate (3e-3), one lever at a time
    "tiny-lr5e-3": ({"model": {"size": "tiny"}, "train": {"lr": 5e-3}}, "tiny, a still higher learning rate"),
    "tiny-mask30": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3}, "masking": {"mlm_probability": 0.3}},
                    "tiny, twice the predictions per block: the head runs on masked positions only"),
    "tiny-batch16": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3, "batch_size": 16}},
                     "tiny, twice the steps for the same tokens"),
    "tiny-b16-global2": ({"model": {"size": "tiny", "global_every": 2}, "train": {"lr": 3e-3, "batch_size": 16}},
                         "tiny, batch 16, its second layer global: today's tiny preset"),
    "tiny-seq64": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3, "seq_len": 64, "batch_size": 64}},
                   "tiny, shorter blocks"),
    "tiny-b16-seq64": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3, "seq_len": 64, "batch_size": 32}},
                       "tiny, shorter blocks and smaller batches: 2,048 tokens a step, 4x the steps"),
    "tiny-b16-lr4e-3": ({"model": {"size": "tiny"}, "train": {"lr": 4e-3, "batch_size": 16}},
                        "tiny, batch 16, a higher learning rate"),
    "tiny-b16-warmup2": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3, "batch_size": 16, "warmup": 0.02}},
                         "tiny, batch 16, a 2% warm-up"),
    "tiny-vocab4k": ({"model": {"size": "tiny"}, "train": {"lr": 3e-3}, "tokenizer": {"vocab_size": 4096}},
                     "tiny, half the vocabulary"),
    "tiny-3layers": ({"model": {"size": "tiny", "layers": 3, "global_every": 3}, "train": {"lr": 3e-3}},
                     "tiny with a third (global) layer"),
}


def variant_config(name: str, budget: str, seed: int) -> C.PretrainConfig:
    cfg = C.from_dict(C.PretrainConfig, VARIANTS[name][0])
    cfg.train.time_budget = budget
    cfg.train.seed = seed
    cfg.train.eval_every = 0  # one evaluation at the end: the budget is spent training
    cfg.train.save_every = 0
    return cfg


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1%}"
    return f"{statistics.mean(values):.1%} ± {statistics.stdev(values):.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="2m", help="wall-clock training budget of every run")
    parser.add_argument("--variants", nargs="+", default=["recipe", "tiny", "narrow-4x128", "seq64", "vocab4k"],
                        help="variant names (see --list)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; the table shows mean ± sd")
    parser.add_argument("--eval-batches", type=int, default=20, help="validation batches of 64 x 128 tokens")
    parser.add_argument("--json", help="append each result to this JSON-lines file as it is measured")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    args = parser.parse_args()
    if args.list:
        for name, (over, why) in VARIANTS.items():
            print(f"{name:<14} {json.dumps(over):<70} {why}")
        return
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    C.parse_duration(args.budget)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    t_start = time.perf_counter()
    corpus = load_corpus(C.DataConfig())
    work = Path(tempfile.mkdtemp(prefix="recipe-study-"))
    tokenizers: dict[int, str] = {}
    results: list[dict] = []
    for seed in args.seeds:
        for name in args.variants:
            cfg = variant_config(name, args.budget, seed)
            vocab = cfg.tokenizer.vocab_size
            if vocab not in tokenizers:
                tok = train_tokenizer(iter_texts(corpus), cfg.tokenizer, length=len(corpus["train"]))
                tokenizers[vocab] = str(work / f"tokenizer-{vocab}")
                tok.save_pretrained(tokenizers[vocab])
            cfg.tokenizer.tokenizer_from = tokenizers[vocab]
            run = work / f"{name}-seed{seed}"
            summary = pretrain(cfg, run, progress=False, corpus=corpus)
            s = score(run / "model", tokenizers[vocab], args.eval_batches)
            results.append({"variant": name, "seed": seed, "budget": args.budget, "vocab": vocab,
                            "steps": summary["steps"], "tokens": summary["tokens"],
                            "tokens_per_s": round(summary["tokens_per_s"]),
                            "parameters": summary["parameters"], **s})
            print(json.dumps(results[-1]), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(results[-1]) + "\n")

    default_vocab = C.TokenizerConfig().vocab_size
    print(f"\nbudget {args.budget}, seeds {args.seeds}; mean ± sd over seeds")
    print(f"{'variant':<22}{'[MASK]-only':>18}{'80/10/10':>18}{'cloze top-1':>18}{'top-5':>18}{'steps':>8}"
          f"{'tokens/s':>10}{'params':>8}")
    for name in args.variants:
        rows = [r for r in results if r["variant"] == name]
        mark = "" if rows[0]["vocab"] == default_vocab else f" (vocab {rows[0]['vocab']})"
        print(f"{name + mark:<22}{mean_sd([r['val_mask_accuracy'] for r in rows]):>18}"
              f"{mean_sd([r['val_accuracy'] for r in rows]):>18}{mean_sd([r['cloze_top1'] for r in rows]):>18}"
              f"{mean_sd([r['cloze_top5'] for r in rows]):>18}{round(statistics.mean(r['steps'] for r in rows)):>8,}"
              f"{round(statistics.mean(r['tokens_per_s'] for r in rows)):>10,}{rows[0]['parameters'] / 1e6:>7.1f}M")
    print(f"total wall time {(time.perf_counter() - t_start) / 60:.1f} min; work files in {work}")


if __name__ == "__main__":
    main()
