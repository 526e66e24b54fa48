"""`make gpu-check`: the CUDA paths, checked in about 8 minutes on one GPU, as one table.

Rows (each runs even if an earlier one failed; a failure is printed in its row and the exit status
is 1):
  device      the GPU, its bf16 support, torch / CUDA / transformers / accelerate versions
  speed       our engine vs Hugging Face Trainer + DataCollatorForLanguageModeling on the GPU, both
              at their best settings here (bf16 autocast, SDPA attention, packed blocks, fused AdamW
              for ours; bf16 for Trainer), `base` preset, the functions of
              benchmarks/pretrain_throughput.py; tokens/s and the ratio
  MFU         model FLOPs utilisation of both against the GPU's dense bf16 peak (the datasheet value
              for known GPUs, else a bf16 matmul measured now)
  pretrain    `workbench pretrain --preset small --device cuda --time-budget 3m`, then
              `workbench evaluate` of the result: every metric it returns ([MASK]-only accuracy,
              cloze probes, ... whatever evaluate_mlm reports)
  fill-mask   our fill_mask on the GPU vs transformers' pipeline("fill-mask", device=0): same top-5
  finetune    `workbench finetune RUN --task sentiment --time-budget 1m --device cuda`
  notebook 03 executed with nbclient, DEVICE="cuda", PRESET="small", TIME_BUDGET="90s"

Without CUDA it stops at once with a message and exit status 2. Outputs go to --work
(default /tmp/wb-gpu-check).

    python benchmarks/gpu_check.py            # or: make gpu-check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, no sparsity).
BF16_PEAK_TFLOPS = {"H200": 989, "H100 SXM": 989, "H100 PCIe": 756, "H100": 756, "A100": 312, "L40S": 362, "L40": 181,
                    "L4": 121, "A10G": 70, "A10": 125, "RTX 4090": 165, "RTX 3090": 71, "A6000": 155, "V100": 0,
                    "T4": 0}


def cuda_or_exit() -> None:
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device: torch " + torch.__version__ + " sees no GPU (a CPU build, or no driver). "
              "This check needs one GPU; on a GPU machine install a CUDA build first: "
              "make install TORCH=\"torch --index-url https://download.pytorch.org/whl/cu126\"", file=sys.stderr)
        sys.exit(2)


def bf16_peak(name: str) -> tuple[float, str]:
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if key in name and tflops:
            return tflops * 1e12, "datasheet"
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - t0), "measured matmul"


def workbench(*args: str, timeout: int) -> str:
    out = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"workbench {args[0]} failed: {out.stderr.strip()[-800:]}")
    return out.stdout


def row_device() -> str:
    import accelerate
    import transformers

    p = torch.cuda.get_device_properties(0)
    return (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}, bf16 "
            f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}; torch {torch.__version__} (CUDA "
            f"{torch.version.cuda}), "
            f"transformers {transformers.__version__}, accelerate {accelerate.__version__}")


def rows_speed(steps: int) -> tuple[str, str]:
    sys.path.insert(0, str(BENCH))
    import pretrain_throughput as pt

    from workbench import config as C
    from workbench.data import load_corpus
    from workbench.model import build_mlm_model
    from workbench.pretrain import make_blocks
    from workbench.tokenizer import train_tokenizer

    cfg = C.preset("base")
    corpus = load_corpus(C.DataConfig(max_documents=1500))
    tokenizer = train_tokenizer(corpus["train"]["text"], cfg.tokenizer)
    blocks = make_blocks(corpus["train"], tokenizer, cfg.train)
    val = make_blocks(corpus["validation"], tokenizer, cfg.train)
    per_step = cfg.train.batch_size * cfg.train.seq_len
    skip = min(10, steps // 3)
    base = pt.run_baseline(blocks, tokenizer, cfg, steps, bf16=True, use_cpu=False).throughput(per_step, skip)
    ours = pt.run_ours(blocks, val, tokenizer, cfg, steps, "bf16", False).throughput(per_step, skip)
    flops = pt.model_flops_per_token(build_mlm_model(cfg.model, tokenizer), cfg.train.seq_len)
    peak, source = bf16_peak(torch.cuda.get_device_name(0))
    speed = (f"base preset, batch {cfg.train.batch_size} x {cfg.train.seq_len}, {steps} steps each: Trainer "
             f"{base:,.0f} "
             f"tokens/s, ours {ours:,.0f} tokens/s, ratio {ours / base:.2f}x")
    mfu = (f"ours {ours * flops / peak:.1%}, Trainer {base * flops / peak:.1%} of {peak / 1e12:,.0f} TFLOP/s bf16 "
           f"({source}); {flops / 1e9:.2f} GFLOP per token")
    return speed, mfu


def row_pretrain(work: Path, budget: str) -> tuple[str, Path]:
    run = work / "pretrain-small"
    workbench("pretrain", "--preset", "small", "--device", "cuda", "--time-budget", budget, "--out", str(run),
              "--overwrite", timeout=900)
    summary = json.loads((run / "summary.json").read_text())
    printed = workbench("evaluate", str(run), timeout=600)
    metrics = json.loads(printed[printed.index("{"):])
    shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                      if k not in ("model",))
    return (f"small preset, {budget}: {summary['steps']:,} steps, {summary['tokens_per_s']:,.0f} tokens/s, "
            f"{summary.get('precision')}; evaluate: {shown}"), run


def row_fill_mask(run: Path) -> str:
    from transformers import pipeline

    from workbench.inspection import fill_mask, load_mlm

    model, tokenizer = load_mlm(run)
    model.to("cuda")
    text = f"the {tokenizer.mask_token} of the united states said on tuesday ."
    ours = fill_mask(model, tokenizer, text, top_k=5).predictions[0]
    theirs = pipeline("fill-mask", model=model, tokenizer=tokenizer, device=0)(text, top_k=5)
    same_tokens = [p["token_id"] for p in ours] == [p["token"] for p in theirs]
    diff = max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs))
    if not same_tokens or diff > 1e-4:
        raise AssertionError(f"differs from the pipeline: ours {[(p['token'], round(p['score'], 4)) for p in ours]}, "
                             f"pipeline {[(p['token_str'], round(p['score'], 4)) for p in theirs]}")
    top = [p["token"] for p in ours]
    return f"equal to pipeline('fill-mask', device=0): top-5 {top}, max score difference {diff:.1e}"


def row_finetune(run: Path, work: Path) -> str:
    out = work / "finetune-sentiment"
    printed = workbench("finetune", str(run), "--task", "sentiment", "--time-budget", "1m", "--device", "cuda",
                        "--out", str(out), "--overwrite", timeout=600)
    return printed.strip().splitlines()[-1]


def row_notebook(work: Path) -> str:
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "03_pretraining.ipynb"
    nb = nbformat.read(path, as_version=4)
    where = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell(
        'DEVICE = "cuda"\nPRESET = "small"\nTHREADS = None\nTIME_BUDGET = "90s"\nRESUME_EXTRA = "15s"\n'
        'MAX_DOCUMENTS = None\nRUN_NAME = "gpu-check-03"', metadata={"tags": ["injected-parameters"]}))
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    nbformat.write(nb, work / "03_pretraining.gpu.ipynb")
    out = work / "03_pretraining.gpu.ipynb"
    return f"executed in {time.perf_counter() - t0:.0f}s with DEVICE='cuda', PRESET='small' -> {out}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/wb-gpu-check")
    ap.add_argument("--steps", type=int, default=40, help="steps of each side of the speed comparison")
    ap.add_argument("--pretrain-budget", default="3m")
    a = ap.parse_args()
    cuda_or_exit()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    failed = False
    t_start = time.perf_counter()

    def attempt(name: str, fn, *args):
        nonlocal failed
        t0 = time.perf_counter()
        try:
            value = fn(*args)
        except Exception as e:  # one failing check must not hide the others
            failed = True
            traceback.print_exc()
            rows.append((name, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"))
            return None
        print(f"[{time.perf_counter() - t_start:5.0f}s] {name} done in {time.perf_counter() - t0:.0f}s", flush=True)
        return value

    rows.append(("device", attempt("device", row_device) or "FAILED"))
    speed = attempt("speed", rows_speed, a.steps)
    if speed:
        rows += [("speed vs Trainer", speed[0]), ("MFU", speed[1])]
    pre = attempt("pretrain", row_pretrain, work, a.pretrain_budget)
    if pre:
        rows.append(("pretrain + evaluate", pre[0]))
        fm = attempt("fill-mask", row_fill_mask, pre[1])
        if fm:
            rows.append(("fill-mask", fm))
        ft = attempt("finetune", row_finetune, pre[1], work)
        if ft:
            rows.append(("finetune 1 min", ft))
    nb = attempt("notebook 03", row_notebook, work)
    if nb:
        rows.append(("notebook 03", nb))
    width = max(len(k) for k, _ in rows)
    print(f"\n{'check':<{width}}  result  (total {time.perf_counter() - t_start:.0f}s)")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
