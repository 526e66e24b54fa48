"""Nothing lost, nothing hangs (issue 12): each test here failed before its fix.

Data loss, interrupted checkpoints and resume, numbers that crashed, the wrong kind of model, and
smaller items. Slow ones (training, subprocesses, servers) are marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench import runs
from workbench.cli import main


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n")
    return path


# ---- data loss -----------------------------------------------------------------------------------

def test_benchmark_overwrite_with_a_bad_task_leaves_the_folder_alone(tmp_path, capsys):
    out = _user_folder(tmp_path / "mine")
    rc = main(["benchmark", "assets/default-model", "--out", str(out), "--overwrite", "--tasks", "no-such-task"])
    assert rc == 2 and "unknown task" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_benchmark_overwrite_refuses_a_folder_the_workbench_did_not_write(tmp_path, capsys):
    out = _user_folder(tmp_path / "mine")
    rc = main(["benchmark", "assets/default-model", "--out", str(out), "--overwrite", "--tasks", "sentiment"])
    assert rc == 2 and "holds files the workbench did not write (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_output_dir_overwrite_moves_aside_and_refuses_user_folders(tmp_path):
    out = runs.prepare_output_dir(tmp_path / "bench", kind="benchmark")
    assert json.loads((out / runs.MARKER).read_text()) == {"kind": "benchmark"}
    (out / "benchmark.md").write_text("first\n")
    with pytest.raises(runs.RunError, match="exists and is not empty"):
        runs.prepare_output_dir(out)
    runs.prepare_output_dir(out, overwrite=True, kind="benchmark")
    assert (tmp_path / "bench.old-1" / "benchmark.md").read_text() == "first\n"
    assert sorted(p.name for p in out.iterdir()) == [runs.MARKER]
    # a folder of runs, a home folder, a user's folder: refused, untouched
    home = _user_folder(tmp_path / "home")
    with pytest.raises(runs.RunError, match="did not write"):
        runs.prepare_output_dir(home, overwrite=True)
    with pytest.raises(runs.RunError, match="did not write"):
        runs.prepare_run_dir(home, overwrite=True)
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    # a run directory written before the marker existed is still recognised (and moved, not deleted)
    old_run = tmp_path / "old-run"
    old_run.mkdir()
    (old_run / runs.CONFIG).write_text("{}")
    (old_run / runs.METRICS).write_text("")
    runs.prepare_run_dir(old_run, overwrite=True)
    assert (tmp_path / "old-run.old-1" / runs.CONFIG).exists()


@pytest.mark.slow
def test_train_tokenizer_overwrite_moves_the_old_one_aside(tmp_path, capsys):
    tok = tmp_path / "tok"
    args = ["train-tokenizer", "--max-documents", "40", "--vocab-size", "500", "--out", str(tok)]
    assert main(args) == 0
    (tok / "extra.txt").write_text("left by an older tokenizer\n")
    assert main([*args, "--overwrite"]) == 0
    assert not (tok / "extra.txt").exists() and (tmp_path / "tok.old-1" / "extra.txt").exists()
    assert (tok / "tokenizer.json").exists()
    # a user's folder is refused before the corpus is even loaded
    mine = _user_folder(tmp_path / "mine")
    capsys.readouterr()
    assert main(["train-tokenizer", "--data", str(tmp_path / "missing.txt"), "--out", str(mine), "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("argv, message", [
    (["--task", "no-such-task"], "unknown task 'no-such-task'"),
    (["--task", "trec", "--sizes", "100", "ten"], "--sizes: ten is not a whole number or 'all'"),
    (["--task", "trec", "--sizes", "0", "all"], "sizes must be positive whole numbers or all"),
])
def test_learning_curve_refuses_bad_input_before_making_its_folder(tmp_path, capsys, argv, message):
    out = tmp_path / "lc"
    assert main(["learning-curve", "assets/default-model", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench learning-curve: error:") and message in err
    assert not out.exists()


def test_a_missing_model_or_a_bad_task_file_is_refused_before_any_folder_is_made(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,y\nhello there,1\n")  # no `label` column
    missing = str(tmp_path / "no-model")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    for argv, message in (
            (["learning-curve", "assets/default-model", "--task", str(bad)], "no label column 'label'"),
            (["learning-curve", missing, "--task", "trec"], "no such run or model directory"),
            (["benchmark", "assets/default-model", "--tasks", "trec", str(bad)], "no label column 'label'"),
            (["benchmark", missing, "--tasks", "trec"], "no such run or model directory"),
            (["finetune", missing, "--task", "trec"], "no such run or model directory"),
            (["simcse", missing, "--max-sentences", "50"], "no such run or model directory"),
            (["pretrain", "--data", str(tmp_path / "missing.txt")], "missing.txt"),
            (["pretrain", "--data", str(blank)], "the corpus is empty")):
        out = tmp_path / "out"
        assert main([*argv, "--out", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert f"workbench {argv[0]}: error:" in err and message in err, (argv, err)
        assert not out.exists(), argv


def test_learning_curve_keeps_a_users_folder(tmp_path, capsys):
    out = _user_folder(tmp_path / "mine")
    for extra in ([], ["--overwrite"]):
        assert main(["learning-curve", "assets/default-model", "--task", "trec", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty" in err and "holds files the workbench did not write (notes.txt)" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and sorted(tmp_path.iterdir()) == [out]


# ---- checkpoints and resume ----------------------------------------------------------------------

def _tiny(tokenizer_dir, **train):
    from workbench.config import PretrainConfig, from_dict

    base = {"data": {"max_documents": 120, "validation_fraction": 0.1},
            "tokenizer": {"tokenizer_from": str(tokenizer_dir)},
            "model": {"size": "tiny", "layers": 1, "hidden": 64, "heads": 2}, "probes": "none",
            "train": {"batch_size": 8, "seq_len": 64, "lr": 2e-3, "log_every": 1, "eval_every": 3, "eval_batches": 2,
                      "save_every": 3, "precision": "fp32", "threads": 1, **train}}
    return from_dict(PretrainConfig, base)


def _train_steps(run: Path) -> list[int]:
    return [r["step"] for r in runs.read_metrics(run) if r["kind"] == "train"]


def test_a_tmp_checkpoint_holding_complete_is_not_a_checkpoint(tmp_path):
    root = tmp_path / runs.CHECKPOINTS
    for name in ("step-00000003", "step-00000009.tmp", "step-00000006.deleting", "step-00000012.replaced"):
        (root / name).mkdir(parents=True)
        (root / name / runs.COMPLETE).write_text("ok\n")  # killed between the marker and the rename
    assert [p.name for p in runs.checkpoints(tmp_path)] == ["step-00000003"]


def test_commit_fsyncs_every_file_before_the_rename(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(runs, "_fsync_file", lambda p: synced.append(p.name))
    final = tmp_path / "step-00000001"
    tmp = runs.atomic_dir(final)
    (tmp / "model.safetensors").write_bytes(b"w")
    (tmp / "optimizer.pt").write_bytes(b"o")
    runs.commit_dir(tmp, final)
    assert synced == ["model.safetensors", "optimizer.pt", runs.COMPLETE] and (final / runs.COMPLETE).exists()


def test_a_model_save_killed_midway_leaves_no_model_dir(tmp_path):
    from workbench.training import finish_run

    class Accel:
        is_main_process = True

        def wait_for_everyone(self):
            pass

    class Dying:
        def save_pretrained(self, path, **_):
            (Path(path) / "config.json").write_text("{}")
            (Path(path) / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt  # the process dies here

    with pytest.raises(KeyboardInterrupt):
        finish_run(tmp_path, Accel(), model=Dying())
    assert not (tmp_path / runs.MODEL).exists()  # a half-written model/ would hide the checkpoints


def test_rng_state_loads_without_pickled_code_old_and_new_format(tmp_path):
    import numpy as np
    import torch

    from workbench.training import _load_rng

    np.random.seed(3)
    legacy = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": (3, (1, 2), None)}
    torch.save(legacy, tmp_path / "rng.pt")
    assert np.array_equal(_load_rng(tmp_path / "rng.pt")["numpy"][1], legacy["numpy"][1])


class _Payload:
    def __reduce__(self):
        import os

        return (os.mkdir, (str(Path(__file__).parent / ".." / "PWNED-by-checkpoint"),))


@pytest.mark.slow
def test_checkpoint_faults_resume_cleanly(tokenizer_dir, tmp_path, capsys):
    """One straight run and one that is broken in every way the issue lists, then resumed: equal."""
    import torch

    from workbench.pretrain import pretrain

    cfg = _tiny(tokenizer_dir, max_steps=9)
    pretrain(cfg, tmp_path / "straight", progress=False)
    straight = {r["step"]: r["loss"] for r in runs.read_metrics(tmp_path / "straight") if r["kind"] == "train"}

    class Kill(Exception):
        pass

    def kill_at_step_7(kind, record):
        if kind == "train" and record["step"] == 7:
            raise Kill

    run = tmp_path / "run"
    with pytest.raises(Kill):
        pretrain(cfg, run, progress=False, callbacks=(kill_at_step_7,))  # checkpoints at 3 and 6, step 7 logged
    # (a) a kill between the COMPLETE marker and the rename; (b) a truncated newest optimizer.pt;
    # (c) metrics written after the newest checkpoint, which a resume must not keep twice
    (run / runs.CHECKPOINTS / "step-00000009.tmp").mkdir()
    (run / runs.CHECKPOINTS / "step-00000009.tmp" / runs.COMPLETE).write_text("ok\n")
    opt = run / runs.CHECKPOINTS / "step-00000006" / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])
    capsys.readouterr()
    pretrain(cfg, run, progress=False, resume=True)
    out = capsys.readouterr().out
    assert "step-00000006 cannot be read" in out and "falling back to the previous complete checkpoint" in out
    assert "resumed from" in out and "step-00000003 at step 3" in out
    assert _train_steps(run) == list(range(1, 10))  # steps 4-6 once, not twice
    evals = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "eval"]
    assert evals == [3, 6, 9]
    resumed = {r["step"]: r["loss"] for r in runs.read_metrics(run) if r["kind"] == "train"}
    assert resumed == pytest.approx(straight, abs=1e-6)
    # resuming a finished run repeats nothing
    pretrain(cfg, run, progress=False, resume=True)
    assert _train_steps(run) == list(range(1, 10))
    assert [r["step"] for r in runs.read_metrics(run) if r["kind"] == "eval"] == [3, 6, 9]
    # an optimizer.pt that would run code when unpickled is refused (weights_only) and runs nothing
    for ckpt in runs.checkpoints(run):
        torch.save({"state": {}, "param_groups": [], "x": _Payload()}, ckpt / "optimizer.pt")
    with pytest.raises(runs.RunError, match="no checkpoint can be read"):
        pretrain(_tiny(tokenizer_dir, max_steps=12), run, progress=False, resume=True)
    assert not (Path(__file__).parent / ".." / "PWNED-by-checkpoint").exists()


@pytest.mark.slow
def test_resume_refuses_a_changed_corpus_or_batch_size(tokenizer_dir, small_corpus, tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(t.replace("\n\n", "\n") for t in small_corpus["train"]["text"]), encoding="utf-8")
    run = tmp_path / "run"
    common = ["pretrain", "--out", str(run), "--data", str(text), "--tokenizer-from", str(tokenizer_dir), "--size",
              "tiny",
              "--layers", "1", "--hidden", "64", "--heads", "2", "--seq-len", "64", "--eval-batches", "2",
              "--precision", "fp32", "--probes", "none", "--log-every", "1"]
    assert main([*common, "--batch-size", "8", "--max-steps", "3", "--save-every", "3"]) == 0
    assert json.loads((run / runs.CONFIG).read_text())["corpus_fingerprint"]
    capsys.readouterr()
    # a changed batch size: refused, with what differs
    assert main(["pretrain", "--out", str(run), "--resume", "--batch-size", "16", "--max-steps", "4"]) == 2
    assert "train.batch_size: 8 -> 16" in capsys.readouterr().err
    # the same text file with other contents: refused
    text.write_text(text.read_text(encoding="utf-8").replace("the", "a"), encoding="utf-8")
    assert main(["pretrain", "--out", str(run), "--resume", "--max-steps", "4"]) == 2
    assert "different corpus" in capsys.readouterr().err
    assert _train_steps(run) == [1, 2, 3]  # nothing was trained
    # --force continues (and says what changed); a longer run by --max-steps alone needs no force
    assert main(["pretrain", "--out", str(run), "--resume", "--max-steps", "4", "--force"]) == 0
    assert _train_steps(run) == [1, 2, 3, 4]
    assert main(["pretrain", "--out", str(run), "--force"]) == 2


# ---- numbers that crash --------------------------------------------------------------------------

def _numeric_fields():
    import dataclasses
    import typing

    from workbench import config as C

    classes = [c for c in vars(C).values() if dataclasses.is_dataclass(c) and c.__module__ == C.__name__]
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            union = typing.get_origin(t) is typing.Union
            args = [a for a in typing.get_args(t) if a is not type(None)] if union else [t]
            if len(args) == 1 and args[0] in (int, float):
                yield cls, f.name, args[0]


def _bad_values(name, kind):
    from workbench.config import NUMBER_RULES

    lo, hi, lo_in, _ = NUMBER_RULES.get(name, (0, None, True, True))
    bad = ["ten", lo - 1 if lo_in else lo]
    if hi is not None:
        bad.append(hi + 1)
    if kind is float:
        bad += [float("nan"), float("inf")]
    else:
        bad.append(2.5)
    return bad


@pytest.mark.parametrize("cls,name,kind", list(_numeric_fields()), ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_numeric_config_field_is_checked_when_built(cls, name, kind):
    from workbench.config import NUMBER_RULES, ConfigError

    assert name in NUMBER_RULES, f"{cls.__name__}.{name}: give it a rule in config.NUMBER_RULES"
    for value in _bad_values(name, kind):
        with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
            cls(**{name: value})


def test_the_numbers_from_the_issue_exit_2_before_any_directory(tmp_path, capsys):
    cases = [(["--batch-size", "0"], "--batch-size must be at least 1"), (["--log-every", "0"], "--log-every must be"),
             (["--time-budget", "0"], "--time-budget must be positive"),
             (["--seq-len", "1024"], "--seq-len 1024 is longer than the model's --max-position 512"),
             (["--max-steps", "-1"], "--max-steps must be at least 1"),
             (["--vocab-size", "-3"], "--vocab-size must be")]
    for flags, message in cases:
        assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path / "run"), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert "error: " + message in err, (flags, err)
        assert not (tmp_path / "run").exists()
    assert main(["train-tokenizer", "--vocab-size", "-3", "--out", str(tmp_path / "tok")]) == 2
    assert "--vocab-size must be" in capsys.readouterr().err and not (tmp_path / "tok").exists()


# ---- wrong kind of model -------------------------------------------------------------------------

def _tiny_bert(cls, tokenizer, path: Path) -> Path:
    from transformers import BertConfig

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    cls(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def test_a_classifier_is_refused_by_fill_mask_and_a_masked_lm_by_classify(tokenizer, tmp_path, capsys):
    from transformers import BertForSequenceClassification

    clf = _tiny_bert(BertForSequenceClassification, tokenizer, tmp_path / "clf")
    assert main(["fill-mask", str(clf), "the [MASK] said"]) == 2
    assert ("is a BertForSequenceClassification (a fine-tuned sequence classifier), not a masked language model"
            in capsys.readouterr().err)
    assert main(["classify", "assets/default-model", "a fine film"]) == 2
    assert ("is a ModernBertForMaskedLM (a masked language model), not a fine-tuned sequence classifier"
            in capsys.readouterr().err)


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub(tmp_path, monkeypatch, capsys):
    from workbench import loading

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "mnli").mkdir(parents=True)
    with pytest.raises(loading.LoadError, match="runs/mni: no such run or model directory"):
        loading.resolve("runs/mni")
    assert main(["fill-mask", "runs/mni", "a [MASK]"]) == 2
    assert "runs/mni: no such run or model directory" in capsys.readouterr().err
    assert loading.resolve("someone/bert-mini") == ("someone/bert-mini", "someone/bert-mini")  # still a hub id


# ---- smaller items -------------------------------------------------------------------------------

def test_csv_fields_longer_than_csvs_default_limit_load(tmp_path):
    import csv

    from workbench.config import DataConfig
    from workbench.data import load_corpus
    from workbench.tasks import _read_table

    long = "word " * 40_000  # 200,000 characters in one field
    path = tmp_path / "long.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(6):
            w.writerow([f"{i} {long}", "a" if i % 2 else "b"])
    csv.field_size_limit(131_072)  # the default, as in a process that has not read the news corpus
    corpus = load_corpus(DataConfig(data=[str(path)], validation_fraction=0.2))
    assert sum(len(corpus[s]) for s in corpus) == 6
    csv.field_size_limit(131_072)
    assert len(_read_table(path)) == 6


def test_declared_minimum_versions_cover_what_the_code_uses():
    import re

    import tomllib

    root = Path(__file__).parent.parent
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    minimum = {m.group(1).lower(): int(m.group(2)) for d in deps if (m := re.match(r"([\w-]+)\s*>=\s*(\d+)", d))}
    code = "\n".join(p.read_text() for p in (root / "workbench").rglob("*.py"))
    # (package, major version that introduced it, what the code uses)
    needs = [("gradio", 6, "api_visibility="), ("transformers", 5, "ModernBertForMaskedLM"),
             ("transformers", 5, "dtype=torch.float32")]
    for package, major, usage in needs:
        if usage in code:
            assert minimum[package] >= major, \
                f"the code uses {usage} ({package} {major}), pyproject asks {package}>={minimum[package]}"


# ---- the app under abuse -------------------------------------------------------------------------

def test_limits_refuse_abusive_values_with_a_message():
    import re

    from workbench import limits

    assert limits.check_text("a [MASK] b") == "a [MASK] b" and limits.check_top_k(5) == 5
    for check, value, message in [
        (limits.check_text, "x" * (limits.MAX_TEXT_CHARS + 1),
         "the text has 2,001 characters; the app takes at most 2,000"),
        (limits.check_text, "a\x00b", "NUL byte"),
        (limits.check_top_k, 1_000_000, "top-k must be between 1 and 20, got 1,000,000"),
        (limits.check_top_k, 0, "top-k must be between 1 and 20"),
        (limits.check_top_k, 2.5, "whole number"),
        (limits.check_masks, 10, "the text has 10 [MASK] tokens; the app fills at most 8"),
        (limits.check_attention_tokens, 500, "attention is shown for at most 128 tokens"),
        (limits.check_model_field, "runs/\x00x", "holds a NUL byte"),
        (limits.check_model_field, "r" * 600, "at most 500"),
    ]:
        with pytest.raises(limits.LimitError, match=re.escape(message)):
            check(value)


def test_the_apps_handlers_answer_abuse_with_a_readable_message():
    """The requests of the issue's table, sent to the handlers the endpoints call."""
    import gradio as gr

    from workbench.app.shell import Workbench

    wb = Workbench("assets/default-model", runs_dir="runs")
    mask = wb.mask_token()
    with pytest.raises(gr.Error, match="top-k must be between 1 and 20"):
        wb.fill_mask_api(" ".join([mask] * 20), 1_000_000)
    with pytest.raises(gr.Error, match="fills at most 8"):
        wb.fill_mask_api(" ".join(f"word {mask}" for _ in range(20)), 5)
    _, rows, msg = wb.fill_mask_view(" ".join(f"word {mask}" for _ in range(10)), 5, "", warn=False)
    assert rows == [] and "fills at most 8" in msg  # was a generic "Error" from the plot
    plot, rows, msg = wb.fill_mask_view(" ".join(f"word {mask}" for _ in range(8)), 20, "", warn=False)
    assert len(rows) == 8 * 20 and plot is not None  # the largest allowed request draws
    with pytest.raises(gr.Error, match="attention is shown for at most 128 tokens"):
        wb.attention_api(" ".join(["a"] * 500))  # 999 characters, 500 tokens
    with pytest.raises(gr.Error, match="takes at most 2,000"):
        wb.attention_api("word " * 1000)
    *_, msg = wb.attention_view("a b c", 1, "average", None, "runs/\x00evil", warn=False)
    assert "holds a NUL byte" in msg
    assert "holds a NUL byte" in wb.masking_view("a b c d", 0.15, "token", 0.8, 0.1, 0, "\x00")[2]
    # the per-path lock table stays bounded: refused and failing paths leave no lock behind
    for i in range(20):
        wb.fill_mask_view(f"a {mask}", 5, f"no-such-run-{i}", warn=False)
    assert len(wb.mlms._path_locks) <= wb.mlms.size


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
    """The fault-injection script, small: 4 SIGKILLs over 2 runs (benchmarks/fault_injection.py does 24)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import fault_injection

    result = fault_injection.run_trials(tmp_path, kills=4, runs=2, steps=60, seed=1, log=lambda *_: None)
    assert result["kills"] == 4 and result["failures"] == []


def test_the_abuse_script_tries_every_server_side_limit_and_knows_a_readable_message():
    """benchmarks/app_load.py --abuse: the issue's table and one request over each limit of
    workbench/limits.py (a new check_* without a case fails here); a traceback is not a message."""
    import sys

    from workbench import limits

    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import app_load

    cases = app_load.abuse_cases("[MASK]")
    checks = {n for n in vars(limits) if n.startswith("check_")} | {"run_name"}
    assert checks == {"check_text", "check_top_k", "check_masks", "check_attention_tokens", "check_model_field",
                      "check_surprisal_tokens", "check_upload", "run_name"}
    assert checks <= {c.limit for c in cases}
    assert {c.name for c in cases} >= {"issue_10_masks_view", "issue_20_masks_top_k_1e6", "issue_500_words_attention",
                                       "model_nul_byte", "model_parent_path", "upload_51MB", "text_10MB_attention"}
    assert len({c.name for c in cases}) == len(cases)
    issue = {c.name: c for c in cases}
    assert issue["issue_20_masks_top_k_1e6"].args == (" ".join(["[MASK]"] * 20), 1_000_000, "")
    assert issue["upload_51MB"].args[0].size > limits.MAX_UPLOAD_BYTES and issue["upload_51MB"].via == "upload"
    assert len(issue["text_2001_chars"].args[0]) == limits.MAX_TEXT_CHARS + 1
    assert app_load.readable("the text has 10 [MASK] tokens; the app fills at most 8 at once")
    for bad in ["", "Error", "None", "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'a'",
                "The upstream Gradio app has raised an exception but has not enabled verbose error reporting."]:
        assert not app_load.readable(bad), bad
    refused = app_load.Outcome(issue["top_k_0"], 0.1, "refused", "top-k must be between 1 and 20, got 0")
    assert refused.ok
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: top-k must be between"
    assert not app_load.Outcome(issue["top_k_0"], 0.1, "refused", traceback).ok
    assert not app_load.Outcome(issue["top_k_0"], 0.1, "answered", "top-k must be between 1 and 20, got 0").ok
