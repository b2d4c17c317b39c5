"""The quality stage and `pipeline quality train` on real text: the sample's books and English articles (the
reference set) against its raw web pages (WARC). Training, held-out metrics and determinism; the stage with a
threshold and with a global top share (independent of the task count), code left unscored, `verify` passing,
resuming after the first phase, the stage after filter reading quality's output, errors naming the key."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline import runner
from pipeline.cli import main as cli_main
from pipeline.config import ConfigError, load_config
from pipeline.report import write_report
from pipeline.status import status_rows
from pipeline.verify import verify
from stages.quality import (
    fasttext_text,
    held_out,
    read_documents,
    score_bins,
    top_share_threshold,
    train_classifier,
)
from tests.conftest import SAMPLE, write_config

# Small and quick, and still measured: 1,000,000 buckets (fewer diverged on this data, see stages/quality.py).
TRAIN = {"dim": 16, "bucket": 1_000_000, "epochs": 10, "seed": 7}

SOURCES = """
[[sources]]
name = "books"
path = "books.jsonl"
format = "jsonl"

[[sources]]
name = "web"
path = "web.warc.gz"
format = "warc"

[[sources]]
name = "code"
path = "code"
format = "text"
kind = "code"

[stages.langid]
enabled = false

[stages.filter]
enabled = false
"""


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A corpus of 150 sample books documents, 20 English articles, the sample's web pages and two code files,
    ingested (langid and filter are off: quality reads ingest's output, the nearest enabled stage)."""
    folder = tmp_path_factory.mktemp("quality")
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line)["content"] for line in f][:150]
    articles = pl.read_parquet(SAMPLE / "articles_en.parquet")["text"].to_list()[:20]
    with open(folder / "books.jsonl", "w", encoding="utf-8") as f:
        for t in books + articles:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    shutil.copy(SAMPLE / "web.warc.gz", folder / "web.warc.gz")
    (folder / "code").mkdir()
    for p in sorted((SAMPLE / "code").rglob("*.py"))[:2]:
        (folder / "code" / p.name).write_bytes(p.read_bytes())
    cfg = load_config(write_config(folder, SOURCES, tasks=2, workers=1))
    runner.run_stage(cfg, "ingest")
    return folder


@pytest.fixture(scope="module")
def model(ingested) -> tuple[Path, dict]:
    kept = str(ingested / "out" / "ingest" / "kept")
    out = ingested / "models" / "quality.bin"
    summary = train_classifier(
        list(read_documents(kept, sources=["books"])), list(read_documents(kept, sources=["web"])), out, **TRAIN
    )
    return out, summary


def quality_config(folder: Path, model: Path, *overrides: str, check_paths: bool = True):
    model_key = f"stages.quality.model={json.dumps(str(model))}"
    overrides = ["stages.quality.enabled=true", model_key, *overrides]
    return load_config(folder / "pipeline.toml", overrides, check_paths=check_paths)


def outputs(cfg) -> tuple[pl.DataFrame, pl.DataFrame]:
    d = runner.stage_dir(cfg, "quality")
    return pl.read_parquet(d / "kept" / "*.parquet"), pl.read_parquet(d / "removed" / "*.parquet")


def test_fasttext_text_splits_han_characters_and_folds_case_and_width():
    text = "Ｐｙｔｈｏｎ 3.12 发布了\n新版本。Hello  World"
    assert fasttext_text(text, "han_chars") == "python 3.12 发 布 了 新 版 本 。hello world"
    # DCLM's whitespace tokens: a Chinese run stays one token
    assert fasttext_text(text, "whitespace") == "python 3.12 发布了 新版本。hello world"
    with pytest.raises(ValueError, match="unknown normalization"):
        fasttext_text(text, "jieba")


@pytest.mark.slow
def test_training_reports_held_out_metrics_and_is_deterministic(ingested, model):
    out, summary = model
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta == summary and meta["normalization"] == "han_chars"
    d = meta["documents"]
    assert d["positive"]["train"] + d["positive"]["held_out"] == 170  # 150 books + 20 articles
    assert d["negative"]["held_out"] > 0 and d["negative"]["train"] > 50
    # the books/articles against raw web pages are told apart on documents the model never saw
    assert meta["held_out"]["roc_auc"] > 0.9, meta["held_out"]
    assert meta["balance"]["smaller_set_repeated"] >= 1
    kept = str(ingested / "out" / "ingest" / "kept")
    again = ingested / "models" / "again.bin"
    train_classifier(
        list(read_documents(kept, sources=["books"])), list(read_documents(kept, sources=["web"])), again, **TRAIN
    )
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(out.read_bytes()).digest()


def test_held_out_split_is_a_tenth_by_id():
    ids = [f"web:{i}" for i in range(20_000)]
    share = np.mean([held_out(i, 1234, 0.1) for i in ids])
    assert 0.09 < share < 0.11
    assert [held_out(i, 1234, 0.1) for i in ids[:50]] == [held_out(i, 1234, 0.1) for i in ids[:50]]


