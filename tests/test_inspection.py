"""inspection.py against transformers' own fill-mask pipeline, on tiny models built on the fly
(`tiny_bert_dir()` and friends live in conftest.py, built once per pytest run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_bert_dir, tiny_modernbert_dir, tiny_roberta_dir

from workbench import inspection
from workbench.config import MaskingConfig


@pytest.fixture(scope="module")
def bert():
    return inspection.load_mlm(tiny_bert_dir())


def _pipeline(path: Path):
    """The reference: transformers' pipeline on the model as transformers loads it by default (sdpa)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    return pipeline("fill-mask", model=AutoModelForMaskedLM.from_pretrained(path),
                    tokenizer=AutoTokenizer.from_pretrained(path))


def _assert_same(ours: list[list[dict]], ref) -> None:
    if isinstance(ref[0], dict):
        ref = [ref]
    assert len(ours) == len(ref)
    for mine, theirs in zip(ours, ref):
        assert [c["token"] for c in mine] == [c["token_str"] for c in theirs]
        assert [c["token_id"] for c in mine] == [c["token"] for c in theirs]
        assert [c["sequence"] for c in mine] == [c["sequence"] for c in theirs]
        assert np.allclose([c["score"] for c in mine], [c["score"] for c in theirs], atol=1e-5, rtol=0)


@pytest.mark.parametrize("text", ["the [MASK] of the united states", "police said the [MASK] was arrested .",
                                  "the [MASK] of the [MASK] states said on [MASK] ."])
def test_fill_mask_equals_pipeline(bert, text):
    model, tok = bert
    assert model.config._attn_implementation == "eager"
    ref = _pipeline(tiny_bert_dir())(text, top_k=7)
    result = inspection.fill_mask(model, tok, text, top_k=7)
    _assert_same(result.predictions, ref)
    assert result.notice is None
    assert result["predictions"] is result.predictions and json.loads(json.dumps(result))["tokens"] == result.tokens
    assert len(result.predictions) == text.count("[MASK]")
    assert all(len(p) == 7 for p in result.predictions)
    assert result.tokens[0] == "[CLS]" and result.tokens.count("[MASK]") == text.count("[MASK]")


def test_fill_mask_roberta_mask_token():
    model, tok = inspection.load_mlm(tiny_roberta_dir())
    assert tok.mask_token == "<mask>"
    text = "the <mask> of the united states"
    _assert_same(inspection.fill_mask(model, tok, text, top_k=5).predictions,
                 _pipeline(tiny_roberta_dir())(text, top_k=5))
    # people type [MASK] out of habit: normalise_mask rewrites it to the model's own token and says so
    fixed, note = inspection.normalise_mask("the [MASK] of it", tok)
    assert fixed == "the <mask> of it" and "<mask>" in note
    assert inspection.normalise_mask("the <mask> of it", tok) == ("the <mask> of it", None)
    with pytest.raises(inspection.InspectionError, match="<mask>"):
        inspection.fill_mask(model, tok, "the [MASK] of it")  # the literal [MASK] is not this model's mask
    # RoBERTa positions start after padding_idx: the limit is the table size minus pad_token_id + 1
    assert inspection.max_tokens(model, tok) == 66 - (tok.pad_token_id + 1)
    r = inspection.fill_mask(model, tok, "<mask> " + "word " * 200)
    assert r.notice and len(r.tokens) == inspection.max_tokens(model, tok)


def test_fill_mask_errors_and_truncation(bert):
    model, tok = bert
    with pytest.raises(inspection.InspectionError, match="empty"):
        inspection.fill_mask(model, tok, "   ")
    with pytest.raises(inspection.InspectionError, match=r"no mask token.*\[MASK\]"):
        inspection.fill_mask(model, tok, "a sentence without a mask")
    long_text = "[MASK] " + "the market rose . " * 100
    r = inspection.fill_mask(model, tok, long_text, top_k=3)
    assert len(r.tokens) == 128 and "cut to the first 128" in r.notice
    assert len(r.predictions) == 1 and len(r.predictions[0]) == 3
    with pytest.raises(inspection.InspectionError, match="beyond the first 128"):
        inspection.fill_mask(model, tok, "the market rose . " * 100 + "[MASK]")
    # top_k is clamped to something the vocabulary can give
    assert len(inspection.fill_mask(model, tok, "the [MASK] .", top_k=0).predictions[0]) == 1


