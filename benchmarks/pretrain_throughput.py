"""Pre-training throughput: our engine vs. Hugging Face Trainer + DataCollatorForLanguageModeling.

Both sides get the same model config, the same packed blocks of the default corpus, the same batch,
sequence length, learning-rate schedule and optimizer hyper-parameters, in one invocation,
alternating (baseline, ours, baseline, ours, ...) so that machine noise hits both alike. The
baseline gets its best CPU settings: packed data (no padding), SDPA attention (the default), and
bf16 autocast or fp32, whichever of the two is faster in a probe run here.

Prints tokens/s for each side, the ratio, the training loss over the same steps, and model FLOPs
utilisation (MFU) against a matmul peak measured on the spot.

    python benchmarks/pretrain_throughput.py                 # mini preset, ~4 minutes on 2 cores
    python benchmarks/pretrain_throughput.py --preset tiny --steps 30 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings

import torch

from workbench import config as C
from workbench.data import load_corpus
from workbench.masking import Masker
from workbench.model import build_mlm_model, non_embedding_parameters, parameter_count
from workbench.pretrain import MLMTask, make_blocks
from workbench.tokenizer import train_tokenizer
from workbench.training import cpu_supports_bf16, train


def matmul_peak(dtype: torch.dtype, size: int = 2048, seconds: float = 1.5) -> float:
    """FLOP/s of a square matmul on this machine, now (best of a few timed batches)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - t0))
    return best


def model_flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token of the standard MLM computation (forward + backward = 3x forward):
    6 x (non-embedding parameters + the vocab projection) + attention scores (12 x layers x seq x hidden).
    The same figure is used for both sides, so skipping work (head on masked positions only) shows
    up as higher utilisation, as in PaLM's definition of MFU."""
    cfg = model.config
    dense = non_embedding_parameters(model) + cfg.vocab_size * cfg.hidden_size
    return 6 * dense + 12 * cfg.num_hidden_layers * seq_len * cfg.hidden_size


class StepTimer:
    """Wall-clock time at the end of every step, and the loss of every step."""

    def __init__(self):
        self.times: list[float] = []
        self.losses: list[float] = []

    def throughput(self, tokens_per_step: int, skip: int) -> float:
        t = self.times[skip:]
        return tokens_per_step * (len(t) - 1) / (t[-1] - t[0])


def run_ours(blocks, val, tokenizer, cfg: C.PretrainConfig, steps: int, precision: str, compile_: bool) -> StepTimer:
    timer = StepTimer()

    def on_record(kind: str, record: dict) -> None:
        if kind == "train":
            timer.times.append(time.perf_counter())
            timer.losses.append(record["loss"])

    train_cfg = C.from_dict(C.TrainConfig, {"max_steps": steps, "log_every": 1, "eval_every": 0, "save_every": 0,
                                            "precision": precision, "compile": compile_}, cfg.train)
    task = MLMTask(blocks, val, Masker.from_tokenizer(tokenizer, cfg.masking), train_cfg.batch_size, eval_batches=1)
    torch.manual_seed(0)
    model = build_mlm_model(cfg.model, tokenizer)
    with tempfile.TemporaryDirectory() as d:
        train(model, task, train_cfg, d, callbacks=(on_record,), progress=False)
    return timer


