"""The langid and filter stages through the runner on a small real input: reasons land in removed/, counts add
up, `verify` passes; the URL blocklist, bad-word list and ASCII-punctuation options; pipeline.toml's sections.
Each rule family's own tests are beside it: test_filter_zh, test_filter_en, test_filter_code, test_filter_blocklists."""

from __future__ import annotations

import gzip
import json
import tomllib
from pathlib import Path

import polars as pl
import pytest

from pipeline import runner
from pipeline.cli import main as cli_main
from pipeline.config import ConfigError, load_config
from pipeline.report import write_report
from pipeline.verify import verify
from stages.filter import ScoredRules, rule_families
from tests.conftest import REPO, SAMPLE, write_config

NEKO = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"
JINGYESI = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, zh_docs, en_docs) -> Path:
    """A JSONL of real documents, one per expected outcome, and a code folder."""
    folder = tmp_path_factory.mktemp("filter_stage")
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line) for line in f]
    manpage = next(b["content"] for b in books if "Apache HTTP 服务器性能测试工具" in b["content"])
    records = [{"text": t, "url": f"https://so.gushiwen.cn/guwen/{i}"} for i, t in enumerate(zh_docs[:6])]
    records += [
        {"text": JINGYESI, "url": None},  # zh_length
        {"text": "\n".join([zh_docs[1]] * 3), "url": "https://bbs.example.cn/t/1"},  # zh_dup_lines
        {"text": en_docs[0], "url": "https://docs.python.org/3/tutorial/appetite.html"},  # kept
        {"text": en_docs[1], "url": "https://docs.python.org/3/tutorial/classes.html"},  # gopher alpha
        {"text": NEKO, "url": "https://www.aozora.gr.jp/cards/000148/files/789_14547.html"},  # lang_not_kept
        {"text": manpage, "url": None},  # lid.176: en 0.39 -> lang_score_low
    ]
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    code = folder / "code"
    code.mkdir()
    for p in sorted((SAMPLE / "code").rglob("*.py"))[:2]:
        (code / p.name).write_bytes(p.read_bytes())
    (code / "bundle.min.js").write_text("!function(){" + "var a=1;" * 200 + "}();", encoding="utf-8")
    return folder


SOURCES = """
[[sources]]
name = "docs"
path = "docs.jsonl"
format = "jsonl"
url_field = "url"

[[sources]]
name = "code"
path = "code"
format = "text"
kind = "code"
"""


@pytest.fixture(scope="module")
def langid_done(corpus):
    cfg = load_config(write_config(corpus, SOURCES, tasks=2, workers=1))
    runner.run_stage(cfg, "ingest")
    runner.run_stage(cfg, "langid")
    return corpus


def run_filter(folder: Path, *overrides: str):
    cfg = load_config(folder / "pipeline.toml", list(overrides))
    stats = runner.run_stage(cfg, "filter", force=True)
    return cfg, stats


def removed(cfg, stage: str) -> pl.DataFrame:
    return pl.read_parquet(cfg.workdir / stage / "removed" / "*.parquet")


def kept(cfg, stage: str) -> pl.DataFrame:
    return pl.read_parquet(cfg.workdir / stage / "kept" / "*.parquet")


def test_langid_stage(langid_done):
    cfg = load_config(langid_done / "pipeline.toml")
    stats = json.loads((cfg.workdir / "langid" / "stats.json").read_text())
    assert stats["docs_in"] == 15 and stats["docs_in"] == stats["kept"] + stats["removed"]
    assert stats["removed_by_reason"] == {"lang_not_kept": 1, "lang_score_low": 1}
    gone = removed(cfg, "langid")
    assert dict(zip(gone["reason"], gone["lang"])) == {"lang_not_kept": "ja", "lang_score_low": "en"}
    assert set(gone["stage"]) == {"langid"} and gone["lang_score"].null_count() == 0
    df = kept(cfg, "langid")
    assert set(df.filter(pl.col("kind") == "code")["lang"]) == {"code"}
    assert df.filter(pl.col("kind") == "code")["lang_score"].null_count() == 3
    assert set(df.filter(pl.col("kind") == "text")["lang"]) == {"zh", "en"}
    c = stats["counters"]  # summed over the two tasks, each counted once
    assert c["langid_code_skipped"] == 3 and c["langid_kept_zh"] + c["langid_kept_en"] + 3 == stats["kept"]


