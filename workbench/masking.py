"""MLM corruption: which tokens the model must predict, and what it sees in their place.

Written by hand rather than with `transformers.DataCollatorForLanguageModeling` because we need, on
packed blocks of token ids with no offsets at hand: whole-word masking (the collator's needs
character offsets), SpanBERT span masking (the collator has none), and one explicit random
generator per batch so that masks are reproducible from (seed, step) and a resumed run sees exactly
the masks it would have seen. The statistics match the collator's (tests/test_masking.py).

Word boundaries come from the vocabulary: a WordPiece piece starting with `##` continues a word;
for BPE/Unigram vocabularies a piece that does not start with the word-start marker (`Ġ`, `▁`)
continues one. One boolean per vocabulary entry, looked up per token, works on any packed block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .config import MaskingConfig

IGNORE_INDEX = -100  # label of positions that are not predicted (PyTorch's cross-entropy default)


def continuation_table(tokenizer) -> torch.Tensor:
    """Boolean per vocabulary id: True when the piece continues the previous word."""
    vocab = tokenizer.get_vocab()
    table = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    pieces = list(vocab)
    uses_prefix_markers = any(p.startswith(("Ġ", "▁")) for p in pieces[:5000])
    for piece, idx in vocab.items():
        if uses_prefix_markers:
            table[idx] = not piece.startswith(("Ġ", "▁")) and piece not in tokenizer.all_special_tokens
        else:
            table[idx] = piece.startswith("##")
    return table


@dataclass
class Masker:
    """Applies `MaskingConfig` to batches of token ids. Build it with `Masker.from_tokenizer`."""

    cfg: MaskingConfig
    mask_token_id: int
    special_ids: torch.Tensor  # ids never masked ([CLS], [SEP], [PAD], ...)
    replacement_ids: torch.Tensor  # ids a "random" replacement draws from (the vocabulary minus specials)
    continuation: Optional[torch.Tensor] = None  # see continuation_table; needed for whole_word / span

    @classmethod
    def from_tokenizer(cls, tokenizer, cfg: MaskingConfig | None = None) -> "Masker":
        cfg = cfg or MaskingConfig()
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token: masked language modelling needs one")
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        vocab_size = len(tokenizer)
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[special[special < vocab_size]] = False
        return cls(cfg, tokenizer.mask_token_id, special, keep.nonzero().squeeze(1), continuation_table(tokenizer))

    # -- selection ------------------------------------------------------------------------------
    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.isin(input_ids, self.special_ids)

    def word_starts(self, input_ids: torch.Tensor) -> torch.Tensor:
        """True where a word begins. A continuation piece right after a special token (a block cut
        mid-word) starts a word of its own."""
        special = self.special_mask(input_ids)
        if self.continuation is None:
            return ~special
        cont = self.continuation[input_ids.clamp(max=len(self.continuation) - 1)]
        prev_special = torch.ones_like(special)
        prev_special[:, 1:] = special[:, :-1]
        return ~special & (~cont | prev_special)

    def _word_index(self, input_ids: torch.Tensor) -> torch.Tensor:
        """For every position, the position of the start of its word (specials point at themselves)."""
        starts = self.word_starts(input_ids) | self.special_mask(input_ids)
        pos = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        return torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values

    def select(self, input_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Boolean mask of the positions to predict."""
        special = self.special_mask(input_ids)
        p = self.cfg.mlm_probability
        if self.cfg.mask_strategy == "token":
            chosen = torch.rand(input_ids.shape, generator=generator) < p
        elif self.cfg.mask_strategy == "whole_word":
            # One draw per word, taken at its first piece and shared by all its pieces.
            u = torch.rand(input_ids.shape, generator=generator)
            chosen = u.gather(1, self._word_index(input_ids)) < p
        else:
            chosen = self._select_spans(input_ids, generator)
        return chosen & ~special

    def _select_spans(self, input_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """SpanBERT: spans of whole words with geometric lengths (p=span_p, capped at span_max),
        placed at random word starts until the token budget (mlm_probability) is reached."""
        chosen = torch.zeros(input_ids.shape, dtype=torch.bool)
        starts_all = self.word_starts(input_ids)
        special = self.special_mask(input_ids)
        for row in range(input_ids.shape[0]):
            starts = starts_all[row].nonzero().squeeze(1)
            n_tokens = int((~special[row]).sum())
            if len(starts) == 0:
                continue
            budget = max(1, round(n_tokens * self.cfg.mlm_probability))
            # word w covers positions [starts[w], ends[w])
            ends = torch.cat([starts[1:], torch.tensor([input_ids.shape[1]])])
            ends = torch.minimum(ends, _next_special(special[row], starts))
            masked = 0
            for _ in range(4 * budget):  # bounded: spans may overlap or overshoot
                if masked >= budget:
                    break
                length = int(sample_span_lengths(1, self.cfg.span_p, self.cfg.span_max, generator)[0])
                w = int(torch.randint(len(starts), (1,), generator=generator))
                last = min(w + length, len(starts)) - 1
                lo, hi = int(starts[w]), int(ends[last])
                if masked + (hi - lo) > budget * 1.1 + 1:  # SpanBERT rejects spans that overshoot
                    continue
                new = (~chosen[row, lo:hi]).sum()
                chosen[row, lo:hi] = True
                masked += int(new)
        return chosen

    # -- corruption -----------------------------------------------------------------------------
    def __call__(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (corrupted input ids, labels). Labels hold the original id at predicted positions
        and IGNORE_INDEX elsewhere. `input_ids` is not modified."""
        chosen = self.select(input_ids, generator)
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        u = torch.rand(input_ids.shape, generator=generator)
        to_mask = chosen & (u < self.cfg.mask_fraction)
        to_random = chosen & (u >= self.cfg.mask_fraction) & (u < self.cfg.mask_fraction + self.cfg.random_fraction)
        corrupted = input_ids.clone()
        corrupted[to_mask] = self.mask_token_id
        picks = torch.randint(len(self.replacement_ids), input_ids.shape, generator=generator)
        corrupted[to_random] = self.replacement_ids[picks[to_random]]
        return corrupted, labels


def _next_special(special_row: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """For each word start, the position of the next special token (words never cross one)."""
    pos = torch.arange(len(special_row))
    nxt = torch.where(special_row, pos, torch.full_like(pos, len(special_row)))
    nxt = nxt.flip(0).cummin(0).values.flip(0)  # next special at or after each position
    return nxt[starts]


def sample_span_lengths(n: int, p: float, max_len: int, generator: torch.Generator) -> torch.Tensor:
    """Geometric(p) lengths (support 1, 2, ...) clipped at max_len, as in SpanBERT."""
    u = torch.rand(n, generator=generator).clamp_min(1e-12)
    lengths = torch.floor(torch.log(u) / torch.log(torch.tensor(1.0 - p))) + 1
    return lengths.clamp(max=max_len).long()


def generator_for(seed: int, step: int) -> torch.Generator:
    """The random generator of one batch: a pure function of (seed, step), so a resumed run draws
    the same masks as an uninterrupted one without saving generator state."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))


# ---- a masked example, for people ----------------------------------------------------------------

def describe_masking(tokenizer, original_ids, corrupted_ids, labels) -> list[dict]:
    """One row per token of a single sequence: the original token, what the model sees, whether it
    is predicted, and how it was corrupted (mask / random / keep)."""
    rows = []
    for pos, (o, c, l) in enumerate(zip(_as_list(original_ids), _as_list(corrupted_ids), _as_list(labels))):
        predicted = l != IGNORE_INDEX
        how = "" if not predicted else ("mask" if c == tokenizer.mask_token_id else "keep" if c == o else "random")
        rows.append({"position": pos, "original": tokenizer.convert_ids_to_tokens(o),
                     "input": tokenizer.convert_ids_to_tokens(c), "predicted": predicted, "corruption": how})
    return rows


def format_masking(rows: list[dict], width: int = 100) -> str:
    """Two aligned lines (original / model input) with predicted positions marked underneath,
    wrapped between tokens."""
    out: list[str] = []
    lines = ["", "", ""]

    def flush() -> None:
        if lines[0]:
            out.extend(["original : " + lines[0], "input    : " + lines[1], "predicted: " + lines[2], ""])
            lines[:] = ["", "", ""]

    for r in rows:
        w = max(len(r["original"]), len(r["input"]))
        if len(lines[0]) + w > width:
            flush()
        lines[0] += r["original"].ljust(w) + " "
        lines[1] += r["input"].ljust(w) + " "
        lines[2] += ({"mask": "^", "random": "~", "keep": "="}.get(r["corruption"], " ") * w) + " "
    flush()
    out.append("^ replaced by the mask token   ~ replaced by a random token   = kept, still predicted")
    return "\n".join(out)


def html_masking(rows: list[dict]) -> str:
    """The same view as coloured HTML chips (used by the app and the notebooks)."""
    colours = {"mask": "#fde68a", "random": "#fecaca", "keep": "#bbf7d0", "": "#f3f4f6"}
    chips = []
    for r in rows:
        title = f"original: {r['original']}" + (f" ({r['corruption']})" if r["predicted"] else "")
        border = "2px solid #111" if r["predicted"] else "1px solid #ddd"
        chips.append(
            f'<span title="{_esc(title)}" style="display:inline-block;margin:2px;padding:2px 5px;border-radius:4px;'
            f'background:{colours[r["corruption"]]};border:{border};font-family:monospace">{_esc(r["input"])}</span>'
        )
    legend = ('<div style="font-size:12px;margin-top:4px">yellow: [MASK] &nbsp; red: random token &nbsp; '
              'green: kept but predicted &nbsp; bold border: predicted position</div>')
    return "<div>" + "".join(chips) + "</div>" + legend


def mask_text(text: str, tokenizer, cfg: MaskingConfig | None = None, seed: int | None = None) -> list[dict]:
    """Tokenize one text, corrupt it, and describe the result (the masking playground)."""
    cfg = cfg or MaskingConfig()
    masker = Masker.from_tokenizer(tokenizer, cfg)
    ids = torch.tensor([tokenizer(text, truncation=True)["input_ids"]])
    corrupted, labels = masker(ids, generator_for(cfg.seed if seed is None else seed, 0))
    return describe_masking(tokenizer, ids[0], corrupted[0], labels[0])


def _as_list(x) -> list[int]:
    return x.tolist() if hasattr(x, "tolist") else list(x)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
