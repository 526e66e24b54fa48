"""Load test of the app: many concurrent mixed requests (fill-mask, attention, masking, and some
abusive ones that must be refused with a message) against a running app, loopback only.

    python benchmarks/app_load.py                       # starts the app on a free loopback port
    python benchmarks/app_load.py --url http://127.0.0.1:7860 --requests 200 --concurrency 50

Prints each error and the p50/p95 latency per kind; exit status 0 when there were no errors (an
abusive request answered with its readable refusal counts as answered, not as an error). Bounded:
`--requests` in all, each waits at most `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = ["the {m} of the united states", "the stock market {m} sharply on monday .",
             "police said the {m} was arrested on friday .", "the company said its {m} rose by 10 percent ."]

# (kind, api_name, arguments, refusal expected: a substring of the readable message)
def requests_for(rng: random.Random, mask: str) -> tuple[str, str, tuple, str | None]:
    s = rng.choice(SENTENCES).format(m=mask)
    kind = rng.choices(["fill_mask", "attention", "masking", "abuse_top_k", "abuse_masks", "abuse_length", "abuse_nul"],
                       weights=[4, 3, 3, 1, 1, 1, 1])[0]
    if kind == "fill_mask":
        return kind, "/fill_mask", (s, rng.randint(1, 20), ""), None
    if kind == "attention":
        return kind, "/attention", (s.replace(mask, "word"), ""), None
    if kind == "masking":
        return kind, "/masking", (s.replace(mask, "word"), 0.15, "token", 0.8, 0.1, rng.randint(0, 99), ""), None
    if kind == "abuse_top_k":
        return kind, "/fill_mask", (" ".join([mask] * 20), 1_000_000, ""), "top-k must be between"
    if kind == "abuse_masks":
        return kind, "/fill_mask_view", (" ".join(f"word {mask}" for _ in range(10)), 5, ""), "fills at most"
    if kind == "abuse_length":
        return kind, "/attention", (" ".join(["word"] * 500), ""), "at most"
    return kind, "/fill_mask", (s, 5, "runs/\x00evil"), "NUL byte"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running app (loopback only); default: start one on a free port")
    ap.add_argument("--model", default=str(ROOT / "assets" / "default-model"),
                    help="model for the app this script starts")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from gradio_client import Client

    demo = None
    url = args.url
    if url is None:
        from workbench import limits
        from workbench.app import build_app

        demo = build_app(model=args.model, runs_dir=str(ROOT / "runs"))
        demo.queue(default_concurrency_limit=limits.CONCURRENCY, max_size=limits.QUEUE_MAX_SIZE)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}"
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        print(f"refusing {url}: this load test only talks to loopback addresses")
        return 2
    # one client for every thread (its own worker pool submits concurrently); httpx's 5 s default
    # read timeout would count a slow but answered request as an error
    shared = Client(url, verbose=False, max_workers=args.concurrency, httpx_kwargs={"timeout": args.timeout},
                    analytics_enabled=False)

    def client() -> Client:
        return shared

    mask = client().predict("a [MASK] .", 1, "", api_name="/fill_mask")["mask_token"]
    rng = random.Random(args.seed)
    jobs = [requests_for(rng, mask) for _ in range(args.requests)]
    results: list[tuple[str, float, str | None]] = []

    def one(job) -> tuple[str, float, str | None]:
        kind, api_name, call_args, refusal = job
        t0 = time.perf_counter()
        try:
            job_ = client().submit(*call_args, api_name=api_name)
            out = job_.result(timeout=args.timeout)
            text = str(out)
            refused = refusal is None or refusal in text
            error = None if refused else f"expected a refusal ({refusal!r}), got {text[:200]}"
        except Exception as e:  # noqa: BLE001 - every failure is reported
            text = str(e)
            error = None if refusal is not None and refusal in text else f"{type(e).__name__}: {text[:300]}"
        return kind, time.perf_counter() - t0, error

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        results = list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    errors = [(k, e) for k, _, e in results if e]
    for kind, error in errors:
        print(f"error [{kind}]: {error}")
    print(f"{len(results)} requests, {args.concurrency} concurrent, {wall:.1f}s wall; {len(errors)} errors")
    print(f"{'kind':<14}{'n':>5}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    for kind in sorted({k for k, _, _ in results}) + ["all"]:
        ts = sorted(t for k, t, _ in results if kind in ("all", k))
        p95 = ts[min(len(ts) - 1, round(0.95 * (len(ts) - 1)))]
        print(f"{kind:<14}{len(ts):>5}{statistics.median(ts):>9.2f}{p95:>9.2f}{ts[-1]:>9.2f}")
    if demo is not None:
        demo.close()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
