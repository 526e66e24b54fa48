"""Pre-training objectives beyond MLM: sentence pairs (NSP, SOP) and contrastive sentence embeddings (SimCSE).

Sentence pairs
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

Contrastive sentence embeddings (unsupervised SimCSE)
----------------------------------------------------
Gao, Yao & Chen (2021): pass every sentence of a batch through the encoder twice; the two dropout
masks make two slightly different views z_i and z'_i. Each z_i must pick its own partner among all
z'_j of the batch (in-batch negatives):

    loss_i = -log( exp(cos(z_i, z'_i) / tau) / sum_j exp(cos(z_i, z'_j) / tau) ),   tau = 0.05

Sentence vectors are mean-pooled last hidden states over the non-padding tokens. `train_simcse`
runs it on the shared engine (metrics.jsonl, checkpoints, resume) through `SimCSETask`; evaluation is
same-label retrieval precision@k on a labelled task (TREC question types by default) before and after.
Negatives are the other sentences of the same micro-batch on the same process, so with
`grad_accum > 1` or several processes each sentence sees fewer negatives than the global batch.

For the app's Similarity tab: `load_encoder(path)` once, then `sentence_similarity(model, tok, a, b)`,
`embed(model, tok, texts)` + `cosine_similarity(x, y)`, and `nearest_neighbours(query, texts, model, tok)`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import runs
from .config import ConfigError, DataConfig, PretrainConfig, TrainConfig
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
        token_lists += tokenizer(sentences[start:start + batch_size], add_special_tokens=False, verbose=False)["input_ids"]
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
    return Segments(np.asarray(ids, dtype=np.int64), offsets, np.asarray(doc, dtype=np.int64), np.asarray(doc_start, dtype=np.int64))


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
        sums = torch.zeros(6, device=accelerator.device)  # mlm loss, mlm correct, mlm count, pair loss, pair correct, pairs
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
    return {"segment_a": a, "segment_b": b, "label": label, "meaning": "original / is next" if label == IS_NEXT else "swapped or random"}


# ==== contrastive sentence embeddings (SimCSE) ============================================================

def simcse_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.05, reduction: str = "mean") -> torch.Tensor:
    """InfoNCE with in-batch negatives: row i of the cosine-similarity matrix cos(z1_i, z2_j) / tau
    is a softmax over j whose right answer is j = i. `reduction`: mean | sum | none."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be [batch, dim], got {tuple(z1.shape)} and {tuple(z2.shape)}")
    sim = F.normalize(z1.float(), dim=-1) @ F.normalize(z2.float(), dim=-1).T / temperature
    return F.cross_entropy(sim, torch.arange(len(z1), device=z1.device), reduction=reduction)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors over the real (non-padding) tokens, [CLS] and [SEP] included."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1)


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The bare encoder of a model with a head (BertForMaskedLM -> BertModel); the model itself otherwise."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


def encode_batch(model: torch.nn.Module, input_ids, attention_mask, token_type_ids=None, pooling: str = "mean") -> torch.Tensor:
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    hidden = _encoder(model)(**kwargs).last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ConfigError(f"pooling must be mean or cls, got {pooling!r}")
    return mean_pool(hidden, attention_mask)


@torch.no_grad()
def embed(model: torch.nn.Module, tokenizer, texts: Sequence[str] | str, batch_size: int = 64, max_length: int = 128,
          pooling: str = "mean", normalize: bool = True) -> torch.Tensor:
    """Sentence vectors [len(texts), hidden] (float32, on the CPU), mean-pooled, unit length by
    default. Texts are sorted by length for batching and returned in the input order. The model is
    put in eval mode (no dropout) and left there."""
    if isinstance(texts, str):
        texts = [texts]
    texts = [t if t and t.strip() else (tokenizer.unk_token or " ") for t in texts]
    if not texts:
        raise ValueError("no texts to embed")
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), _hidden_size(model))
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        v = encode_batch(model, enc["input_ids"].to(device), enc["attention_mask"].to(device), pooling=pooling).float().cpu()
        out[idx] = F.normalize(v, dim=-1) if normalize else v
    return out


def _hidden_size(model) -> int:
    cfg = getattr(model, "config", None)
    for name in ("hidden_size", "dim", "d_model"):
        if cfg is not None and getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError(f"cannot tell the hidden size of {type(model).__name__}")