def run_baseline(blocks, tokenizer, cfg: C.PretrainConfig, steps: int, bf16: bool, use_cpu: bool = True) -> StepTimer:
    import datasets
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    timer = StepTimer()

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            timer.times.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                timer.losses.append(logs["loss"])

    n = steps * cfg.train.batch_size
    ds = datasets.Dataset.from_dict({"input_ids": blocks["input_ids"][:n].tolist()})
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.masking.mlm_probability)
    torch.manual_seed(0)
    model = build_mlm_model(cfg.model, tokenizer)
    t = cfg.train
    with tempfile.TemporaryDirectory() as d:
        args = TrainingArguments(
            output_dir=d, per_device_train_batch_size=t.batch_size, max_steps=steps, learning_rate=t.lr,
            warmup_steps=max(1, int(t.warmup * steps)), lr_scheduler_type="linear", weight_decay=t.weight_decay,
            adam_beta2=0.98, adam_epsilon=1e-6, max_grad_norm=t.grad_clip, bf16=bf16, use_cpu=use_cpu, logging_steps=1,
            report_to="none", save_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
        )
        Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=[Record()]).train()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mini", choices=list(C.PRETRAIN_PRESETS))
    parser.add_argument("--steps", type=int, default=50, help="steps per measured run")
    parser.add_argument("--skip", type=int, default=10, help="first steps excluded from timing (warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating baseline/ours rounds (medians reported)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile our model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = C.preset(args.preset)
    corpus = load_corpus(C.DataConfig(max_documents=1500))
    tokenizer = train_tokenizer(corpus["train"]["text"], cfg.tokenizer)
    blocks = make_blocks(corpus["train"], tokenizer, cfg.train)
    val = make_blocks(corpus["validation"], tokenizer, cfg.train)
    tokens_per_step = cfg.train.batch_size * cfg.train.seq_len
    model = build_mlm_model(cfg.model, tokenizer)
    flops_token = model_flops_per_token(model, cfg.train.seq_len)
    ours_precision = "bf16" if cpu_supports_bf16() else "fp32"
    print(f"preset {args.preset}: {parameter_count(model) / 1e6:.2f}M parameters, batch {cfg.train.batch_size} x "
          f"seq {cfg.train.seq_len}, {len(blocks['input_ids']):,} packed blocks, {torch.get_num_threads()} threads")

    # The baseline's best precision on this machine, from a short probe of each.
    probe = max(20, args.skip + 8)
    speeds = {}
    for bf16 in (False, True):
        speeds[bf16] = run_baseline(blocks, tokenizer, cfg, probe, bf16).throughput(tokens_per_step, args.skip // 2)
    baseline_bf16 = speeds[True] > speeds[False]
    print(f"baseline probe: fp32 {speeds[False]:,.0f} tok/s, bf16 {speeds[True]:,.0f} tok/s -> "
          f"baseline uses {'bf16' if baseline_bf16 else 'fp32'}")

    base_runs, our_runs = [], []
    for r in range(args.rounds):
        b = run_baseline(blocks, tokenizer, cfg, args.steps, baseline_bf16)
        o = run_ours(blocks, val, tokenizer, cfg, args.steps, ours_precision, args.compile)
        base_runs.append(b)
        our_runs.append(o)
        print(f"round {r + 1}: baseline {b.throughput(tokens_per_step, args.skip):,.0f} tok/s, "
              f"ours {o.throughput(tokens_per_step, args.skip):,.0f} tok/s")

    base_tps = statistics.median(b.throughput(tokens_per_step, args.skip) for b in base_runs)
    our_tps = statistics.median(o.throughput(tokens_per_step, args.skip) for o in our_runs)
    peak = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    base_peak = peak["bf16" if baseline_bf16 else "fp32"]
    tail = lambda xs: sum(xs[-10:]) / len(xs[-10:])
    result = {
        "preset": args.preset, "steps": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "baseline": {"what": "transformers Trainer + DataCollatorForLanguageModeling, packed, sdpa",
                     "precision": "bf16" if baseline_bf16 else "fp32", "tokens_per_s": round(base_tps),
                     "mfu": round(base_tps * flops_token / base_peak, 4),
                     "loss_last10": round(statistics.median(tail(b.losses) for b in base_runs), 3)},
        "ours": {"what": f"workbench engine, {ours_precision} autocast, MLM head on masked positions, fast CPU "
                 "dropout, fused AdamW"
                         + (", torch.compile" if args.compile else ""),
                 "precision": ours_precision, "tokens_per_s": round(our_tps),
                 "mfu": round(our_tps * flops_token / peak["bf16" if ours_precision == "bf16" else "fp32"], 4),
                 "loss_last10": round(statistics.median(tail(o.losses) for o in our_runs), 3)},
        "ratio": round(our_tps / base_tps, 2),
        "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peak.items()},
        "model_gflops_per_token": round(flops_token / 1e9, 4),
    }
    print()
    print(f"{'':<10}{'tokens/s':>10}{'MFU':>8}{'loss (last 10 steps)':>24}  precision")
    for side in ("baseline", "ours"):
        r = result[side]
        print(f"{side:<10}{r['tokens_per_s']:>10,}{r['mfu']:>8.1%}{r['loss_last10']:>24.3f}  {r['precision']}")
    print(f"\nratio ours / baseline: {result['ratio']:.2f}x   "
          f"(matmul peak here: bf16 {result['matmul_peak_gflops']['bf16']} GFLOP/s, fp32 "
          f"{result['matmul_peak_gflops']['fp32']} GFLOP/s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
