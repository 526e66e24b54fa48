"""Fine-tuning on the shared engine: metrics, freezing strategies, exact resume, user tasks,
classify, benchmark and learning curve, with a tiny model (2 layers, hidden 64)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from workbench import cli
from workbench import experiments as ex
from workbench import finetune as ft
from workbench.config import ConfigError
from workbench.finetune import FinetuneConfig, FinetuneError
from workbench.loading import classify


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 'pre-trained' run directory: WordPiece on 300 news documents + a tiny BertForMaskedLM."""
    from transformers import BertConfig, BertForMaskedLM

    from workbench.config import DataConfig, TokenizerConfig
    from workbench.data import load_corpus
    from workbench.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tiny_run")
    corpus = load_corpus(DataConfig(max_documents=300))
    tok = train_tokenizer(list(corpus["train"]["text"]), TokenizerConfig(vocab_size=2000))
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=128, max_position_embeddings=128,
                                       pad_token_id=tok.pad_token_id))
    model.save_pretrained(str(root / "model"))
    tok.save_pretrained(str(root / "model"))
    return root


def _cfg(run, task="trec", steps=6, **kw) -> FinetuneConfig:
    cfg = FinetuneConfig(model=str(run), task=task, train_examples=kw.pop("train_examples", 64),
                         eval_examples=kw.pop("eval_examples", 32), **kw)
    cfg.train.batch_size = 16
    cfg.train.max_steps = steps
    cfg.train.seq_len = 32
    cfg.train.lr = 1e-3
    cfg.train.log_every = 1
    cfg.train.threads = 1
    return cfg


# ---- a fine-tuning run, its outputs, classify -------------------------------------------------

