"""Sentence-pair pre-training objectives: next-sentence prediction (NSP) and sentence-order
prediction (SOP), trained together with MLM.

--------------
BERT (Devlin et al., 2019) trains two things at once: masked-token prediction and *next-sentence
prediction* (NSP): given `[CLS] A [SEP] B [SEP]`, was B the text that followed A, or a segment drawn
from another document? ALBERT (Lan et al., 2020) argued NSP is too easy (topic alone gives it away)
and replaced it with *sentence-order prediction* (SOP): A and B are always consecutive segments of
one document, and the negative is the same two segments swapped.

How the pairs are made (`PairTask`, after BERT's `create_pretraining_data.py`):

1. Each document is split into sentences (`split_sentences`: paragraphs first, then a regex at
   sentence-final punctuation with an abbreviation guard). Sentences are tokenised once; a sentence
   longer than half the body (`(seq_len - 3) // 2` tokens) is cut into pieces of that size.
2. Consecutive segments are grouped greedily into *chunks* of at most `seq_len - 3` tokens with at
   least two segments each (a document's lone last segment joins the previous chunk when it fits).
   Chunks are fixed once, so an epoch is a permutation of chunks.
3. For the batch of step `s` the generator `masking.generator_for(seed, s)` draws, per chunk, the
   split point (A = segments before it, B = segments after it) and which examples are negatives:
   exactly half of each batch (a random permutation, rather than BERT's coin per example, so the
   labels are balanced 50/50 in every batch). NSP negatives replace B by consecutive segments from a
   uniformly drawn *other* document, starting at a random segment, about as long as the B they
   replace; SOP negatives swap A and B. Then MLM masks come from the same generator. The batch is
   therefore a pure function of (seed, step), which the engine's exact resume needs.
4. Framing: `[CLS] A [SEP] B [SEP]` padded to `seq_len`; `token_type_ids` are 0 for `[CLS] A [SEP]`
   and 1 for `B [SEP]` (0 on padding); `attention_mask` marks the real tokens.

Labels follow transformers' `BertForPreTraining` convention: `next_sentence_label` 0 = B really
follows A (NSP: "is next"; SOP: original order), 1 = B is random (NSP) or the order is swapped (SOP).
BERT's 10% of deliberately short sequences is left out (our chunks are already of mixed length).

Loss and its normalisation. BERT's loss is the sum of two means,

    L = (1 / M) * sum_masked CE_mlm  +  (1 / B) * sum_examples CE_pair

with M the number of masked tokens and B the number of examples in the (global) batch. The engine
divides what the training module returns by `Task.count(global batch)`; we return M as the count and
let the module return

    sum_masked CE_mlm  +  sum_examples w * CE_pair,      w = M / B  (the same for every example)

so that dividing by M gives exactly L, however the batch is split over processes or accumulation
steps (w is computed from the global batch and travels with it as the `pair_weight` column). The
`loss` in metrics.jsonl's train records is that L (MLM + pair); eval records keep the MLM metrics
under the usual names (`val_loss`, `val_perplexity`, `val_accuracy`: comparable with an MLM-only run)
and add `val_pair_loss` and `val_pair_accuracy`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError, PretrainConfig
from .masking import IGNORE_INDEX, Masker, generator_for
from .training import batch_indices

OBJECTIVES = ("mlm", "mlm+nsp", "mlm+sop")
IS_NEXT, NOT_NEXT = 0, 1  # BertForPreTraining's next_sentence_label convention


# ==== sentences ======================================================================================

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "gen", "sen", "rep", "gov", "lt", "col", "sgt", "capt",
    "inc", "co", "corp", "ltd", "no", "vs", "etc", "e.g", "i.e", "u.s", "u.k", "u.n", "mt", "ft", "fig", "rev",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "est", "approx",
}
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a document: paragraphs (lines) first, then a cut after ., ! or ? (and any closing
    quotes or brackets) followed by whitespace and an upper-case letter or digit. No cut after a
    known abbreviation ("Mr.", "U.S.") or a single initial ("J. Smith")."""
    out = []
    for para in text.split("\n"):
        para = para.strip()
        if not para:
            continue
        start = 0
        for m in _BOUNDARY.finditer(para):
            before = para[start:m.start() + 1]
            word = re.search(r"([A-Za-z][A-Za-z.]*)\.$", before)
            last = word.group(1).lower() if word else ""
            if last and (last in _ABBREVIATIONS or len(last) == 1):
                continue
            piece = para[start:m.end()].strip()
            if piece:
                out.append(piece)
            start = m.end()
        rest = para[start:].strip()
        if rest:
            out.append(rest)
    return out


