"""A run stopped gracefully (RUN/STOP or SIGTERM/SIGINT) finishes its step, writes a checkpoint and a
summary marked stopped, and `--resume` then continues it to the same losses as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal

import pytest

from workbench import runs
from workbench.config import PretrainConfig, from_dict
from workbench.pretrain import pretrain
from workbench.stopping import STOP_FILE

pytestmark = pytest.mark.slow  # every test trains (a few tiny steps)


def tiny_config(tokenizer_dir, **train) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "data": {"max_documents": 120, "validation_fraction": 0.1},
        "tokenizer": {"tokenizer_from": str(tokenizer_dir)},
        "model": {"size": "tiny", "layers": 1, "hidden": 64, "heads": 2},
        "train": {"batch_size": 8, "seq_len": 64, "lr": 2e-3, "log_every": 1, "eval_every": 4, "eval_batches": 2,
                  "save_every": 100, "precision": "fp32", **train},
        "probes": "none",
    })


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in runs.read_metrics(run_dir) if r["kind"] == "train"}


def test_stop_file_then_resume_equals_an_uninterrupted_run(tokenizer_dir, small_corpus, tmp_path):
    cfg = tiny_config(tokenizer_dir, max_steps=9)
    pretrain(cfg, tmp_path / "straight", progress=False, corpus=small_corpus)

    run = tmp_path / "stopped"

    def ask_to_stop(kind, record):  # step 5 is checked before its record is written: the run stops after step 6
        if kind == "train" and record["step"] == 5:
            (run / STOP_FILE).touch()

    summary = pretrain(cfg, run, progress=False, corpus=small_corpus, callbacks=(ask_to_stop,))
    assert summary["steps"] == 6 and summary["stopped"] is True and STOP_FILE in summary["stop_reason"]
    saved = json.loads((run / "summary.json").read_text())
    assert saved["stopped"] is True and saved["steps"] == 6
    assert runs.latest_checkpoint(run).name == "step-00000006"  # save_every 100: written because of the stop
    assert not (run / STOP_FILE).exists()  # consumed, so --resume trains on
    assert (run / "model" / "config.json").exists()  # the stopped model can be inspected
    assert sorted(losses(run)) == [1, 2, 3, 4, 5, 6]

    resumed = pretrain(cfg, run, progress=False, corpus=small_corpus, resume=True)
    assert resumed["steps"] == 9 and "stopped" not in resumed
    a, b = losses(tmp_path / "straight"), losses(run)
    assert sorted(b) == list(range(1, 10))  # every step logged once
    for step in range(1, 10):
        assert b[step] == pytest.approx(a[step], abs=1e-4), step
    evals = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "eval"]
    assert evals == [4, 8, 9]  # as scheduled: the stop added no evaluation


def test_sigterm_stops_after_the_step_and_restores_the_handlers(tokenizer_dir, small_corpus, tmp_path):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def terminate(kind, record):  # after step 3's check: the run finishes step 4
        if kind == "train" and record["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    summary = pretrain(tiny_config(tokenizer_dir, max_steps=50), tmp_path / "run", progress=False,
                       corpus=small_corpus, callbacks=(terminate,))
    assert summary["steps"] == 4 and summary["stop_reason"] == "SIGTERM"
    assert runs.latest_checkpoint(tmp_path / "run").name == "step-00000004"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_second_sigint_stops_at_once(tokenizer_dir, small_corpus, tmp_path):
    def interrupt_twice(kind, record):
        if kind == "train" and record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_config(tokenizer_dir, max_steps=50), tmp_path / "run", progress=False, corpus=small_corpus,
                 callbacks=(interrupt_twice,))
    assert runs.latest_checkpoint(tmp_path / "run") is None  # nothing written after the second signal