def cosine_similarity(a, b) -> torch.Tensor | float:
    """Cosine similarity of vectors: [d] x [d] -> float; [n, d] x [m, d] -> [n, m] tensor."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if a.ndim == 1 and b.ndim == 1:
        return float(F.cosine_similarity(a, b, dim=0))
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def sentence_similarity(model, tokenizer, text_a: str, text_b: str, pooling: str = "mean") -> float:
    """Cosine similarity of the mean-pooled embeddings of two texts (the app's Similarity tab)."""
    v = embed(model, tokenizer, [text_a, text_b], pooling=pooling)
    return float(v[0] @ v[1])


def nearest_neighbours(query: str, corpus_texts: Sequence[str], model, tokenizer, k: int = 5,
                       corpus_embeddings: Optional[torch.Tensor] = None, pooling: str = "mean") -> list[dict]:
    """The `k` texts of `corpus_texts` closest to `query` by cosine similarity of mean-pooled
    embeddings: [{"rank", "index", "text", "score"}], best first. Pass `corpus_embeddings`
    (from `embed`) to search the same corpus repeatedly without re-encoding it."""
    if not corpus_texts:
        raise ValueError("the corpus to search is empty")
    c = corpus_embeddings if corpus_embeddings is not None else embed(model, tokenizer, list(corpus_texts), pooling=pooling)
    q = embed(model, tokenizer, [query], pooling=pooling)[0]
    scores = F.normalize(c.float(), dim=-1) @ q
    top = torch.topk(scores, min(k, len(scores)))
    return [{"rank": r + 1, "index": int(i), "text": corpus_texts[int(i)], "score": round(float(s), 4)}
            for r, (s, i) in enumerate(zip(top.values, top.indices))]


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


def corpus_sentences(texts: Sequence[str], n: Optional[int] = None, seed: int = 0, min_words: int = 5,
                     max_words: int = 60) -> list[str]:
    """Distinct sentences of `min_words`..`max_words` words from documents; `n` of them in a seeded
    random order (all, shuffled, when n is None)."""
    seen, out = set(), []
    for t in texts:
        for s in split_sentences(t):
            w = len(s.split())
            if min_words <= w <= max_words and s not in seen:
                seen.add(s)
                out.append(s)
    order = torch.randperm(len(out), generator=torch.Generator().manual_seed(seed)).tolist()
    return [out[i] for i in order[:n]] if n else [out[i] for i in order]


class _quiet_transformers:
    """transformers at error verbosity and without progress bars ("Loading weights", "newly
    initialised pooler"): keeps notebook and CLI output readable."""

    def __enter__(self):
        import transformers

        self.level = transformers.logging.get_verbosity()
        self.bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()

    def __exit__(self, *exc):
        import transformers

        transformers.logging.set_verbosity(self.level)
        if self.bars:
            transformers.utils.logging.enable_progress_bar()


def load_encoder(path: str | Path, dropout: Optional[float] = None, attention: bool = False):
    """(encoder, tokenizer) from a run directory, checkpoint, SimCSE run or any transformers model
    directory: an AutoModel without task head (for masked-LM checkpoints, the encoder part)."""
    from transformers import AutoConfig, AutoModel

    from .tokenizer import load_tokenizer

    p = Path(path).expanduser()
    model_dir, tok_dir = runs.resolve_model_dir(p) if p.exists() else (path, path)
    config = AutoConfig.from_pretrained(str(model_dir))
    if dropout is not None:
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, name):
                setattr(config, name, dropout)
    kwargs = {"attn_implementation": "eager"} if attention else {}
    with _quiet_transformers():
        model = AutoModel.from_pretrained(str(model_dir), config=config, dtype=torch.float32, **kwargs)
    return model, load_tokenizer(tok_dir)


def _simcse_train_defaults() -> TrainConfig:
    # SimCSE (unsupervised): batch 64, max length 32, one pass, linear decay, no warm-up.
    return TrainConfig(batch_size=64, seq_len=32, packing=False, lr=5e-5, weight_decay=0.0, warmup=0.0,
                       schedule="linear", epochs=1.0, eval_every=100, eval_batches=4, log_every=10, save_every=500,
                       keep_checkpoints=1)


@dataclass
class SimCSEConfig:
    data: DataConfig = field(default_factory=DataConfig)  # where the unlabelled sentences come from
    max_sentences: Optional[int] = 20000  # training sentences drawn from the corpus
    min_words: int = 5
    temperature: float = 0.05
    pooling: str = "mean"  # mean | cls
    dropout: Optional[float] = None  # override the encoder's dropout (the augmentation); None keeps it
    eval_task: str = "trec"  # labelled task for retrieval precision@k (workbench.tasks)
    eval_examples: int = 500  # labelled examples per retrieval evaluation
    k: int = 10
    train: TrainConfig = field(default_factory=_simcse_train_defaults)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be mean or cls, got {self.pooling!r}")