@pytest.mark.slow
def test_finetune_run_outputs_and_classify(tiny_run, tmp_path):
    out = tmp_path / "ft"
    s = ft.finetune(_cfg(tiny_run, steps=8), out, progress=False)
    for name in ("config.json", "metrics.jsonl", "summary.json", "test_metrics.json", "predictions_test.csv",
                 "task.json"):
        assert (out / name).is_file(), name
    assert (out / "model" / "config.json").is_file() and (out / "model" / "tokenizer.json").is_file()
    assert list((out / "checkpoints").iterdir())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8]  # once per epoch (64 examples / batch 16)
    assert {"val_loss", "val_accuracy", "val_macro_f1"} <= set(evals[-1])
    tm = json.loads((out / "test_metrics.json").read_text())
    assert tm["examples"] == 520 and np.asarray(tm["confusion"]).sum() == 520
    assert tm["labels"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert s["test"]["accuracy"] == pytest.approx(tm["accuracy"])
    with open(out / "predictions_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 520 and {"text", "label", "prediction", "correct", "p_HUM"} <= set(rows[0])
    assert np.mean([int(r["correct"]) for r in rows]) == pytest.approx(tm["accuracy"])

    probs = classify(out, "Who wrote Hamlet ?")
    assert set(probs) == set(tm["labels"]) and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    many = classify(out / "model", ["Who wrote Hamlet ?", "Where is Paris ?", "x" * 2000])
    assert len(many) == 3 and many[0] == pytest.approx(probs, abs=1e-5)


# ---- freezing strategies --------------------------------------------------------------------------

def _weights(path):
    return load_file(str(path / "model" / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("strategy,freeze_layers", [("full", 0), ("frozen", 0), ("partial", 1)])
def test_freezing_strategies(tiny_run, tmp_path, strategy, freeze_layers):
    cfg = _cfg(tiny_run, steps=4, strategy=strategy, freeze_layers=freeze_layers)
    initial, _ = ft.load_for_classification(str(tiny_run), ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
                                            seed=cfg.train.seed)
    before = {k: v.clone() for k, v in initial.state_dict().items()}
    s = ft.finetune(cfg, tmp_path / strategy, progress=False)
    after = _weights(tmp_path / strategy)
    frozen_prefixes = {"full": (), "frozen": ("bert.embeddings.", "bert.encoder.layer."),
                       "partial": ("bert.embeddings.", "bert.encoder.layer.0.")}[strategy]
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    for k in after:
        if k.startswith(frozen_prefixes):
            assert k not in changed, f"{k} is frozen but changed"
    trainable_expected = [k for k in after if not k.startswith(frozen_prefixes) and k.endswith("weight")]
    assert all(k in changed for k in trainable_expected), set(trainable_expected) - changed
    assert "classifier.weight" in changed and "bert.pooler.dense.weight" in changed
    if strategy == "partial":
        assert "bert.encoder.layer.1.attention.self.query.weight" in changed
    if strategy != "full":
        assert s["trainable_parameters"] < s["parameters"]


def test_frozen_modules_stay_in_eval_mode(tiny_run):
    model, _ = ft.load_for_classification(str(tiny_run), ["a", "b"])
    frozen = ft.apply_strategy(model, "frozen")
    ft.ClassificationLoss(model, frozen).train()
    assert not model.bert.embeddings.training and not model.bert.encoder.layer[1].training
    assert model.classifier.training and model.bert.pooler.training


def test_bad_strategy_settings(tiny_run, tmp_path):
    with pytest.raises(FinetuneError, match="strategy must be"):
        FinetuneConfig(strategy="lora")
    with pytest.raises(FinetuneError, match="freeze_layers >= 1"):
        FinetuneConfig(strategy="partial")
    assert FinetuneConfig(freeze_layers=2).strategy == "partial"
    with pytest.raises(FinetuneError, match="only 2 layers"):
        ft.finetune(_cfg(tiny_run, freeze_layers=5), tmp_path / "x", progress=False)


# ---- exact resume ---------------------------------------------------------------------------------

class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_exact_resume(tiny_run, tmp_path):
    cfg = _cfg(tiny_run, steps=8)
    cfg.train.save_every = 4
    straight = ft.finetune(cfg, tmp_path / "a", progress=False)

    def stop(kind, record):
        if kind == "train" and record["step"] == 6:
            raise _Interrupt()

    with pytest.raises(_Interrupt):
        ft.finetune(cfg, tmp_path / "b", progress=False, callbacks=(stop,))
    assert not (tmp_path / "b" / "model").exists()
    resumed = ft.finetune(cfg, tmp_path / "b", resume=True, progress=False)

    def last_train(p):
        recs = [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]
        return [r for r in recs if r["kind"] == "train"][-1]

    assert last_train(tmp_path / "a")["step"] == last_train(tmp_path / "b")["step"] == 8
    assert last_train(tmp_path / "a")["loss"] == last_train(tmp_path / "b")["loss"]
    assert straight["val_loss"] == resumed["val_loss"]
    assert straight["test"] == resumed["test"]
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# ---- user tasks, pairs, from scratch, bad input ------------------------------------------------

@pytest.mark.slow
def test_user_pair_task_and_from_scratch(tiny_run, tmp_path):
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(200):
            same = i % 2 == 0
            f.write(json.dumps({"a": f"the cat sat on mat {i}",
                                "b": f"the cat sat on mat {i}" if same else f"stocks fell {i}",
                                "y": "same" if same else "different"}) + "\n")
    cfg = _cfg(tiny_run, task=str(path), text_column="a", text_pair_column="b", label_column="y", train_examples=None)
    cfg.from_scratch = True
    s = ft.finetune(cfg, tmp_path / "pair", progress=False)
    assert s["from_scratch"] and s["task"] == "pairs"
    # the scratch model does not start from the checkpoint's embeddings
    pre = load_file(str(tiny_run / "model" / "model.safetensors"))
    init, _ = ft.load_for_classification(str(tiny_run), ["different", "same"], from_scratch=True)
    key = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(init.state_dict()[key], pre[key])
    p = classify(tmp_path / "pair", ["the cat"], ["the cat"])
    assert set(p[0]) == {"different", "same"}


@pytest.mark.slow
def test_bad_inputs(tiny_run, tmp_path):
    with pytest.raises(FinetuneError, match="known tasks: sentiment, spam, trec, bbc"):
        ft.finetune(_cfg(tiny_run, task="nope"), tmp_path / "x", progress=False)
    with pytest.raises(FinetuneError, match="no such run or model directory"):
        ft.finetune(_cfg(tmp_path / "missing"), tmp_path / "y", progress=False)
    with pytest.raises(FinetuneError, match="fewer than one batch"):
        ft.finetune(_cfg(tiny_run, train_examples=10), tmp_path / "z", progress=False)
    with pytest.raises(FinetuneError, match="no model given"):
        ft.finetune(FinetuneConfig(task="trec", train_examples=64), tmp_path / "w", progress=False)


# ---- benchmark, learning curve, CLI helpers ---------------------------------------------------

@pytest.mark.slow
def test_tiny_benchmark(tiny_run, tmp_path):
    # one seed, one learning rate per arm, no bag of words: the plain pre-trained vs scratch table
    bcfg = ex.BenchmarkConfig(tasks=["trec", "spam"], train_examples=48, eval_examples=16, seeds=1, bow=False,
                              pretrained_lrs=[3e-4], scratch_lrs=[3e-4])
    bcfg.train.max_steps, bcfg.train.batch_size, bcfg.train.seq_len, bcfg.train.threads = 3, 16, 32, 1
    res = ex.benchmark(tiny_run, tmp_path / "bench", bcfg, verbose=False)
    md = (tmp_path / "bench" / "benchmark.md").read_text()
    data = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert [r["task"] for r in data["tasks"]] == ["trec", "spam"]
    assert data["average"]["pretrained"]["mean"] == pytest.approx(np.mean([r["pretrained"] for r in res["tasks"]]))
    assert "| trec | accuracy |" in md and "| spam | macro_f1 |" in md and "average" in md and "from scratch" in md
    assert (tmp_path / "bench" / "trec" / "scratch" / "lr0.0003-seed0" / "test_metrics.json").is_file()
    with pytest.raises(FinetuneError, match="exists"):
        ex.benchmark(tiny_run, tmp_path / "bench", bcfg, verbose=False)


@pytest.mark.slow
def test_learning_curve(tiny_run, tmp_path):
    cfg = _cfg(tiny_run, task="trec")
    cfg.train.epochs = 1
    results, fig = ex.learning_curve(tiny_run, "trec", sizes=(16, 32), cfg=cfg, min_steps=2, out_dir=tmp_path / "lc",
                                     verbose=False)
    assert [r["size"] for r in results] == [16, 32]
    assert len(fig.data) == 2 and all(0 <= r["scratch"] <= 1 for r in results)
    assert (tmp_path / "lc" / "learning_curve.json").is_file()


@pytest.mark.slow
def test_cli_helpers(tiny_run, tmp_path, capsys):
    p = argparse.ArgumentParser()
    cli.add_finetune_arguments(p)
    args = p.parse_args([str(tiny_run), "--task", "trec", "--out", str(tmp_path / "cli"), "--train-examples", "32",
                         "--max-steps", "2", "--batch-size", "16", "--seq-len", "32", "--strategy", "frozen",
                         "--no-progress",
                         "--eval-examples", "16"])
    assert cli.cmd_finetune(args) == 0
    cfg = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert cfg["strategy"] == "frozen" and cfg["train"]["max_steps"] == 2 and cfg["train"]["lr"] == 2e-4
    c = argparse.ArgumentParser()
    cli.add_classify_arguments(c)
    assert cli.cmd_classify(c.parse_args([str(tmp_path / "cli"), "Who is he ?", "--json"])) == 0
    assert json.loads(capsys.readouterr().out.split("model in")[-1].split("\n", 1)[1])[0]["text"] == "Who is he ?"
    b = argparse.ArgumentParser()
    cli.add_benchmark_arguments(b)
    bargs = b.parse_args([str(tiny_run), "--tasks", "trec", "--no-scratch", "--max-steps", "5"])
    bcfg = cli.config_from_args(bargs, ex.BenchmarkConfig)
    assert bcfg.tasks == ["trec"] and not bcfg.scratch and bcfg.train.max_steps == 5 and bcfg.train.lr == 3e-4
    # the sub-command hooks workbench/cli.py looks for
    top = argparse.ArgumentParser()
    sub = top.add_subparsers(dest="command")
    cli.add_downstream_commands(sub)
    a = top.parse_args(["classify", str(tmp_path / "cli"), "Where is Rome ?"])
    assert a.func(a) == 0 and "Where is Rome ?" in capsys.readouterr().out
    assert top.parse_args(["finetune", "m", "--freeze-layers", "1"]).func is cli.cmd_finetune


def test_layer_wise_lr_decay_scales_each_layer(tiny_run, tmp_path):
    """decay 0.5 on a 2-layer model: head 1, layer 1 x0.5, layer 0 x0.25, embeddings x0.125, and the
    optimizer applies exactly those multiples of the scheduled rate."""
    from workbench.training import TrainConfig, make_optimizer

    model, _ = ft.load_for_classification(str(tiny_run), ["a", "b"])
    task = ft.ClassificationTask({"input_ids": [[2, 3]] * 4, "labels": [0, 1] * 2}, {"input_ids": [], "labels": []},
                                 ["a", "b"], batch_size=2, pad_id=0, layer_lr_decay=0.5)
    scales = task.lr_scales(model)
    assert scales["bert.encoder.layer.1.attention.self.query.weight"] == 0.5
    assert scales["bert.encoder.layer.0.output.dense.bias"] == 0.25
    assert scales["bert.embeddings.word_embeddings.weight"] == 0.125
    assert "classifier.weight" not in scales and "bert.pooler.dense.weight" not in scales
    opt = make_optimizer(model, TrainConfig(lr=1e-3), lr_scales=scales)
    by_param = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["bert.embeddings.word_embeddings.weight"])] == 0.125
    assert by_param[id(named["classifier.weight"])] == 1.0
    cfg = _cfg(tiny_run, steps=2)
    cfg.layer_lr_decay = 0.8
    assert ft.finetune(cfg, tmp_path / "llrd", progress=False)["steps"] == 2
    with pytest.raises(ConfigError, match="layer-lr-decay must be in"):  # config.check_numbers names the flag
        ft.FinetuneConfig(layer_lr_decay=0.0)


def test_learning_curve_page_opens_offline(tmp_path, monkeypatch):
    """The CLI's HTML figure carries plotly.js beside it instead of linking a CDN (no network here)."""
    import argparse

    import plotly.graph_objects as go

    def curve(*a, out_dir, **k):  # learning_curve makes its folder once the task and the model are checked
        Path(out_dir).mkdir()
        return [], go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))

    monkeypatch.setattr(ex, "learning_curve", curve)
    args = argparse.Namespace(model="m", task="trec", sizes=["16", "all"], out=str(tmp_path / "lc"), no_scratch=True,
                              min_steps=2, overwrite=False)
    assert cli.cmd_learning_curve(args) == 0
    page = (tmp_path / "lc" / "learning_curve.html").read_text()
    assert "cdn.plot.ly" not in page and 'src="plotly.min.js"' in page
    assert (tmp_path / "lc" / "plotly.min.js").stat().st_size > 1_000_000


