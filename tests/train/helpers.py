"""Helpers for the trainer tests (imported by name: `from tests.train.helpers import ...`; the fixtures built on
them are in tests/train/conftest.py).

The text is real: docstrings of Python standard-library modules, so the tokenizer and the tiny models see natural
English prose with code fragments, not synthetic filler.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import warnings
from pathlib import Path

import numpy as np
import sentencepiece as spm

from model.tokenizer import Tokenizer
from stages.megatron import IndexedDatasetWriter, build_meta, shard_prefix, write_meta
from train import runlog
from train.config import ModelSection, PretrainSection
from train.pretrain import PretrainJob, pretrain

STDLIB_MODULES = [
    "argparse",
    "calendar",
    "collections",
    "csv",
    "datetime",
    "decimal",
    "email.message",
    "fractions",
    "functools",
    "heapq",
    "http.client",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "random",
    "re",
    "shutil",
    "socket",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "typing",
    "unittest",
    "urllib.parse",
    "zipfile",
]


def stdlib_documents(min_chars: int = 80) -> list[str]:
    """Docstrings of the modules above and of their public functions and classes, in a fixed order."""
    docs: list[str] = []
    seen: set[str] = set()
    for name in STDLIB_MODULES:
        mod = importlib.import_module(name)
        with warnings.catch_warnings():  # typing.io and friends warn when touched
            warnings.simplefilter("ignore", DeprecationWarning)
            candidates = [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]
        for obj in candidates:
            if obj is not mod and not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                doc = inspect.getdoc(obj)
            if doc and len(doc) >= min_chars and doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return docs


def train_sentencepiece(path: Path, docs: list[str], vocab_size: int = 600, character_coverage: float = 1.0) -> Path:
    buf = io.BytesIO()
    lines = [line for d in docs for line in d.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        character_coverage=character_coverage,
        unk_id=0,
        bos_id=-1,
        eos_id=1,
        pad_id=-1,
        minloglevel=2,
    )
    path.write_bytes(buf.getvalue())
    return path


def write_dataset(
    directory: Path,
    tok: Tokenizer,
    train_docs: list[list[int]] | list[str],
    valid_docs: list[list[int]] | list[str] = (),
    *,
    weight: float = 1.0,
    train_shards: int = 2,
    vocab_size: int | None = None,
    sha256: str | None = None,
    lang: str = "en",
) -> Path:
    """A tokenize-stage-like dataset folder: train-0000N / valid-00000 shards and meta.json. Documents given as
    text are encoded with EOS appended; documents given as id lists are written as they are."""

    def ids(doc):
        return tok.encode(doc, eos=True) if isinstance(doc, str) else doc

    vocab = vocab_size or tok.vocab_size
    splits = {}
    for split, docs, n_shards in (("train", list(train_docs), train_shards), ("valid", list(valid_docs), 1)):
        if not docs:
            continue
        counts = {"documents": 0, "tokens": 0}
        for r in range(n_shards):
            with IndexedDatasetWriter(shard_prefix(directory, split, r), vocab) as w:
                for doc in docs[r::n_shards]:
                    w.add_document(ids(doc))
            counts["documents"] += w.documents
            counts["tokens"] += w.tokens
        splits[split] = counts
    meta = build_meta(
        tokenizer=tok.path,
        tokenizer_sha256=sha256 or tok.sha256,
        vocab_size=tok.vocab_size,
        eos_id=tok.eos_id,
        bos_id=tok.bos_id,
        weight=weight,
        documents={lang: sum(s["documents"] for s in splits.values())},
        tokens={lang: sum(s["tokens"] for s in splits.values())},
        splits=splits,
    )
    write_meta(directory, meta)
    return directory


TINY_MODEL = dict(preset="tiny", n_layer=2, n_head=4, n_kv_head=2, d_model=32, ffn_hidden=64, max_seq_len=32)


def make_job(out_dir: Path, tokenizer: Path, data: list[Path], model: dict | None = None, **train) -> PretrainJob:
    """A job small enough for two shared CPU cores: a 2-layer, 32-wide model, 32-token sequences."""
    settings = dict(
        max_steps=6,
        checkpoint_every=3,
        batch_size=4,
        seq_len=32,
        lr=3e-3,
        min_lr=3e-4,
        warmup=2,
        eval_every=3,
        eval_batches=2,
        log_every=1,
        device="cpu",
        progress=False,
        seed=7,
    )
    settings.update(train)
    return PretrainJob(
        out_dir=out_dir,
        tokenizer=tokenizer,
        data=list(data),
        model=ModelSection(**(model or TINY_MODEL)),
        train=PretrainSection(**settings),
    )


def read_log(out_dir: Path) -> list[dict]:
    return runlog.read_log(out_dir)


def ddp_worker(rank: int, world_size: int, port: int, jobs: list[PretrainJob]) -> None:
    """torch.multiprocessing.spawn target: the environment torchrun would set, then the jobs one after the other
    in one process group (starting processes is the slow part on a small CPU machine)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    try:
        for job in jobs:
            pretrain(job)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def token_ids(rng: np.random.Generator, lo: int, hi: int, n_docs: int, max_len: int = 40) -> list[list[int]]:
    """Documents of random ids in [lo, hi), for tests that must tell datasets apart by their ids alone."""
    return [list(rng.integers(lo, hi, size=int(rng.integers(5, max_len)))) for _ in range(n_docs)]