def test_filter_stage_reasons_counts_and_verify(langid_done):
    cfg, stats = run_filter(langid_done)
    assert stats["docs_in"] == 13 == stats["kept"] + stats["removed"]
    assert stats["removed_by_reason"] == {
        "zh_length": 1,
        "zh_dup_lines": 1,
        "en_gopher_below_alpha_threshold": 1,
        "code_max_line_length": 1,
    }
    assert stats["counters"] == {"filter_rules_zh": 8, "filter_rules_en": 2, "filter_rules_code": 3}
    gone = removed(cfg, "filter")
    assert set(gone["stage"]) == {"filter"} and len(gone) == stats["removed"]
    assert set(gone.columns) >= {"id", "text", "lang", "lang_score", "reason"}
    df = kept(cfg, "filter")
    assert df.group_by("lang").len().sort("lang").rows() == [("code", 2), ("en", 1), ("zh", 6)]
    assert verify(cfg, quiet=True) == []


def test_url_blocklist_and_bad_words(langid_done, tmp_path):
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# domains and prefixes\ngushiwen.cn\nhttps://docs.python.org/3/tutorial/app\n")
    bad_words = tmp_path / "bad_words.txt"
    bad_words.write_text("# words\n淫\n", encoding="utf-8")  # 石碏諫寵州籲: 驕奢淫佚
    cfg, stats = run_filter(langid_done, f"stages.filter.url_blocklist={json.dumps(str(blocklist))}")
    reasons = stats["removed_by_reason"]
    assert reasons["url_blocklist"] == 7  # six gushiwen.cn pages (subdomain so.) and the blocked prefix
    assert "zh_length" in reasons  # documents without a URL are never blocked
    assert verify(cfg, quiet=True) == []
    cfg, stats = run_filter(langid_done, f"stages.filter.bad_words={json.dumps(str(bad_words))}")
    assert stats["removed_by_reason"].get("bad_words", 0) >= 1
    gone = removed(cfg, "filter").filter(pl.col("reason") == "bad_words")
    assert all("淫" in t for t in gone["text"])


def test_missing_list_file_is_an_error_before_work(langid_done):
    cfg = load_config(langid_done / "pipeline.toml", ["stages.filter.bad_words='nowhere.txt'"])
    with pytest.raises((ValueError, runner.StageError), match="stages.filter.bad_words: no such file"):
        runner.run_stage(cfg, "filter", force=True)


def test_ascii_punctuation_option(langid_done):
    cfg, stats = run_filter(langid_done, "stages.filter.ascii_punctuation=true")
    zh = kept(cfg, "filter").filter(pl.col("lang") == "zh")
    assert len(zh) == 6 and not any("，" in t or "。" in t for t in zh["text"])
    assert stats["counters"]["filter_ascii_punctuation_rewritten"] == 6
    cfg, _ = run_filter(langid_done)  # off by default
    assert all("。" in t for t in kept(cfg, "filter").filter(pl.col("lang") == "zh")["text"])


