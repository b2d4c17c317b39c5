"""Up-sampling by duplicate cluster (tokens.upsample) on real sample documents with planted duplicates."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter

import numpy as np
import polars as pl
import pytest
import sentencepiece as spm

from pipeline import runner
from pipeline.config import ConfigError, load_config
from pipeline.verify import verify
from stages.tokenize import TokensConfig, is_valid
from tests.conftest import SAMPLE, write_config
from train.data import IndexedDataset

BODY = """
[[sources]]
name = "s"
path = "src"
format = "jsonl"

[tokenizer]
vocab_size = 6000
sample_chars = 200000
mix_by = "source"
threads = 1

[tokens]
valid_fraction = 0.2

[stages.langid]
enabled = false

[stages.filter]
enabled = false

[stages.pii]
enabled = false

[stages.decontam]
enabled = false
"""
TABLE = "[{min_size = 2, max_size = 2, repeat = 2}, {min_size = 3, repeat = 4}]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same corpus tokenized without the table, then (tokenize redone) with it. Clusters of 1, 2 and 4: two
    sample books copied once, one copied three times."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line)["content"] for line in f if len(line) > 800][:60]
    rows = books + [books[0], books[1] + "\n", books[2], books[2] + " ", books[2] + "\n\n"]
    folder = tmp_path_factory.mktemp("upsample")
    (folder / "src").mkdir()
    (folder / "src" / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in rows))
    off = load_config(write_config(folder, BODY, tasks=2, workers=1))
    runner.run_all(off)
    shutil.copytree(off.workdir / "tokenize", folder / "tokenize_off")
    on = load_config(off.file, [f"tokens.upsample={TABLE}"])
    stats = runner.run_stage(on, "tokenize", force=True)
    return on, stats, folder / "tokenize_off"


def documents(tok_dir, dataset: str, split: str) -> list[tuple[int, ...]]:
    out = []
    for idx in sorted((tok_dir / dataset).glob(f"{split}-*.idx")):
        ds = IndexedDataset(str(idx.with_suffix("")))
        out += [tuple(np.asarray(ds[i]).tolist()) for i in range(len(ds))]
    return out


def test_training_documents_repeat_by_cluster_size(runs):
    cfg, stats, _ = runs
    kept = pl.read_parquet(cfg.workdir / "dedup" / "kept" / "*.parquet")
    assert sorted(Counter(kept["dup_cluster_size"].to_list()).items()) == [(1, 57), (2, 2), (4, 1)]
    sp = spm.SentencePieceProcessor(model_file=str(cfg.workdir / "tokenizer" / "tokenizer.model"))
    written = Counter(documents(cfg.workdir / "tokenize", "s", "train"))
    held_out = Counter(documents(cfg.workdir / "tokenize", "s", "valid"))
    expected_copies = 0
    for doc_id, text, size in kept.select("id", "text", "dup_cluster_size").rows():
        tokens = (*sp.encode(text), sp.eos_id())
        if is_valid(doc_id, cfg.run.seed, cfg.tokens.valid_fraction):
            assert held_out[tokens] == 1 and written[tokens] == 0
        else:
            repeat = {1: 1, 2: 2, 4: 4}[size]
            assert written[tokens] == repeat, (doc_id, size)
            expected_copies += repeat - 1
    assert expected_copies > 0 and stats["upsample_copies"] == expected_copies
    assert stats["docs_in"] == stats["kept"] == len(kept)  # documents once; the copies are counted apart
    assert stats["tokens"] == sum(len(d) * n for d, n in (written + held_out).items())
    meta = json.loads((cfg.workdir / "tokenize" / "s" / "meta.json").read_text())
    train_tokens = sum(len(d) * n for d, n in written.items())
    assert meta["splits"]["train"] == {"documents": sum(written.values()), "tokens": train_tokens}
    assert meta["upsample"]["table"] == [
        {"min_size": 2, "max_size": 2, "repeat": 2},
        {"min_size": 3, "max_size": None, "repeat": 4},
    ]
    by_repeat = meta["upsample"]["by_repeat"]
    assert sum(r["documents"] for r in by_repeat.values()) == len(kept) - sum(held_out.values())
    assert sum(r["tokens"] for r in by_repeat.values()) == train_tokens
    assert verify(cfg, quiet=True) == []


def test_copies_sit_after_their_original_and_the_rest_is_unchanged(runs):
    """Removing adjacent repeats from the up-sampled shards gives back the shards written without the table."""
    cfg, _, off_dir = runs
    for split in ("train", "valid"):
        for idx in sorted((off_dir / "s").glob(f"{split}-*.idx")):
            before = IndexedDataset(str(idx.with_suffix("")))
            after = IndexedDataset(str((cfg.workdir / "tokenize" / "s" / idx.name).with_suffix("")))
            collapsed = [tuple(np.asarray(after[i]).tolist()) for i in range(len(after))]
            collapsed = [d for i, d in enumerate(collapsed) if i == 0 or d != collapsed[i - 1]]
            assert collapsed == [tuple(np.asarray(before[i]).tolist()) for i in range(len(before))]


def test_table_off_by_default_and_checked():
    assert TokensConfig().upsample == [] and TokensConfig().repeats(50) == 1
    table = TokensConfig.model_validate({"upsample": [{"min_size": 2, "max_size": 4, "repeat": 2}]})
    assert [table.repeats(n) for n in (1, 2, 4, 5)] == [1, 2, 2, 1]
    with pytest.raises(ValueError, match="overlap"):
        TokensConfig.model_validate(
            {"upsample": [{"min_size": 2, "max_size": 4, "repeat": 2}, {"min_size": 4, "repeat": 3}]}
        )
    with pytest.raises(ValueError, match="below min_size"):
        TokensConfig.model_validate({"upsample": [{"min_size": 3, "max_size": 2, "repeat": 2}]})


def test_table_without_dedup_is_a_clear_error(runs, tmp_path):
    cfg, _, _ = runs
    with pytest.raises(ConfigError):
        load_config(cfg.file, ["tokens.upsample=[{min_size = 0, repeat = 2}]"])
    shutil.copytree(cfg.workdir / "ingest", tmp_path / "w" / "ingest")
    shutil.copytree(cfg.workdir / "tokenizer", tmp_path / "w" / "tokenizer")
    no_dedup = load_config(
        cfg.file, [f"run.workdir={tmp_path / 'w'}", "stages.dedup.enabled=false", f"tokens.upsample={TABLE}"]
    )
    with pytest.raises(runner.StageError, match="no dup_cluster_size column"):
        runner.run_stage(no_dedup, "tokenize")
