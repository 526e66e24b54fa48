"""Look inside a masked language model: fill-mask, attention weights, sentence embeddings, and the
model's reconstruction of a corrupted sentence. Logic only, no UI: the app, the CLI and the notebooks
call these functions and draw the results with `workbench.plots`.

Models are loaded with the *eager* attention implementation. transformers 5 defaults BERT to sdpa,
which cannot return attention weights; one eager model serves both the fill-mask and the attention
views (so the app caches one object per checkpoint), and its fill-mask output equals the sdpa
pipeline's to float precision (tests/test_inspection.py measures it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

from . import loading, runs
from .config import MaskingConfig
from .embeddings import embed
from .embeddings import pca_2d as _pca_2d
from .loading import max_tokens
from .masking import IGNORE_INDEX, Masker, describe_masking, generator_for


class InspectionError(ValueError):
    """Input or checkpoint we cannot inspect; the message is meant for the user as is."""


# ---- loading -----------------------------------------------------------------------------------

def architectures(path: str | Path) -> list[str]:
    """The `architectures` a local checkpoint's config.json declares ([] when unknown). Lets the app
    tell masked-LM checkpoints from fine-tuned classifiers without loading weights."""
    try:
        model_dir, _ = runs.resolve_model_dir(path)
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
        return list(config.get("architectures") or [])
    except (runs.RunError, OSError, ValueError):
        return []


def load_mlm(path_or_hub_id: str | Path):
    """(model, tokenizer) of a masked LM in eval mode, from a run directory, a checkpoint, a model
    directory or a hub id. Always eager attention (see the module docstring). Raises InspectionError
    with a readable message for anything that cannot be loaded or has no mask token."""
    model, tokenizer = loading.load(AutoModelForMaskedLM, path_or_hub_id, eager=True, error=InspectionError)
    if tokenizer.mask_token is None:
        raise InspectionError(f"{path_or_hub_id}: the tokenizer has no mask token, so it cannot fill masks")
    return model, tokenizer


def load_classifier(path_or_hub_id: str | Path):
    """(model, tokenizer) of a fine-tuned sequence classifier in eval mode."""
    return loading.load(AutoModelForSequenceClassification, path_or_hub_id, eager=True, error=InspectionError)


# ---- encoding with limits ------------------------------------------------------------------------

def encode(model, tokenizer, text: str) -> tuple[dict, Optional[str]]:
    """Tokenize one text for the model; a text over the limit is truncated and a notice returned
    (a position-embedding index error is what the user would otherwise see)."""
    if not text or not text.strip():
        raise InspectionError("the text is empty: type a sentence")
    limit = max_tokens(model, tokenizer)
    n = len(tokenizer(text, verbose=False)["input_ids"])  # verbose=False: no over-length warning, we give our own
    notice = None
    if n > limit:
        notice = f"the text has {n} tokens; the model reads at most {limit}, so it was cut to the first {limit}"
    enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
    device = getattr(model, "device", torch.device("cpu"))  # a model on a GPU gets its inputs there
    return {k: v.to(device) for k, v in enc.items()}, notice


def normalise_mask(text: str, tokenizer) -> tuple[str, Optional[str]]:
    """Let people type [MASK] or <mask> whatever the model: rewrite the other spelling to the
    model's own mask token, and say so."""
    mask = tokenizer.mask_token
    for other in ("[MASK]", "<mask>"):
        if other != mask and other in text and mask not in text:
            return text.replace(other, mask), f"{other} was read as this model's mask token {mask}"
    return text, None


# ---- fill-mask -----------------------------------------------------------------------------------

class FillMaskResult(dict):
    """{"predictions", "tokens", "notice"}, readable as a dict (JSON-ready, what `workbench fill-mask
    --json` prints) or through attributes. `predictions[i]` lists the top-k candidates of the i-th
    mask, best first, each {token, token_id, score, sequence} (the pipeline's token_str/token
    renamed); `tokens` is the model input as tokens; `notice` says what was changed in the input."""

    def __init__(self, predictions: list[list[dict]], tokens: list[str], notice: Optional[str] = None):
        super().__init__(predictions=predictions, tokens=tokens, notice=notice)

    predictions = property(lambda self: self["predictions"])
    tokens = property(lambda self: self["tokens"])
    notice = property(lambda self: self["notice"])


