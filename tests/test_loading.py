"""The one model loader (workbench.loading), the named poolings of workbench.embeddings and the run
lifecycle's config.json `kind`, on hand-built inputs and a tiny classifier built on the fly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from workbench import loading, runs
from workbench.config import ConfigError, FinetuneConfig, SimCSEConfig, load_config_file
from workbench.embeddings import encode_batch, mean_pool
from workbench.training import write_run_config


class Oops(ValueError):
    pass


# ---- errors and locations --------------------------------------------------------------------------

def test_first_line_is_type_and_first_line_only():
    assert loading.first_line(OSError("no such file\nTraceback ...")) == "OSError: no such file"
    assert loading.first_line(KeyError()) == "KeyError"
    assert loading.first_line(ValueError("x" * 500), limit=10) == "ValueError: " + "x" * 10


def test_resolve_hub_ids_local_paths_and_the_callers_error(tmp_path):
    assert loading.resolve("bert-base-uncased") == ("bert-base-uncased", "bert-base-uncased")
    assert loading.resolve("google/bert_uncased_L-2_H-128_A-2")[0] == "google/bert_uncased_L-2_H-128_A-2"
    with pytest.raises(Oops, match="no such run or model directory"):
        loading.resolve(tmp_path / "missing", Oops)
    with pytest.raises(loading.LoadError, match="no model given"):
        loading.resolve("")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Oops, match="neither a model directory"):
        loading.load_tokenizer(tmp_path / "empty", Oops)


# ---- classify ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tokenizer):
    """A random 1-layer BERT classifier with two named labels, saved with its tokenizer."""
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                     num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    path = tmp_path_factory.mktemp("clf")
    BertForSequenceClassification(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_classify_a_path_or_a_loaded_model_alike(classifier):
    one = loading.classify(classifier, "the market rose")
    assert set(one) == {"neg", "pos"} and sum(one.values()) == pytest.approx(1.0, abs=1e-6)
    model, tok = loading.load(BertForSequenceClassification, classifier)
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    many = loading.classify(model, ["the market rose", "word " * 200], tokenizer=tok)  # the long one is truncated
    assert len(many) == 2 and many[0] == pytest.approx(one, abs=1e-6)
    assert loading.classify(model, [], tokenizer=tok) == []


def test_classify_refuses_what_it_cannot_do(classifier):
    model, _ = loading.load(BertForSequenceClassification, classifier)
    with pytest.raises(loading.LoadError, match="needs its tokenizer"):
        loading.classify(model, "a text")
    with pytest.raises(Oops, match="2 texts but 1 text pairs"):
        loading.classify(classifier, ["a", "b"], ["c"], error=Oops)


# ---- poolings ----------------------------------------------------------------------------------------

class _Encoder(torch.nn.Module):
    """Returns fixed hidden states: position p of every row is the vector [p, p * p]."""

    def forward(self, input_ids, attention_mask, **_):
        pos = torch.arange(input_ids.shape[1], dtype=torch.float32)
        return SimpleNamespace(last_hidden_state=torch.stack([pos, pos * pos], -1).expand(len(input_ids), -1, -1))


def test_poolings_on_hand_built_states():
    ids = torch.tensor([[101, 7, 8, 102, 0], [101, 102, 0, 0, 0]])  # [CLS] a b [SEP] pad / [CLS] [SEP] pad pad pad
    mask = (ids != 0).long()
    special = torch.tensor([0, 101, 102])
    enc = _Encoder()
    # mean: the real tokens, [CLS] and [SEP] included (positions 0-3; 0-1)
    assert encode_batch(enc, ids, mask, pooling="mean").tolist() == [[1.5, 3.5], [0.5, 0.5]]
    # mean_no_special: positions 1-2; a text of special tokens only falls back to all its real tokens
    got = encode_batch(enc, ids, mask, pooling="mean_no_special", special_ids=special)
    assert got.tolist() == [[1.5, 2.5], [0.5, 0.5]]
    assert encode_batch(enc, ids, mask, pooling="cls").tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ConfigError, match="pooling must be one of mean, mean_no_special, cls"):
        encode_batch(enc, ids, mask, pooling="max")
    with pytest.raises(ValueError, match="special token ids"):
        encode_batch(enc, ids, mask, pooling="mean_no_special")
    assert mean_pool(torch.ones(1, 3, 2), torch.tensor([[1, 1, 0]])).tolist() == [[1.0, 1.0]]


# ---- the run's kind ------------------------------------------------------------------------------------

def test_config_json_records_the_kind_and_still_loads(tmp_path):
    cfg = FinetuneConfig(model="runs/x", task="trec", strategy="frozen")
    write_run_config(tmp_path, cfg, "finetune")
    assert runs.run_kind(tmp_path) == "finetune" and runs.run_config(tmp_path)["task"] == "trec"
    assert load_config_file(tmp_path / runs.CONFIG, FinetuneConfig) == cfg
    write_run_config(tmp_path, SimCSEConfig(), "simcse")
    assert runs.run_kind(tmp_path) == "simcse"
    assert runs.run_kind(tmp_path / "nothing-here") is None
    with pytest.raises(ConfigError, match="run kind must be one of pretrain, finetune, simcse"):
        write_run_config(tmp_path, cfg, "benchmark")
