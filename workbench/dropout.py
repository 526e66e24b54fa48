"""A faster dropout for CPU training, swapped into a model for the length of a run.

torch's CPU dropout draws its mask with bernoulli_, element by element on one thread: on this
project's 2-core machines it took a fifth of a mini pre-training step, and with attention dropout
on, SDPA falls back to its slow unfused path as well. Drawing random integers in bulk and comparing
them with a threshold keeps the same keep-probability (to 2**-31) at a fraction of the cost. Only
the random stream differs; it still comes from torch's generator, so seeds and resume still work.

`training.train` applies `fast_cpu_dropout(model)` on CPU runs (`--no-fast-dropout` turns it off);
the swap is undone afterwards, so the model object and its saved config are unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

FAST_ATTENTION = "workbench_fast_dropout"
_ATTENTION_INTERFACE_MODELS = ("bert", "roberta", "roberta-prelayernorm")  # attention goes through AttentionInterface


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout (zero with probability p, scale the rest by 1/(1-p)) from 31-bit integers."""
    n = x.numel()
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=x.device).random_()  # 63 random bits each
    bits = bits.view(torch.int32)[:n].view(x.shape) & 0x7FFFFFFF  # two uniform 31-bit draws per int64
    return torch.where(bits >= round(p * 2**31), x * (1.0 / (1.0 - p)), 0)


class FastDropout(torch.nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p) if self.training and self.p > 0 else x


def _attention_fast_dropout(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention-function signature: SDPA when there is no dropout (evaluation), else
    softmax(q k^T * scale + mask) with fast_dropout, then @ v (what SDPA's unfused path computes)."""
    if not dropout:
        return ALL_ATTENTION_FUNCTIONS["sdpa"](module, query, key, value, attention_mask, scaling=scaling, dropout=0.0,
                                               **kwargs)
    scores = torch.matmul(query, key.transpose(2, 3)) * (query.size(-1) ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores = (scores.masked_fill(~attention_mask,
                                     torch.finfo(scores.dtype).min) if attention_mask.dtype == torch.bool
                  else scores + attention_mask)
    weights = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


@contextmanager
def fast_cpu_dropout(model: torch.nn.Module):
    """Within the block, `model`'s nn.Dropout layers (and, for BERT/RoBERTa-family models using SDPA,
    its attention dropout) use fast_dropout. Everything is put back on exit, so the model object and
    its saved config are unchanged."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, FastDropout(child.p).train(child.training))
                swapped.append((parent, name, child))
    config = getattr(model, "config", None)
    attn = getattr(config, "_attn_implementation", None)
    if attn == "sdpa" and getattr(config, "model_type", None) in _ATTENTION_INTERFACE_MODELS:
        AttentionInterface.register(FAST_ATTENTION, _attention_fast_dropout)
        AttentionMaskInterface.register(FAST_ATTENTION, sdpa_mask)  # padding masks as for SDPA (bool)
        config._attn_implementation = FAST_ATTENTION
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        if config is not None and attn is not None:
            config._attn_implementation = attn
