"""Sentence-pair objectives (NSP, SOP) and contrastive sentence embeddings (SimCSE), on real text
and tiny models (1-2 layers, hidden 64)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import Killed, kill_at, train_losses

from workbench import embeddings, pairs, runs, simcse
from workbench.config import ConfigError, PretrainConfig, SimCSEConfig, from_dict
from workbench.masking import IGNORE_INDEX, Masker

SEQ = 64


@pytest.fixture(scope="module")
def pair_tasks(small_corpus, tokenizer):
    out = {}
    for obj in ("mlm+nsp", "mlm+sop"):
        cfg = from_dict(PretrainConfig, {"objective": obj, "model": {"architecture": "bert"},
                                         "train": {"batch_size": 16, "seq_len": SEQ, "eval_batches": 1}})
        out[obj] = pairs.make_pair_task(small_corpus, tokenizer, Masker.from_tokenizer(tokenizer, cfg.masking), cfg)
    return out


def _segment_tokens(builder: pairs.PairBuilder, segs: tuple[int, int]) -> list[int]:
    return builder.segments.ids[builder.segments.offsets[segs[0]]:builder.segments.offsets[segs[1]]].tolist()


# ---- sentences and chunks -------------------------------------------------------------------------

def test_split_sentences():
    text = ('He met Mr. Smith and J. R. Tolkien in the U.S. Army. Then "he left." Sen. Warren said no! Why?  Yes.\n'
            "A new paragraph. 2017 was big")
    assert pairs.split_sentences(text) == ["He met Mr. Smith and J. R. Tolkien in the U.S. Army.", 'Then "he left."',
                                       "Sen. Warren said no!", "Why?", "Yes.", "A new paragraph.", "2017 was big"]
    assert pairs.split_sentences("") == [] and pairs.split_sentences("no end") == ["no end"]


def test_chunks_fit_and_hold_two_segments(pair_tasks):
    b = pair_tasks["mlm+nsp"].train
    seg = b.segments
    assert max(seg.length(i) for i in range(len(seg))) <= b.max_body // 2
    for d, first, end in b.chunks:
        assert end - first >= 2
        assert seg.offsets[end] - seg.offsets[first] <= b.max_body
        assert (seg.doc[first:end] == d).all()


# ---- labels, provenance, framing --------------------------------------------------------------------

def test_nsp_labels_balanced_and_deterministic(pair_tasks):
    task = pair_tasks["mlm+nsp"]
    labels = []
    for step in range(10):
        y = task.batch(step)["next_sentence_label"]
        assert int(y.sum()) == len(y) // 2  # exactly half negatives in every batch
        labels += y.tolist()
    assert np.mean(labels) == pytest.approx(0.5)
    a, b = task.batch(7), task.batch(7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = pairs.PairTask(task.train, task.val, task.masker, task.batch_size, seed=1, eval_batches=0)
    assert not torch.equal(other.batch(7)["input_ids"], a["input_ids"])


def test_nsp_negatives_come_from_another_document(pair_tasks):
    task = pair_tasks["mlm+nsp"]
    builder = task.train
    for step in range(6):
        framed, examples = task.batch(step, describe=True)
        for ex in examples:
            assert ex["a_segments"][1] > ex["a_segments"][0] and ex["b_segments"][1] > ex["b_segments"][0]
            assert (builder.segments.doc[ex["a_segments"][0]:ex["a_segments"][1]] == ex["a_doc"]).all()
            assert (builder.segments.doc[ex["b_segments"][0]:ex["b_segments"][1]] == ex["b_doc"]).all()
            if ex["label"] == pairs.NOT_NEXT:
                assert ex["b_doc"] != ex["a_doc"]
            else:  # the real continuation: B starts where A ends, in the same document
                assert ex["b_doc"] == ex["a_doc"] and ex["b_segments"][0] == ex["a_segments"][1]
            assert ex["a"].tolist() == _segment_tokens(builder, ex["a_segments"])


def test_sop_negatives_are_swapped_consecutive_segments(pair_tasks):
    task = pair_tasks["mlm+sop"]
    builder = task.train
    seen = set()
    for step in range(6):
        _, examples = task.batch(step, describe=True)
        for ex in examples:
            seen.add(ex["label"])
            assert ex["a_doc"] == ex["b_doc"]
            a, b = ex["a_segments"], ex["b_segments"]
            if ex["label"] == pairs.IS_NEXT:  # original order: A then B, adjacent
                assert a[1] == b[0]
            else:  # swapped: the first segment is the one that came second in the document
                assert b[1] == a[0]
            assert ex["a"].tolist() == _segment_tokens(builder, a)
            assert ex["b"].tolist() == _segment_tokens(builder, b)  # whole: SOP pairs never need truncation
    assert seen == {pairs.IS_NEXT, pairs.NOT_NEXT}


@pytest.mark.parametrize("objective", ["mlm+nsp", "mlm+sop"])
def test_framing_token_types_and_length(pair_tasks, tokenizer, objective):
    task = pair_tasks[objective]
    framed, examples = task.train.build(range(32), torch.Generator().manual_seed(3), describe=True)
    masked = task.batch(0)
    assert framed["input_ids"].shape == (32, SEQ) and masked["input_ids"].shape == (16, SEQ)
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    for r, ex in enumerate(examples):
        la, lb = len(ex["a"]), len(ex["b"])
        assert la >= 1 and lb >= 1 and la + lb + 3 <= SEQ
        ids, types, attn = framed["input_ids"][r], framed["token_type_ids"][r], framed["attention_mask"][r]
        expected = [cls] + ex["a"].tolist() + [sep] + ex["b"].tolist() + [sep]
        n = len(expected)
        assert ids[:n].tolist() == expected and (ids[n:] == pad).all()
        assert types.tolist() == [0] * (la + 2) + [1] * (lb + 1) + [0] * (SEQ - n)
        assert attn.tolist() == [1] * n + [0] * (SEQ - n)
        assert int(framed["next_sentence_label"][r]) == ex["label"]
    # masks never fall on [CLS] / [SEP] / padding; the batch carries what the loss needs
    labels = masked["labels"]
    specials = torch.isin(masked["input_ids"], torch.tensor([cls, sep, pad])) & (labels == IGNORE_INDEX)
    assert ((labels != IGNORE_INDEX) & (masked["attention_mask"] == 0)).sum() == 0
    assert specials.any()
    assert set(masked) == {"input_ids", "labels", "token_type_ids", "attention_mask", "next_sentence_label",
                           "pair_weight"}


def test_bad_objective_and_too_little_text(tokenizer, small_corpus):
    with pytest.raises(ConfigError, match="objective"):
        pairs.pair_kind("mlm+xyz")
    with pytest.raises(ConfigError, match="two documents"):
        pairs.make_pair_builder([small_corpus["train"]["text"][0]], tokenizer, SEQ, "nsp")
    with pytest.raises(ConfigError, match="two sentences"):
        pairs.make_pair_builder(["One sentence only", "Another lone one"], tokenizer, SEQ, "sop")


# ---- the joint loss ---------------------------------------------------------------------------------

def test_joint_loss_equals_bert_for_pretraining_loss(pair_tasks, tokenizer):
    """sum / count from our module == transformers' BertForPreTraining loss (mean MLM + mean pair CE),
    whole batch or split into micro-batches."""
    from workbench.config import ModelConfig
    from workbench.model import build_mlm_model

    task = pair_tasks["mlm+sop"]
    torch.manual_seed(0)
    model = build_mlm_model(ModelConfig(size="tiny", layers=1, hidden=64, heads=2, architecture="bert"), tokenizer,
                            with_sentence_head=True).eval()
    module = task.training_module(model)
    batch = task.batch(2)
    with torch.no_grad():
        ours = module(**batch) / task.count(batch)
        split = sum(module(**{k: v[i * 4:(i + 1) * 4] for k, v in batch.items()}) for i in range(4)) / task.count(batch)
        hf = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                   next_sentence_label=batch["next_sentence_label"]).loss
    assert float(ours) == pytest.approx(float(hf), rel=1e-5)
    assert float(split) == pytest.approx(float(hf), rel=1e-5)


def _joint_config(tokenizer_dir, objective: str, **train) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "data": {"max_documents": 120, "validation_fraction": 0.1}, "tokenizer": {"tokenizer_from": str(tokenizer_dir)},
        "model": {"size": "tiny", "architecture": "bert", "layers": 1, "hidden": 64, "heads": 2},
                                      "objective": objective,
        "train": {"batch_size": 8, "seq_len": SEQ, "lr": 2e-3, "log_every": 1, "eval_every": 3, "eval_batches": 1,
                  "save_every": 0, "precision": "fp32", "max_steps": 4, **train}})


@pytest.mark.slow
def test_joint_mlm_nsp_run_writes_pair_accuracy(tokenizer_dir, tmp_path):
    from transformers import AutoModelForMaskedLM, BertForPreTraining

    from workbench.pretrain import pretrain

    summary = pretrain(_joint_config(tokenizer_dir, "mlm+nsp"), tmp_path / "run", progress=False)
    evals = [r for r in runs.read_metrics(tmp_path / "run") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 4]
    for r in evals:
        assert {"val_loss", "val_perplexity", "val_accuracy", "val_pair_loss", "val_pair_accuracy"} <= set(r)
        assert 0.0 <= r["val_pair_accuracy"] <= 1.0
    assert "val_pair_accuracy" in summary
    assert json.loads((tmp_path / "run" / runs.CONFIG).read_text())["objective"] == "mlm+nsp"
    # the saved model is a BertForPreTraining that still loads as a plain masked LM
    assert isinstance(BertForPreTraining.from_pretrained(str(tmp_path / "run" / runs.MODEL)), BertForPreTraining)
    AutoModelForMaskedLM.from_pretrained(str(tmp_path / "run" / runs.MODEL))


@pytest.mark.slow
def test_joint_mlm_sop_run_resumes_exactly(tokenizer_dir, tmp_path):
    """Pairs, negatives and masks are functions of (seed, step): a run stopped after its checkpoint
    and resumed logs the same losses as an uninterrupted one."""
    from workbench.pretrain import pretrain

    cfg = _joint_config(tokenizer_dir, "mlm+sop", max_steps=6, save_every=3, eval_every=0)
    pretrain(cfg, tmp_path / "straight", progress=False)
    with pytest.raises(Killed):
        pretrain(cfg, tmp_path / "resumed", progress=False, callbacks=(kill_at(4),))
    pretrain(cfg, tmp_path / "resumed", progress=False, resume=True)
    a, b = train_losses(tmp_path / "straight"), train_losses(tmp_path / "resumed")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert [b[s] for s in a] == pytest.approx([a[s] for s in a], abs=1e-4)


# ---- SimCSE -----------------------------------------------------------------------------------------

def test_simcse_loss_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    tau = 0.5
    # cosine similarities: cos(z1_0, z2_0) = 3/5, cos(z1_0, z2_1) = 0, cos(z1_1, z2_0) = 4/5, cos(z1_1, z2_1) = 1
    s = [[0.6, 0.0], [0.8, 1.0]]
    l0 = -math.log(math.exp(s[0][0] / tau) / (math.exp(s[0][0] / tau) + math.exp(s[0][1] / tau)))
    l1 = -math.log(math.exp(s[1][1] / tau) / (math.exp(s[1][0] / tau) + math.exp(s[1][1] / tau)))
    assert float(simcse.simcse_loss(z1, z2, tau)) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    assert float(simcse.simcse_loss(z1, z2, tau, reduction="sum")) == pytest.approx(l0 + l1, rel=1e-6)
    assert simcse.simcse_loss(z1, z2, tau, reduction="none").tolist() == pytest.approx([l0, l1], rel=1e-6)
    # identical, orthogonal views: each row's partner wins by cos 1 vs 0
    eye = torch.eye(3)
    assert float(simcse.simcse_loss(eye, eye, 0.05)) == pytest.approx(math.log(1 + 2 * math.exp(-1 / 0.05)), abs=1e-6)


def test_retrieval_precision_at_k_toy():
    embs = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.6, 0.8]])
    labels = ["a", "a", "b", "b", "b"]
    # k=1: every item's nearest other item shares its label (4's nearest is 3: cos .86 vs .80, .68, .60)
    assert embeddings.retrieval_precision_at_k(embs, labels, 1) == pytest.approx(1.0)
    # k=2: 0 -> {1, 4}: 1/2; 1 -> {0, 4}: 1/2; 2 -> {3, 4}: 1; 3 -> {2, 4}: 1; 4 -> {3, 2}: 1
    assert embeddings.retrieval_precision_at_k(embs, labels, 2) == pytest.approx((0.5 + 0.5 + 1 + 1 + 1) / 5)
    sims = torch.nn.functional.normalize(embs, dim=-1) @ torch.nn.functional.normalize(embs, dim=-1).T
    sims.fill_diagonal_(-2)
    top = sims.topk(2).indices
    y = np.array([0, 0, 1, 1, 1])
    expected = float(np.mean([(y[top[i]] == y[i]).mean() for i in range(5)]))
    assert embeddings.retrieval_precision_at_k(embs, labels, 2) == pytest.approx(expected)
    assert embeddings.retrieval_precision_at_k(embs, labels,
                                               99) == pytest.approx(np.mean([1 / 4, 1 / 4, 2 / 4, 2 / 4, 2 / 4]))


def test_cosine_similarity_and_neighbours(tokenizer):
    from transformers import BertConfig, BertModel

    assert embeddings.cosine_similarity([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / math.sqrt(2))
    m = embeddings.cosine_similarity(torch.eye(2), torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]]))
    assert m.shape == (2, 3) and m[1, 2] == pytest.approx(1.0)
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=128, pad_token_id=tokenizer.pad_token_id))
    corpus = ["the senate voted on the bill", "a cat sat on the mat", "stocks fell sharply today", "rain is expected"]
    hits = embeddings.nearest_neighbours("a cat sat on the mat", corpus, model, tokenizer, k=2)
    assert hits[0]["index"] == 1 and hits[0]["score"] == pytest.approx(1.0, abs=1e-4) and len(hits) == 2
    assert embeddings.sentence_similarity(model, tokenizer, "same words", "same words") == pytest.approx(1.0, abs=1e-5)
    e = embeddings.embed(model, tokenizer, corpus)
    assert e.shape == (4, 64) and torch.allclose(e.norm(dim=1), torch.ones(4))
    # order is kept although batches are sorted by length
    assert torch.allclose(embeddings.embed(model, tokenizer, corpus[::-1]), e.flip(0), atol=1e-5)


@pytest.mark.slow
def test_short_simcse_run(tmp_path, tokenizer, small_corpus):
    from transformers import BertConfig, BertForMaskedLM

    from workbench.tasks import load_task

    torch.manual_seed(0)
    base = tmp_path / "base"
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=128, max_position_embeddings=128,
                               pad_token_id=tokenizer.pad_token_id)).save_pretrained(str(base / "model"))
    tokenizer.save_pretrained(str(base / "model"))
    cfg = SimCSEConfig(max_sentences=256, eval_examples=64, k=5)
    cfg.train.batch_size, cfg.train.max_steps, cfg.train.eval_every, cfg.train.log_every = 16, 4, 2, 1
    cfg.train.eval_batches, cfg.train.precision, cfg.train.lr = 1, "fp32", 1e-3
    summary = simcse.train_simcse(base, tmp_path / "simcse", cfg, progress=False, corpus=small_corpus,
                             task_data=load_task("trec"))
    records = runs.read_metrics(tmp_path / "simcse")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"val_loss", "val_precision_at_5", "val_uniformity"} <= set(evals[-1])
    assert all(math.isfinite(r["val_loss"]) for r in evals)
    r = summary["retrieval"]
    assert set(r["before"]) == {"precision_at_5", "uniformity", "chance", "examples"} and r["after"]["examples"] == 64
    assert (tmp_path / "simcse" / "retrieval.json").exists()
    assert runs.latest_checkpoint(tmp_path / "simcse") is not None
    model, tok = simcse.load_encoder(tmp_path / "simcse")
    assert embeddings.embed(model, tok, ["a sentence"]).shape == (1, 64)
    # the contrastive training changed the encoder
    before, _ = simcse.load_encoder(base)
    x = ["the senate voted on the bill"]
    assert not torch.allclose(embeddings.embed(model, tok, x), embeddings.embed(before, tok, x))


def test_simcse_val_loss_is_deterministic_and_keeps_rng(tokenizer):
    from accelerate import Accelerator
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=128, pad_token_id=tokenizer.pad_token_id))
    sents = ["the senate voted on the bill", "a cat sat on the mat", "stocks fell sharply today",
             "rain is expected"] * 4
    ids = tokenizer(sents, add_special_tokens=True)["input_ids"]
    task = simcse.SimCSETask(ids, ids, sents, [0, 1, 2, 3] * 4, tokenizer, batch_size=8, k=3)
    acc = Accelerator(cpu=True)
    module = task.training_module(model)
    state = torch.get_rng_state()
    first, second = task.evaluate(module, acc), task.evaluate(module, acc)
    assert first == second and torch.equal(state, torch.get_rng_state())
    assert first["val_precision_at_3"] == pytest.approx(1.0)  # identical sentences are each other's neighbours


def test_simcse_command_line_flags():
    import argparse

    from workbench import cli

    parser = argparse.ArgumentParser()
    cli.add_downstream_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simcse", "runs/x", "--out", "runs/x-simcse", "--temperature", "0.1", "--time-budget",
                              "2m",
                              "--max-sentences", "500", "--eval-task", "bbc", "--lr", "1e-4"])
    from workbench.config import from_dict
    from workbench.flags import overrides_from_args

    cfg = from_dict(SimCSEConfig, overrides_from_args(args, SimCSEConfig), SimCSEConfig())
    got = (cfg.temperature, cfg.train.time_budget, cfg.max_sentences, cfg.eval_task, cfg.train.lr)
    assert got == (0.1, "2m", 500, "bbc", 1e-4)
    assert args.func is cli.cmd_simcse and args.model == "runs/x"
    with pytest.raises(SystemExit):
        parser.parse_args(["simcse", "runs/x", "--packing"])
