"""Models come from `transformers`; this module only turns a size preset into a config, and loads
checkpoints (ours, local, or from the hub) for continued pre-training."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModelForMaskedLM, BertConfig, BertForMaskedLM, BertForPreTraining, ModernBertConfig, ModernBertForMaskedLM,
    RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM,
)

from .config import ModelConfig


class ModelError(ValueError):
    pass


def model_config(cfg: ModelConfig, tokenizer) -> BertConfig | RobertaPreLayerNormConfig | ModernBertConfig:
    """The transformers config of `cfg.architecture` at the preset's size, for `tokenizer`'s vocabulary."""
    layers, hidden, heads, ff = cfg.resolved()
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ff, hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id, type_vocab_size=2,
    )
    if cfg.architecture == "modernbert":
        # rotary positions instead of a learned table; every layer attends globally (ModernBERT's local
        # windows only matter for inputs much longer than our blocks)
        return ModernBertConfig(
            vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=ff, max_position_embeddings=cfg.max_position, global_attn_every_n_layers=1,
            embedding_dropout=cfg.dropout, attention_dropout=cfg.dropout, mlp_dropout=cfg.dropout,
            pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, mask_token_id=tokenizer.mask_token_id)
    if cfg.architecture == "preln":
        # RoBERTa-style position ids start after padding_idx, so the table needs pad_id + 1 more rows
        # for the same usable length.
        return RobertaPreLayerNormConfig(
            max_position_embeddings=cfg.max_position + tokenizer.pad_token_id + 1,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **common)
    return BertConfig(max_position_embeddings=cfg.max_position, **common)


def build_mlm_model(cfg: ModelConfig, tokenizer, with_sentence_head: bool = False) -> torch.nn.Module:
    """A fresh masked LM of `cfg.architecture` (BertForMaskedLM, RobertaPreLayerNormForMaskedLM or
    ModernBertForMaskedLM) at the preset's size, or, with `init_from`, any AutoModelForMaskedLM
    checkpoint (local directory or hub id) to continue pre-training. `with_sentence_head` gives
    BertForPreTraining (MLM + a two-way sentence-pair head, for NSP/SOP)."""
    if cfg.init_from:
        try:
            if with_sentence_head:
                return BertForPreTraining.from_pretrained(cfg.init_from, dtype=torch.float32)
            return AutoModelForMaskedLM.from_pretrained(cfg.init_from, dtype=torch.float32)
        except Exception as e:
            raise ModelError(f"{cfg.init_from}: cannot load a masked-LM checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    config = model_config(cfg, tokenizer)
    if cfg.architecture != "bert" and with_sentence_head:
        raise ModelError("sentence-pair objectives (NSP/SOP) need architecture 'bert' (BertForPreTraining)")
    if cfg.architecture == "preln":
        return RobertaPreLayerNormForMaskedLM(config)
    if cfg.architecture == "modernbert":
        return ModernBertForMaskedLM(config)
    return BertForPreTraining(config) if with_sentence_head else BertForMaskedLM(config)


def parameter_count(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables (the count that scales compute per token)."""
    emb = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return parameter_count(model) - emb


def mlm_parts(model: torch.nn.Module):
    """(encoder, prediction head) of a BERT-family masked LM, or None when the model has another
    layout. With them the head runs on masked positions only, which saves most of the output-layer
    work (15% of positions instead of all)."""
    if type(model).__name__ == "ModernBertForMaskedLM":
        return model.model, torch.nn.Sequential(model.head, model.decoder)
    for enc_name, head_name in (("bert", "cls"), ("distilbert", None), ("roberta", "lm_head"),
                                ("roberta_prelayernorm", "lm_head")):
        enc = getattr(model, enc_name, None)
        if enc is None:
            continue
        if head_name == "cls":
            head = model.cls.predictions if hasattr(model.cls, "predictions") else model.cls
            return enc, head
        if head_name == "lm_head":
            return enc, model.lm_head
    return None


def save_model(model: torch.nn.Module, tokenizer, path: str | Path) -> None:
    """A plain Hugging Face model directory (safetensors) with its tokenizer beside it."""
    model = getattr(model, "module", model)
    model.save_pretrained(str(path), safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))


# ---- a faster dropout for CPU training ------------------------------------------------------------
# torch's CPU dropout draws its mask with bernoulli_, element by element on one thread: on this
# project's 2-core machines it took a fifth of a mini pre-training step, and with attention dropout
# on, SDPA falls back to its slow unfused path as well. Drawing random integers in bulk and comparing
# them with a threshold keeps the same keep-probability (to 2**-31) at a fraction of the cost. Only
# the random stream differs; it still comes from torch's generator, so seeds and resume still work.

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
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if not dropout:
        return ALL_ATTENTION_FUNCTIONS["sdpa"](module, query, key, value, attention_mask, scaling=scaling, dropout=0.0, **kwargs)
    scores = torch.matmul(query, key.transpose(2, 3)) * (query.size(-1) ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores = (scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min) if attention_mask.dtype == torch.bool
                  else scores + attention_mask)
    weights = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


FAST_ATTENTION = "workbench_fast_dropout"
_ATTENTION_INTERFACE_MODELS = ("bert", "roberta", "roberta-prelayernorm")  # attention goes through AttentionInterface


@contextmanager
def fast_cpu_dropout(model: torch.nn.Module):
    """Within the block, `model`'s nn.Dropout layers (and, for BERT/RoBERTa-family models using SDPA,
    its attention dropout) use fast_dropout. Everything is put back on exit, so the model object and
    its saved config are unchanged."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

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
