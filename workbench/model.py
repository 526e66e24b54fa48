"""Models come from `transformers`; this module only turns a size preset into a config, and loads
checkpoints (ours, local, or from the hub) for continued pre-training."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForMaskedLM,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    ModernBertConfig,
    ModernBertForMaskedLM,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormForMaskedLM,
)

from .config import ModelConfig
from .loading import first_line


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
        # rotary positions instead of a learned table; with local_window, ModernBERT's alternating
        # local (sliding-window) and global attention layers
        return ModernBertConfig(
            vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=ff, max_position_embeddings=cfg.max_position, layer_types=_layer_types(cfg, layers),
            local_attention=max(2, cfg.attention_window()),
            embedding_dropout=cfg.dropout, attention_dropout=cfg.dropout, mlp_dropout=cfg.dropout,
            pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
                                sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                                mask_token_id=tokenizer.mask_token_id)
    if cfg.architecture == "preln":
        # RoBERTa-style position ids start after padding_idx, so the table needs pad_id + 1 more rows
        # for the same usable length.
        return RobertaPreLayerNormConfig(
            max_position_embeddings=cfg.max_position + tokenizer.pad_token_id + 1,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **common)
    return BertConfig(max_position_embeddings=cfg.max_position, **common)


def _layer_types(cfg: ModelConfig, layers: int) -> list[str]:
    """ModernBERT's per-layer attention: every layer global, or with `local_window` the layers
    attend within the window except every `global_every`-th (counted from the bottom, so the first
    layers are local: a fresh model then starts from neighbour averages, which already predict a
    masked word, instead of a uniform average over the whole block)."""
    if not cfg.attention_window():
        return ["full_attention"] * layers
    return ["full_attention" if (i + 1) % cfg.global_every == 0 else "sliding_attention" for i in range(layers)]


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
            raise ModelError(f"{cfg.init_from}: cannot load a masked-LM checkpoint ({first_line(e)})") from None
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