class SimCSELoss(torch.nn.Module):
    """forward(input_ids, attention_mask) -> summed SimCSE loss of the batch: the batch goes through
    the encoder once, duplicated, so the two copies of each sentence get different dropout masks."""

    def __init__(self, model: torch.nn.Module, temperature: float, pooling: str = "mean"):
        super().__init__()
        self.model, self.temperature, self.pooling = model, temperature, pooling

    def forward(self, input_ids, attention_mask, **_) -> torch.Tensor:
        n = len(input_ids)
        z = encode_batch(self.model, input_ids.repeat(2, 1), attention_mask.repeat(2, 1), pooling=self.pooling)
        return simcse_loss(z[:n], z[n:], self.temperature, reduction="sum")


def _pad(token_lists: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(token_lists), width), dtype=torch.long)
    for r, t in enumerate(token_lists):
        ids[r, :len(t)] = torch.tensor(list(t), dtype=torch.long)
        attn[r, :len(t)] = 1
    return {"input_ids": ids, "attention_mask": attn}


@dataclass
class SimCSETask:
    """Tokenised sentences -> the engine's Task. A step's batch is an epoch-seeded permutation slice
    (a pure function of (seed, step)), padded to its longest sentence.

    Evaluation: `val_loss` is the SimCSE loss on held-out sentences with dropout on (under a forked,
    fixed-seed RNG, so it is deterministic and leaves training's RNG alone);
    `val_precision_at_<k>` is same-label retrieval precision@k on the labelled examples;
    `val_uniformity` the Wang & Isola uniformity of their embeddings."""

    train_ids: list[list[int]]
    val_ids: list[list[int]]
    eval_texts: list[str]
    eval_labels: list
    tokenizer: Any
    batch_size: int
    temperature: float = 0.05
    pooling: str = "mean"
    k: int = 10
    seed: int = 0
    eval_batches: int = 4
    max_length: int = 32

    def __post_init__(self) -> None:
        if len(self.train_ids) < self.batch_size:
            raise ConfigError(f"{len(self.train_ids)} training sentences, fewer than one batch of {self.batch_size}")

    def steps_per_epoch(self) -> int:
        return len(self.train_ids) // self.batch_size

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = batch_indices(len(self.train_ids), self.batch_size, self.seed, step).tolist()
        return _pad([self.train_ids[i] for i in idx], self.tokenizer.pad_token_id)

    def count(self, batch) -> int:
        return int(batch["input_ids"].shape[0])

    def tokens(self, batch) -> int:
        return 2 * int(batch["attention_mask"].sum())  # every sentence is encoded twice

    def training_module(self, model) -> torch.nn.Module:
        return SimCSELoss(model, self.temperature, self.pooling)

    def evaluate(self, module, accelerator) -> dict[str, float]:
        core = accelerator.unwrap_model(module)
        out: dict[str, float] = {}
        if len(self.val_ids) >= 2:
            total, n = 0.0, 0
            core.train()
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(self.seed + 7919)
                for b in range(self.eval_batches):
                    chunk = self.val_ids[b * self.batch_size:(b + 1) * self.batch_size]
                    if len(chunk) < 2:
                        break
                    batch = {k: v.to(accelerator.device) for k, v in _pad(chunk, self.tokenizer.pad_token_id).items()}
                    total += float(core(**batch))
                    n += len(chunk)
            core.eval()
            out["val_loss"] = round(total / max(n, 1), 5)
        if len(self.eval_texts) >= 2:
            e = embed(core.model, self.tokenizer, self.eval_texts, max_length=self.max_length, pooling=self.pooling)
            out[f"val_precision_at_{self.k}"] = round(retrieval_precision_at_k(e, self.eval_labels, self.k), 5)
            out["val_uniformity"] = round(uniformity(e), 5)
        return out


def retrieval_report(model, tokenizer, texts: Sequence[str], labels: Sequence, k: int = 10, max_length: int = 64,
                     pooling: str = "mean") -> dict[str, float]:
    """precision@k, uniformity and chance level of one model's embeddings of a labelled set."""
    e = embed(model, tokenizer, list(texts), max_length=max_length, pooling=pooling)
    _, counts = np.unique(np.asarray(list(labels)), return_counts=True)
    share = counts / counts.sum()
    return {f"precision_at_{k}": round(retrieval_precision_at_k(e, labels, k), 5), "uniformity": round(uniformity(e), 5),
            "chance": round(float((share ** 2).sum()), 5), "examples": len(texts)}


