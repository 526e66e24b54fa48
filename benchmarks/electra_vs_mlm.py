"""ELECTRA against MLM at equal time, over peak learning rates: the sweep behind notebook 06's rates.

Both arms are the notebook's setup: the original BERT shape at the tiny size (2 x 128), the first
800 news documents, one WordPiece tokenizer trained once, 15% masks, batch 16, the same budget each.
Every pre-trained model is then fine-tuned on TREC exactly as the notebook does (1,000 examples,
200 steps at lr 1e-3, seed 0) and scored on TREC's test split; a model fine-tuned from random weights
is the reference row. Runs go one after another in this process: run nothing else meanwhile.

    python benchmarks/electra_vs_mlm.py                       # 6 arms x 60s + fine-tuning: ~9 minutes on 2 cores
    python benchmarks/electra_vs_mlm.py --budget 20s --mlm-lrs 1e-3 --electra-lrs 5e-4   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import tempfile
from pathlib import Path

from workbench import electra
from workbench.config import ORIGINAL_BERT, FinetuneConfig, ModelConfig, from_dict, parse_duration, preset
from workbench.data import load_corpus
from workbench.finetune import finetune
from workbench.pretrain import pretrain
from workbench.tasks import load_task
from workbench.tokenizer import train_tokenizer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="60s", help="pre-training time of every arm (default 60s)")
    parser.add_argument("--mlm-lrs", default="3e-3,1e-3", help="peak learning rates of the MLM arms")
    parser.add_argument("--electra-lrs", default="3e-3,1e-3,5e-4", help="peak learning rates of the ELECTRA arms")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        parse_duration(args.budget)
        lrs = {kind: [float(x) for x in text.split(",") if x.strip()]
               for kind, text in (("MLM", args.mlm_lrs), ("ELECTRA", args.electra_lrs))}
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    if any(lr <= 0 for group in lrs.values() for lr in group):
        parser.exit(2, "error: learning rates must be positive\n")

    base = preset("tiny")
    base.model = from_dict(ModelConfig, ORIGINAL_BERT, base.model)
    base.data.max_documents, base.data.validation_fraction = 800, 0.05
    base.train.time_budget, base.train.seed = args.budget, args.seed
    base.train.eval_every, base.train.save_every, base.train.eval_batches = 0, 0, 4
    corpus = load_corpus(base.data, seed=args.seed)
    task = load_task("trec", train_examples=1000, seed=args.seed)

    def fine_tune(model: str, out: Path, from_scratch: bool = False) -> float:
        fcfg = FinetuneConfig(model=model, task="trec", train_examples=1000, eval_examples=200,
                              from_scratch=from_scratch)
        fcfg.train.max_steps, fcfg.train.epochs, fcfg.train.seq_len, fcfg.train.lr = 200, None, 48, 1e-3
        fcfg.train.seed = args.seed
        with contextlib.redirect_stdout(io.StringIO()):
            return finetune(fcfg, out, progress=False, task_data=task)["test"]["accuracy"]

    rows = []
    with tempfile.TemporaryDirectory(prefix="electra-vs-mlm-") as tmp:
        root = Path(tmp)
        train_tokenizer(corpus["train"]["text"], base.tokenizer).save_pretrained(str(root / "tokenizer"))
        base.tokenizer.tokenizer_from = str(root / "tokenizer")
        for kind, group in lrs.items():
            for lr in group:
                cfg = copy.deepcopy(base)
                cfg.train.lr = lr
                out = root / f"{kind}-{lr:g}"
                with contextlib.redirect_stdout(io.StringIO()):
                    if kind == "MLM":
                        s = pretrain(cfg, out, progress=False, corpus=corpus)
                        own = f"[MASK]-only accuracy {s['val_mask_accuracy']:.3f}"
                    else:
                        s = electra.train_electra(cfg, out, progress=False, corpus=corpus)
                        own = (f"replaced found {s['val_replaced_accuracy']:.3f} (discriminator accuracy "
                               f"{s['val_disc_accuracy']:.3f}, always 'original' {1 - s['val_replaced_fraction']:.3f})")
                acc = fine_tune(str(out), root / f"ft-{kind}-{lr:g}")
                rows.append((kind, f"{lr:g}", s["steps"], acc, own))
                print(f"{kind} lr {lr:g}: {s['steps']} steps, TREC {acc:.3f}; {own}", file=sys.stderr, flush=True)
        # the reference: the first MLM run's architecture from random weights, fine-tuned the same way
        first_mlm = root / f"MLM-{lrs['MLM'][0]:g}" if lrs["MLM"] else None
        if first_mlm is not None:
            rows.append(("none (random weights)", "-", 0, fine_tune(str(first_mlm), root / "ft-scratch", True), ""))
    print(f"\n{args.budget} of pre-training per arm, then TREC (200 steps, lr 1e-3, seed {args.seed})\n")
    print(f"{'pre-training':<22} {'lr':>6} {'steps':>6} {'TREC test':>9}  own validation")
    for kind, lr, steps, acc, own in rows:
        print(f"{kind:<22} {lr:>6} {steps:>6} {acc:>9.3f}  {own}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
