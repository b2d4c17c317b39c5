"""Fixtures of the SFT/DPO/LoRA/export tests: a chat tokenizer trained on the bundled sample, and a run folder
holding a tiny "pretrained" checkpoint (see helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.finetune.helpers import train_chat_tokenizer, write_start_checkpoint


@pytest.fixture(scope="session")
def chat_tokenizer_path(tmp_path_factory) -> Path:
    return train_chat_tokenizer(tmp_path_factory.mktemp("chat_tok") / "tokenizer.model")


@pytest.fixture
def start_run(tmp_path, chat_tokenizer_path) -> Path:
    run = tmp_path / "pretrain"
    write_start_checkpoint(run, chat_tokenizer_path)
    return run
