"""Helpers for the SFT/DPO/LoRA/export tests (imported by name: `from tests.finetune.helpers import ...`; the
fixtures built on them are in tests/finetune/conftest.py).

The tokenizer is trained as the tokenizer stage trains it (BPE, byte fallback, identity normalisation, no dummy
prefix, the four chat control tokens, ids 0-3 unk/bos/eos/pad) on real text: the bundled Chinese books and English
articles and the bundled SFT sample. The "pretrained" checkpoint is a tiny randomly initialised model written in
the pretraining checkpoint layout, so fine-tuning tests need no pretraining run.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch

from model.config import ModelConfig
from model.model import Transformer
from model.tokenizer import Tokenizer
from stages.tokenizer import train_sentencepiece
from train.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
SPECIALS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def training_lines() -> list[str]:
    import pyarrow.parquet as pq

    lines: list[str] = []
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= 60:
                break
            lines += json.loads(line)["content"].splitlines()
    for text in pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()[:25]:
        lines += text.splitlines()
    for name in ("alpaca_zh.jsonl", "alpaca_en.jsonl"):
        for line in (SAMPLE / "sft" / name).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            lines += (r["instruction"] + "\n" + r["input"] + "\n" + r["output"]).splitlines()
    return [ln[:2000] for ln in lines if ln.strip()]


def train_chat_tokenizer(
    path: Path, vocab_size: int = 2000, lines: list[str] | None = None, specials: list[str] = SPECIALS
) -> Path:
    text = path.with_suffix(".txt")
    text.write_text("\n".join(lines or training_lines()), encoding="utf-8")
    return train_sentencepiece(text, path, vocab_size, character_coverage=0.99, special_tokens=specials)


def tiny_config(vocab_size: int, **kw) -> ModelConfig:
    fields = dict(n_layer=2, n_head=4, n_kv_head=2, d_model=32, ffn_hidden=64, max_seq_len=128)
    fields.update(kw)
    return ModelConfig(vocab_size=vocab_size, **fields)


def write_start_checkpoint(run_dir: Path, tokenizer: Path, *, seed: int = 0, seq_len: int = 96, **kw) -> Path:
    """A pretraining-style checkpoint of a fresh tiny model (what SFT starts from)."""
    tok = Tokenizer(tokenizer)
    torch.manual_seed(seed)
    model = Transformer(tiny_config(tok.vocab_size, **kw))
    state = {
        "step": 10,
        "model": model.state_dict(),
        "model_config": model.cfg.to_dict(),
        "seq_len": seq_len,
        "tokenizer": {"path": str(tok.path), "sha256": tok.sha256, "vocab_size": tok.vocab_size},
        "data": [],
    }
    return save_checkpoint(run_dir, 10, state, keep_last=1)