# ==== segment pairs ===================================================================================

@dataclass
class Segments:
    """Tokenised segments of a set of documents, stored flat: segment i is
    `ids[offsets[i]:offsets[i + 1]]` and belongs to document `doc[i]`; a document's segments are
    consecutive, from `doc_start[d]` to `doc_start[d + 1]`."""

    ids: np.ndarray
    offsets: np.ndarray
    doc: np.ndarray
    doc_start: np.ndarray

    def __len__(self) -> int:
        return len(self.doc)

    def tokens(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    @property
    def n_docs(self) -> int:
        return len(self.doc_start) - 1


def segment_documents(texts: Sequence[str], tokenizer, max_segment: int, batch_size: int = 2000) -> Segments:
    """Split documents into sentences, tokenise them (no special tokens) and cut sentences longer
    than `max_segment` tokens into pieces. Documents left with fewer than two segments are skipped
    (they cannot make a pair)."""
    if max_segment < 1:
        raise ConfigError(f"seq_len is too short for sentence pairs (segments of {max_segment} tokens)")
    sentences, owner = [], []
    for d, text in enumerate(texts):
        for s in split_sentences(text):
            sentences.append(s)
            owner.append(d)
    token_lists: list[list[int]] = []
    for start in range(0, len(sentences), batch_size):
        token_lists += tokenizer(sentences[start:start + batch_size], add_special_tokens=False,
                                 verbose=False)["input_ids"]
    per_doc: dict[int, list[list[int]]] = {}
    for d, toks in zip(owner, token_lists):
        for k in range(0, len(toks), max_segment):
            per_doc.setdefault(d, []).append(toks[k:k + max_segment])
    ids, lengths, doc, doc_start = [], [], [], [0]
    for d in sorted(per_doc):
        segs = [s for s in per_doc[d] if s]
        if len(segs) < 2:
            continue
        for s in segs:
            ids.extend(s)
            lengths.append(len(s))
            doc.append(len(doc_start) - 1)
        doc_start.append(len(doc))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Segments(np.asarray(ids, dtype=np.int64), offsets, np.asarray(doc, dtype=np.int64),
                    np.asarray(doc_start, dtype=np.int64))


def make_chunks(seg: Segments, max_body: int) -> np.ndarray:
    """Group each document's consecutive segments into chunks of at most `max_body` tokens and at
    least two segments. Returns int64 [chunks, 3]: (document, first segment, end segment)."""
    chunks: list[list[int]] = []
    for d in range(seg.n_docs):
        lo, hi = int(seg.doc_start[d]), int(seg.doc_start[d + 1])
        first, total, doc_chunks = lo, 0, []
        for i in range(lo, hi):
            n = seg.length(i)
            if i > first and total + n > max_body:
                if i - first >= 2:
                    doc_chunks.append([d, first, i])
                    first, total = i, 0
                else:  # cannot happen with segments of at most max_body // 2 tokens
                    first, total = i, 0
            total += n
        if hi - first >= 2:
            doc_chunks.append([d, first, hi])
        elif doc_chunks and sum(seg.length(i) for i in range(doc_chunks[-1][1], hi)) <= max_body:
            doc_chunks[-1][2] = hi  # a lone last segment joins the previous chunk
        chunks += doc_chunks
    return np.asarray(chunks, dtype=np.int64).reshape(-1, 3)


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    """Uniform integer in [lo, hi)."""
    return lo + int(torch.randint(hi - lo, (1,), generator=g))


@dataclass
class PairBuilder:
    """Turns chunks into framed sentence pairs (see the module docstring)."""

    segments: Segments
    chunks: np.ndarray
    kind: str  # "nsp" | "sop"
    seq_len: int
    cls_id: int
    sep_id: int
    pad_id: int

    def __post_init__(self) -> None:
        if self.kind not in ("nsp", "sop"):
            raise ConfigError(f"pair objective must be nsp or sop, got {self.kind!r}")
        if len(self.chunks) == 0:
            raise ConfigError("no document has two sentences: sentence-pair objectives need multi-sentence documents")
        if self.kind == "nsp" and self.segments.n_docs < 2:
            raise ConfigError("next-sentence prediction needs at least two documents (negatives come from another one)")

    @property
    def max_body(self) -> int:
        return self.seq_len - 3

    def _tokens(self, first: int, end: int) -> np.ndarray:
        return self.segments.ids[self.segments.offsets[first]:self.segments.offsets[end]]

    def example(self, chunk: int, negative: bool, g: torch.Generator) -> dict[str, Any]:
        """One pair before framing: token arrays `a`, `b`, the label and where A and B came from
        (`a_doc`, `a_segments`, `b_doc`, `b_segments`, as (first, end) global segment indices)."""
        d, first, end = (int(x) for x in self.chunks[chunk])
        split = _randint(first + 1, end, g)  # A = [first, split), B = [split, end), both non-empty
        a_seg, b_seg, b_doc = (first, split), (split, end), d
        if negative and self.kind == "nsp":
            other = _randint(0, self.segments.n_docs - 1, g)
            other += other >= d  # uniform over the other documents
            lo, hi = int(self.segments.doc_start[other]), int(self.segments.doc_start[other + 1])
            want = int(self.segments.offsets[end] - self.segments.offsets[split])  # length of the B it replaces
            start = _randint(lo, hi, g)
            stop, total = start, 0
            while stop < hi and (stop == start or total < want):
                total += self.segments.length(stop)
                stop += 1
            b_seg, b_doc = (start, stop), other
        a, b = self._tokens(*a_seg), self._tokens(*b_seg)
        b = b[: self.max_body - len(a)]
        if negative and self.kind == "sop":
            a, b = b, a  # same two segments, swapped
            a_seg, b_seg = b_seg, a_seg
        return {"a": a, "b": b, "label": NOT_NEXT if negative else IS_NEXT, "a_doc": d, "b_doc": b_doc,
                "a_segments": a_seg, "b_segments": b_seg}

    def frame(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        """[CLS] A [SEP] B [SEP] + padding, with token types and attention mask."""
        n = len(examples)
        ids = np.full((n, self.seq_len), self.pad_id, dtype=np.int64)
        types = np.zeros((n, self.seq_len), dtype=np.int64)
        attn = np.zeros((n, self.seq_len), dtype=np.int64)
        for r, ex in enumerate(examples):
            a, b = ex["a"], ex["b"]
            la, lb = len(a), len(b)
            ids[r, 0] = self.cls_id
            ids[r, 1:1 + la] = a
            ids[r, 1 + la] = self.sep_id
            ids[r, 2 + la:2 + la + lb] = b
            ids[r, 2 + la + lb] = self.sep_id
            types[r, 2 + la:3 + la + lb] = 1
            attn[r, :3 + la + lb] = 1
        return {"input_ids": torch.from_numpy(ids), "token_type_ids": torch.from_numpy(types),
                "attention_mask": torch.from_numpy(attn),
                "next_sentence_label": torch.tensor([ex["label"] for ex in examples], dtype=torch.long)}

    def build(self, chunk_ids: Sequence[int], g: torch.Generator, describe: bool = False):
        """Framed (unmasked) pairs for `chunk_ids`; exactly half of them (rounded down) negatives.
        With `describe`, also the per-example provenance dicts."""
        n = len(chunk_ids)
        negative = torch.zeros(n, dtype=torch.bool)
        negative[torch.randperm(n, generator=g)[: n // 2]] = True
        examples = [self.example(int(c), bool(neg), g) for c, neg in zip(chunk_ids, negative)]
        framed = self.frame(examples)
        return (framed, examples) if describe else framed


class PairLoss(torch.nn.Module):
    """forward(**batch) -> summed MLM cross-entropy over masked positions + summed, `pair_weight`-
    scaled sentence-pair cross-entropy (see the module docstring). The MLM output layer runs on the
    masked positions only, as in `pretrain.MLMLoss`."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        if not (hasattr(model, "bert") and hasattr(getattr(model, "cls", None), "seq_relationship")):
            raise ConfigError(f"sentence-pair objectives need a BertForPreTraining model, got {type(model).__name__}")
        self.model = model

    def _outputs(self, input_ids, labels, attention_mask, token_type_ids):
        out = self.model.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        picked = labels != IGNORE_INDEX
        mlm_logits = self.model.cls.predictions(out.last_hidden_state[picked]).float()
        pair_logits = self.model.cls.seq_relationship(out.pooler_output).float()
        return mlm_logits, labels[picked], pair_logits

    def forward(self, input_ids, labels, next_sentence_label, pair_weight, attention_mask=None, token_type_ids=None,
                **_) -> torch.Tensor:
        mlm_logits, target, pair_logits = self._outputs(input_ids, labels, attention_mask, token_type_ids)
        mlm = F.cross_entropy(mlm_logits, target, reduction="sum")
        pair = (F.cross_entropy(pair_logits, next_sentence_label, reduction="none") * pair_weight.float()).sum()
        return mlm + pair

    def predict(self, input_ids, labels, next_sentence_label, attention_mask=None, token_type_ids=None, **_):
        """(MLM loss sum, MLM correct, pair loss sum, pair correct)."""
        mlm_logits, target, pair_logits = self._outputs(input_ids, labels, attention_mask, token_type_ids)
        return (F.cross_entropy(mlm_logits, target, reduction="sum"), (mlm_logits.argmax(-1) == target).sum(),
                F.cross_entropy(pair_logits, next_sentence_label, reduction="sum"),
                (pair_logits.argmax(-1) == next_sentence_label).sum())


@dataclass
class PairTask:
    """Sentence pairs + MLM masks -> the engine's Task (see the module docstring). Validation pairs
    and their masks are drawn once with a fixed seed, so validation metrics are deterministic."""

    train: PairBuilder
    val: PairBuilder
    masker: Masker
    batch_size: int
    seed: int = 0
    eval_batches: int = 20
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        n = len(self.train.chunks)
        if n < self.batch_size:
            raise ConfigError(f"the training set makes {n} sentence pairs, fewer than one batch of {self.batch_size}: "
                              "use more text, a smaller --batch-size or a shorter --seq-len")
        g = generator_for(self.seed + 7919, 0)
        k = min(len(self.val.chunks), self.eval_batches * self.eval_batch_size)
        self.val_fixed = self._mask(self.val.build(range(k), g), g) if k else {}

    def _mask(self, framed: dict[str, torch.Tensor], g: torch.Generator) -> dict[str, torch.Tensor]:
        corrupted, labels = self.masker(framed["input_ids"], g)
        return {**framed, "input_ids": corrupted, "labels": labels}

    def size(self) -> int:
        return len(self.train.chunks)

    def steps_per_epoch(self) -> int:
        return len(self.train.chunks) // self.batch_size

    def batch(self, step: int, describe: bool = False):
        idx = batch_indices(len(self.train.chunks), self.batch_size, self.seed, step).tolist()
        g = generator_for(self.seed, step)
        framed, examples = self.train.build(idx, g, describe=True)
        out = self._mask(framed, g)
        masked = int((out["labels"] != IGNORE_INDEX).sum())
        out["pair_weight"] = torch.full((len(idx),), max(masked, 1) / len(idx), dtype=torch.float32)
        return (out, examples) if describe else out

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum())

    def training_module(self, model) -> torch.nn.Module:
        return PairLoss(model)

    def evaluate(self, module, accelerator) -> dict[str, float]:
        if not self.val_fixed:
            return {}
        core = accelerator.unwrap_model(module)
        n = len(self.val_fixed["input_ids"])
        rank, world = accelerator.process_index, accelerator.num_processes
        # mlm loss, mlm correct, mlm count, pair loss, pair correct, pairs
        sums = torch.zeros(6, device=accelerator.device)
        for start in range(rank * self.eval_batch_size, n, world * self.eval_batch_size):
            b = {k: v[start:start + self.eval_batch_size].to(accelerator.device) for k, v in self.val_fixed.items()}
            ml, mc, pl, pc = core.predict(**b)
            sums += torch.stack([ml.float(), mc.float(), (b["labels"] != IGNORE_INDEX).sum().float(), pl.float(),
                                 pc.float(), torch.tensor(float(len(b["input_ids"])), device=sums.device)])
        ml, mc, mn, pl, pc, pn = accelerator.reduce(sums, reduction="sum").tolist()
        mean = ml / max(mn, 1)
        return {"val_loss": round(mean, 5), "val_perplexity": round(float(np.exp(min(mean, 50))), 3),
                "val_accuracy": round(mc / max(mn, 1), 5), "val_pair_loss": round(pl / max(pn, 1), 5),
                "val_pair_accuracy": round(pc / max(pn, 1), 5)}


def pair_kind(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "mlm":
        raise ConfigError("objective mlm has no sentence-pair task (use pretrain.MLMTask)")
    return objective.split("+")[1]


def make_pair_builder(texts: Sequence[str], tokenizer, seq_len: int, kind: str) -> PairBuilder:
    max_body = seq_len - 3
    seg = segment_documents(texts, tokenizer, max_body // 2)
    return PairBuilder(seg, make_chunks(seg, max_body), kind, seq_len, tokenizer.cls_token_id, tokenizer.sep_token_id,
                       tokenizer.pad_token_id)


def make_pair_task(corpus, tokenizer, masker: Masker, cfg: PretrainConfig) -> PairTask:
    """The Task of `cfg.objective` ("mlm+nsp" | "mlm+sop") on a DatasetDict with train/validation
    documents (`text`). Used by `pretrain.pretrain`."""
    kind = pair_kind(cfg.objective)
    if cfg.train.seq_len < 8:
        raise ConfigError(f"seq_len {cfg.train.seq_len} is too short for sentence pairs")
    train = make_pair_builder(list(corpus["train"]["text"]), tokenizer, cfg.train.seq_len, kind)
    val_texts = list(corpus["validation"]["text"]) if "validation" in corpus else []
    try:
        val = make_pair_builder(val_texts, tokenizer, cfg.train.seq_len, kind)
    except ConfigError:  # too little validation text for pairs: no pair validation metrics
        val = copy.copy(train)
        val.chunks = train.chunks[:0]
    return PairTask(train, val, masker, cfg.train.batch_size, seed=cfg.train.seed, eval_batches=cfg.train.eval_batches)


def describe_pair(tokenizer, batch: dict[str, torch.Tensor], row: int = 0) -> dict[str, Any]:
    """A readable view of one example of a pair batch: the two segments as text, the label name."""
    ids = batch["input_ids"][row]
    keep = batch["attention_mask"][row].bool()
    types = batch["token_type_ids"][row]
    a = tokenizer.decode(ids[keep & (types == 0)].tolist())
    b = tokenizer.decode(ids[keep & (types == 1)].tolist())
    label = int(batch["next_sentence_label"][row])
    return {"segment_a": a, "segment_b": b, "label": label,
            "meaning": "original / is next" if label == IS_NEXT else "swapped or random"}
