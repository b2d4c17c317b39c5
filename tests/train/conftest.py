"""Fixtures of the trainer tests: a tokenizer and a token dataset built from real text (the docstrings of Python
standard-library modules, see helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.tokenizer import Tokenizer
from tests.train.helpers import stdlib_documents, train_sentencepiece, write_dataset


@pytest.fixture(scope="session")
def documents() -> list[str]:
    return stdlib_documents()


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory, documents) -> Path:
    return train_sentencepiece(tmp_path_factory.mktemp("tok") / "tokenizer.model", documents)


@pytest.fixture(scope="session")
def docs_dataset(tmp_path_factory, tokenizer_path, documents) -> Path:
    """The docstring corpus as one dataset: every 10th document held out for validation."""
    tok = Tokenizer(tokenizer_path)
    valid = documents[::10]
    train = [d for i, d in enumerate(documents) if i % 10]
    return write_dataset(tmp_path_factory.mktemp("tokenize") / "docs", tok, train, valid)