@pytest.mark.slow
def test_threshold_keeps_and_removes_by_score_and_code_passes_unscored(ingested, model):
    cfg = quality_config(ingested, model[0], "stages.quality.threshold=0.5")
    stats = runner.run_stage(cfg, "quality", force=True)
    kept, removed = outputs(cfg)
    assert stats["docs_in"] == stats["kept"] + stats["removed"] == len(kept) + len(removed)
    assert set(removed["reason"]) == {"quality_low"} and (removed["quality_score"] < 0.5).all()
    text_kept = kept.filter(pl.col("kind") == "text")
    assert (text_kept["quality_score"] >= 0.5).all()
    code = kept.filter(pl.col("kind") == "code")
    assert len(code) == 2 and code["quality_score"].is_null().all()
    # the classifier does its job on the data it scored: web pages go, the reference set stays
    by_source = (
        pl.concat([kept, removed.drop("stage", "reason")])
        .group_by("source")
        .agg((pl.col("quality_score") >= 0.5).mean().alias("kept_share"))
    )
    share = dict(by_source.iter_rows())
    assert share["books"] > 0.9 and share["web"] < 0.2, share
    counters = stats["counters"]
    assert counters["quality_scored"] == stats["docs_in"] - 2 and counters["quality_code_unscored"] == 2
    assert sum(v for k, v in counters.items() if k.startswith("quality_score_bin_")) == counters["quality_scored"]
    assert stats["threshold"] == {"threshold": 0.5} and stats["model"]["normalization"] == "han_chars"
    assert verify(cfg, quiet=True) == []


@pytest.mark.slow
def test_top_share_is_one_global_cut_whatever_the_task_count(ingested, model):
    ids = {}
    for tasks in (2, 3):
        cfg = quality_config(ingested, model[0], "stages.quality.keep_top_share=0.5", f"executor.tasks={tasks}")
        stats = runner.run_stage(cfg, "quality", force=True)
        kept, removed = outputs(cfg)
        scored = kept.filter(pl.col("quality_score").is_not_null())
        cut = stats["threshold"]["threshold"]
        assert stats["threshold"]["keep_top_share"] == 0.5 and stats["threshold"]["scored"] == len(scored) + len(
            removed
        )
        assert scored["quality_score"].min() >= cut > removed["quality_score"].max()
        # at least half kept; more only by the ties of one histogram bin
        share = len(scored) / (len(scored) + len(removed))
        assert 0.5 <= share < 0.5 + 5 / (len(scored) + len(removed)), share
        assert verify(cfg, quiet=True) == []
        ids[tasks] = set(kept["id"])
    assert ids[2] == ids[3]


def test_top_share_threshold_counts_from_the_best_bin():
    scores = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    hist = np.bincount(score_bins(scores), minlength=int(score_bins(np.ones(1))[0]) + 1)
    cut = top_share_threshold(hist, 0.25)
    kept = (scores >= cut).sum()
    assert 250 <= kept <= 252 and top_share_threshold(hist, 1.0) == 0.0


@pytest.mark.slow
def test_rerun_after_a_kill_between_phases_resumes(ingested, model):
    """Killed after the scores phase: the rerun keeps the score histograms and redoes the threshold and filter."""
    cfg = quality_config(ingested, model[0], "stages.quality.keep_top_share=0.7")
    runner.run_stage(cfg, "quality", force=True)
    d = runner.stage_dir(cfg, "quality")
    before = set(outputs(cfg)[0]["id"])
    histograms = {p: p.stat().st_mtime_ns for p in (d / "work" / "histograms").glob("*.npy")}
    for phase in ("threshold", "filter"):
        shutil.rmtree(d / "logs" / phase / "completions")
    shutil.rmtree(d / "tasks")
    (d / "stats.json").unlink()
    (d / "work" / "threshold.json").unlink()
    assert runner.stage_state(cfg, "quality").state == "incomplete"
    stats = runner.run_stage(cfg, "quality")
    assert {p: p.stat().st_mtime_ns for p in histograms} == histograms  # the scores phase was not redone
    assert set(outputs(cfg)[0]["id"]) == before and stats["kept"] == len(before)
    assert verify(cfg, quiet=True) == []


@pytest.mark.slow
def test_the_stage_after_filter_reads_quality_only_when_enabled(ingested, model):
    cfg = load_config(ingested / "pipeline.toml", ["stages.filter.enabled=true", "stages.langid.enabled=true"])
    assert runner.input_stage(cfg, "dedup") == "filter" and "quality" not in runner.enabled_stages(cfg)
    cfg = quality_config(ingested, model[0], "stages.quality.threshold=0.5", "stages.filter.enabled=true")
    assert runner.input_stage(cfg, "quality") == "filter" and runner.input_stage(cfg, "dedup") == "quality"


