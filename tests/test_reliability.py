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
