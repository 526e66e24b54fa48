"""Load and abuse tests of the app, loopback only.

    python benchmarks/app_load.py                # load: 100 mixed requests, 50 at once, on a fresh app
    python benchmarks/app_load.py --abuse        # every abusive request once, on an idle app
    python benchmarks/app_load.py --url http://127.0.0.1:7860 --requests 200 --concurrency 50

Without --url the script starts the app the way a user does (`workbench app --model MODEL --runs
RUNS --port PORT`, RUNS a temporary folder), waits for it and stops it at the end.

Load mode: many concurrent mixed requests (fill-mask, attention, masking, and some abusive ones that
must be refused with their message); prints each error and the p50/p95 latency per kind; exit status
0 when there were no errors (an abusive request answered with its readable refusal counts as
answered). Bounded: `--requests` in all, each waits at most `--timeout` seconds.

Abuse mode: the requests of issue 12's table and one request over each other server-side limit of
`workbench/limits.py` (text length, masks, top-k, attention and surprisal tokens, model field with a
NUL byte, a control character or a path outside the runs folder, upload type and size, run name),
sent one at a time so none waits behind another. Prints per case the latency, how it was answered
and the first line of the message; then the slowest case and whether every case was answered
within `--target` seconds (2) with its readable message. Exit status 0 when both hold.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench import limits  # noqa: E402  (pure functions, no model imports: the unit tests load this file)

SENTENCES = ["the {m} of the united states", "the stock market {m} sharply on monday .",
             "police said the {m} was arrested on friday .", "the company said its {m} rose by 10 percent ."]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# ---- load mode -----------------------------------------------------------------------------------

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


def run_load(client, mask: str, args) -> int:
    rng = random.Random(args.seed)
    jobs = [requests_for(rng, mask) for _ in range(args.requests)]

    def one(job) -> tuple[str, float, str | None]:
        kind, api_name, call_args, refusal = job
        t0 = time.perf_counter()
        try:
            out = client.submit(*call_args, api_name=api_name).result(timeout=args.timeout)
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
    return 0 if not errors else 1


# ---- abuse mode ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    """A file to upload: `name` (its suffix matters), `size` bytes."""
    name: str
    size: int


@dataclass(frozen=True)
class Case:
    """One abusive request. `limit`: the workbench.limits rule it goes over (or the issue's table
    row); `expect`: substrings, one of which the readable message must hold (empty: a normal answer
    is expected, of bounded size); `via`: "client" (gradio_client) or "upload" (a raw HTTP upload, so
    the server's limit is tried, not the client's own check)."""
    name: str
    limit: str
    api_name: str
    args: tuple
    expect: tuple[str, ...]
    via: str = "client"


def abuse_cases(mask: str = "[MASK]") -> list[Case]:
    """The requests of issue 12's table (names issue_*) and one over each server-side limit."""
    s = SENTENCES[0].format(m=mask)
    huge = "word " * 2_000_000  # a 10 MB request body
    big_upload = limits.MAX_UPLOAD_BYTES + 2**20
    return [
        # issue 12's table
        Case("issue_10_masks_view", "check_masks", "/fill_mask_view",
             (" ".join(f"word {mask}" for _ in range(10)), 5, "", ""), ("fills at most",)),
        Case("issue_20_masks_top_k_1e6", "check_top_k", "/fill_mask", (" ".join([mask] * 20), 1_000_000, ""),
             ("top-k must be between",)),
        Case("issue_500_words_attention", "check_text", "/attention", (" ".join(["word"] * 500), ""),
             (f"at most {limits.MAX_TEXT_CHARS:,}", "attention is shown for at most")),  # 2,499 characters
        # text length
        Case("text_2001_chars", "check_text", "/fill_mask", ("x" * (limits.MAX_TEXT_CHARS - 6) + " " + mask, 5, ""),
             (f"at most {limits.MAX_TEXT_CHARS:,}",)),
        Case("text_10MB_attention", "check_text", "/attention", (huge, ""), (f"at most {limits.MAX_TEXT_CHARS:,}",)),
        Case("text_10MB_masking", "check_text", "/masking", (huge, 0.15, "token", 0.8, 0.1, 0, ""),
             (f"at most {limits.MAX_TEXT_CHARS:,}",)),
        Case("text_nul_byte", "check_text", "/attention", ("the \x00 cat", ""), ("NUL byte",)),
        # number of masks
        Case("masks_20_api", "check_masks", "/fill_mask", (" ".join(f"word {mask}" for _ in range(20)), 5, ""),
             ("fills at most",)),
        # top-k
        Case("top_k_0", "check_top_k", "/fill_mask", (s, 0, ""), ("top-k must be between",)),
        Case("top_k_2.5", "check_top_k", "/fill_mask", (s, 2.5, ""), ("whole number",)),
        # tokens that cost work or payload: 500 one-letter words (999 characters), the largest
        # attention answer allowed, surprisal's limit
        Case("attention_500_tokens", "check_attention_tokens", "/attention", (" ".join(["a"] * 500), ""),
             ("attention is shown for at most",)),
        Case("attention_largest_allowed", "MAX_ATTENTION_TOKENS", "/attention",
             (" ".join(["word"] * (limits.MAX_ATTENTION_TOKENS - 2)), ""), ()),
        Case("surprisal_300_words", "check_surprisal_tokens", "/surprisal", (" ".join(["word"] * 300), "", ""),
             ("surprisal is computed for at most",)),
        # the model field
        Case("model_nul_byte", "check_model_field", "/fill_mask", (s, 5, "runs/\x00evil"), ("NUL byte",)),
        Case("model_nul_byte_view", "check_model_field", "/attention_view", ("a b c", 1, "average", None, "\x00", ""),
             ("NUL byte",)),
        Case("model_control_char", "check_model_field", "/masking",
             ("a b c d", 0.15, "token", 0.8, 0.1, 0, "runs/\x1b[2J"), ("control character",)),
        Case("model_10k_chars", "check_model_field", "/fill_mask", (s, 5, "r" * 10_000),
             (f"at most {limits.MAX_MODEL_FIELD}",)),
        Case("model_parent_path", "check_model_field", "/fill_mask", (s, 5, "../../etc"), ("outside the runs",)),
        Case("model_absolute_path", "check_model_field", "/surprisal", ("a b c", "/etc", ""), ("outside the runs",)),
        # uploads (the run launcher) and run names
        Case("upload_exe", "check_upload", "/upload_corpus", (Upload("evil.exe", 100),),
             ("a corpus upload must be", "Invalid file type", "not allowed")),
        Case("upload_51MB", "check_upload", "/gradio_api/upload", (Upload("big.txt", big_upload),),
             ("maximum allowed size", "at most 50 MB"), via="upload"),
        Case("run_name_no_letters", "run_name", "/start_run", ("!!!",), ("no letters or digits", "still running")),
        Case("run_name_1000_chars", "run_name", "/start_run", ("x" * 1000,),
             (f"at most {limits.MAX_RUN_NAME}", "still running")),
    ]