@pytest.mark.slow
def test_later_stages_read_quality_and_carry_its_score(ingested, model):
    cfg = quality_config(ingested, model[0], "stages.quality.threshold=0.5")
    quality = runner.run_stage(cfg, "quality", force=True)
    dedup = runner.run_stage(cfg, "dedup", force=True)
    pii = runner.run_stage(cfg, "pii", force=True)
    assert dedup["input_stage"] == "quality" and dedup["docs_in"] == quality["kept"]
    kept = pl.read_parquet(runner.stage_dir(cfg, "pii") / "kept" / "*.parquet")
    assert pii["docs_in"] == dedup["kept"] and len(kept) == pii["kept"]
    scores = dict(outputs(cfg)[0].select("id", "quality_score").iter_rows())
    assert all(scores[i] == s for i, s in kept.select("id", "quality_score").iter_rows())
    assert verify(cfg, quiet=True) == []
    for stage in ("dedup", "pii"):
        shutil.rmtree(runner.stage_dir(cfg, stage))  # the other tests run quality alone


@pytest.mark.slow
def test_report_shows_the_score_distribution(ingested, model):
    cfg = quality_config(ingested, model[0], "stages.quality.threshold=0.5")
    runner.run_stage(cfg, "quality", force=True)
    text = write_report(cfg).read_text()
    assert "## Quality classifier" in text and "| 0.95-1.00 |" in text and "Threshold 0.5000" in text
    assert (cfg.workdir / "report" / "quality_scores.png").stat().st_size > 0
    # the demo's way: the stage disabled in the config, its output a side run beside the flow
    flow = load_config(ingested / "pipeline.toml")
    assert next(r["state"] for r in status_rows(flow) if r["stage"] == "quality") == "disabled, holds a side run"
    text = write_report(flow).read_text()
    assert "removed as quality_low (run beside the flow" in text and "| quality | disabled, holds a side run |" in text


@pytest.mark.slow
def test_bad_model_and_rules_are_errors_naming_the_key(ingested, model, tmp_path):
    cfg = quality_config(ingested, tmp_path / "missing.bin", "stages.quality.threshold=0.5", check_paths=False)
    with pytest.raises(runner.StageError, match=r"stages\.quality\.model: no such file: .*missing\.bin"):
        runner.run_stage(cfg, "quality", force=True)
    with pytest.raises(ConfigError, match=r"stages\.quality\.model: .*missing\.bin' does not exist"):
        # `pipeline run` checks paths on load: before any stage of `run all` starts
        quality_config(ingested, tmp_path / "missing.bin", "stages.quality.threshold=0.5")
    lone = tmp_path / "lone.bin"
    lone.write_bytes(model[0].read_bytes())  # a model without its .json (the normalization it was trained with)
    cfg = quality_config(ingested, lone, "stages.quality.threshold=0.5")
    with pytest.raises(runner.StageError, match=r"stages\.quality\.model: .*lone\.bin\.json is missing"):
        runner.run_stage(cfg, "quality", force=True)
    with pytest.raises(ConfigError, match=r"stages\.quality: .*either threshold or keep_top_share"):
        quality_config(ingested, model[0], "stages.quality.threshold=0.5", "stages.quality.keep_top_share=0.5")
    with pytest.raises(ConfigError, match=r"stages\.quality: .*neither threshold nor keep_top_share"):
        quality_config(ingested, model[0], "stages.quality.enabled=true")
    with pytest.raises(ConfigError, match=r"stages\.quality\.keep_top_share"):
        quality_config(ingested, model[0], "stages.quality.keep_top_share=1.5")


@pytest.mark.slow
def test_quality_train_command(ingested, tmp_path, capsys):
    kept = str(ingested / "out" / "ingest" / "kept")
    out = tmp_path / "cli.bin"
    args = ["quality", "train", "--config", str(ingested / "pipeline.toml"), "--positive", kept, "--negative", kept]
    args += ["--positive-sources", "books", "--negative-sources", "web", "--out", str(out), "--dim", "16"]
    args += ["--bucket", "1000000", "--normalization", "whitespace"]
    assert cli_main(args) == 0
    assert "held out" in capsys.readouterr().out
    meta = json.loads(out.with_name("cli.bin.json").read_text())
    assert meta["normalization"] == "whitespace" and meta["hyperparameters"]["wordNgrams"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "好"}\n{"text": \n', encoding="utf-8")
    args = ["quality", "train", "--config", str(ingested / "pipeline.toml"), "--positive", str(bad)]
    assert cli_main([*args, "--negative", kept, "--out", str(tmp_path / "x.bin")]) == 2
    assert f"{bad}: line 2: not valid JSON" in capsys.readouterr().err
    assert cli_main([*args[:-1], str(tmp_path / "nothing"), "--negative", kept, "--out", str(tmp_path / "x.bin")]) == 2
    assert "no .parquet, .jsonl or .jsonl.gz file found" in capsys.readouterr().err
