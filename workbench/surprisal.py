"""Token surprisal: how expected each token of a sentence is to a masked language model.

A masked LM gives no left-to-right probability of a sentence, but it gives each token's probability
given all the others: mask token i, read log P(token_i | the rest) at position i. Summed over the
tokens this is the pseudo-log-likelihood (PLL, Salazar et al. 2020, "Masked Language Model
Scoring"); exp(-PLL / n) is the pseudo-perplexity. Surprisal is -log2 P in bits: a token the model
finds obvious costs ~0 bits, a surprising one many.

One masked copy of the sentence per token, run in batches (all copies have the same length, so no
padding is needed and a batch gives the same numbers as one copy at a time). Special tokens ([CLS],
[SEP]) are not scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .inspection import InspectionError, encode

LN2 = math.log(2.0)


@dataclass
class Surprisal:
    tokens: list[str]  # the scored tokens, in order (special tokens left out)
    positions: list[int]  # their positions in the encoded input
    logprobs: list[float]  # natural log P(token | every other token)
    surprisal_bits: list[float]  # -log2 P
    top_tokens: list[str]  # the model's best guess at each masked position
    pll: float  # pseudo-log-likelihood: the sum of logprobs (nats)
    pseudo_perplexity: float  # exp(-pll / number of tokens)
    notice: str | None = None  # set when the text was cut to the model's length

    def as_dict(self) -> dict:
        return asdict(self)


def masked_copies(input_ids: torch.Tensor, positions: list[int], mask_id: int) -> torch.Tensor:
    """[len(positions), n]: row j is `input_ids` (shape [n]) with position positions[j] replaced by the mask."""
    copies = input_ids.unsqueeze(0).repeat(len(positions), 1)
    rows = torch.arange(len(positions), device=input_ids.device)
    copies[rows, torch.as_tensor(positions, device=input_ids.device)] = mask_id
    return copies


@torch.no_grad()
def token_surprisal(model, tokenizer, text: str, batch_size: int = 32) -> Surprisal:
    """Surprisal of every non-special token of `text` under `model` (a masked LM in eval mode)."""
    enc, notice = encode(model, tokenizer, text)
    ids = enc["input_ids"][0]
    special = set(tokenizer.all_special_ids)
    positions = [i for i, t in enumerate(ids.tolist()) if t not in special]
    if not positions:
        raise InspectionError("the text has no tokens to score: type a sentence")
    copies = masked_copies(ids, positions, tokenizer.mask_token_id)
    extra = {k: v[0].unsqueeze(0) for k, v in enc.items() if k != "input_ids"}
    logprobs, top = [], []
    for start in range(0, len(positions), batch_size):
        rows = copies[start:start + batch_size]
        inputs = {k: v.repeat(len(rows), 1) for k, v in extra.items()}
        logits = model(input_ids=rows, **inputs).logits.float()
        at = torch.as_tensor(positions[start:start + batch_size], device=logits.device)
        picked = logits[torch.arange(len(rows), device=logits.device), at].log_softmax(-1)
        logprobs += picked.gather(1, ids[at].unsqueeze(1)).squeeze(1).tolist()
        top += picked.argmax(-1).tolist()
    pll = float(sum(logprobs))
    return Surprisal(tokens=tokenizer.convert_ids_to_tokens([int(ids[p]) for p in positions]), positions=positions,
                     logprobs=logprobs, surprisal_bits=[-lp / LN2 for lp in logprobs],
                     top_tokens=tokenizer.convert_ids_to_tokens(top), pll=pll,
                     pseudo_perplexity=math.exp(-pll / len(positions)), notice=notice)
