"""Packing, the training engine and the pre-training pipeline, on tiny models and real text."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Killed, kill_at, train_losses

from workbench import runs
from workbench.config import PretrainConfig, from_dict
from workbench.pretrain import evaluate_mlm, line_by_line, pack, pretrain
from workbench.training import lr_factor, resolve_precision, total_steps


def tiny_config(tokenizer_dir, **train) -> PretrainConfig:
    base = {
        "data": {"max_documents": 120, "validation_fraction": 0.1},
        "tokenizer": {"tokenizer_from": str(tokenizer_dir)},
        "model": {"size": "tiny", "layers": 1, "hidden": 64, "heads": 2},
        "train": {"batch_size": 8, "seq_len": 64, "lr": 2e-3, "log_every": 1, "eval_every": 3, "eval_batches": 2,
                  "save_every": 3, "precision": "fp32", **train},
    }
    return from_dict(PretrainConfig, base)


# ---- packing (in the spirit of ModernBERT's test_sequence_packer) --------------------------------

def test_pack_frames_blocks_and_keeps_every_token_in_order():
    docs = [[10, 11, 12], [], [20, 21], [30, 31, 32, 33, 34, 35]]
    blocks = pack(docs, seq_len=6, cls_id=2, sep_id=3)
    assert blocks.tolist() == [[2, 10, 11, 12, 3, 3], [2, 20, 21, 3, 30, 3], [2, 31, 32, 33, 34, 3]]
    # the stream (without framing) is the documents joined by [SEP], the incomplete tail dropped
    stream = [t for b in blocks.tolist() for t in b[1:-1]]
    assert stream == [10, 11, 12, 3, 20, 21, 3, 30, 31, 32, 33, 34]
    assert pack([], 16, 2, 3).shape == (0, 16)


def test_pack_has_no_padding_on_real_text(tokenizer, small_corpus):
    from workbench.pretrain import tokenize

    ids = tokenize(small_corpus["train"], tokenizer)["input_ids"]
    blocks = pack(ids, 128, tokenizer.cls_token_id, tokenizer.sep_token_id)
    total = sum(len(x) + 1 for x in ids)
    assert blocks.shape[1] == 128
    assert (blocks != tokenizer.pad_token_id).all()
    assert total - len(blocks) * 126 < 126  # only the tail is dropped


def test_line_by_line_pads_and_masks(tokenizer):
    ids, attn = line_by_line(["short line\nanother somewhat longer line of text", ""], tokenizer, 16)
    assert ids.shape == (2, 16) and attn.shape == (2, 16)
    assert attn[0].sum() < attn[1].sum() <= 16
    assert (ids[attn == 0] == tokenizer.pad_token_id).all()


# ---- schedule and precision -------------------------------------------------------------------------

def test_batch_indices_cover_each_epoch_once_and_reshuffle():
    from workbench.training import batch_indices

    epoch0 = torch.cat([batch_indices(10, 3, seed=5, step=s) for s in range(3)])  # 3 batches of 3 per epoch
    assert len(set(epoch0.tolist())) == 9  # no repeats; one example left over
    epoch1 = torch.cat([batch_indices(10, 3, seed=5, step=s) for s in range(3, 6)])
    assert not torch.equal(epoch0, epoch1)  # a new permutation each epoch
    assert torch.equal(batch_indices(10, 3, seed=5, step=4), batch_indices(10, 3, seed=5, step=4))  # pure
    assert not torch.equal(batch_indices(10, 3, seed=6, step=0), batch_indices(10, 3, seed=5, step=0))


def test_lr_schedules():
    assert lr_factor(0.0, 0.1, "linear") < 0.01 and lr_factor(0.05, 0.1, "linear") == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1, "linear") == pytest.approx(1.0)
    assert lr_factor(0.55, 0.1, "linear") == pytest.approx(0.5)
    assert lr_factor(0.55, 0.1, "cosine") == pytest.approx(0.5)
    assert lr_factor(1.0, 0.1, "cosine") == pytest.approx(0.0)
    assert lr_factor(0.7, 0.1, "constant") == 1.0


def test_total_steps_and_precision_rules():
    from workbench.config import ConfigError, TrainConfig

    assert total_steps(TrainConfig(max_steps=50), 10) == 50
    assert total_steps(TrainConfig(epochs=2), 10) == 20
    assert total_steps(TrainConfig(), 10) == 10  # nothing given: one epoch
    assert total_steps(TrainConfig(time_budget="1m"), 10) is None
    assert resolve_precision("fp32", "cpu") == "no"
    with pytest.raises(ConfigError, match="fp16 on a CPU"):
        resolve_precision("fp16", "cpu")


# ---- the pipeline ---------------------------------------------------------------------------------

@pytest.mark.parametrize("architecture", ["bert", "preln", "modernbert"])
def test_head_on_masked_positions_equals_the_models_own_loss(tokenizer, architecture):
    """MLMLoss runs the prediction head on the masked rows only; the loss must be the one the
    transformers model computes over full logits (its mean x the number of predicted tokens)."""
    from workbench.config import MaskingConfig, ModelConfig
    from workbench.masking import Masker
    from workbench.model import build_mlm_model
    from workbench.pretrain import MLMLoss

    torch.manual_seed(0)
    model = build_mlm_model(ModelConfig(size="tiny", layers=1, hidden=64, heads=2, architecture=architecture),
                            tokenizer).eval()
    assert type(model).__name__ == {"bert": "BertForMaskedLM", "preln": "RobertaPreLayerNormForMaskedLM",
                                    "modernbert": "ModernBertForMaskedLM"}[architecture]
    ids = torch.randint(5, len(tokenizer), (4, 32))
    masked, labels = Masker.from_tokenizer(tokenizer, MaskingConfig())(ids, torch.Generator().manual_seed(1))
    loss_fn = MLMLoss(model)
    assert loss_fn.parts is not None  # the fast path, not the full-logits fallback
    with torch.no_grad():
        ours = loss_fn(input_ids=masked, labels=labels)
        theirs = model(input_ids=masked, labels=labels).loss * (labels != -100).sum()
        _, correct = loss_fn.predict(masked, labels)
        full = model(input_ids=masked).logits[labels != -100].argmax(-1)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert correct.item() == (full == labels[labels != -100]).sum().item()


@pytest.mark.slow
def test_preln_architecture_pretrains_and_reloads(tokenizer_dir, tmp_path):
    from transformers import AutoModelForMaskedLM

    cfg = tiny_config(tokenizer_dir, max_steps=6, eval_every=6, save_every=6)
    cfg.model.architecture = "preln"
    pretrain(cfg, tmp_path / "run", progress=False)
    model = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "run" / "model"))
    assert model.config.model_type == "roberta-prelayernorm"


@pytest.mark.slow
def test_pretrain_writes_a_complete_run_directory_and_learns(tokenizer_dir, tmp_path):
    cfg = tiny_config(tokenizer_dir, max_steps=30, eval_every=10, save_every=10, keep_checkpoints=2)
    # plain initialisation: the recipe's unigram output bias starts the loss where these 30 steps end
    # (the bias and the embeddings are tested in test_warmstart.py)
    cfg.model.output_bias, cfg.model.embedding_init = "zero", "random"
    summary = pretrain(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ["config.json", "metrics.jsonl", "summary.json", "tokenizer/tokenizer.json", "model/config.json",
                 "model/model.safetensors", "model/tokenizer.json"]:
        assert (run / name).exists(), name
    assert [p.name for p in runs.checkpoints(run)] == ["step-00000020", "step-00000030"]  # keep 2
    for ckpt in runs.checkpoints(run):
        assert {"model.safetensors", "optimizer.pt", "rng.pt", "state.json",
                "COMPLETE"} <= {p.name for p in ckpt.iterdir()}
    records = runs.read_metrics(run)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert set(train[0]) == {"kind", "step", "time", "tokens", "loss", "lr", "tokens_per_s"}
    assert set(evals[0]) >= {"val_loss", "val_perplexity", "val_accuracy"}
    assert train[-1]["tokens"] == 30 * 8 * 64
    assert sum(r["loss"] for r in train[-5:]) / 5 < sum(r["loss"] for r in train[:5]) / 5 - 0.5
    assert summary["steps"] == 30 and summary["val_loss"] == evals[-1]["val_loss"]
    assert summary["precision"] == "fp32" and summary["device"] == "cpu"  # --precision's names, not accelerate's "no"
    assert evals[-1]["val_perplexity"] == pytest.approx(float(torch.tensor(evals[-1]["val_loss"]).exp()), rel=1e-3)
    # the final model is a plain Hugging Face directory
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    AutoModelForMaskedLM.from_pretrained(str(run / "model"))
    AutoTokenizer.from_pretrained(str(run / "model"))
    # validation is deterministic: evaluating the saved model gives the logged numbers
    again = evaluate_mlm(run, cfg, batches=cfg.train.eval_batches)
    assert again["val_loss"] == pytest.approx(evals[-1]["val_loss"], abs=1e-3)


@pytest.mark.slow
def test_resume_continues_exactly(tokenizer_dir, tmp_path):
    """N steps straight vs. killed after N/2 (+1 unsaved step), resumed, finished: same losses."""
    cfg = tiny_config(tokenizer_dir, max_steps=8, save_every=4, eval_every=4)
    pretrain(cfg, tmp_path / "straight", progress=False)
    with pytest.raises(Killed):
        pretrain(cfg, tmp_path / "resumed", progress=False, callbacks=(kill_at(5),))
    assert runs.latest_checkpoint(tmp_path / "resumed").name == "step-00000004"
    pretrain(cfg, tmp_path / "resumed", progress=False, resume=True)
    a, b = train_losses(tmp_path / "straight"), train_losses(tmp_path / "resumed")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        assert b[step] == pytest.approx(a[step], abs=1e-4), step


@pytest.mark.slow
def test_existing_run_is_never_overwritten_silently(tokenizer_dir, tmp_path):
    cfg = tiny_config(tokenizer_dir, max_steps=2)
    pretrain(cfg, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(runs.RunError, match="exists; use --resume .* or --overwrite"):
        pretrain(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    pretrain(cfg, tmp_path / "run", progress=False, overwrite=True)
    assert (tmp_path / "run.old-1" / "metrics.jsonl").read_text() == before  # kept aside, not deleted


@pytest.mark.slow
def test_a_half_written_checkpoint_is_ignored(tokenizer_dir, tmp_path):
    cfg = tiny_config(tokenizer_dir, max_steps=3, save_every=3)
    pretrain(cfg, tmp_path / "run", progress=False)
    # a save killed midway leaves a .tmp folder (and no COMPLETE marker): never picked up
    broken = tmp_path / "run" / "checkpoints" / "step-00000009.tmp"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"partial")
    no_marker = tmp_path / "run" / "checkpoints" / "step-00000010"
    no_marker.mkdir()
    assert runs.latest_checkpoint(tmp_path / "run").name == "step-00000003"


@pytest.mark.slow
def test_time_budget_bounds_the_run_and_drives_the_schedule(tokenizer_dir, tmp_path):
    cfg = tiny_config(tokenizer_dir, time_budget="4s", eval_every=0, save_every=0, warmup=0.0)
    summary = pretrain(cfg, tmp_path / "run", progress=False)
    train = [r for r in runs.read_metrics(tmp_path / "run") if r["kind"] == "train"]
    # it stops at the first step that reaches the budget (training seconds as the engine counts them,
    # logged every step, rounded to the millisecond: 3.9996 s is logged as 4.0), however fast or busy
    # the machine is
    assert train[-2]["time"] <= 4.0 <= train[-1]["time"] and train[-2]["time"] < train[-1]["time"]
    assert summary["train_time"] == pytest.approx(train[-1]["time"], abs=0.01)
    assert train[-1]["lr"] < 0.25 * cfg.train.lr  # decayed with the clock
    assert "val_loss" in summary  # evaluated at the end


@pytest.mark.slow
def test_line_by_line_and_whole_word_options_train(tokenizer_dir, tmp_path):
    cfg = tiny_config(tokenizer_dir, max_steps=3, packing=False)
    cfg.masking.mask_strategy = "whole_word"
    summary = pretrain(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and summary["tokens"] < 3 * 8 * 64  # padding is not counted


@pytest.mark.slow
def test_continued_pretraining_from_a_local_checkpoint(tokenizer_dir, tmp_path):
    """--init-from takes any masked-LM directory or hub id; a local save stands in for the hub."""
    from transformers import BertConfig, BertForMaskedLM

    from workbench.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    hub_like = tmp_path / "bert-like"
    BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(str(hub_like))
    tok.save_pretrained(str(hub_like))
    cfg = tiny_config(tokenizer_dir, max_steps=2)
    cfg.model.init_from = str(hub_like)
    cfg.tokenizer.tokenizer_from = None  # the model's own tokenizer is used
    pretrain(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["hidden_size"] == 32


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tokenizer_dir, tmp_path):
    """accelerate launch, 2 CPU processes (gloo), against a single process: same losses."""
    common = ["pretrain", "--preset", "tiny", "--max-documents", "60", "--max-steps", "4", "--batch-size", "8",
              "--seq-len", "64", "--precision", "fp32", "--log-every", "1", "--eval-every", "2", "--eval-batches", "1",
              "--tokenizer-from", str(tokenizer_dir), "--dropout", "0", "--save-every", "0"]
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    subprocess.run([sys.executable, "-m", "workbench.cli", *common, "--out", str(tmp_path / "one")], check=True,
                   capture_output=True)
    two = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "workbench.cli", *common,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-4)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_plain_names(tokenizer_dir, tmp_path):
    """--compile (the shipped model's recipe) computes the same losses as eager mode, and its
    checkpoints and final model carry the plain parameter names, so they load and resume without it."""
    from safetensors.torch import load_file

    eager = tiny_config(tokenizer_dir, max_steps=4, save_every=4, eval_every=4)
    compiled = tiny_config(tokenizer_dir, max_steps=4, save_every=4, eval_every=4, compile=True)
    from torch._dynamo.utils import counters

    pretrain(eager, tmp_path / "eager", progress=False)
    counters.clear()
    pretrain(compiled, tmp_path / "compiled", progress=False)
    assert counters["stats"]["unique_graphs"] > 0  # dynamo did compile (graphs captured), not a silent eager run
    a, b = train_losses(tmp_path / "eager"), train_losses(tmp_path / "compiled")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-3), step
    for name in ("model/model.safetensors", "checkpoints/step-00000004/model.safetensors"):
        keys_eager = set(load_file(str(tmp_path / "eager" / name)))
        keys_compiled = set(load_file(str(tmp_path / "compiled" / name)))
        assert keys_compiled == keys_eager and not any("_orig_mod" in k for k in keys_compiled), name