@pytest.fixture(scope="module")
def tiny_modernbert_run(tiny_run, tmp_path_factory):
    """The same tokenizer with a tiny ModernBertForMaskedLM (the shipped default model's architecture)."""
    from transformers import AutoTokenizer

    from workbench.config import ModelConfig
    from workbench.model import build_mlm_model

    root = tmp_path_factory.mktemp("tiny_modernbert")
    tok = AutoTokenizer.from_pretrained(tiny_run / "model")
    torch.manual_seed(0)
    build_mlm_model(ModelConfig(size="tiny", layers=2, hidden=64, heads=2, max_position=128, architecture="modernbert"),
                    tok).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root / "model"


def _save_as_float16(path):
    """Rewrite a model directory as float16 on disk (config dtype float16), as `export --half` does."""
    import json

    from transformers import AutoModelForMaskedLM

    AutoModelForMaskedLM.from_pretrained(path).half().save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["dtype"] == "float16"


@pytest.mark.slow
def test_half_precision_checkpoints_train_in_float32(tiny_modernbert_run, tmp_path):
    """Pre-trained and from-scratch classifiers of a float16 checkpoint are both built in float32,
    so CPU training works and the optimizer keeps full precision."""
    import shutil

    half = tmp_path / "half"
    shutil.copytree(tiny_modernbert_run, half)
    _save_as_float16(half)
    for scratch in (False, True):
        clf, _ = ft.load_for_classification(str(half), ["a", "b"], from_scratch=scratch)
        assert {p.dtype for p in clf.parameters()} == {torch.float32}
    assert ft.finetune(_cfg(half, steps=2), tmp_path / "run", progress=False)["steps"] == 2


