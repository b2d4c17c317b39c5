"""What a `pipeline` process imports before its first document (issue 13, process start).

Loading a config, `pipeline status`, and a rerun of a finished stage import no stage's libraries, no datatrove and
no pyarrow; a real run imports its own stage's module and no other stage's. Each check runs in a fresh interpreter,
so what the test process imported before does not count.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO, SAMPLE, write_config

# Top-level packages a command that builds no phase must not import (each costs 0.02-0.4 CPU-s per process).
HEAVY = ["datatrove", "pyarrow", "numpy", "pandas", "polars", "jieba", "rjieba", "regex", "fasttext", "opencc"]
HEAVY += ["sentencepiece", "rapidfuzz", "xxhash", "trafilatura", "warcio", "torch"]
STAGE_MODULES = ["ingest", "langid", "filter", "quality", "dedup", "pii", "decontam", "tokenizer", "tokenize"]


def _run(script: str) -> dict:
    """Runs `script` in a fresh interpreter from the repository root, after `imported()` is defined; the script
    prints one JSON object last."""
    prelude = f"""import json, sys
HEAVY, STAGE_MODULES = {HEAVY!r}, {STAGE_MODULES!r}
def imported():
    heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
    stages = sorted(m for m in sys.modules if m.startswith("stages.") and m.split(".")[1] in STAGE_MODULES)
    return heavy, stages
"""
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.splitlines()[-1]), "stderr": done.stderr}


def test_config_status_and_a_finished_stage_import_no_stage_library(tmp_path):
    """The sample's pipeline.toml, every stage's state and `pipeline status` on an empty workdir, then a stage
    recorded as finished under this config: `run_stage` returns its stats without building anything."""
    out = _run(
        f"""
        from pipeline.config import load_config
        from pipeline.runner import run_stage, stage_fingerprint, stage_state
        from pipeline.status import status_rows
        from stages.files import atomic_write_json

        cfg = load_config("pipeline.toml", ["run.workdir={tmp_path / "out"}"])
        states = [stage_state(cfg, s).state for s in STAGE_MODULES]
        rows = status_rows(cfg)
        d = cfg.workdir / "ingest"
        run = {{"stage": "ingest", "tasks": 2, "fingerprint": stage_fingerprint(cfg, "ingest")}}
        atomic_write_json(d / "run.json", run)
        atomic_write_json(d / "stats.json", {{"tasks": 2, "docs_in": 7, "finished_at": "2026-01-01T00:00:00+00:00"}})
        stats = run_stage(cfg, "ingest")
        heavy, stages = imported()
        print(json.dumps({{"states": states, "rows": len(rows), "stats": stats, "heavy": heavy, "stages": stages}}))
        """
    )
    assert out["states"] == ["not started"] * 3 + ["disabled"] + ["not started"] * 5
    assert out["rows"] == len(STAGE_MODULES)
    assert out["stats"]["docs_in"] == 7 and "ingest: already finished" in out["stderr"]
    assert out["heavy"] == [] and out["stages"] == []


def test_a_stage_run_imports_its_own_stage_module_only(tmp_path):
    """A real ingest (20 sample books) then langid: each command imports its own stage's module, and no other
    stage's (the config classes come from stages/config/)."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        (tmp_path / "books.jsonl").write_text("".join(next(f) for _ in range(20)), encoding="utf-8")
    body = '[[sources]]\nname = "books"\npath = "books.jsonl"\nformat = "jsonl"\ntext_field = "content"\n'
    config = write_config(tmp_path, body, tasks=1, workers=1)
    for stage, own in (("ingest", "stages.ingest"), ("langid", "stages.langid")):
        out = _run(
            f"""
            from pipeline.cli import main
            rc = main(["run", "{stage}", "--config", "{config}"])
            heavy, stages = imported()
            print(json.dumps({{"rc": rc, "stages": stages}}))
            """
        )
        assert out["rc"] == 0 and f"{stage}: done" in out["stderr"]
        assert own in out["stages"]
        others = [m for m in out["stages"] if m.split(".")[1] != stage]
        assert others == [], others


def test_stage_modules_keep_their_config_class_names():
    """Code and tests that import a config class from its stage module get the class pipeline/config.py uses."""
    from pipeline.config import Config
    from stages import decontam, dedup, filter, ingest, langid, pii, pii_rules, quality, tokenize, tokenizer, zh_rules
    from stages.config.filter import READMORE_SUFFIXES
    from stages.config.pii import TYPES
    from stages.filters import code, en, zh

    stages = Config.model_fields["stages"].annotation.model_fields
    assert stages["ingest"].annotation is ingest.IngestConfig
    assert stages["langid"].annotation is langid.LangidConfig
    assert stages["filter"].annotation is filter.FilterConfig
    assert stages["quality"].annotation is quality.QualityConfig
    assert stages["dedup"].annotation is dedup.DedupConfig
    assert stages["pii"].annotation is pii.PiiConfig
    assert stages["decontam"].annotation is decontam.DecontamConfig
    assert Config.model_fields["tokenizer"].annotation is tokenizer.TokenizerConfig
    assert Config.model_fields["tokens"].annotation is tokenize.TokensConfig
    filter_fields = filter.FilterConfig.model_fields
    assert filter_fields["zh"].annotation is zh.ZhRulesConfig
    assert filter_fields["en"].annotation is en.EnglishConfig
    assert filter_fields["code"].annotation is code.CodeConfig
    assert zh_rules.READMORE_SUFFIXES is READMORE_SUFFIXES and pii_rules.TYPES is TYPES


def test_skipping_an_unknown_zh_rule_is_still_refused():
    """The zh `skip` check reads the rule names from zh_rules (imported only when a rule is skipped)."""
    import pytest

    from pipeline.config import ConfigError, load_config

    cfg = load_config(REPO / "pipeline.toml", ["stages.filter.zh.skip=['unique_chars', 'entropy']"])
    assert cfg.stages.filter.zh.skip == ["unique_chars", "entropy"]
    with pytest.raises(ConfigError, match=r"stages.filter.zh.skip: .*unknown rule\(s\) \['no_such_rule'\]"):
        load_config(REPO / "pipeline.toml", ["stages.filter.zh.skip=['no_such_rule']"])