@torch.inference_mode()
def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> FillMaskResult:
    """Top-k fillers for every mask token in `text`. Computed as transformers' fill-mask pipeline does
    (softmax over the vocabulary at each mask, topk, decoded token, filled sequence), for several
    masks at once and with truncation, in one forward pass."""
    mask = tokenizer.mask_token
    if not text or not text.strip():
        raise InspectionError("the text is empty: type a sentence with a mask token " + str(mask))
    if mask not in text:
        raise InspectionError(f"no mask token in the text: put {mask} where the model should fill in a word")
    enc, notice = encode(model, tokenizer, text)
    input_ids = enc["input_ids"][0]
    positions = torch.nonzero(input_ids == tokenizer.mask_token_id).squeeze(-1)
    if len(positions) == 0:
        raise InspectionError(f"the mask token lies beyond the first {len(input_ids)} tokens the model reads")
    logits = model(**enc).logits[0, positions, :]
    probs = logits.softmax(dim=-1)
    top_k = max(1, min(int(top_k), probs.shape[-1]))
    values, ids = probs.topk(top_k)
    single = len(positions) == 1
    out = []
    for i, (vals, preds) in enumerate(zip(values.tolist(), ids.tolist())):
        row = []
        for v, p in zip(vals, preds):
            filled = input_ids.clone()
            filled[positions[i]] = p
            if tokenizer.pad_token_id is not None:
                filled = filled[filled != tokenizer.pad_token_id]
            row.append({"token": tokenizer.decode([p]), "token_id": int(p), "score": float(v),
                        "sequence": tokenizer.decode(filled.tolist(), skip_special_tokens=single)})
        out.append(row)
    return FillMaskResult(out, tokenizer.convert_ids_to_tokens(input_ids.tolist()), notice)


# ---- attention -----------------------------------------------------------------------------------

@dataclass
class AttentionResult:
    """`weights[layer, head, query, key]`: how much each query token attends to each key token
    (rows sum to 1)."""

    tokens: list[str]
    weights: np.ndarray
    notice: Optional[str] = None

    @property
    def layers(self) -> int:
        return self.weights.shape[0]

    @property
    def heads(self) -> int:
        return self.weights.shape[1]


@torch.inference_mode()
def attentions(model, tokenizer, text: str) -> AttentionResult:
    """All attention maps of one text. A model loaded with sdpa attention is switched to eager first,
    because sdpa never materialises the weights."""
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")
    enc, notice = encode(model, tokenizer, text)
    out = model(**enc, output_attentions=True)
    weights = torch.stack([a[0] for a in out.attentions]).float().numpy()
    return AttentionResult(tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()), weights, notice)


# ---- embeddings ------------------------------------------------------------------------------------

def embeddings(model, tokenizer, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """One vector per text: the last hidden layer averaged over its real tokens ([CLS]/[SEP]/padding
    excluded, which otherwise dominate short texts: `embeddings.embed` with pooling mean_no_special),
    not normalised. Shape [len(texts), hidden]."""
    if not texts:
        raise InspectionError("no texts to embed")
    vectors = embed(model, tokenizer, list(texts), batch_size=batch_size, max_length=max_tokens(model, tokenizer),
                    pooling="mean_no_special", normalize=False)
    return vectors.numpy()


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """`embeddings.pca_2d` (the two main directions, sign fixed), bad input as InspectionError."""
    try:
        return _pca_2d(vectors)
    except ValueError as e:
        raise InspectionError(str(e)) from None


# ---- masking playground: corrupt, then let the model reconstruct --------------------------------

@dataclass
class Reconstruction:
    """`rows` are masking.describe_masking rows plus, at predicted positions, the model's
    `prediction` and whether it is `correct`."""

    rows: list[dict]
    accuracy: Optional[float]
    notice: Optional[str] = None


@torch.inference_mode()
def reconstruct(model, tokenizer, text: str, cfg: MaskingConfig | None = None,
                seed: int | None = None) -> Reconstruction:
    """Corrupt `text` exactly as masking.mask_text does (same Masker, same generator), run the model
    on the corrupted ids and compare its guess with the original token at every predicted position."""
    cfg = cfg or MaskingConfig()
    enc, notice = encode(model, tokenizer, text)
    ids = enc["input_ids"]
    masker = Masker.from_tokenizer(tokenizer, cfg)
    corrupted, labels = masker(ids, generator_for(cfg.seed if seed is None else seed, 0))
    rows = describe_masking(tokenizer, ids[0], corrupted[0], labels[0])
    inputs = {k: v for k, v in enc.items() if k != "input_ids"}
    guesses = model(input_ids=corrupted, **inputs).logits[0].argmax(-1).tolist()
    hits = []
    for row, guess, label in zip(rows, guesses, labels[0].tolist()):
        if label != IGNORE_INDEX:
            row["prediction"] = tokenizer.convert_ids_to_tokens(guess)
            row["correct"] = guess == label
            hits.append(row["correct"])
    return Reconstruction(rows, (sum(hits) / len(hits)) if hits else None, notice)
