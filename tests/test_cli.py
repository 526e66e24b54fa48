"""The `workbench` command: help texts, the pre-training path end to end, and clear errors."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.cli import build_parser, main
from workbench.config import TrainConfig
from workbench.flags import field_comments

# every subcommand the parser has (new ones are covered without being listed here); argparse keeps them
# only in its subparsers action
COMMANDS = sorted(next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=600)


def test_help_lists_every_command(capsys):
    assert {"pretrain", "prepare", "export", "finetune", "benchmark", "simcse", "app"} <= set(COMMANDS)
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    top = capsys.readouterr().out
    assert [cmd for cmd in COMMANDS if cmd not in top] == []


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help(cmd, capsys):
    """In this process (argparse exits after printing): no subprocess, no import per command."""
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: workbench " + cmd)


def test_config_flags_are_explained_by_their_field_comments(capsys):
    """Each generated flag's help is the comment written beside its dataclass field, plus its default."""
    assert field_comments(TrainConfig)["lr"] == "peak learning rate (AdamW)"
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "--lr LR peak learning rate (AdamW); default 0.001 [train.lr]" in text
    assert "--architecture ARCHITECTURE modernbert (the recipe) | bert (post-LN, the original) | preln" in text
    assert "(default: None)" not in text


@pytest.mark.slow
def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("workbench")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pretrain" in out.stdout


def test_pretrain_flags_map_onto_the_typed_config():
    from workbench.cli import _pretrain_config

    args = build_parser().parse_args(["pretrain", "--preset", "small", "--time-budget", "10m", "--mlm-probability",
                                      "0.3",
                                      "--mask-strategy", "whole_word", "--layers", "2", "--no-packing"])
    cfg = _pretrain_config(args)
    assert cfg.model.size == "small" and cfg.model.layers == 2
    assert cfg.train.time_budget == "10m" and cfg.train.packing is False and cfg.train.lr == 5e-4
    assert cfg.masking.mlm_probability == 0.3 and cfg.masking.mask_strategy == "whole_word"


@pytest.mark.slow
def test_pretrain_evaluate_fill_mask_end_to_end(tmp_path, tokenizer_dir):
    run = tmp_path / "run"
    out = run_cli("pretrain", "--preset", "tiny", "--max-documents", "100", "--max-steps", "6", "--batch-size", "8",
                  "--seq-len", "64", "--eval-every", "3", "--eval-batches", "1", "--tokenizer-from", str(tokenizer_dir),
                  "--out", str(run))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = out.stdout[out.stdout.index("\n{") + 1: out.stdout.rindex("}") + 1]  # after the corpus/model line
    assert json.loads(summary)["steps"] == 6
    out = run_cli("fill-mask", str(run), "the [MASK] of the united states", "--json", "--top-k", "3")
    assert out.returncode == 0, out.stderr[-2000:]
    preds = json.loads(out.stdout)["predictions"]
    assert len(preds) == 1 and len(preds[0]) == 3
    assert preds[0][0]["score"] >= preds[0][1]["score"] >= preds[0][2]["score"]
    table = run_cli("fill-mask", str(run), "the [MASK] of the united states")
    assert table.returncode == 0 and "probability" in table.stdout
    ev = run_cli("evaluate", str(run), "--batches", "1")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert {"val_loss", "val_perplexity", "val_accuracy"} <= set(json.loads(ev.stdout))
    # export: the final model plus a card that says exactly how it was made
    assert (run / "command.txt").read_text().startswith("workbench pretrain --preset tiny --max-documents 100")
    dest = tmp_path / "exported"
    out = run_cli("export", str(run), str(dest), "--example", "the [MASK] of the united states")
    assert out.returncode == 0, out.stderr[-2000:]
    card = (dest / "README.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert "workbench pretrain --preset tiny --max-documents 100" in card
    assert f"masked-token accuracy {summary['val_accuracy']:.1%}" in card and "training seed 0" in card
    assert f"| `the [MASK] of the united states` | `{preds[0][0]['token']}`" in card  # the same top prediction
    assert {"model.safetensors", "config.json", "tokenizer.json", "summary.json"} <= {p.name for p in dest.iterdir()}
    again = run_cli("export", str(run), str(dest))
    assert again.returncode == 2 and "--overwrite" in again.stderr and (dest / "README.md").read_text() == card
    # bad input is refused before anything is copied
    for bad, message in ((["export", str(run), str(tmp_path / "e1"), "--example", "no mask here"], "no [MASK]"),
                         (["export", str(tmp_path), str(tmp_path / "e2")], "no final model")):
        out = run_cli(*bad)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()
    # --half: float16 on disk, float32 when loaded, and the card reports the copy's own validation
    half = tmp_path / "half"
    out = run_cli("export", str(run), str(half), "--half")
    assert out.returncode == 0, out.stderr[-2000:]
    from safetensors.torch import load_file

    from workbench.inspection import load_mlm

    assert {t.dtype for t in load_file(str(half / "model.safetensors")).values()} == {torch.float16}
    assert (half / "model.safetensors").stat().st_size < 0.6 * (dest / "model.safetensors").stat().st_size
    model, _ = load_mlm(half)
    assert next(model.parameters()).dtype == torch.float32
    card = (half / "README.md").read_text()
    assert "float16 (loaded as float32); validation of this copy" in card
    logged = float(card.split("validation of this copy, same fixed masks: MLM loss ")[1].split(",")[0])
    assert logged == pytest.approx(summary["val_loss"], abs=0.02)  # rounding the weights changes little


@pytest.mark.slow
def test_train_tokenizer_command_refuses_to_overwrite(tmp_path):
    out = run_cli("train-tokenizer", "--max-documents", "50", "--vocab-size", "1000", "--out", str(tmp_path / "tok"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fertility" in out.stdout and (tmp_path / "tok" / "tokenizer.json").exists()
    again = run_cli("train-tokenizer", "--max-documents", "50", "--out", str(tmp_path / "tok"))
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.slow
def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    cases = [
        (["corpus-stats", "--data", str(tmp_path / "missing.txt")], "missing.txt: no such file"),
        (["pretrain", "--preset", "tiny", "--time-budget", "ten minutes", "--out", str(tmp_path / "r")],
         "cannot read duration"),
        (["fill-mask", str(tmp_path / "nothing"), "a [MASK]"], "nothing"),
        (["pretrain", "--config", str(tmp_path / "nope.yaml")], "config file not found"),
        (["pretrain", "--architecture", "foo", "--out", str(tmp_path / "r2")], "unknown architecture 'foo'"),
        (["pretrain", "--architecture", "modernbert", "--objective", "mlm+sop", "--out", str(tmp_path / "r3")],
         "needs architecture bert"),
    ]
    for args, message in cases:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr[-1500:])
        assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()  # refused before any work


@pytest.mark.slow
def test_corpus_stats_json():
    out = run_cli("corpus-stats", "--max-documents", "50", "--json")
    stats = json.loads(out.stdout)
    assert stats["train"]["documents"] + stats["validation"]["documents"] == 50
