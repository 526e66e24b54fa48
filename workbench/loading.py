"""The one way a saved model comes back: resolve a path or hub id, load it with a given transformers
class (always float32, eager attention when asked), quietly, with readable errors; and classify texts
with a loaded (or named) sequence classifier.

    model, tokenizer = load(AutoModelForMaskedLM, "runs/mini", eager=True)

A local path may be a run directory, a checkpoint or a plain model directory
(`runs.resolve_model_dir`); anything that does not look local is a hub id. Half-precision
checkpoints are upcast: every caller gets float32 weights. Failures raise `LoadError` (or the
caller's own ValueError subclass, `error=`) with the first line of the underlying exception.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from . import runs


class LoadError(ValueError):
    """A model or tokenizer that cannot be loaded; the message is meant for the user as is."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message` (at most `limit` characters): transformers' errors are long."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:limit]}" if text else type(e).__name__


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers at error verbosity and without progress bars ("Loading weights", "newly
    initialised pooler") inside the block; restored afterwards."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def resolve(path_or_hub_id: str | Path, error: type[ValueError] = LoadError) -> tuple[str, str]:
    """(model location, tokenizer location). Local paths (existing, or starting with '.', '/', '~',
    or with more than one '/') go through runs.resolve_model_dir; anything else is a hub id."""
    text = str(path_or_hub_id or "")
    if not text:
        raise error("no model given: pass a run directory, a model directory or a hub id")
    p = Path(text).expanduser()
    # a name whose folder exists here (runs/mni beside runs/) is a mistyped path, not a hub id
    local_parent = len(p.parts) > 1 and p.parent.is_dir()
    if not (p.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or local_parent):
        return text, text
    try:
        model_dir, tok_dir = runs.resolve_model_dir(p)
    except runs.RunError as e:
        raise error(str(e)) from None
    return str(model_dir), str(tok_dir)


def load_tokenizer(path_or_hub_id: str | Path, error: type[ValueError] = LoadError):
    """The tokenizer that belongs to a run, checkpoint, model directory or hub id."""
    model_loc, tok_loc = resolve(path_or_hub_id, error)
    try:
        return AutoTokenizer.from_pretrained(tok_loc)
    except Exception as e:  # transformers raises many types for a bad directory
        hint = "" if Path(model_loc).exists() else " - no such local directory, and not found on the hub"
        raise error(f"{path_or_hub_id}: cannot load its tokenizer{hint} ({first_line(e)})") from None


def load_config(path_or_hub_id: str | Path, error: type[ValueError] = LoadError, what: str = "a model", **kwargs):
    """The transformers config (AutoConfig) of the resolved location; `kwargs` override its values."""
    model_loc, _ = resolve(path_or_hub_id, error)
    try:
        return AutoConfig.from_pretrained(model_loc, **kwargs)
    except Exception as e:  # transformers raises many types for a bad directory or hub id
        raise error(f"{path_or_hub_id}: cannot load {what} ({first_line(e)})") from None


def load_model(auto_cls, path_or_hub_id: str | Path, *, eager: bool = False, error: type[ValueError] = LoadError,
               what: str = "a model", **kwargs):
    """`auto_cls.from_pretrained` of the resolved location in float32, quietly; `eager` asks for the
    eager attention implementation (the only one that returns attention weights). `kwargs` go to
    from_pretrained (config=, num_labels=, ignore_mismatched_sizes=, ...). Not put in eval mode."""
    model_loc, _ = resolve(path_or_hub_id, error)
    if eager:
        kwargs["attn_implementation"] = "eager"
    try:
        with quiet_transformers():
            return auto_cls.from_pretrained(model_loc, dtype=torch.float32, **kwargs)
    except Exception as e:  # transformers raises many types for a bad directory or hub id
        raise error(f"{path_or_hub_id}: cannot load {what} ({first_line(e)})") from None


# What a saved model is, from its config's `architectures`: the head a use needs. A fine-tuned
# classifier has no masked-LM head (fill-mask would run a random one) and a masked LM has no trained
# classification head (classify would give random labels), so each is refused by name.
HEADS = {"AutoModelForMaskedLM": (("ForMaskedLM", "ForPreTraining"), "a masked language model"),
         "AutoModelForSequenceClassification": (("ForSequenceClassification",), "a fine-tuned sequence classifier")}


def check_kind(auto_cls, path_or_hub_id: str | Path, error: type[ValueError] = LoadError) -> None:
    """Raise `error` when the model's config names architectures without the head `auto_cls` needs.
    Configs without `architectures` pass (nothing to go on)."""
    wanted = HEADS.get(getattr(auto_cls, "__name__", ""))
    if wanted is None:
        return
    archs = list(getattr(load_config(path_or_hub_id, error), "architectures", None) or [])
    if archs and not any(a.endswith(wanted[0]) for a in archs):
        other = next((desc for suffixes, desc in HEADS.values() if any(a.endswith(suffixes) for a in archs)), None)
        if wanted[0] == ("ForSequenceClassification",):
            hint = " (fine-tune it first: workbench finetune MODEL --task ...)"
        else:
            hint = " (use the pre-trained model it was fine-tuned from)"
        raise error(f"{path_or_hub_id} is a {', '.join(archs)}{f' ({other})' if other else ''}, not {wanted[1]}{hint}")


def load(auto_cls, path_or_hub_id: str | Path, *, eager: bool = False, error: type[ValueError] = LoadError,
         what: str = "a model", **kwargs):
    """(model in eval mode, tokenizer): `load_tokenizer` then `load_model`, after `check_kind`."""
    tokenizer = load_tokenizer(path_or_hub_id, error)
    check_kind(auto_cls, path_or_hub_id, error)
    model = load_model(auto_cls, path_or_hub_id, eager=eager, error=error, what=what, **kwargs)
    model.eval()
    return model, tokenizer


def max_tokens(model, tokenizer) -> int:
    """The longest input the model accepts: the smaller of the tokenizer's limit and the position
    table (RoBERTa-style models offset positions by padding_idx + 1)."""
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    if "roberta" in str(getattr(model.config, "model_type", "")) or "camembert" in str(model.config.model_type):
        limit -= int(getattr(model.config, "pad_token_id", 1) or 0) + 1
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 1_000_000:  # transformers uses a huge sentinel for "no limit"
        limit = min(limit, int(tok_limit))
    return limit


def classify(model, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None, *, tokenizer=None,
             batch_size: int = 32, max_length: Optional[int] = None,
             error: type[ValueError] = LoadError) -> dict[str, float] | list[dict[str, float]]:
    """Label -> probability for each text (a dict for a single string, else a list of dicts). `model`
    is a loaded sequence classifier (then pass its `tokenizer`) or a fine-tuned run directory, model
    directory or hub id. Labels come from the config's id2label; texts longer than the model reads
    are truncated."""
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    if text_pairs is not None:
        text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
        if len(text_pairs) != len(texts):
            raise error(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    if not texts:
        return []
    if isinstance(model, (str, Path)):
        model, tokenizer = load(AutoModelForSequenceClassification, model, error=error, what="a sequence classifier")
    elif tokenizer is None:
        raise error("classify: a loaded model needs its tokenizer (tokenizer=...)")
    limit = max_tokens(model, tokenizer)
    max_length = min(max_length or limit, limit)
    names = model.config.id2label or {}
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            a = texts[start:start + batch_size]
            b = text_pairs[start:start + batch_size] if text_pairs is not None else None
            enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            probs = model(**enc).logits.float().softmax(-1)
            for row in probs.tolist():
                out.append({str(names.get(i, f"LABEL_{i}")): float(p) for i, p in enumerate(row)})
    return out[0] if single else out
