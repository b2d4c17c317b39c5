"""Config loading: every problem is an error naming the file and the key, raised before any work starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.config import ConfigError, load_config
from tests.conftest import REPO, write_config

SOURCE = """
[[sources]]
name = "books"
path = "books.jsonl"
format = "jsonl"
"""


@pytest.fixture
def cfg_path(tmp_path):
    (tmp_path / "books.jsonl").write_text('{"text": "你好，世界。"}\n', encoding="utf-8")
    return write_config(tmp_path, SOURCE)


def error_of(path, overrides=(), **kw) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides, **kw)
    return str(e.value)


def test_repo_config_is_valid():
    cfg = load_config(REPO / "pipeline.toml")
    assert cfg.stages.ingest.enabled
    assert [s.name for s in cfg.sources] == [
        *("books_zh", "web", "articles_en", "notes_zh", "code"),
        *("wiki_en", "papers", "pdf_zh", "ebooks"),
    ]
    assert cfg.stages.langid.keep == ["zh", "en"]
    assert cfg.model.preset == "tiny"
    assert cfg.train.pretrain.out and cfg.train.sft.out and cfg.train.dpo.out
    # relative paths resolve against the config file's folder, not the current directory
    assert cfg.workdir == (REPO / "out").resolve()


def test_unknown_key_names_key_and_file(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + "\n[stages.ingest]\nunicode_from = 'NFC'\n")
    msg = error_of(cfg_path)
    assert "stages.ingest.unicode_from" in msg and "unknown key" in msg and str(cfg_path) in msg


def test_unknown_top_level_section(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + "\n[executer]\ntasks = 3\n")
    assert "executer: unknown key" in error_of(cfg_path)


def test_wrong_type(cfg_path):
    msg = error_of(cfg_path, ["executor.tasks=many"])
    assert "executor.tasks" in msg and "integer" in msg


def test_negative_workers(cfg_path):
    msg = error_of(cfg_path, ["executor.workers=-2"])
    assert "executor.workers" in msg and "greater than or equal to 1" in msg


def test_threshold_outside_unit_interval(cfg_path):
    assert "stages.langid.min_score" in error_of(cfg_path, ["stages.langid.min_score=1.5"])
    assert "tokens.valid_fraction" in error_of(cfg_path, ["tokens.valid_fraction=-0.1"])


def test_missing_input_path_names_source(cfg_path):
    msg = error_of(cfg_path, ["sources.0.path=nowhere/*.jsonl"])
    assert "sources.0.path" in msg and "books" in msg
    msg = error_of(cfg_path, ["sources.0.path=missing.jsonl"])
    assert "missing.jsonl" in msg and "does not exist" in msg


def test_bad_enum_and_missing_required(cfg_path):
    assert "sources.0.format" in error_of(cfg_path, ["sources.0.format=xml"])
    cfg_path.write_text(cfg_path.read_text().replace('format = "jsonl"\n', ""))
    msg = error_of(cfg_path)
    assert "sources.0.format" in msg and "required key is missing" in msg


def test_duplicate_source_names(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + SOURCE)
    assert "used twice" in error_of(cfg_path)


def test_slurm_needs_partition(cfg_path):
    assert "partition" in error_of(cfg_path, ["executor.kind=slurm"])
    cfg = load_config(cfg_path, ["executor.kind=slurm", "executor.slurm.partition=cpu"])
    assert cfg.executor.slurm.partition == "cpu"


def test_overrides_are_typed_and_validated(cfg_path):
    cfg = load_config(
        cfg_path,
        [
            "executor.tasks=7",
            "stages.langid.keep=['zh']",
            "sources.0.kind=code",
            "run.workdir=/tmp/elsewhere",
            "model.preset=125m",
        ],
    )
    assert cfg.executor.tasks == 7
    assert cfg.stages.langid.keep == ["zh"]
    assert cfg.sources[0].kind == "code"
    assert str(cfg.workdir) == "/tmp/elsewhere"
    assert "model.preset" in error_of(cfg_path, ["model.preset=huge"])
    assert "expected key=value" in error_of(cfg_path, ["executor.tasks"])
    assert "not an index" in error_of(cfg_path, ["sources.3.kind=code"])
    assert "stages.nope: unknown key" in error_of(cfg_path, ["stages.nope.enabled=true"])


def test_invalid_toml_names_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[run\nworkdir = 1\n")
    assert "bad.toml: not valid TOML" in error_of(p)


def test_cli_rejects_bad_config_before_any_work(cfg_path):
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path), "--set", "executor.workers=0"],
        capture_output=True,
        text=True,
        cwd=cfg_path.parent,
    )
    assert r.returncode == 2
    assert "executor.workers" in r.stderr and str(cfg_path) in r.stderr
    assert not (cfg_path.parent / "out").exists()
