"""Corpus-statistics initialisation (workbench.warmstart): small hand-built blocks, exact values."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.config import ModelConfig
from workbench.model import build_mlm_model
from workbench.warmstart import apply_initialisation, ppmi_matrix, ppmi_svd_embeddings, unigram_log_probs


def test_unigram_log_probs_count_with_add_one_and_give_specials_the_floor():
    blocks = torch.tensor([[2, 5, 6, 6, 3]])
    got = unigram_log_probs(blocks, vocab_size=8, special_ids=[0, 1, 2, 3, 4])
    # counts + 1: id5 2, id6 3, specials reset to 1, the rest 1 -> total 11
    expected = torch.log(torch.tensor([1, 1, 1, 1, 1, 2, 3, 1], dtype=torch.float64) / 11).float()
    assert torch.allclose(got, expected)


def test_ppmi_of_a_three_token_sentence():
    # pairs within 1 position, both directions: (1,2) (2,1) (2,3) (3,2); total 4; row sums 1, 2, 1
    m = ppmi_matrix(torch.tensor([[1, 2, 3]]), vocab_size=4, window=1).to_dense()
    expected = torch.zeros(4, 4)
    for a, b in ((1, 2), (2, 1), (2, 3), (3, 2)):
        expected[a, b] = math.log(1 * 4 / (1 * 2))
    assert torch.allclose(m, expected)


def test_ppmi_equals_a_dense_reference_and_drops_negative_association():
    blocks = torch.tensor([[5, 1, 5, 2, 5, 3, 5, 4, 5, 6, 1, 2], [2, 1, 6, 5, 5, 3, 4, 1, 2, 6, 5, 7]])
    counts = torch.zeros(8, 8, dtype=torch.float64)
    for row in blocks.tolist():
        for k in (1, 2):
            for a, b in zip(row[:-k], row[k:]):
                counts[a, b] += 1
                counts[b, a] += 1
    pmi = torch.log(counts * counts.sum() / (counts.sum(1, keepdim=True) * counts.sum(0, keepdim=True)))
    expected = torch.where(counts > 0, pmi, torch.zeros_like(pmi)).clamp(min=0).float()
    got = ppmi_matrix(blocks, vocab_size=8, window=2).to_dense()
    assert torch.allclose(got, expected, atol=1e-6)
    assert (pmi[counts > 0] < 0).any() and (got >= 0).all()  # some pairs were negative and were dropped


def test_ppmi_svd_embeddings_are_deterministic_scaled_and_mark_unseen_tokens():
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(5, 60, (40, 16), generator=g)
    a, found = ppmi_svd_embeddings(blocks, vocab_size=64, dim=8, std=0.02, seed=3)
    b, _ = ppmi_svd_embeddings(blocks, vocab_size=64, dim=8, std=0.02, seed=3)
    assert torch.equal(a, b)
    assert found[5:60].all() and not found[:5].any() and not found[60:].any()
    assert a[found].std().item() == pytest.approx(0.02, rel=1e-4)
    assert (a[~found] == 0).all()


@pytest.mark.parametrize("architecture", ["bert", "modernbert"])
def test_apply_initialisation_sets_the_bias_to_unigram_and_embeds_seen_tokens(tokenizer, architecture):
    torch.manual_seed(0)
    model = build_mlm_model(ModelConfig(size="tiny", architecture=architecture, dropout=0.0), tokenizer)
    emb_before = model.get_input_embeddings().weight.detach().clone()
    vocab = emb_before.shape[0]
    blocks = torch.randint(10, 200, (30, 32), generator=torch.Generator().manual_seed(1))
    done = apply_initialisation(model, blocks, output_bias="unigram", embedding_init="ppmi-svd",
                                special_ids=tokenizer.all_special_ids, seed=0)
    assert set(done) == {"output_bias", "embedding_init"}
    bias = model.get_output_embeddings().bias.detach()
    assert torch.allclose(bias, unigram_log_probs(blocks, vocab, tokenizer.all_special_ids))
    emb = model.get_input_embeddings().weight.detach()
    seen = torch.zeros(vocab, dtype=torch.bool)
    seen[blocks.unique()] = True
    assert not torch.equal(emb[seen], emb_before[seen])
    assert torch.equal(emb[~seen], emb_before[~seen])
    # with the unigram bias, an untrained model's loss starts at the unigram cross-entropy, not ln V
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=blocks[:4]).logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), blocks[:4].flatten()).item()
    assert loss < math.log(vocab) - 1


def test_defaults_leave_the_model_untouched(tokenizer):
    torch.manual_seed(0)
    model = build_mlm_model(ModelConfig(size="tiny", dropout=0.0), tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert apply_initialisation(model, torch.randint(5, 50, (4, 8))) == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_initialisation_is_refused():
    with pytest.raises(ValueError, match="output_bias"):
        ModelConfig(output_bias="zipf").resolved()
    with pytest.raises(ValueError, match="embedding_init"):
        ModelConfig(embedding_init="glove").resolved()
