"""Pre-training runs started from the app (workbench.app.launcher, the Train a model tab): the form's
config and its `workbench pretrain` flags agree, names and corpus paths stay inside the runs folder,
uploads are limited, and through gradio_client a tiny run starts, shows its curve, is stopped with a
checkpoint and resumed to the right step count, while a second start is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import served_app

from workbench import cli, limits, runs
from workbench.app import launcher as L
from workbench.config import PretrainConfig, to_dict

TIMEOUT = 900  # seconds a tiny run may take to reach a state on a loaded 2-core machine (not an assertion of speed)


def write_corpus(small_corpus, path: Path) -> Path:
    texts = list(small_corpus["train"]["text"]) + list(small_corpus["validation"]["text"])
    path.write_text("\n\n".join(texts), encoding="utf-8")  # blank lines separate documents
    return path


# ---- no server -----------------------------------------------------------------------------------

@pytest.mark.parametrize("form", [
    ("tiny", "modernbert", "2m", 0.15, "token", None, 0, 50),
    ("mini", "bert", "90s", 0.3, "whole_word", "runs/c.txt", 40, 0),
])
def test_form_flags_give_the_same_config_through_the_cli(form):
    cfg = L.form_config(*form)
    args = cli.build_parser().parse_args(["pretrain", *L.form_flags(form[0], cfg), "--out", "x"])
    assert to_dict(cli._pretrain_config(args)) == to_dict(cfg)
    assert isinstance(cfg, PretrainConfig) and cfg.train.time_budget == form[2]


def test_app_max_budget_flag():
    parser = cli.build_parser()
    assert parser.parse_args(["app"]).max_budget == "30m"
    args = parser.parse_args(["app", "--max-budget", "0s"])
    with pytest.raises(ValueError, match="--max-budget must be positive"):
        cli.cmd_app(args)  # refused before anything is served
    assert L.RunLauncher("runs", "1h").max_budget_s == 3600


@pytest.mark.parametrize("given, kept", [
    ("my run", "my-run"), ("../../etc/passwd", "etc-passwd"), (".hidden", "hidden"), ("a..b", "a.b"),
    ("ok_name-1.2", "ok_name-1.2"), ("x" * 100, "x" * limits.MAX_RUN_NAME), ("/abs/path", "abs-path"),
])
def test_run_names_are_sanitised_to_one_path_component(given, kept):
    assert limits.run_name(given) == kept


@pytest.mark.parametrize("bad", ["", "../..", "///", "x" * 1000, None])
def test_unusable_run_names_are_refused(bad):
    with pytest.raises(limits.LimitError):
        limits.run_name(bad)


def test_launcher_refusals_before_anything_starts(tmp_path):
    runs_dir = tmp_path / "runs"
    (runs_dir / "taken").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("text")
    la = L.RunLauncher(runs_dir, max_budget="5m")
    cases = [
        (dict(name="a", time_budget="6m"), "over this app's limit of 5 min"),
        (dict(name="a", time_budget=""), "give a time budget"),
        (dict(name="a", corpus=str(tmp_path / "outside.txt")), "outside the runs folder"),
        (dict(name="a", corpus="../outside.txt"), "outside the runs folder"),
        (dict(name="a", corpus="missing.txt"), "is not a .txt, .jsonl, .csv file"),
        (dict(name="taken"), "exists: resume it"),
        (dict(name="uploads"), "reserved"),
        (dict(name="a", mlm_probability=1.5), "--mlm-probability must be"),
        (dict(name="a", preset="huge"), "unknown preset"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            la.start(**{"time_budget": "2m", **kwargs})
    with pytest.raises(L.LaunchError, match="not a pre-training run"):
        la.resume("taken")
    with pytest.raises(L.LaunchError, match="no run is running"):
        la.stop()
    assert la.job is None and sorted(p.name for p in runs_dir.iterdir()) == ["taken"]  # nothing made
    assert la.status()["state"] == "idle"


def test_uploads_are_limited_and_stored_inside_the_runs_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 100)
    la = L.RunLauncher(tmp_path / "runs")
    ok, big, exe = tmp_path / "my notes.txt", tmp_path / "big.txt", tmp_path / "tool.exe"
    ok.write_bytes(b"a" * 100)
    big.write_bytes(b"a" * 101)
    exe.write_bytes(b"a")
    assert la.store_upload(ok) == "uploads/my-notes.txt"
    assert la.store_upload(ok) == "uploads/my-notes.txt"  # the same file again: kept once
    ok.write_bytes(b"b" * 100)
    assert la.store_upload(ok) == "uploads/my-notes-2.txt"  # another file of that name: never overwritten
    with pytest.raises(L.LaunchError, match="at most 0 MB"):
        la.store_upload(big)
    with pytest.raises(L.LaunchError, match=r"must be a \.txt"):
        la.store_upload(exe)
    assert sorted(p.name for p in (tmp_path / "runs" / "uploads").iterdir()) == ["my-notes-2.txt", "my-notes.txt"]
    assert la.corpus_files() == ["uploads/my-notes-2.txt", "uploads/my-notes.txt"]
    assert la.corpus_path("uploads/my-notes.txt") == str((tmp_path / "runs" / "uploads" / "my-notes.txt").resolve())


# ---- through gradio_client -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory, small_corpus):
    """The app in this process over a runs folder holding a small corpus file, runs capped at 10 minutes."""
    runs_dir = tmp_path_factory.mktemp("runs-app") / "runs"
    runs_dir.mkdir()
    write_corpus(small_corpus, runs_dir / "small.txt")
    with served_app(runs_dir, max_budget="10m") as s:
        yield s


def wait_for(client, ok, what: str) -> dict:
    deadline = time.time() + TIMEOUT
    while True:
        status = client.predict(api_name="/run_status")
        if ok(status):
            return status
        if status["state"] == "failed" or time.time() > deadline:
            pytest.fail(f"waiting for {what}: {status['message']}\n{status.get('log', '')}")
        time.sleep(1)


@pytest.mark.slow
def test_api_names(served):
    _, client, _ = served
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/start_run", "/stop_run", "/resume_run", "/run_status", "/upload_corpus", "/surprisal"} <= names


@pytest.mark.slow
def test_start_watch_stop_resume(served):
    from gradio_client import Client

    demo, client, runs_dir = served
    assert client.predict(api_name="/run_status")["state"] == "idle"
    started = client.predict("tiny run", "tiny", "modernbert", "10m", 0.15, "token", "small.txt", 0, 0,
                             api_name="/start_run")
    assert started["state"] == "running" and started["name"] == "tiny-run"
    run = runs_dir / "tiny-run"

    # one run at a time: a second start (or a resume) is refused with a message
    with pytest.raises(Exception, match="refused: the run 'tiny-run' is still running"):
        client.predict("second", "tiny", "modernbert", "1m", 0.15, "token", "small.txt", 0, 20, api_name="/start_run")
    with pytest.raises(Exception, match="still running"):
        client.predict("tiny-run", "", 0, api_name="/resume_run")
    assert not (runs_dir / "second").exists()

    # the curve: train records appear and the Training tab's endpoint draws them
    status = wait_for(client, lambda s: s["step"] >= 10, "the first train record (step 10)")
    assert status["state"] == "running" and 0 < status["progress"] < 1 and status["loss"] > 0
    curve = client.predict(["tiny-run"], "step", "loss", api_name="/training_plot")
    assert curve["series"]["tiny-run"]["x"][0] == 10
    # the job lives in the server, not in a browser session: a new client sees it
    assert Client(client.src, verbose=False).predict(api_name="/run_status")["name"] == "tiny-run"

    stopping = client.predict(api_name="/stop_run")
    assert stopping["state"] in ("stopping", "stopped")
    stopped = wait_for(client, lambda s: s["state"] != "stopping", "the stop")
    assert stopped["state"] == "stopped" and stopped["returncode"] == 0, stopped["message"]
    summary = runs.summary_of(run)
    n = summary["steps"]
    assert summary["stopped"] is True and summary["stop_reason"] == "SIGTERM" and n > 10
    assert runs.latest_checkpoint(run).name == f"step-{n:08d}"
    train = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "train"]
    assert train[-1] == n  # the last steps are logged too
    assert "stopped at step" in stopped["message"]

    resumed = client.predict("tiny-run", "", n + 2, api_name="/resume_run")
    assert resumed["state"] == "running" and resumed["max_steps"] == n + 2
    done = wait_for(client, lambda s: s["state"] != "running", "the resumed run")
    assert done["state"] == "finished", done["message"]
    summary = runs.summary_of(run)
    assert summary["steps"] == n + 2 and "stopped" not in summary and "val_loss" in summary
    train = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "train"]
    assert train == sorted(set(train)) and train[-1] == n + 2  # every step logged once
    assert "--resume" in (run / "command.txt").read_text()

    # the finished run's model is offered by the pickers; the page's tick rescans them once
    wb = demo.workbench
    assert "tiny-run" in [v for _, v in wb.model_choices()]
    _, _, picker, seen = wb.run_tick(0, "")
    assert "tiny-run" in [c[1] for c in picker["choices"]] and seen == done["ended_jobs"] == 2
    _, _, unchanged, _ = wb.run_tick(seen, "")
    assert "choices" not in unchanged


@pytest.mark.slow
def test_refusals_through_the_api(served, tmp_path):
    from gradio_client import handle_file

    _, client, runs_dir = served
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(limits.MAX_UPLOAD_BYTES + 1)  # one byte over 50 MB (sparse: nothing written to disk)
    with pytest.raises(Exception, match="at most 50 MB"):
        client.predict(handle_file(str(big)), api_name="/upload_corpus")
    assert not (runs_dir / "uploads" / "big.txt").exists()
    for outside in (str(tmp_path / "x.txt"), "../../x.txt"):
        (tmp_path / "x.txt").write_text("some text")
        with pytest.raises(Exception, match="outside the runs folder"):
            client.predict("r", "tiny", "modernbert", "1m", 0.15, "token", outside, 0, 20, api_name="/start_run")
    with pytest.raises(Exception, match="over this app's limit of 10 min"):
        client.predict("r", "tiny", "modernbert", "11m", 0.15, "token", "", 0, 20, api_name="/start_run")
    assert not (runs_dir / "r").exists()
    small = tmp_path / "notes.txt"
    small.write_text("a small corpus\n\nof two documents")
    corpus, msg = client.predict(handle_file(str(small)), api_name="/upload_corpus")
    assert (runs_dir / "uploads" / "notes.txt").read_text() == small.read_text() and "uploads/notes.txt" in msg
