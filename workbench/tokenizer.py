"""Train a tokenizer with `tokenizers`, or reuse one; save and load it in the `transformers`
fast-tokenizer layout so any Hugging Face code can use it; measure it on held-out text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .config import TokenizerConfig
from .loading import first_line

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TokenizerError(ValueError):
    pass


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch = []
    for t in texts:
        batch.append(t)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig | None = None,
                    length: int | None = None) -> PreTrainedTokenizerFast:
    """Train WordPiece (default), BPE or Unigram on `texts` with BERT's special tokens and
    post-processing ([CLS] A [SEP] B [SEP]), wrapped as a `transformers` fast tokenizer."""
    cfg = cfg or TokenizerConfig()
    norm = [normalizers.NFD(), normalizers.Lowercase(),
            normalizers.StripAccents()] if cfg.lowercase else [normalizers.NFC()]
    if cfg.algorithm == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                            special_tokens=SPECIAL_TOKENS, show_progress=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
    elif cfg.algorithm == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                      special_tokens=SPECIAL_TOKENS, show_progress=False)
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    elif cfg.algorithm == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]",
                                          show_progress=False)
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    else:
        raise TokenizerError(f"unknown tokenizer algorithm {cfg.algorithm!r}; use wordpiece, bpe or unigram")
    tok.normalizer = normalizers.Sequence(norm)
    tok.train_from_iterator(_batches(texts), trainer=trainer, length=length)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=512,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],  # segment ids for sentence pairs
    )


def load_tokenizer(name_or_path: str | Path):
    """A tokenizer directory (ours or any saved `transformers` tokenizer) or a hub name."""
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path))
    except Exception as e:
        raise TokenizerError(f"{name_or_path}: cannot load a tokenizer ({first_line(e)})") from None


@dataclass
class TokenizerReport:
    vocab_size: int
    words: int
    tokens: int
    fertility: float  # tokens per whitespace-separated word
    unk_rate: float  # share of tokens that are the unknown token
    continued_words: float  # share of words split into more than one piece

    def table(self) -> str:
        return (f"vocabulary size   {self.vocab_size:>10,}\nwords             {self.words:>10,}\n"
                f"tokens            {self.tokens:>10,}\nfertility         {self.fertility:>10.3f} tokens/word\n"
                f"unknown rate      {self.unk_rate:>10.4%}\nwords split       {self.continued_words:>10.2%}")


def tokenizer_report(tokenizer, texts: Iterable[str]) -> TokenizerReport:
    """Vocabulary size, fertility and unknown-token rate on (validation) text."""
    words = tokens = unk = split = 0
    for batch in _batches(texts, 256):
        enc = tokenizer(batch, add_special_tokens=False)
        for i, ids in enumerate(enc["input_ids"]):
            tokens += len(ids)
            unk += sum(1 for t in ids if t == tokenizer.unk_token_id)
            word_ids = enc.word_ids(i)
            counts: dict[int, int] = {}
            for w in word_ids:
                if w is not None:
                    counts[w] = counts.get(w, 0) + 1
            split += sum(1 for c in counts.values() if c > 1)
        words += sum(len(t.split()) for t in batch)
    if words == 0:
        raise TokenizerError("cannot measure a tokenizer on empty text")
    # word_ids follow the pre-tokenizer (punctuation is its own word), so the split share uses its count
    return TokenizerReport(len(tokenizer), words, tokens, tokens / words, unk / max(tokens, 1), split / max(words, 1))


# Unicode normalizers that leave ASCII text as it is (Lowercase aside, which str.lower matches on ASCII)
_ASCII_IDENTITY = {"NFD", "NFC", "NFKD", "NFKC", "StripAccents"}


def ids_encoder(backend: Tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """texts -> token ids (no special tokens), as `backend.encode_batch_fast` gives them, faster on ASCII
    text. When the normalizer only changes non-ASCII characters or lower-cases (ours: NFD, Lowercase,
    StripAccents), an ASCII document is lower-cased by `str.lower` and encoded by a copy without the
    normalizer: the same ids without the Rust normalizer's per-character alignment bookkeeping (README,
    issue 15). Other normalizers (BERT's own also removes control characters), non-ASCII documents and
    documents holding a special token's text (matched before lower-casing) take the tokenizer as it is."""
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    serialized = backend.to_str()
    spec = json.loads(serialized)
    norm = spec.get("normalizer")
    steps = [] if norm is None else norm["normalizers"] if norm["type"] == "Sequence" else [norm]
    if not all(s["type"] in _ASCII_IDENTITY | {"Lowercase"} for s in steps):
        def as_is(texts: list[str]) -> list[list[int]]:
            return [enc.ids for enc in encode(texts, add_special_tokens=False)]
        as_is.ascii_shortcut = False
        return as_is
    lower = any(s["type"] == "Lowercase" for s in steps)
    raw_matched = [t["content"] for t in spec.get("added_tokens", []) if not t["normalized"]] if lower else []
    plain = Tokenizer.from_str(serialized)
    plain.normalizer = None
    encode_plain = getattr(plain, "encode_batch_fast", plain.encode_batch)

    def ids(texts: list[str]) -> list[list[int]]:
        fast = [t.isascii() and not any(c in t for c in raw_matched) for t in texts]  # isascii: a stored flag
        out: list = [None] * len(texts)
        for use_plain, run, prep in ((False, encode, None), (True, encode_plain, str.lower if lower else None)):
            where = [i for i, f in enumerate(fast) if f == use_plain]
            if where:
                batch = [prep(texts[i]) if prep else texts[i] for i in where]
                for i, enc in zip(where, run(batch, add_special_tokens=False)):
                    out[i] = enc.ids
        return out

    ids.ascii_shortcut = True
    return ids
