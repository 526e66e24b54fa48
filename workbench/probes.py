"""Cloze probes: fill-in-the-blank sentences with accepted answers, scored by a masked LM.

The probe set ships as data (`assets/probes/cloze.jsonl`, see its README). A probe has one [MASK];
its score is the rank and probability of the best-ranked accepted answer among the model's
predictions at that position. An accepted answer the tokenizer splits into several pieces cannot be
produced by one [MASK], so it is dropped for that tokenizer; a probe left with no answer is reported
as unanswerable and not scored.

A probe with several accepted answers (`president donald [MASK]`: trump) is scored by the best-ranked
of them: `rank` and `p_best` are that answer's, and `p_answer` is the total probability of all its
accepted answers (the chance that the model's fill is accepted). Pre-training writes these per-probe
results at every evaluation (`watch.ProbeRecorder`, RUN/probes.jsonl).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

DEFAULT_PROBES = Path(__file__).resolve().parent.parent / "assets" / "probes" / "cloze.jsonl"
MASK = "[MASK]"


class ProbeError(ValueError):
    pass


@dataclass(frozen=True)
class Probe:
    text: str  # one [MASK]
    answers: tuple[str, ...]  # accepted fillers, any one counts
    domain: str = ""


def load_probes(path: Optional[str | Path] = None) -> list[Probe]:
    """Read a probe file (JSON lines with text / answers / optional domain); default: the shipped set."""
    path = Path(path) if path else DEFAULT_PROBES
    if not path.is_file():
        raise ProbeError(f"{path}: no such probe file")
    probes = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, answers = row["text"], row["answers"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            expected = '{"text": ..., "answers": [...]}'
            raise ProbeError(f"{path}:{n}: expected {expected} ({type(e).__name__})") from None
        if text.count(MASK) != 1:
            raise ProbeError(f"{path}:{n}: a probe needs exactly one {MASK}, found {text.count(MASK)}")
        if isinstance(answers, str) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise ProbeError(f"{path}:{n}: answers must be a non-empty list of words")
        probes.append(Probe(text, tuple(answers), str(row.get("domain", ""))))
    if not probes:
        raise ProbeError(f"{path}: no probes")
    return probes


def answer_ids(probe: Probe, tokenizer) -> list[int]:
    """Vocabulary ids of the accepted answers that are a single token for `tokenizer`."""
    ids = []
    for answer in probe.answers:
        pieces = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(pieces) == 1 and pieces[0] != tokenizer.unk_token_id and pieces[0] not in ids:
            ids.append(pieces[0])
    return ids


@dataclass
class ProbeResult:
    text: str
    answers: list[str]  # the answers this tokenizer can produce with one token
    p_answer: float  # total probability of the accepted answers at the [MASK]
    rank: int  # 1-based rank of the best-ranked accepted answer
    top1: str  # the model's first prediction
    index: int = 0  # the probe's position in the probe set (stable across evaluations: its id)
    answer: str = ""  # the best-ranked accepted answer (the one `rank` and `p_best` are about)
    p_best: float = 0.0  # probability of that answer
    top1_p: float = 0.0  # probability of the first prediction

    def as_dict(self) -> dict:
        return {"id": self.index, "text": self.text, "answers": self.answers, "answer": self.answer,
                "p_answer": self.p_answer, "p_best": self.p_best, "rank": self.rank, "top1": self.top1,
                "top1_p": self.top1_p}


@dataclass
class ProbeScores:
    results: list[ProbeResult]
    unanswerable: int  # probes none of whose answers is a single token for this tokenizer

    @property
    def top1(self) -> float:
        return sum(r.rank == 1 for r in self.results) / max(1, len(self.results))

    @property
    def top5(self) -> float:
        return sum(r.rank <= 5 for r in self.results) / max(1, len(self.results))

    def summary(self) -> dict:
        return {"cloze_top1": round(self.top1, 5), "cloze_top5": round(self.top5, 5), "cloze_probes": len(self.results)}


@torch.no_grad()
def score_probes(model, tokenizer, probes: Sequence[Probe], batch_size: int = 32) -> ProbeScores:
    """Rank and probability of each probe's accepted answers under `model` (a masked LM)."""
    usable = [(i, p, answer_ids(p, tokenizer)) for i, p in enumerate(probes)]
    usable = [(i, p, ids) for i, p, ids in usable if ids]
    results = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(usable), batch_size):
            chunk = usable[start:start + batch_size]
            texts = [p.text.replace(MASK, tokenizer.mask_token) for _, p, _ in chunk]
            enc = tokenizer(texts, padding=True, return_tensors="pt").to(device)
            logits = model(**enc).logits.float()
            rows, cols = (enc["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)
            probs = torch.softmax(logits[rows, cols], dim=-1)
            for (index, probe, ids), p in zip(chunk, probs):
                target = torch.tensor(ids, device=p.device)
                best_at = int(p[target].argmax())
                best = p[target[best_at]]
                rank = int((p > best).sum()) + 1
                top = int(p.argmax())
                results.append(ProbeResult(probe.text, tokenizer.convert_ids_to_tokens(ids),
                                           round(float(p[target].sum()), 6),
                                           rank, tokenizer.convert_ids_to_tokens(top), index=index,
                                           answer=tokenizer.convert_ids_to_tokens(ids[best_at]),
                                           p_best=round(float(best), 6), top1_p=round(float(p[top]), 6)))
    finally:
        model.train(was_training)
    return ProbeScores(results, len(probes) - len(usable))
