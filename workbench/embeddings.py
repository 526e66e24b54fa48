"""Sentence embeddings of any encoder: pooling, similarity, nearest neighbours, retrieval metrics
and a 2-D projection. Used by SimCSE (`workbench.simcse`), the inspection views and the app.

Pooling is always named, because the choice changes the vectors:

    mean             average of the last hidden states over the real (non-padding) tokens,
                     [CLS] and [SEP] included (SimCSE's pooling)
    mean_no_special  the same without [CLS]/[SEP]/[UNK]... (special tokens dominate short texts;
                     the inspection views use it); a text of special tokens only falls back to mean
    cls              the hidden state of the first token

The hidden states are the bare encoder's `last_hidden_state` (`model.base_model` of a model with a
head), so a masked LM and its encoder give the same vectors.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError

POOLINGS = ("mean", "mean_no_special", "cls")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors over the positions where `attention_mask` is 1."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1)


def encoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The bare encoder of a model with a head (BertForMaskedLM -> BertModel); the model itself otherwise."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


def encode_batch(model: torch.nn.Module, input_ids, attention_mask, token_type_ids=None, pooling: str = "mean",
                 special_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Pooled vectors [batch, hidden] of one padded batch (gradients flow: SimCSE trains through it).
    `mean_no_special` needs `special_ids` (the tokenizer's special token ids)."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    hidden = encoder_of(model)(**kwargs).last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean_no_special":
        if special_ids is None:
            raise ValueError("pooling mean_no_special needs the tokenizer's special token ids")
        keep = attention_mask.bool() & ~torch.isin(input_ids, special_ids.to(input_ids.device))
        keep = torch.where(keep.any(1, keepdim=True), keep, attention_mask.bool())
        return mean_pool(hidden, keep.long())
    return mean_pool(hidden, attention_mask)


def hidden_size(model) -> int:
    cfg = getattr(model, "config", None)
    for name in ("hidden_size", "dim", "d_model"):
        if cfg is not None and getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError(f"cannot tell the hidden size of {type(model).__name__}")


@torch.no_grad()
def embed(model: torch.nn.Module, tokenizer, texts: Sequence[str] | str, batch_size: int = 64, max_length: int = 128,
          pooling: str = "mean", normalize: bool = True) -> torch.Tensor:
    """Sentence vectors [len(texts), hidden] (float32, on the CPU), unit length by default. Texts are
    sorted by length for batching and returned in the input order; an empty text is read as the
    unknown token. The model is put in eval mode (no dropout) and left there."""
    if isinstance(texts, str):
        texts = [texts]
    texts = [t if t and t.strip() else (tokenizer.unk_token or " ") for t in texts]
    if not texts:
        raise ValueError("no texts to embed")
    model.eval()
    device = next(model.parameters()).device
    special = torch.tensor(sorted(set(tokenizer.all_special_ids))) if pooling == "mean_no_special" else None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), hidden_size(model))
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        v = encode_batch(model, enc["input_ids"].to(device), enc["attention_mask"].to(device), pooling=pooling,
                         special_ids=special).float().cpu()
        out[idx] = F.normalize(v, dim=-1) if normalize else v
    return out


def cosine_similarity(a, b) -> torch.Tensor | float:
    """Cosine similarity of vectors: [d] x [d] -> float; [n, d] x [m, d] -> [n, m] tensor."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if a.ndim == 1 and b.ndim == 1:
        return float(F.cosine_similarity(a, b, dim=0))
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def sentence_similarity(model, tokenizer, text_a: str, text_b: str, pooling: str = "mean") -> float:
    """Cosine similarity of the pooled embeddings of two texts (the app's Similarity tab)."""
    v = embed(model, tokenizer, [text_a, text_b], pooling=pooling)
    return float(v[0] @ v[1])


def nearest_neighbours(query: str, corpus_texts: Sequence[str], model, tokenizer, k: int = 5,
                       corpus_embeddings: Optional[torch.Tensor] = None, pooling: str = "mean") -> list[dict]:
    """The `k` texts of `corpus_texts` closest to `query` by cosine similarity of pooled
    embeddings: [{"rank", "index", "text", "score"}], best first. Pass `corpus_embeddings`
    (from `embed`) to search the same corpus repeatedly without re-encoding it."""
    if not corpus_texts:
        raise ValueError("the corpus to search is empty")
    c = corpus_embeddings
    if c is None:
        c = embed(model, tokenizer, list(corpus_texts), pooling=pooling)
    q = embed(model, tokenizer, [query], pooling=pooling)[0]
    scores = F.normalize(c.float(), dim=-1) @ q
    top = torch.topk(scores, min(k, len(scores)))
    return [{"rank": r + 1, "index": int(i), "text": corpus_texts[int(i)], "score": round(float(s), 4)}
            for r, (s, i) in enumerate(zip(top.values, top.indices))]


def compare_neighbours(query: str, corpus_texts: Sequence[str], models: dict[str, tuple], k: int = 5) -> list[dict]:
    """Nearest neighbours of `query` under several (model, tokenizer) pairs, one row per (model, rank)."""
    rows = []
    for name, (model, tok) in models.items():
        for r in nearest_neighbours(query, corpus_texts, model, tok, k=k):
            rows.append({"model": name, **r})
    return rows


def retrieval_precision_at_k(embs, labels: Sequence, k: int = 10) -> float:
    """Mean over items of the share of its k nearest other items (cosine similarity, itself
    excluded) that carry the same label. Chance level is about sum_c p_c^2 for label shares p_c."""
    x = F.normalize(torch.as_tensor(embs, dtype=torch.float32), dim=-1)
    n = len(x)
    if n < 2:
        raise ValueError("precision@k needs at least two items")
    k = min(k, n - 1)
    _, y = np.unique(np.asarray(list(labels)), return_inverse=True)
    y = torch.as_tensor(y)
    sim = x @ x.T
    sim.fill_diagonal_(-float("inf"))
    nn = sim.topk(k, dim=1).indices
    return float((y[nn] == y[:, None]).float().mean())


def uniformity(embs, t: float = 2.0) -> float:
    """Wang & Isola (2020): log E exp(-t ||x - y||^2) over pairs of distinct unit vectors; lower is
    more uniformly spread (an anisotropic, collapsed space is close to 0)."""
    x = F.normalize(torch.as_tensor(embs, dtype=torch.float32), dim=-1)
    d2 = torch.cdist(x, x).pow(2)
    off = ~torch.eye(len(x), dtype=torch.bool)
    return float(torch.log(torch.exp(-t * d2[off]).mean()))


def retrieval_report(model, tokenizer, texts: Sequence[str], labels: Sequence, k: int = 10, max_length: int = 64,
                     pooling: str = "mean") -> dict[str, float]:
    """precision@k, uniformity and chance level of one model's embeddings of a labelled set."""
    e = embed(model, tokenizer, list(texts), max_length=max_length, pooling=pooling)
    _, counts = np.unique(np.asarray(list(labels)), return_counts=True)
    share = counts / counts.sum()
    return {f"precision_at_{k}": round(retrieval_precision_at_k(e, labels, k), 5),
            "uniformity": round(uniformity(e), 5),
            "chance": round(float((share ** 2).sum()), 5), "examples": len(texts)}


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project vectors on their two main directions (centred SVD), sign fixed so the picture is
    reproducible. Shape [n, 2]; fewer than two dimensions are padded with zeros."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("pca_2d needs a non-empty [n, d] array")
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    proj = x @ (comps * signs[:, None]).T
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    return proj