GENERIC = ("Traceback (most recent call last)", "has not enabled verbose error reporting", "Internal Server Error")


def readable(message: Optional[str]) -> bool:
    """A message a person can act on: some words, no traceback or gradio's generic error text."""
    if not message or not message.strip() or message.strip() in ("Error", "None", "null"):
        return False
    return not any(g in message for g in GENERIC) and len(message.split()) >= 3


@dataclass
class Outcome:
    case: Case
    seconds: float
    status: str  # refused (gr.Error) | message (a view's ⚠️ text) | answered | http NNN | error
    message: str
    size: int = 0  # bytes of a normal answer

    @property
    def ok(self) -> bool:
        if not self.case.expect:
            return self.status == "answered" and self.message == "within the limit"
        refused = self.status in ("refused", "message") or self.status.startswith("http 4")
        return refused and any(e in self.message for e in self.case.expect) and readable(self.message)


def _materialise(args: tuple, folder: Path) -> tuple:
    out = []
    for a in args:
        if isinstance(a, Upload):
            path = folder / a.name
            with open(path, "wb") as f:
                f.write(b"some words of a corpus\n" * (min(a.size, 4096) // 23))
                f.truncate(a.size)
            out.append(path)
        else:
            out.append(a)
    return tuple(out)


def _message(out) -> tuple[str, str, int]:
    """(status, message, size) of a normal answer: a view's ⚠️ message, or a data answer."""
    parts = out if isinstance(out, (list, tuple)) else [out]
    for p in parts:
        if isinstance(p, str) and p.lstrip().startswith("⚠️"):
            return "message", html.unescape(p.lstrip()[2:].strip()), 0  # as the page shows it
    size = len(json.dumps(out, default=str))
    if isinstance(out, dict) and "shape" in out:
        seq = out["shape"][-1]
        text = "within the limit" if seq <= limits.MAX_ATTENTION_TOKENS else f"{seq} tokens: over the limit"
        return "answered", text, size
    return "answered", "", size


def send(client, case: Case, url: str, folder: Path, timeout: float) -> Outcome:
    from gradio_client import handle_file  # seconds to import: only the modes that talk to an app load it

    args = _materialise(case.args, folder)
    t0 = time.perf_counter()
    try:
        if case.via == "upload":  # straight to gradio's upload route: the server's limit, not the client's
            with open(args[0], "rb") as f:
                r = httpx.post(f"{url}/gradio_api/upload", files=[("files", (args[0].name, f))], timeout=timeout)
            try:  # a refusal comes as text ("File size exceeded ..."), an accepted upload as JSON
                message = str(r.json())
            except ValueError:
                message = r.text
            status, size = f"http {r.status_code}", 0
        else:
            call = [handle_file(str(a)) if isinstance(a, Path) else a for a in args]
            out = client.submit(*call, api_name=case.api_name).result(timeout=timeout)
            status, message, size = _message(out)
    except Exception as e:  # noqa: BLE001 - a refusal reaches the client as an exception
        status, message, size = ("refused" if type(e).__name__ == "AppError" else f"error {type(e).__name__}",
                                 str(e), 0)
    return Outcome(case, time.perf_counter() - t0, status, message, size)


def run_abuse(client, url: str, mask: str, args) -> int:
    available = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    outcomes, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="app-abuse-") as d:
        for case in abuse_cases(mask):
            if case.via == "client" and case.api_name not in available:
                skipped.append(case.name)
                continue
            outcomes.append(send(client, case, url, Path(d), args.timeout))
    print(f"{'case':<28}{'s':>7}  {'answer':<10} first line of the message")
    for o in outcomes:
        first = (o.message.strip().splitlines() or [""])[0][:110]
        extra = f" ({o.size:,} bytes)" if o.size else ""
        print(f"{o.case.name:<28}{o.seconds:>7.2f}  {o.status:<10} {first!r}{extra}{'' if o.ok else '  <- NOT OK'}")
    if skipped:
        print(f"skipped (endpoint not served by this app): {', '.join(skipped)}")
    slowest = max(outcomes, key=lambda o: o.seconds)
    fast = all(o.seconds < args.target for o in outcomes)
    good = all(o.ok for o in outcomes)
    print(f"{len(outcomes)} abusive requests; slowest {slowest.case.name} {slowest.seconds:.2f}s; all under "
          f"{args.target:g}s: {'yes' if fast else 'no'}; all answered with a readable message: "
          f"{'yes' if good else 'no'}")
    return 0 if fast and good else 1


# ---- the app -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str, runs_dir: Path, log_path: Path, wait: float = 300.0) -> tuple[subprocess.Popen, str]:
    """`workbench app` on a free loopback port, as a user starts it; returns once it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "workbench.cli", "app", "--model", model, "--runs", str(runs_dir),
           "--port", str(port)]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}, start_new_session=True)
    log.close()
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + wait
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            time.sleep(1)
    stop_app(proc)
    raise RuntimeError(f"the app did not answer within {wait:g}s:\n{log_path.read_text(errors='replace')[-3000:]}")


def stop_app(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running app (loopback only); default: start one on a free port")
    ap.add_argument("--model", default=str(ROOT / "assets" / "default-model"),
                    help="model for the app this script starts")
    ap.add_argument("--abuse", action="store_true", help="send each abusive request once instead of the load")
    ap.add_argument("--target", type=float, default=2.0, help="abuse mode: seconds each answer may take")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.url and urlparse(args.url).hostname not in LOOPBACK:
        print(f"refusing {args.url}: this script only talks to loopback addresses")
        return 2

    # imported here: loading gradio_client takes seconds, and the unit tests of the case list skip it
    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="app-load-") as d:
        proc, url = (None, args.url.rstrip("/")) if args.url else start_app(args.model, Path(d) / "runs",
                                                                            Path(d) / "app.log")
        try:
            # one client for every thread (its own worker pool submits concurrently); httpx's 5 s
            # default read timeout would count a slow but answered request as an error
            client = Client(url, verbose=False, max_workers=args.concurrency, httpx_kwargs={"timeout": args.timeout},
                            analytics_enabled=False)
            mask = client.predict("a [MASK] .", 1, "", api_name="/fill_mask")["mask_token"]  # loads the model
            return run_abuse(client, url, mask, args) if args.abuse else run_load(client, mask, args)
        except Exception:
            if proc is not None:  # what the app said is the likeliest explanation
                print(f"the app's log ends:\n{(Path(d) / 'app.log').read_text(errors='replace')[-3000:]}")
            raise
        finally:
            if proc is not None:
                stop_app(proc)


if __name__ == "__main__":
    sys.exit(main())