def test_repository_config_sections():
    data = tomllib.loads((REPO / "pipeline.toml").read_text(encoding="utf-8"))
    assert data["stages"]["langid"]["keep"] == ["zh", "en"]
    cfg = load_config(REPO / "pipeline.toml")
    assert cfg.stages.langid.enabled and cfg.stages.filter.enabled  # on by default; the file leaves them out
    assert cfg.stages.filter.zh.max_top_ngram == {2: 0.20, 3: 0.18, 4: 0.16}
    lines = (REPO / "pipeline.toml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("[stages.langid]"))
    end = next(
        i
        for i, x in enumerate(lines)
        if i > start and x.startswith("[") and not x.startswith(("[stages.langid", "[stages.filter"))
    )
    for before, line in zip(lines[start - 1 : end], lines[start:end]):
        if line.strip() and not line.lstrip().startswith(("#", "[")):
            assert "#" in line or before.startswith("#"), f"pipeline.toml: key without a comment: {line}"
    with pytest.raises(ConfigError, match="stages.filter.zh.no_such_key"):
        load_config(REPO / "pipeline.toml", ["stages.filter.zh.no_such_key=1"])


@pytest.fixture(scope="module")
def filtered(langid_done):
    """One default filter run shared by the tests below (they only read it; they come last in this module)."""
    return run_filter(langid_done)[0]


def test_scores_column_kept_and_removed(filtered):
    """Every rule's value, for kept and removed documents alike; null where the rule does not apply; a removed
    document's reason is a rule whose own value fails its threshold, and the rules after it were measured too."""
    cfg = filtered
    both = pl.concat([kept(cfg, "filter"), removed(cfg, "filter").drop("stage", "reason")], how="vertical")
    thresholds = {t.field: t for t in ScoredRules(rule_families(cfg.stages.filter, cfg.path)).thresholds}
    scores = both.select("id", "lang", "scores").unnest("scores")
    assert set(scores.columns) == {"id", "lang", *thresholds}
    zh_fields = [f for f in thresholds if f.startswith("zh_")]
    en_fields = [f for f in thresholds if f.startswith("en_")]
    code_fields = [f for f in thresholds if f.startswith("code_")]
    for lang, present, absent in (
        ("zh", zh_fields, en_fields + code_fields),
        ("en", en_fields, zh_fields + code_fields),
        ("code", code_fields, zh_fields + en_fields),
    ):
        rows = scores.filter(pl.col("lang") == lang)
        assert len(rows) and rows.select(absent).null_count().sum_horizontal().item() == len(rows) * len(absent)
        # every zh / code rule is measured on every document of its kind (English: a few are undefined, e.g.
        # the top n-gram of a text with fewer words than n)
        if lang != "en":
            assert rows.select(present).null_count().sum_horizontal().item() == 0
    gone = removed(cfg, "filter").unnest("scores")
    for row in gone.iter_rows(named=True):
        assert thresholds[row["reason"]].fails(row[row["reason"]]), row["reason"]
    dup = gone.filter(pl.col("reason") == "zh_dup_lines")  # a late rule: the later ones still measured
    assert dup["zh_mean_word_length"].null_count() == 0 and dup["zh_dup_10gram"].null_count() == 0
    # the question the column is for: what share of zh documents would a stricter threshold remove?
    zh = scores.filter(pl.col("lang") == "zh")
    share = zh.select((pl.col("zh_entropy") < 4.5).mean()).item()
    assert 0 < share < 1
    assert verify(cfg, quiet=True) == []


def test_pipeline_sample_command(filtered, capsys):
    cfg = filtered
    config = str(cfg.file)
    assert cli_main(["sample", "filter", "--reason", "zh_dup_lines", "-n", "5", "--config", config]) == 0
    out = capsys.readouterr().out
    (doc_id,) = removed(cfg, "filter").filter(pl.col("reason") == "zh_dup_lines")["id"]
    assert f"── {doc_id}  reason: zh_dup_lines" in out and "zh_dup_lines=0.6667" in out
    assert cli_main(["sample", "filter", "--kept", "-n", "2", "--seed", "3", "--chars", "40", "--config", config]) == 0
    first = capsys.readouterr().out
    assert cli_main(["sample", "filter", "--kept", "-n", "2", "--seed", "3", "--chars", "40", "--config", config]) == 0
    assert capsys.readouterr().out == first  # reproducible by seed
    printed = [line.split()[1] for line in first.splitlines() if line.startswith("── ")]
    assert len(printed) == 2 and set(printed) <= set(kept(cfg, "filter")["id"])
    assert cli_main(["sample", "filter", "--reason", "zh_nothing", "--config", config]) == 2
    assert "reasons there: " in capsys.readouterr().err


def test_report_draws_each_rule(filtered):
    cfg = filtered
    text = write_report(cfg).read_text(encoding="utf-8")
    assert "## Filter rules: measured values" in text
    row = next(line for line in text.splitlines() if line.startswith("| zh_dup_lines |"))
    # 8 zh documents measured, one of them (the thrice repeated text) fails and is removed by it
    assert row == "| zh_dup_lines | kept if <= 0.287 | 8 | 0 | 12.5% | 1 |"
    for family in ("zh", "en", "code"):
        assert (cfg.workdir / "report" / f"scores_{family}.png").stat().st_size > 10_000
