"""Cloze probes (workbench.probes): the shipped set loads, bad files are refused, and the scores equal
a direct computation with the model."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.config import ModelConfig
from workbench.model import build_mlm_model
from workbench.probes import Probe, ProbeError, answer_ids, load_probes, score_probes


def test_the_shipped_probe_set_has_at_least_40_single_mask_probes_of_both_domains():
    probes = load_probes()
    assert len(probes) >= 40
    assert {p.domain for p in probes} == {"news", "everyday"}
    assert all(p.text.count("[MASK]") == 1 and p.answers for p in probes)


@pytest.mark.parametrize("row, message", [
    ({"text": "a [MASK] and a [MASK]", "answers": ["x"]}, "exactly one"),
    ({"text": "no mask here", "answers": ["x"]}, "exactly one"),
    ({"text": "a [MASK]", "answers": []}, "non-empty list"),
    ({"text": "a [MASK]", "answers": "cat"}, "non-empty list"),
    ({"answers": ["x"]}, "expected"),
])
def test_bad_probe_files_are_refused_with_the_line(tmp_path, row, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text": "the [MASK] .", "answers": ["cat"]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ProbeError, match=message) as info:
        load_probes(path)
    assert ":2:" in str(info.value)


def test_answers_split_into_pieces_are_dropped(tokenizer):
    single = [w for w in ("the", "said", "and") if len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1]
    assert single, "the test tokenizer should know some common words"
    probe = Probe("x [MASK] y", (single[0], "qzxwvjk"))
    assert answer_ids(probe, tokenizer) == tokenizer.convert_tokens_to_ids([single[0]])


def test_scores_equal_a_direct_computation(tokenizer):
    torch.manual_seed(0)
    model = build_mlm_model(ModelConfig(size="tiny", dropout=0.0), tokenizer).eval()
    probes = [Probe("the [MASK] said on tuesday .", ("president", "the", "said")),
              Probe("he went [MASK] the house .", ("to", "into")),
              Probe("nothing [MASK] here .", ("qzxwvjk",))]
    scores = score_probes(model, tokenizer, probes)
    assert scores.unanswerable == 1 and len(scores.results) == 2
    for probe, result in zip(probes, scores.results):
        ids = answer_ids(probe, tokenizer)
        enc = tokenizer(probe.text.replace("[MASK]", tokenizer.mask_token), return_tensors="pt")
        position = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero())
        with torch.no_grad():
            p = torch.softmax(model(**enc).logits[0, position], -1)
        order = p.argsort(descending=True).tolist()
        assert result.rank == min(order.index(i) for i in ids) + 1
        assert result.p_answer == pytest.approx(float(p[ids].sum()), abs=1e-5)
        assert result.top1 == tokenizer.convert_ids_to_tokens(order[0])
    expected_top1 = sum(r.rank == 1 for r in scores.results) / 2
    assert scores.summary() == {"cloze_top1": expected_top1, "cloze_top5": sum(r.rank <= 5 for r in scores.results) / 2,
                                "cloze_probes": 2}