def test_load_errors_are_readable(tmp_path):
    with pytest.raises(inspection.InspectionError, match="no such run or model directory"):
        inspection.load_mlm(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(inspection.InspectionError, match="neither a model directory"):
        inspection.load_mlm(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_bert_dir().iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(inspection.InspectionError, match="cannot load a model"):
        inspection.load_mlm(broken)


def test_load_mlm_from_run_directory(tmp_path):
    """A run directory resolves to its final model (runs.resolve_model_dir)."""
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    for f in tiny_bert_dir().iterdir():
        (run / "model" / f.name).write_bytes(f.read_bytes())
    model, tok = inspection.load_mlm(run)
    assert type(model).__name__ == "BertForMaskedLM" and tok.mask_token == "[MASK]"
    assert inspection.architectures(run) == ["BertForMaskedLM"]


def test_attentions_shapes_and_rows_sum_to_one(bert):
    model, tok = bert
    text = "the cat sat on the mat ."
    r = inspection.attentions(model, tok, text)
    n = len(tok(text)["input_ids"])
    assert r.tokens == tok.convert_ids_to_tokens(tok(text)["input_ids"])
    assert r.weights.shape == (2, 2, n, n) and (r.layers, r.heads) == (2, 2)
    assert np.allclose(r.weights.sum(-1), 1.0, atol=1e-5)
    assert (r.weights >= 0).all()


def test_modernbert_fill_mask_and_attention():
    model, tok = inspection.load_mlm(tiny_modernbert_dir())
    assert type(model).__name__ == "ModernBertForMaskedLM"
    text = "the [MASK] of the united [MASK] said ."
    _assert_same(inspection.fill_mask(model, tok, text, top_k=5).predictions,
                 _pipeline(tiny_modernbert_dir())(text, top_k=5))
    r = inspection.attentions(model, tok, text)
    n = len(tok(text)["input_ids"])
    assert r.weights.shape == (2, 2, n, n) and np.allclose(r.weights.sum(-1), 1.0, atol=1e-5)


def test_attentions_switches_an_sdpa_model_to_eager():
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir()).eval()
    assert model.config._attn_implementation == "sdpa"
    r = inspection.attentions(model, AutoTokenizer.from_pretrained(tiny_bert_dir()), "hello world")
    assert r.weights.shape[:2] == (2, 2)


def test_embeddings_and_pca(bert):
    model, tok = bert
    texts = ["stocks fell on monday", "the team won the match", "stocks rose on friday", "x"]
    vec = inspection.embeddings(model, tok, texts, batch_size=3)
    assert vec.shape == (4, 64) and np.isfinite(vec).all()
    # mean over real tokens only: a text embeds the same alone or padded in a batch
    alone = inspection.embeddings(model, tok, [texts[3]])
    assert np.allclose(alone[0], vec[3], atol=1e-5)
    pts = inspection.pca_2d(vec)
    assert pts.shape == (4, 2)
    assert np.allclose(pts.mean(0), 0, atol=1e-9)
    assert abs(pts[:, 0].var()) >= abs(pts[:, 1].var())  # first component carries the most variance
    with pytest.raises(inspection.InspectionError):
        inspection.embeddings(model, tok, [])


def test_reconstruct_matches_mask_text(bert):
    from workbench.masking import mask_text

    model, tok = bert
    text = "the central bank raised interest rates on thursday to fight rising inflation across the country ."
    cfg = MaskingConfig(mlm_probability=0.4, seed=3)
    rec = inspection.reconstruct(model, tok, text, cfg)
    plain = mask_text(text, tok, cfg)
    assert [{k: r[k] for k in plain[0]} for r in rec.rows] == plain  # same corruption as the masking module
    predicted = [r for r in rec.rows if r["predicted"]]
    assert predicted and all("prediction" in r and isinstance(r["correct"], bool) for r in predicted)
    assert rec.accuracy == sum(r["correct"] for r in predicted) / len(predicted)
    assert all("prediction" not in r for r in rec.rows if not r["predicted"])
