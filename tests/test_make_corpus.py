"""bench/make_corpus.py at a tiny size from the bundled sample: the ground truth matches what was written."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import runner
from pipeline.config import load_config
from stages.dedup_rules import char_shingles
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import make_corpus  # noqa: E402  (bench/ is a folder of scripts, not a package)

SIZE = "1.5MB"


def build(out: Path) -> dict:
    assert make_corpus.main(["--size", SIZE, "--out", str(out), "--sample-only"]) == 0
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    out = tmp_path_factory.mktemp("corpus") / "c"
    manifest = build(out)
    return out, manifest, pq.read_table(out / "ground_truth.parquet").to_pylist()


@pytest.fixture(scope="module")
def ingested(corpus, tmp_path_factory) -> dict[str, str]:
    """{id: text} as the pipeline's ingest stage assigns them, read from its kept shards."""
    out, _, _ = corpus
    folder = tmp_path_factory.mktemp("run")
    sources = (out / "sources.toml").read_text()
    sources = re.sub(r'^path = "([^"]+)"', lambda m: f'path = "{out / m.group(1)}"', sources, flags=re.M)
    cfg_path = folder / "pipeline.toml"
    cfg_path.write_text(f'[run]\nworkdir = "out"\n\n[executor]\ntasks = 2\nworkers = 1\n\n{sources}', encoding="utf-8")
    cfg = load_config(cfg_path, [])
    stats = runner.run_stage(cfg, "ingest")
    assert stats["removed"] == 0, stats["removed_by_reason"]
    t = pq.read_table(folder / "out" / "ingest" / "kept", columns=["id", "text"])
    return dict(zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True))


def test_counts_and_size_match_the_manifest(corpus):
    _, manifest, rows = corpus
    counts = Counter(r["category"] for r in rows)
    assert dict(counts) == manifest["categories"]
    assert set(counts) == set(make_corpus.CATEGORY_SHARES), "every category is planted at this size"
    assert len({r["id"] for r in rows}) == len(rows) == manifest["documents"]
    assert sum(r["text_bytes"] for r in rows) == manifest["text_bytes"] >= 1_500_000
    assert Counter(r["format"] for r in rows) == Counter(manifest["formats"])


def test_every_id_is_what_ingest_assigns(corpus, ingested):
    _, _, rows = corpus
    assert set(ingested) == {r["id"] for r in rows}
    for r in rows:
        if r["format"] != "warc":  # WARC text is what trafilatura extracts from the page, not the planted text
            assert len(ingested[r["id"]].encode("utf-8")) <= r["text_bytes"] + 16


def test_duplicates_near_duplicates_pii_and_items_are_in_the_text(corpus, ingested):
    _, _, rows = corpus
    fold = lambda t: "".join(t.split()).casefold()  # noqa: E731  (dedup's whitespace_case folding)
    by_cat = Counter()
    for r in rows:
        text = ingested[r["id"]]
        if r["category"] == "exact_dup":
            assert fold(text) == fold(ingested[r["original_id"]]), r["id"]
        elif r["category"] == "near_dup":
            a, b = char_shingles(ingested[r["original_id"]], 13), char_shingles(text, 13)
            inter = len(set(a.tolist()) & set(b.tolist()))
            jac = inter / (len(a) + len(b) - inter)
            assert abs(jac - r["jaccard"]) < 1e-3, (r["id"], jac, r["jaccard"])
            assert abs(jac - r["target_jaccard"]) <= 0.02, (r["id"], jac, r["target_jaccard"])
        elif r["category"] == "pii":
            assert r["pii_values"] and all(v in text for v in r["pii_values"]), r["id"]
        elif r["category"] == "bench":
            assert r["bench_text"] in text, r["id"]
        elif r["category"] == "junk":
            assert r["junk_kind"] in make_corpus.JUNK_KINDS
        by_cat[r["category"]] += 1
    assert by_cat["near_dup"] >= 10 and by_cat["exact_dup"] >= 10


def test_the_generator_is_deterministic(corpus, tmp_path):
    out, manifest, _ = corpus
    again = build(tmp_path / "again")
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in manifest.items() if k != "seconds"}
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    for rel in files:
        digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
        assert digest(out / rel) == digest(tmp_path / "again" / rel), rel


def test_gzip_shards_have_no_timestamp(corpus):
    out, _, _ = corpus
    raw = (out / "jsonl" / "part-00000.jsonl.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME field
    with gzip.open(out / "jsonl" / "part-00000.jsonl.gz", "rt", encoding="utf-8") as f:
        assert set(json.loads(f.readline())) == {"doc_id", "text", "url"}


def test_missing_download_cache_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        make_corpus.main(["--size", "1MB", "--out", str(tmp_path / "c"), "--cache", str(tmp_path / "empty"),
                          "--no-download"])  # fmt: skip
    msg = str(e.value)
    assert "chinese-poetry-2.0.1.tgz" in msg and str(tmp_path / "empty") in msg and "--sample-only" in msg
    assert not (tmp_path / "c").exists()


def test_size_is_parsed_or_refused():
    assert make_corpus.parse_size("0.3GB") == 300_000_000
    assert make_corpus.parse_size("5 mb") == 5_000_000
    with pytest.raises(Exception, match="expected a number"):
        make_corpus.parse_size("lots")
