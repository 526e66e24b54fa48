"""Server-side limits of the app: every request is checked here before any tokenizing or model work,
so an abusive request (a huge text, a million top-k, a NUL byte in a path) gets a readable message at
once instead of a slow, huge answer. The browser's sliders cap values too, but API clients skip them.

Pure functions with no app or model imports; `workbench.app` calls them and shows LimitError's text.
"""

from __future__ import annotations

import re

MAX_TEXT_CHARS = 2_000  # characters of one text (fill-mask, attention, masking, classify)
MAX_MASKS = 8  # mask tokens in one fill-mask text
MAX_TOP_K = 20  # predictions per mask (the page's slider goes to 20 as well)
MAX_ATTENTION_TOKENS = 128  # tokens of an attention request: layers x heads x n^2 weights come back
MAX_MODEL_FIELD = 500  # characters of a model / run name sent by the page or a client
MAX_SURPRISAL_TOKENS = 128  # tokens of a surprisal request: one masked copy of the text per token
MAX_UPLOAD_BYTES = 50 * 2**20  # an uploaded corpus file (the run launcher stores it inside the runs folder)
UPLOAD_SUFFIXES = (".txt", ".jsonl", ".csv")  # corpus files the run launcher accepts
MAX_RUN_NAME = 64  # characters of a run name given to the run launcher
QUEUE_MAX_SIZE = 64  # requests waiting in gradio's queue before new ones are turned away
CONCURRENCY = 2  # requests of one endpoint computed at once (the machines have 2 cores)


class LimitError(ValueError):
    """A request over a limit; the message says which limit and what to do."""


def check_text(text) -> str:
    """The text, if it is a string without NUL bytes of at most MAX_TEXT_CHARS characters."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise LimitError(f"the text must be a string, got {type(text).__name__}")
    if "\x00" in text:
        raise LimitError("the text holds a NUL byte (\\x00); remove it")
    if len(text) > MAX_TEXT_CHARS:
        raise LimitError(f"the text has {len(text):,} characters; the app takes at most {MAX_TEXT_CHARS:,}")
    return text


def check_top_k(top_k) -> int:
    """top_k as an int in [1, MAX_TOP_K]."""
    try:
        k = int(top_k)
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"top-k must be a whole number, got {top_k!r}") from None
    if k != top_k and not isinstance(top_k, str):
        raise LimitError(f"top-k must be a whole number, got {top_k!r}")
    if not 1 <= k <= MAX_TOP_K:
        raise LimitError(f"top-k must be between 1 and {MAX_TOP_K}, got {k:,}")
    return k


def check_masks(count: int, mask_token: str = "[MASK]") -> int:
    if count > MAX_MASKS:
        raise LimitError(f"the text has {count} {mask_token} tokens; the app fills at most {MAX_MASKS} at once")
    return count


def check_attention_tokens(count: int) -> int:
    if count > MAX_ATTENTION_TOKENS:
        raise LimitError(f"the text is {count} tokens long; attention is shown for at most {MAX_ATTENTION_TOKENS} "
                         "tokens (its weights grow with the square of the length): shorten it")
    return count


def check_model_field(value) -> str:
    """A model/run name from the page or a client: a short string without NUL or other control
    characters ('' = the start model)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LimitError(f"the model must be given as a name or path, got {type(value).__name__}")
    if len(value) > MAX_MODEL_FIELD:
        raise LimitError(f"the model name has {len(value):,} characters; at most {MAX_MODEL_FIELD} are accepted")
    if any(ord(c) < 32 for c in value):
        bad = "a NUL byte" if "\x00" in value else "a control character"
        raise LimitError(f"the model name {value[:60]!r} holds {bad}; pick a model from the list")
    return value


def check_surprisal_tokens(count: int) -> int:
    if count > MAX_SURPRISAL_TOKENS:
        raise LimitError(f"the text is {count} tokens long; surprisal is computed for at most {MAX_SURPRISAL_TOKENS} "
                         "tokens (one masked copy per token): shorten it")
    return count


def check_upload(size: int, name: str) -> None:
    """An uploaded corpus file: one of UPLOAD_SUFFIXES, at most MAX_UPLOAD_BYTES."""
    if not str(name).lower().endswith(UPLOAD_SUFFIXES):
        raise LimitError(f"{name}: a corpus upload must be a {', '.join(UPLOAD_SUFFIXES)} file")
    if size > MAX_UPLOAD_BYTES:
        raise LimitError(f"{name} is {size / 2**20:,.1f} MB; the app accepts corpus uploads of at most "
                         f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB (larger corpora: `workbench pretrain --data`)")


def run_name(value) -> str:
    """A run name from the page or a client, sanitised: letters, digits, '.', '_' and '-' kept, every
    other run of characters becomes '-', no leading dot or dash (so never '..' or a hidden folder),
    at most MAX_RUN_NAME characters. Refused when nothing usable is left."""
    if not isinstance(value, str):
        raise LimitError(f"the run name must be a string, got {type(value).__name__}")
    if len(value) > 4 * MAX_RUN_NAME:
        raise LimitError(f"the run name has {len(value):,} characters; at most {MAX_RUN_NAME} are kept")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", value.strip()).lstrip(".-")[:MAX_RUN_NAME].rstrip(".-")
    name = re.sub(r"\.{2,}", ".", name)
    if not name:
        raise LimitError(f"the run name {value[:60]!r} has no letters or digits: give the run a name such as "
                         "'my-first-run'")
    return name