@pytest.mark.slow
def test_modernbert_fine_tunes_full_and_frozen(tiny_modernbert_run, tmp_path):
    for strategy in ("full", "frozen"):
        cfg = _cfg(tiny_modernbert_run, steps=4, strategy=strategy)
        initial, _ = ft.load_for_classification(str(tiny_modernbert_run), ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"])
        assert type(initial).__name__ == "ModernBertForSequenceClassification"
        before = {k: v.clone() for k, v in initial.state_dict().items()}
        s = ft.finetune(cfg, tmp_path / strategy, progress=False)
        after = _weights(tmp_path / strategy)
        changed = {k for k in after if not torch.equal(after[k], before[k])}
        assert "classifier.weight" in changed
        encoder = [k for k in after if k.startswith(("model.embeddings.", "model.layers."))]
        assert encoder and (set(encoder) <= changed if strategy == "full" else not set(encoder) & changed)
        assert 0.0 <= s["val_accuracy"] <= 1.0


def test_pooling_resolves_from_the_layer_types():
    from transformers import BertConfig, ModernBertConfig

    local = ModernBertConfig(num_hidden_layers=2, layer_types=["sliding_attention", "sliding_attention"])
    mixed = ModernBertConfig(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"])
    full = ModernBertConfig(num_hidden_layers=2, layer_types=["full_attention", "full_attention"])
    assert [ft.resolve_pooling(c) for c in (local, mixed, full)] == ["mean", "mean", None]
    assert ft.resolve_pooling(full, "mean") == "mean" and ft.resolve_pooling(local, "cls") == "cls"
    assert ft.resolve_pooling(BertConfig(), "auto") is None and ft.resolve_pooling(BertConfig(), "cls") is None
    with pytest.raises(FinetuneError, match="pooling mean needs a ModernBERT model"):
        ft.resolve_pooling(BertConfig(), "mean")
    with pytest.raises(ConfigError, match="pooling must be auto, cls, mean"):
        FinetuneConfig(model="m", pooling="max")


def _logits_after_the_window(model, tokenizer):
    """Logits of two 40-token inputs that differ only in the token before [SEP], far outside [CLS]'s 8-token window."""
    ids = tokenizer(["the market " * 20] * 2, return_tensors="pt")
    assert ids["input_ids"].shape[1] > 30
    ids["input_ids"][1, -2] = tokenizer.convert_tokens_to_ids(",")
    with torch.no_grad():
        return model.eval()(**ids).logits


def test_local_attention_classifier_reads_the_whole_input_with_mean_pooling(tiny_modernbert_run):
    # both layers of the fixture attend within 8 tokens: [CLS] cannot see the last word, the mean can
    auto, tok = ft.load_for_classification(str(tiny_modernbert_run), ["a", "b"])
    assert auto.config.classifier_pooling == "mean"
    first, last = _logits_after_the_window(auto, tok)
    assert not torch.allclose(first, last)
    cls, tok = ft.load_for_classification(str(tiny_modernbert_run), ["a", "b"], pooling="cls")
    first, last = _logits_after_the_window(cls, tok)
    assert torch.equal(first, last)
    scratch, _ = ft.load_for_classification(str(tiny_modernbert_run), ["a", "b"], from_scratch=True)
    assert scratch.config.classifier_pooling == "mean"  # both arms of a benchmark pool the same way


def test_mean_pooling_refuses_bert_before_any_folder(tiny_run, tmp_path):
    with pytest.raises(FinetuneError, match="pooling mean needs a ModernBERT model"):
        ex.benchmark(str(tiny_run), tmp_path / "bench", ex.BenchmarkConfig(tasks=["trec"], pooling="mean"),
                     progress=False)
    assert not (tmp_path / "bench").exists()
