"""Start a fresh masked LM from corpus statistics instead of pure noise (seconds on a CPU).

A masked LM's first minutes go to two things it could be told for free:
- **unigram output bias**: before it uses context, the best a model can do is predict each token by
  its corpus frequency. A fresh model starts at the uniform distribution (loss ln V, 9.0 for 8k tokens)
  and spends its first hundred steps learning the frequencies. Setting the output-layer bias to the
  log unigram probabilities starts it at the unigram loss instead (about 7.0 on the default corpus).
- **PPMI-SVD token embeddings**: word vectors from the positive pointwise mutual information of
  co-occurrence counts within a small window, reduced by a truncated SVD (Levy and Goldberg 2014:
  this is roughly what word2vec computes). Tokens that occur in similar contexts start close together
  before step 1.

Both are a pure function of the training blocks, so seeds and exact resume are unaffected. Neither
is in the BERT, Cramming or ModernBERT recipes; README.md reports what each gives here.
"""

from __future__ import annotations

import numpy as np
import torch

OUTPUT_BIAS_INITS = ("zero", "unigram")
EMBEDDING_INITS = ("random", "ppmi-svd")


def token_counts(blocks: torch.Tensor, vocab_size: int) -> np.ndarray:
    """How often each id occurs in `blocks` (int64 [vocab_size])."""
    return np.bincount(blocks.reshape(-1).numpy(), minlength=vocab_size)[:vocab_size].astype(np.int64)


def unigram_log_probs(blocks: torch.Tensor, vocab_size: int, special_ids: list[int]) -> torch.Tensor:
    """log p(token) from counts in `blocks` with add-one smoothing; special tokens, which are never
    predicted, get the smallest value. Float32 [vocab_size]."""
    counts = token_counts(blocks, vocab_size).astype(np.float64) + 1.0
    counts[[i for i in special_ids if i < vocab_size]] = 1.0
    return torch.from_numpy(np.log(counts / counts.sum())).float()


def ppmi_matrix(blocks: torch.Tensor, vocab_size: int, window: int = 2) -> torch.Tensor:
    """Sparse [V, V] matrix of positive PMI between ids co-occurring within `window` positions
    (symmetric), computed from `blocks` [N, L]."""
    ids = blocks.numpy().astype(np.int64)
    keys = []
    for k in range(1, window + 1):
        a, b = ids[:, :-k].reshape(-1), ids[:, k:].reshape(-1)
        keys += [a * vocab_size + b, b * vocab_size + a]
    pairs, counts = np.unique(np.concatenate(keys), return_counts=True)
    rows, cols = pairs // vocab_size, pairs % vocab_size
    counts = counts.astype(np.float64)
    total = counts.sum()
    row_sum = np.bincount(rows, weights=counts, minlength=vocab_size)
    col_sum = np.bincount(cols, weights=counts, minlength=vocab_size)
    pmi = np.log(counts * total / (row_sum[rows] * col_sum[cols]))
    keep = pmi > 0
    index = torch.from_numpy(np.stack([rows[keep], cols[keep]]))
    values = torch.from_numpy(pmi[keep]).float()
    return torch.sparse_coo_tensor(index, values, (vocab_size, vocab_size), check_invariants=False).coalesce()


def ppmi_svd_embeddings(blocks: torch.Tensor, vocab_size: int, dim: int, std: float, window: int = 2,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(vectors [V, dim], found [V] bool): U * sqrt(S) of a rank-`dim` SVD of the PPMI matrix, scaled so
    the found rows have element standard deviation `std` (the model's own init scale). Rows of ids
    that never co-occur with anything are zero and `found` is False for them."""
    ppmi = ppmi_matrix(blocks, vocab_size, window)
    generator_state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(seed)  # svd_lowrank draws a random projection
    # one thread: matmul sums in one order, so every process (and a 1- vs 2-process run) gets the same vectors
    torch.set_num_threads(1)
    try:
        # a dense matrix multiplies much faster than a sparse one up to ~16k x 16k (1 GB in float32)
        matrix = ppmi.to_dense() if vocab_size <= 16384 else ppmi
        u, s, _ = torch.svd_lowrank(matrix, q=min(dim, vocab_size), niter=4)
    finally:
        torch.set_rng_state(generator_state)
        torch.set_num_threads(threads)
    vectors = torch.zeros(vocab_size, dim)
    vectors[:, : u.shape[1]] = u * s.sqrt()
    found = torch.zeros(vocab_size, dtype=torch.bool)
    found[ppmi.indices()[0].unique()] = True
    vectors[~found] = 0.0  # the SVD leaves ~1e-9 noise in rows of an all-zero row
    scale = vectors[found].std()
    if found.any() and scale > 0:
        vectors = vectors * (std / scale)
    return vectors, found


def _output_bias(model: torch.nn.Module) -> torch.nn.Parameter:
    out = model.get_output_embeddings()
    bias = getattr(out, "bias", None)
    if bias is None:
        raise ValueError(f"{type(model).__name__}: its output layer has no bias to initialise")
    return bias


def apply_initialisation(model: torch.nn.Module, blocks: torch.Tensor, *, output_bias: str = "zero",
                         embedding_init: str = "random", special_ids: list[int] = (), seed: int = 0) -> dict:
    """Initialise `model` (a fresh masked LM) from the training `blocks` [N, L] as asked; returns what
    was done, for the log. Both options leave the model untouched when set to their defaults."""
    if output_bias not in OUTPUT_BIAS_INITS:
        raise ValueError(f"output_bias must be one of {', '.join(OUTPUT_BIAS_INITS)}, got {output_bias!r}")
    if embedding_init not in EMBEDDING_INITS:
        raise ValueError(f"embedding_init must be one of {', '.join(EMBEDDING_INITS)}, got {embedding_init!r}")
    done: dict = {}
    embedding = model.get_input_embeddings().weight
    vocab_size = embedding.shape[0]
    with torch.no_grad():
        if embedding_init == "ppmi-svd":
            std = float(embedding.std())
            vectors, found = ppmi_svd_embeddings(blocks, vocab_size, embedding.shape[1], std, seed=seed)
            embedding[found] = vectors[found].to(embedding.dtype)
            done["embedding_init"] = f"ppmi-svd for {int(found.sum())} of {vocab_size} tokens"
        if output_bias == "unigram":
            _output_bias(model).copy_(unigram_log_probs(blocks, vocab_size, list(special_ids)))
            done["output_bias"] = "log unigram probabilities"
    return done
