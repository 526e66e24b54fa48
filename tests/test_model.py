"""Model building and the fast CPU dropout the engine trains with."""

import pytest
import torch

from workbench.config import ModelConfig
from workbench.dropout import FAST_ATTENTION, FastDropout, _attention_fast_dropout, fast_cpu_dropout, fast_dropout
from workbench.model import build_mlm_model


def test_fast_dropout_keeps_the_rate_and_scales_the_rest():
    torch.manual_seed(0)
    x = torch.randn(4_000_000)
    for p in (0.1, 0.5):
        y = fast_dropout(x, p)
        kept = y != 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.002  # 4M draws: sd of the rate is 0.00025
        torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    # the two 31-bit halves of each random int64 are both used, and independent of each other
    halves = (fast_dropout(torch.ones(2_000_000), 0.5) != 0).view(-1, 2).float()
    assert abs(halves[:, 0].mean().item() - 0.5) < 0.003 and abs(halves[:, 1].mean().item() - 0.5) < 0.003
    assert abs((halves[:, 0] * halves[:, 1]).mean().item() - 0.25) < 0.003


def test_fast_dropout_follows_torch_seed_and_passes_gradients_through_the_mask():
    x = torch.randn(1000, requires_grad=True)
    torch.manual_seed(3)
    a = fast_dropout(x, 0.2)
    torch.manual_seed(3)
    b = fast_dropout(x, 0.2)
    assert torch.equal(a, b)
    a.sum().backward()
    torch.testing.assert_close(x.grad, (a != 0).float() / 0.8)
    layer = FastDropout(0.2).eval()
    assert torch.equal(layer(x), x)


def test_attention_with_fast_dropout_is_softmax_dropout_matmul_and_respects_padding():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4) for _ in range(3))
    pad = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    pad[1, ..., 3:] = False  # the second sequence has two padding positions
    module = torch.nn.Module()
    torch.manual_seed(7)
    out, weights = _attention_fast_dropout(module, q, k, v, pad, scaling=0.5, dropout=0.3)
    torch.manual_seed(7)
    keep = fast_dropout(torch.ones(2, 2, 5, 5), 0.3)
    expected = torch.softmax((q @ k.transpose(2, 3) * 0.5).masked_fill(~pad, float("-inf")), -1) * keep
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(out, (expected @ v).transpose(1, 2))
    assert (weights[1, ..., 3:] == 0).all()
    # without dropout it is plain SDPA
    out0, _ = _attention_fast_dropout(module, q, k, v, pad, scaling=0.5, dropout=0.0)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=pad, scale=0.5).transpose(1, 2)
    torch.testing.assert_close(out0, ref)


@pytest.mark.parametrize("architecture", ["bert", "preln", "modernbert"])
def test_fast_cpu_dropout_swaps_in_and_puts_everything_back(tokenizer, architecture):
    torch.manual_seed(0)
    model = build_mlm_model(ModelConfig(size="tiny", layers=1, hidden=64, heads=2, architecture=architecture,
                                        dropout=0.1),
                            tokenizer)
    ids = torch.randint(5, len(tokenizer), (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    with fast_cpu_dropout(model):
        # ModernBERT's attention does not go through transformers' AttentionInterface; only its
        # dropout layers are swapped
        assert model.config._attn_implementation == ("sdpa" if architecture == "modernbert" else FAST_ATTENTION)
        dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        assert dropouts and all(type(m) is FastDropout for m in dropouts)
        with torch.no_grad():  # evaluation: identical to the untouched model, padding included
            torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, before)
        model.train()
        torch.manual_seed(1)
        first = model(input_ids=ids, attention_mask=mask).logits
        torch.manual_seed(1)
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, first)  # seeded: reproducible
        assert not torch.allclose(first, before)  # dropout is active
    assert model.config._attn_implementation == "sdpa"
    assert all(type(m) is torch.nn.Dropout for m in model.modules() if isinstance(m, torch.nn.Dropout))
