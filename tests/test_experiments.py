"""The downstream benchmark: seed aggregation, learning rates chosen on validation, the bag-of-words
row, and `workbench benchmark` end to end on the shipped default model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import pytest

from workbench import cli, tasks
from workbench import experiments as ex
from workbench.baselines import bag_of_words
from workbench.config import BENCHMARK_PRESETS, BenchmarkConfig, ConfigError
from workbench.tasks import TaskData

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "default-model"


# ---- seed aggregation ----------------------------------------------------------------------------

def test_aggregate_seeds_exact_values():
    # pre-trained 0.6/0.8/0.7: mean 0.7, sample std sqrt((0.01 + 0.01 + 0) / 2) = 0.1
    # scratch 0.5/0.5/0.8: mean 0.6, sample std sqrt((0.01 + 0.01 + 0.04) / 2) = sqrt(0.03)
    # differences 0.1/0.3/-0.1: mean 0.1, sample std sqrt((0 + 0.04 + 0.04) / 2) = 0.2
    agg = ex.aggregate_seeds([0.6, 0.8, 0.7], [0.5, 0.5, 0.8])
    assert agg["pretrained"]["mean"] == pytest.approx(0.7) and agg["pretrained"]["std"] == pytest.approx(0.1)
    assert agg["scratch"]["mean"] == pytest.approx(0.6) and agg["scratch"]["std"] == pytest.approx(math.sqrt(0.03))
    assert agg["difference"]["scores"] == pytest.approx([0.1, 0.3, -0.1])
    assert agg["difference"]["mean"] == pytest.approx(0.1) and agg["difference"]["std"] == pytest.approx(0.2)


def test_aggregate_one_seed_has_no_spread_and_lengths_must_match():
    agg = ex.aggregate_seeds([0.9], [0.8])
    assert agg["pretrained"]["std"] is None and agg["difference"]["mean"] == pytest.approx(0.1)
    assert "scratch" not in ex.aggregate_seeds([0.9, 0.7])
    with pytest.raises(ValueError, match="2 pre-trained scores but 1"):
        ex.aggregate_seeds([0.9, 0.7], [0.8])


# ---- choosing on validation ----------------------------------------------------------------------

def test_choose_by_validation_ignores_test():
    sweep = [{"lr": 1e-4, "validation": 0.70, "test": 0.95}, {"lr": 3e-4, "validation": 0.80, "test": 0.60},
             {"lr": 1e-3, "validation": 0.80, "val_loss": 0.1, "test": 0.99}]
    assert ex.choose_by_validation(sweep[:2]) == 1  # 0.80 beats 0.70 on validation, whatever the test says
    sweep[1]["val_loss"] = 0.3
    assert ex.choose_by_validation(sweep) == 2  # tie on validation: lower validation loss wins
    sweep[2]["val_loss"] = 0.3
    assert ex.choose_by_validation(sweep) == 1  # full tie: the earlier grid point
    with pytest.raises(ValueError):
        ex.choose_by_validation([])


def test_benchmark_chooses_the_learning_rate_on_validation_and_reports_its_test(monkeypatch, tmp_path):
    """A fake fine-tuning whose validation and test disagree: lr 1e-4 is best on validation (0.9)
    but worst on test; lr 1e-3 the reverse. The benchmark must pick 1e-4, run only it for the
    other seeds and report the test scores of those runs."""
    val = {1e-4: 0.9, 1e-3: 0.5, 3e-3: 0.7}
    test = {1e-4: 0.40, 1e-3: 0.99, 3e-3: 0.20}
    calls = []

    def fake_finetune(cfg, out_dir, **kw):
        lr, seed = cfg.train.lr, cfg.train.seed
        calls.append((cfg.from_scratch, lr, seed))
        return {"val_accuracy": val[lr], "val_macro_f1": val[lr], "val_loss": 1.0, "steps": 1, "wall_time": 0.0,
                "test": {"score": test[lr] + seed / 100, "accuracy": 0.0, "macro_f1": 0.0}}

    monkeypatch.setattr(ex, "finetune", fake_finetune)
    monkeypatch.setattr(ex, "check_model", lambda path, pooling: None)  # no model behind "unused"
    cfg = BenchmarkConfig(tasks=["trec"], train_examples=48, eval_examples=16, seeds=3, bow=False,
                          pretrained_lrs=[1e-3, 1e-4], scratch_lrs=[1e-3, 3e-3])
    res = ex.benchmark("unused", tmp_path / "b", cfg, verbose=False)
    arms = res["tasks"][0]["arms"]
    assert arms["pretrained"]["lr"] == 1e-4 and arms["scratch"]["lr"] == 3e-3
    assert arms["pretrained"]["scores"] == pytest.approx([0.40, 0.41, 0.42])
    assert arms["scratch"]["scores"] == pytest.approx([0.20, 0.21, 0.22])
    assert [p["validation"] for p in arms["pretrained"]["sweep"]] == [0.5, 0.9]
    assert "test" not in json.dumps(arms["pretrained"]["sweep"])
    # the sweep runs each grid value once with the first seed; only the chosen value gets seeds 1 and 2
    assert calls == [(False, 1e-3, 0), (False, 1e-4, 0), (False, 1e-4, 1), (False, 1e-4, 2),
                     (True, 1e-3, 0), (True, 3e-3, 0), (True, 3e-3, 1), (True, 3e-3, 2)]
    assert res["tasks"][0]["difference"]["mean"] == pytest.approx(0.20)
    assert res["tasks"][0]["difference"]["std"] == pytest.approx(0.0)
    md = (tmp_path / "b" / "benchmark.md").read_text()
    assert "| trec | accuracy | 41.0 ± 1.0 (lr 0.0001) | 21.0 ± 1.0 (lr 0.003) | 20.0 ± 0.0 |" in md
    assert "| trec | pretrained | lr 0.0001 * | 90.0 |" in md and "| trec | scratch | lr 0.001 | 50.0 |" in md


@pytest.mark.parametrize("resample", [False, True])
def test_benchmark_resample_gives_each_seed_its_subsample_shared_by_both_arms(monkeypatch, tmp_path, resample):
    seen = {}

    def fake_finetune(cfg, out_dir, *, task_data, **kw):
        seen.setdefault((cfg.from_scratch, cfg.train.seed), set()).add(tuple(task_data["train"]["text"]))
        return {"val_accuracy": 0.5, "val_loss": 1.0, "steps": 1, "wall_time": 0.0,
                "test": {"score": 0.5, "accuracy": 0.5, "macro_f1": 0.5}}

    monkeypatch.setattr(ex, "finetune", fake_finetune)
    monkeypatch.setattr(ex, "check_model", lambda path, pooling: None)
    cfg = BenchmarkConfig(tasks=["trec"], train_examples=48, seeds=3, bow=False, resample=resample,
                          pretrained_lrs=[1e-3], scratch_lrs=[1e-3])
    cfg.train.seed = 5
    ex.benchmark("unused", tmp_path / "b", cfg, verbose=False)
    assert all(len(v) == 1 for v in seen.values())  # one subsample per (arm, seed)
    by_seed = {seed: seen[(False, seed)] for seed in (5, 6, 7)}
    assert all(seen[(True, seed)] == by_seed[seed] for seed in by_seed)  # both arms on the same examples
    full = tasks.load_task("trec")
    assert by_seed[5] == {tuple(tasks.subsample(full, 48, 5)["train"]["text"])}  # the first seed: train.seed's
    assert (len({next(iter(v)) for v in by_seed.values()}) == 3) is resample  # others differ only with resample
    assert ("a subsample per seed" in (tmp_path / "b" / "benchmark.md").read_text()) is resample


def test_benchmark_table_by_hand():
    arm = lambda mean, std, lr: {"mean": mean, "std": std, "lr": lr}
    row = {"task": "spam", "metric": "macro_f1", "difference": {"mean": 0.125, "std": 0.01},
           "arms": {"pretrained": arm(0.9, 0.02, 1e-4), "scratch": arm(0.775, None, 1e-3),
                    "bow": {"score": 0.95, "C": 10.0}}}
    average = {"pretrained": {"mean": 0.9, "std": 0.02}, "scratch": {"mean": 0.775, "std": None},
               "difference": {"mean": 0.125, "std": 0.01}, "bow": 0.95}
    assert ex.benchmark_table({"tasks": [row], "average": average}).splitlines() == [
        "| task | metric | pre-trained | from scratch | difference | bag of words |",
        "|---|---|---:|---:|---:|---:|",
        "| spam | macro_f1 | 90.0 ± 2.0 (lr 0.0001) | 77.5 (lr 0.001) | 12.5 ± 1.0 | 95.0 (C 10) |",
        "| **average** | | **90.0 ± 2.0** | **77.5** | **12.5 ± 1.0** | **95.0** |"]
    # without the scratch and bag-of-words arms their columns go
    del row["arms"]["scratch"], row["arms"]["bow"], average["scratch"], average["bow"]
    assert ex.benchmark_table({"tasks": [row], "average": average}).splitlines() == [
        "| task | metric | pre-trained |", "|---|---|---:|", "| spam | macro_f1 | 90.0 ± 2.0 (lr 0.0001) |",
        "| **average** | | **90.0 ± 2.0** |"]


def test_benchmark_config_checks_and_quick_preset():
    with pytest.raises(ConfigError, match="resample redraws"):
        BenchmarkConfig(resample=True, train_examples=None)
    with pytest.raises(ConfigError, match="seeds"):
        BenchmarkConfig(seeds=0)
    with pytest.raises(ConfigError, match="pretrained_lrs"):
        BenchmarkConfig(pretrained_lrs=[])
    with pytest.raises(ConfigError, match="scratch_lrs must be numbers"):
        BenchmarkConfig(scratch_lrs=["fast"])
    assert BenchmarkConfig(pretrained_lrs=["1e-4", "3e-4"]).pretrained_lrs == [1e-4, 3e-4]  # CLI strings
    import argparse

    p = argparse.ArgumentParser()
    cli.add_benchmark_arguments(p)
    quick = cli.benchmark_config_from_args(p.parse_args(["m", "--quick", "--seeds", "4"]))
    assert quick.seeds == 4 and quick.train.max_steps == BENCHMARK_PRESETS["quick"]["train"]["max_steps"]
    plain = cli.benchmark_config_from_args(p.parse_args(["m", "--scratch-lrs", "0.01"]))
    assert plain.scratch_lrs == [0.01] and plain.seeds == 3 and plain.train.max_steps == 150
    assert not hasattr(p.parse_args(["m"]), "train.lr")  # the grids replace --lr


# ---- bag of words --------------------------------------------------------------------------------

def _toy_task() -> TaskData:
    """Sentiment-like words that never overlap between the classes."""
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})

    def split(rows):
        return datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]}, features=feats)

    train = [("good film", 1), ("great film", 1), ("good great", 1),
             ("bad film", 0), ("awful film", 0), ("bad awful", 0)]
    validation = [("good", 1), ("awful", 0)]
    test = [("great", 1), ("bad", 0), ("good good", 1)]
    return TaskData("toy", datasets.DatasetDict(train=split(train), validation=split(validation), test=split(test)),
                    ["neg", "pos"])


def test_bag_of_words_on_a_tiny_task():
    res = bag_of_words(_toy_task(), cs=(1.0, 10.0))
    assert res["sweep"] == [{"C": 1.0, "validation": 1.0}, {"C": 10.0, "validation": 1.0}]
    assert res["C"] == 1.0  # a tie on validation goes to the smaller C
    assert res["score"] == 1.0 and res["accuracy"] == 1.0 and res["macro_f1"] == 1.0
    with pytest.raises(ValueError, match="at least one C"):
        bag_of_words(_toy_task(), cs=())


# ---- end to end ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_benchmark_cli_with_seeds_on_the_default_model(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "bench"
    args = ["benchmark", str(DEFAULT_MODEL), "--out", str(out), "--seeds", "2", "--tasks", "trec",
            "--train-examples", "48", "--eval-examples", "16", "--max-steps", "2", "--eval-every", "2",
            "--batch-size", "16", "--seq-len", "24",
            "--pretrained-lrs", "1e-4", "1e-3", "--scratch-lrs", "1e-3", "--bow-cs", "1", "10", "--threads", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| task | metric | pre-trained | from scratch | difference | bag of words |" in printed
    data = json.loads((out / "benchmark.json").read_text())
    row = data["tasks"][0]
    assert row["task"] == "trec" and row["train_examples"] == 48 and row["validation_examples"] == 16
    pre, scr, bow = row["arms"]["pretrained"], row["arms"]["scratch"], row["arms"]["bow"]
    assert [p["lr"] for p in pre["sweep"]] == [1e-4, 1e-3] and len(scr["sweep"]) == 1 and len(bow["sweep"]) == 2
    assert pre["seeds"] == [0, 1] and len(pre["scores"]) == 2 and len(scr["scores"]) == 2
    assert row["difference"]["mean"] == pytest.approx(pre["mean"] - scr["mean"])
    assert data["average"]["pretrained"]["mean"] == pytest.approx(pre["mean"])
    chosen = out / "trec" / "pretrained" / f"lr{pre['lr']:g}-seed1"
    assert (chosen / "test_metrics.json").is_file() and not (chosen / "model").exists()  # models are not kept
    assert len(list((out / "trec" / "pretrained").iterdir())) == 3  # two sweep runs + one more seed
    md = (out / "benchmark.md").read_text()
    assert "±" in md and "Learning-rate (and C) sweep" in md
    assert main(args) == 2  # an existing output without --overwrite