def train_simcse(model_path: str | Path, out_dir: str | Path, cfg: Optional[SimCSEConfig] = None, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, callbacks: tuple = (), corpus=None, task_data=None) -> dict:
    """Unsupervised SimCSE on top of a pre-trained encoder (a run directory via runs.resolve_model_dir,
    or any AutoModel directory). Writes a run directory (config.json, tokenizer/, metrics.jsonl,
    checkpoints/, model/ = the contrastively trained encoder + tokenizer, summary.json, retrieval.json)
    and returns the summary, with `retrieval` = precision@k on the labelled task's test split before
    and after training."""
    from .config import save_config
    from .data import load_corpus
    from .tasks import load_task
    from .training import make_accelerator, train

    cfg = cfg or SimCSEConfig()
    t0 = time.perf_counter()
    accelerator = make_accelerator(cfg.train)
    run_dir = Path(out_dir)
    if accelerator.is_main_process:
        runs.prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
    accelerator.wait_for_everyone()
    torch.manual_seed(cfg.train.seed)
    model, tokenizer = load_encoder(model_path, dropout=cfg.dropout)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused by mean pooling; keeps every parameter in the graph (DDP)
    drop = getattr(model.config, "hidden_dropout_prob", getattr(model.config, "dropout", None))
    if drop is not None and drop <= 0:
        raise ConfigError("the encoder has no dropout, which is SimCSE's only augmentation: pass dropout=0.1 (--dropout 0.1)")
    corpus = corpus if corpus is not None else load_corpus(cfg.data, seed=cfg.train.seed)
    train_sents = corpus_sentences(corpus["train"]["text"], cfg.max_sentences, cfg.train.seed, cfg.min_words)
    val_sents = corpus_sentences(corpus["validation"]["text"], cfg.train.eval_batches * cfg.train.batch_size,
                                 cfg.train.seed, cfg.min_words) if "validation" in corpus else []
    enc = lambda s: tokenizer(s, truncation=True, max_length=cfg.train.seq_len, verbose=False)["input_ids"] if s else []
    task_data = task_data if task_data is not None else load_task(cfg.eval_task)
    val_split = task_data["validation"].select(range(min(cfg.eval_examples, len(task_data["validation"]))))
    test_split = task_data["test"].select(range(min(cfg.eval_examples, len(task_data["test"]))))
    task = SimCSETask(enc(train_sents), enc(val_sents), list(val_split["text"]), list(val_split["label"]), tokenizer,
                      cfg.train.batch_size, cfg.temperature, cfg.pooling, cfg.k, cfg.train.seed, cfg.train.eval_batches,
                      cfg.train.seq_len)
    before = retrieval_report(model, tokenizer, test_split["text"], test_split["label"], cfg.k, pooling=cfg.pooling)
    if accelerator.is_main_process:
        save_config(cfg, run_dir / runs.CONFIG)
        tokenizer.save_pretrained(str(run_dir / runs.TOKENIZER))
    accelerator.print(f"SimCSE: {len(train_sents):,} training sentences, {len(val_sents):,} validation sentences; "
                      f"retrieval on {task_data.name} ({len(val_split)} validation / {len(test_split)} test examples); "
                      f"prepared in {time.perf_counter() - t0:.1f}s")
    summary = train(model, task, cfg.train, run_dir, resume=resume, callbacks=callbacks, accelerator=accelerator,
                    progress=progress, desc="simcse")
    model.eval()
    after = retrieval_report(model, tokenizer, test_split["text"], test_split["label"], cfg.k, pooling=cfg.pooling)
    retrieval = {"task": task_data.name, "split": "test", "k": cfg.k, "before": before, "after": after}
    summary.update(retrieval=retrieval, sentences=len(train_sents), run_dir=str(run_dir), model=str(model_path))
    if accelerator.is_main_process:
        with _quiet_transformers():
            model.save_pretrained(str(run_dir / runs.MODEL), safe_serialization=True)
        tokenizer.save_pretrained(str(run_dir / runs.MODEL))
        (run_dir / "retrieval.json").write_text(json.dumps(retrieval, indent=2) + "\n", encoding="utf-8")
        (run_dir / runs.SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    return summary


def compare_neighbours(query: str, corpus_texts: Sequence[str], models: dict[str, tuple], k: int = 5) -> list[dict]:
    """Nearest neighbours of `query` under several (model, tokenizer) pairs, one row per (model, rank)."""
    rows = []
    for name, (model, tok) in models.items():
        for r in nearest_neighbours(query, corpus_texts, model, tok, k=k):
            rows.append({"model": name, **r})
    return rows


# ==== comparing objectives at equal compute (notebook 06) ===========================================

def mlm_eval_standard(run_dir: str | Path, corpus, seq_len: int = 128, batches: int = 8, seed: int = 0) -> dict:
    """MLM validation metrics of a run's model with *standard* masking (15% tokens, 80/10/10) on packed
    validation blocks, so runs trained with other masking rates or strategies are scored alike."""
    from transformers import AutoModelForMaskedLM

    from .config import MaskingConfig
    from .pretrain import MLMLoss, MLMTask, make_blocks
    from .tokenizer import load_tokenizer

    model_dir, tok_dir = runs.resolve_model_dir(run_dir)
    tokenizer = load_tokenizer(tok_dir)
    with _quiet_transformers():
        model = AutoModelForMaskedLM.from_pretrained(str(model_dir), dtype=torch.float32)
    blocks = make_blocks(corpus["validation"], tokenizer, TrainConfig(seq_len=seq_len, packing=True), "tokenize validation")
    task = MLMTask(blocks, blocks, Masker.from_tokenizer(tokenizer, MaskingConfig(seed=seed)), batch_size=1, seed=seed,
                   eval_batches=batches)
    module = MLMLoss(model).eval()
    loss = correct = count = 0.0
    with torch.no_grad():
        for start in range(0, len(task.val_fixed["input_ids"]), task.eval_batch_size):
            b = {k: v[start:start + task.eval_batch_size] for k, v in task.val_fixed.items()}
            l, c = module.predict(**b)
            loss, correct, count = loss + float(l), correct + float(c), count + float((b["labels"] != IGNORE_INDEX).sum())
    return {"mlm15_loss": round(loss / max(count, 1), 4), "mlm15_accuracy": round(correct / max(count, 1), 4)}


def compare_pretraining(variants: dict[str, dict], base: PretrainConfig, out_dir: str | Path, *, corpus=None,
                        finetune_task: str = "trec", finetune_steps: int = 200, finetune_examples: int = 1000,
                        finetune_seq_len: int = 48, finetune_lr: float = 1e-3, scratch_baseline: bool = True,
                        verbose: bool = True):
    """Pre-train one short run per variant (overrides of `base`, e.g. {"objective": "mlm+sop"} or
    {"masking": {"mlm_probability": 0.3}}) with the same time budget, fine-tune each for the same
    number of steps on `finetune_task`, and return a pandas DataFrame, one row per variant (plus a
    'no pre-training' row with `scratch_baseline`: the first variant's architecture, random weights).
    Each variant's own `train.seed` also seeds its fine-tuning. Run directories: OUT/<variant>/pretrain
    and OUT/<variant>/finetune (the variant name with anything but letters, digits and _.+- as '-').
    `mlm15_*` columns score every model with the same standard masks (15% tokens), so runs trained
    with other masking rates or strategies compare on one scale."""
    import pandas as pd

    from .config import from_dict
    from .data import load_corpus
    from .finetune import FinetuneConfig, finetune
    from .pretrain import pretrain
    from .tasks import load_task

    out = Path(out_dir)
    corpus = corpus if corpus is not None else load_corpus(base.data, seed=base.train.seed)
    task_data = load_task(finetune_task, train_examples=finetune_examples, seed=base.train.seed)

    def ft(model: str, run: Path, seed: int, scratch: bool = False) -> dict:
        fcfg = FinetuneConfig(model=model, task=finetune_task, from_scratch=scratch, train_examples=finetune_examples,
                              eval_examples=200)
        fcfg.train.max_steps, fcfg.train.epochs = finetune_steps, None
        fcfg.train.seq_len, fcfg.train.lr, fcfg.train.seed = finetune_seq_len, finetune_lr, seed
        fcfg.train.precision, fcfg.train.device, fcfg.train.threads = base.train.precision, base.train.device, base.train.threads
        with contextlib.redirect_stdout(io.StringIO()):  # one line per variant is printed below instead
            s = finetune(fcfg, run, overwrite=True, progress=False, task_data=task_data)
        return {"downstream_accuracy": round(s["test"]["accuracy"], 4), "downstream_macro_f1": round(s["test"]["macro_f1"], 4)}

    rows = []
    first_run = None
    for name, overrides in variants.items():
        cfg = from_dict(PretrainConfig, overrides, copy.deepcopy(base))
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-") or "variant"
        run = out / slug / "pretrain"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            s = pretrain(cfg, run, overwrite=True, progress=False, corpus=corpus)
        first_run = first_run or run
        row = {"variant": name, "objective": cfg.objective, "mask_rate": cfg.masking.mlm_probability,
               "strategy": cfg.masking.mask_strategy, "steps": s["steps"], "tokens": s["tokens"],
               "train_s": s["train_time"], "val_mlm_accuracy": s.get("val_accuracy"),
               "val_pair_accuracy": s.get("val_pair_accuracy")}
        row.update(mlm_eval_standard(run, corpus, seq_len=cfg.train.seq_len, seed=base.train.seed))
        row.update(ft(str(run), out / slug / "finetune", cfg.train.seed))
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        if verbose:
            print(f"{name}: {row['steps']} steps, {row['tokens']:,} tokens; MLM accuracy (15% token masks) "
                  f"{row['mlm15_accuracy']:.3f}; {finetune_task} test accuracy {row['downstream_accuracy']:.3f} "
                  f"({row['wall_s']:.0f}s)", flush=True)
    if scratch_baseline and first_run is not None:
        row = {"variant": "no pre-training", "objective": "-", "mask_rate": None, "strategy": "-", "steps": 0, "tokens": 0,
               "train_s": 0.0, "val_mlm_accuracy": None, "val_pair_accuracy": None, "mlm15_loss": None, "mlm15_accuracy": None}
        row.update(ft(str(first_run), out / "no-pretraining" / "finetune", base.train.seed, scratch=True))
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


# ==== CLI (workbench/cli.py wires `add_simcse_command`) ==============================================

def add_simcse_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench simcse MODEL --out RUN [--max-sentences N] [--temperature 0.05] [--time-budget 2m] ...`"""
    from .config import add_arguments

    parser.add_argument("model", help="pre-trained run directory, checkpoint or model directory")
    parser.add_argument("--out", "-o", default=None, help="run directory (default: runs/simcse-MODELNAME)")
    parser.add_argument("--config", default=None, help="YAML/JSON file with SimCSEConfig values (flags override it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory (kept as RUN.old-N)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--query", default=None, help="also print the nearest corpus sentences to this text, before and after")
    add_arguments(parser, SimCSEConfig, skip=("train.packing", "data.streaming"))


def run_simcse_cli(args: argparse.Namespace) -> int:
    from .config import from_dict, load_config_file, overrides_from_args

    base = load_config_file(args.config, SimCSEConfig) if args.config else SimCSEConfig()
    cfg = from_dict(SimCSEConfig, overrides_from_args(args, SimCSEConfig), base)
    out = args.out or str(Path("runs") / f"simcse-{Path(args.model).name}")
    s = train_simcse(args.model, out, cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    r = s["retrieval"]
    key = f"precision_at_{r['k']}"
    print(f"{r['task']} test retrieval precision@{r['k']}: before {r['before'][key]:.4f}, after {r['after'][key]:.4f} "
          f"(chance {r['after']['chance']:.4f}); {s['steps']} steps, {s['train_time']:.0f}s; model in {Path(out) / runs.MODEL}")
    if args.query:
        from .data import load_corpus

        corpus = load_corpus(cfg.data, seed=cfg.train.seed)
        sample = corpus_sentences(corpus["validation"]["text"], 2000, cfg.train.seed, cfg.min_words)
        for name, path in (("before", args.model), ("after", out)):
            model, tok = load_encoder(path)
            print(f"\nnearest to {args.query!r} ({name}):")
            for r in nearest_neighbours(args.query, sample, model, tok, k=5):
                print(f"  {r['score']:.3f}  {r['text'][:110]}")
    return 0


def add_simcse_command(sub) -> None:
    """Register `workbench simcse` on the CLI's subparsers."""
    p = sub.add_parser("simcse", help="contrastive sentence embeddings (unsupervised SimCSE) on a pre-trained encoder",
                       description="Train a pre-trained encoder with unsupervised SimCSE (each sentence twice with "
                       "dropout, in-batch negatives, temperature 0.05) on corpus sentences; report same-label "
                       "retrieval precision@k on a labelled task before and after.")
    add_simcse_arguments(p)
    p.set_defaults(func=run_simcse_cli)
