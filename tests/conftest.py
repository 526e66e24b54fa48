"""Shared fixtures: a small corpus slice and a tokenizer trained on it once per session."""

from __future__ import annotations

import pytest

from workbench.config import DataConfig, TokenizerConfig
from workbench.data import load_corpus
from workbench.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def small_corpus():
    return load_corpus(DataConfig(max_documents=120, validation_fraction=0.1))


@pytest.fixture(scope="session")
def tokenizer_dir(small_corpus, tmp_path_factory):
    """A WordPiece tokenizer saved once; runs that must be compared reuse it (tokenizer training in
    `tokenizers` breaks frequency ties in hash order, so two trainings can differ slightly)."""
    path = tmp_path_factory.mktemp("tok")
    train_tokenizer(small_corpus["train"]["text"], TokenizerConfig(vocab_size=2000)).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from workbench.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer_dir)
