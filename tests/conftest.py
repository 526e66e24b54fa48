"""Shared fixtures and helpers: a small corpus slice and a tokenizer trained on it once per session;
tiny models built once per pytest run (`tiny_bert_dir()` and friends, cached per process); a run
killed at a step (`kill_at`) and its training losses; for the app tests a fake metrics.jsonl, a free
port, the app served in this process with its gradio_client (`served_app`) or in a subprocess as
`workbench app` runs it (`app_process`), and a Chromium page on it (`chromium_page`). Test files
import the helpers from here, never from each other."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, RobertaConfig, RobertaForMaskedLM

from workbench import runs
from workbench.config import DataConfig, ModelConfig, TokenizerConfig
from workbench.data import load_corpus
from workbench.model import build_mlm_model
from workbench.tokenizer import load_tokenizer, train_tokenizer


@pytest.fixture(scope="session")
def small_corpus():
    return load_corpus(DataConfig(max_documents=120, validation_fraction=0.1))


@pytest.fixture(scope="session")
def tokenizer_dir(small_corpus, tmp_path_factory):
    """A WordPiece tokenizer saved once; runs that must be compared reuse it (tokenizer training in
    `tokenizers` breaks frequency ties in hash order, so two trainings can differ slightly)."""
    path = tmp_path_factory.mktemp("tok")
    train_tokenizer(small_corpus["train"]["text"], TokenizerConfig(vocab_size=2000)).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    return load_tokenizer(tokenizer_dir)


# ---- tiny models, built once per test process ---------------------------------------------------

_ROOT = Path(tempfile.mkdtemp(prefix="wb-inspect-"))


@functools.lru_cache(maxsize=None)
def corpus_texts() -> tuple[str, ...]:
    return tuple(load_corpus(DataConfig(max_documents=300))["train"]["text"])


def _save(name: str, model, tokenizer) -> Path:
    out = _ROOT / name
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _tiny(config_cls, tokenizer, **config):
    """A 2-layer config (hidden 64, feed-forward 128) over `tokenizer`'s vocabulary."""
    return config_cls(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                      pad_token_id=tokenizer.pad_token_id, **config)


@functools.lru_cache(maxsize=None)
def tiny_bert_dir() -> Path:
    """A WordPiece tokenizer trained on 300 news documents and a random 2-layer BertForMaskedLM
    (hidden 64, 2 heads, 128 positions), saved as a plain Hugging Face model directory."""
    tok = train_tokenizer(corpus_texts(), TokenizerConfig(vocab_size=2000))
    torch.manual_seed(0)
    return _save("tiny-bert", BertForMaskedLM(_tiny(BertConfig, tok, num_attention_heads=2,
                                                    max_position_embeddings=128)), tok)


@functools.lru_cache(maxsize=None)
def tiny_roberta_dir() -> Path:
    """A RoBERTa-style masked LM whose mask token is <mask> (BPE vocabulary)."""
    tok = train_tokenizer(corpus_texts(), TokenizerConfig(algorithm="bpe", vocab_size=1000))
    tok.add_special_tokens({"mask_token": "<mask>"})
    torch.manual_seed(1)
    return _save("tiny-roberta", RobertaForMaskedLM(_tiny(RobertaConfig, tok, num_attention_heads=4,
                                                          max_position_embeddings=66)), tok)


@functools.lru_cache(maxsize=None)
def tiny_modernbert_dir() -> Path:
    """A ModernBERT masked LM (rotary positions; the architecture of assets/default-model) built with
    the project's own model presets and the tiny BERT's WordPiece tokenizer."""
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir())
    torch.manual_seed(2)
    return _save("tiny-modernbert", build_mlm_model(ModelConfig(size="tiny", layers=2, hidden=64, heads=2,
                                                                max_position=128, architecture="modernbert"), tok), tok)


# ---- interrupted runs --------------------------------------------------------------------------------

class Killed(Exception):
    """What `kill_at` raises: the run stops as a crash would, after its step is logged."""


def kill_at(step: int):
    """A training callback that raises Killed when step `step` is logged (after the checkpoints
    before it, before any after it)."""

    def callback(kind: str, record: dict) -> None:
        if kind == "train" and record["step"] == step:
            raise Killed

    return callback


def train_losses(run_dir: Path) -> dict[int, float]:
    """{step: training loss} of a run's metrics.jsonl."""
    return {r["step"]: r["loss"] for r in runs.read_metrics(run_dir) if r["kind"] == "train"}


# ---- the app tests -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_metrics(run_dir: Path, steps: int = 200, slope: float = 0.02, time_per_step: float = 0.1) -> list[dict]:
    """A metrics.jsonl with train records every 10 steps and eval records every 50 (runs.py schema)."""
    recs = []
    for s in range(10, steps + 1, 10):
        recs.append({"kind": "train", "step": s, "time": s * time_per_step, "tokens": s * 4096, "loss": 8 - slope * s,
                     "lr": 1e-3, "tokens_per_s": 4096 / time_per_step})
        if s % 50 == 0:
            val = 8.2 - slope * s
            recs.append({"kind": "eval", "step": s, "time": s * time_per_step, "tokens": s * 4096, "val_loss": val,
                         "val_perplexity": float(np.exp(val)), "val_accuracy": s / 1000})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs


@contextmanager
def served_app(runs_dir: Path, model: str | Path | None = None, **build_kwargs):
    """The app built in this process (`model` as its start model, the tiny BERT by default) on a free
    loopback port; yields (demo, gradio_client.Client, runs_dir). On the way out a run the test started
    from the page is stopped and the server closed. Module fixtures wrap it: `with served_app(...) as s: yield s`."""
    from gradio_client import Client  # the app tests' client: only they pay for importing it

    from workbench import app as app_module

    demo = app_module.build_app(model=str(model or tiny_bert_dir()), runs_dir=runs_dir, live_every=30, **build_kwargs)
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield demo, Client(f"http://127.0.0.1:{port}", verbose=False), runs_dir
    finally:
        demo.workbench.launcher.shutdown()
        demo.close()


# ---- the browser tests (Debian's chromium driven by Playwright) ----------------------------------------

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"  # screenshots (git-ignored)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextmanager
def app_process(model: str | Path, runs_dir: Path, answer_within: float, end_within: float, **launch_kwargs):
    """`workbench.app.launch` in a subprocess on a free loopback port, as `workbench app` runs it;
    yields its URL once it answers (a failure if it exits or is silent for `answer_within` seconds).
    It is ended with SIGTERM (which must end a run it started too), killed after `end_within` seconds."""
    port = free_port()
    extra = "".join(f", {k}={v!r}" for k, v in launch_kwargs.items())
    code = f"from workbench.app import launch; launch({str(model)!r}, {str(runs_dir)!r}, port={port}{extra})"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + answer_within
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the app did not answer within {answer_within:g} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=end_within)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def chromium_page(url: str, height: int, timeout_ms: int):
    """A Chromium page (1300 x `height`) opened on `url`, `timeout_ms` its default wait; closed after."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium; `make browser` installs it")
    from playwright.sync_api import sync_playwright  # only the browser tests need playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": height})
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            yield page
        finally:
            browser.close()
