"""Deduplication: the rules on real text, and the stage through the runner (exact, near, similar lines, tasks)."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash

from pipeline import runner
from pipeline.config import load_config
from pipeline.verify import verify
from stages.dedup import natural_key
from stages.dedup_rules import (
    band_keys,
    char_shingles,
    estimated_jaccard,
    exact_key,
    jaccard,
    minhash_params,
    minhash_signature,
    remove_similar_lines,
    word_hashes,
    word_shingles,
)
from tests.conftest import SAMPLE, write_config


@pytest.fixture(scope="module")
def books() -> list[str]:
    import gzip

    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["content"] for line in f]


def perturb(text: str, n_changes: int, seed: int) -> str:
    """Replace n characters at random positions (as a re-post with small edits would)."""
    rng = np.random.default_rng(seed)
    chars = list(text)
    for i in rng.choice(len(chars), n_changes, replace=False):
        chars[i] = "某" if chars[i] != "某" else "甲"
    return "".join(chars)


def real_lines(zh_docs, n: int = 4) -> list[str]:
    """Lines of 30 to 200 characters from the real documents."""
    return [ln for d in zh_docs for ln in d.split("\n") if 30 <= len(ln.strip()) <= 200][:n]


def datasketch_jaccard(a: str, b: str, n: int = 13) -> float:
    """MAP-CC's way: datasketch MinHash(num_perm=128), one update per 13-character shingle."""

    def sig(t: str) -> MinHash:
        t = "".join(unicodedata.normalize("NFKC", t).casefold().split())
        m = MinHash(num_perm=128, seed=1)
        for i in range(max(1, len(t) - n + 1)):
            m.update(t[i : i + n].encode("utf-8"))
        return m

    return sig(a).jaccard(sig(b))


# --- rules -------------------------------------------------------------------------------------------------------


def test_estimated_jaccard_close_to_exact_on_real_pairs(zh_docs):
    a, b = minhash_params(117, seed=7)
    checked = 0
    long_docs = [d for d in zh_docs if len(d) > 400][:6]
    assert len(long_docs) >= 4
    for i, doc in enumerate(long_docs):
        for changes in (0, 3, 15, 60):
            other = perturb(doc, changes, seed=i)
            s1, s2 = char_shingles(doc), char_shingles(other)
            exact = jaccard(s1, s2)
            ours = estimated_jaccard(minhash_signature(s1, a, b), minhash_signature(s2, a, b))
            reference = datasketch_jaccard(doc, other)
            # 117 permutations: standard error <= 0.047; 3 standard errors
            assert abs(ours - exact) < 0.14, (changes, exact, ours)
            assert abs(reference - exact) < 0.14, (changes, exact, reference)
            checked += 1
    assert checked == 4 * len(long_docs)


def test_identical_texts_share_every_band_and_unrelated_share_none(zh_docs, en_docs):
    a, b = minhash_params(117, seed=1)
    keys = [band_keys(minhash_signature(char_shingles(t), a, b), 9, 13) for t in zh_docs[:6]]
    assert np.array_equal(keys[0], band_keys(minhash_signature(char_shingles(zh_docs[0]), a, b), 9, 13))
    for i in range(1, 6):
        assert not np.any(keys[0] == keys[i])
    en = [band_keys(minhash_signature(word_shingles(t), a, b), 9, 13) for t in en_docs[:4]]
    assert not np.any(en[0] == en[1])


@pytest.mark.slow
def test_signatures_equal_their_straightforward_definition(books, en_docs):
    """On every book of the sample and the English articles: the shingles are the mixed polynomial of each window
    computed with n multiply-adds, the signature is min over shingles of ((a*h + b) mod 2**64) >> 32 per
    permutation, and the band keys of a stack of signatures are those of each signature alone."""
    from stages.dedup_rules import _P, _Q, _WS, _codepoints, _mix, _nfkc_fold

    def windows(values: np.ndarray, n: int, base: np.uint64) -> np.ndarray:
        count = len(values) - n + 1
        h = np.zeros(count, dtype=np.uint64)
        for j in range(n):
            h = h * base + values[j : j + count]
        return np.unique(_mix(h))

    a, b = minhash_params(117, seed=1)
    sigs = []
    for text in books + en_docs:
        cp = _codepoints(_WS.sub("", _nfkc_fold(text)))
        shingles = char_shingles(text, 13)
        assert np.array_equal(shingles, windows(cp, min(13, len(cp)), _P))
        words = word_hashes(text)
        assert np.array_equal(word_shingles(text, 5), windows(words, min(5, len(words)), _Q))
        sig = minhash_signature(shingles, a, b)
        assert np.array_equal(sig, ((shingles[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).min(axis=0))
        sigs.append(sig)
    stacked = band_keys(np.asarray(sigs), 9, 13)
    assert stacked.shape == (len(sigs), 9)
    assert all(np.array_equal(stacked[i], band_keys(sig, 9, 13)) for i, sig in enumerate(sigs))


def test_word_hashes_are_per_word_and_stable():
    h = word_hashes("The quick brown fox -- the QUICK, brown fox!")
    assert len(h) == 8
    assert h[0] == h[4] and h[1] == h[5] and h[2] == h[6] and h[3] == h[7]
    assert len(set(h[:4].tolist())) == 4
    # stable across calls and processes (no Python hash randomization involved)
    assert np.array_equal(h, word_hashes("the quick brown fox the quick brown fox"))


def test_exact_key_folding():
    assert exact_key("Hello  World\n") == exact_key("hello world")
    assert exact_key("Hello  World", "whitespace") != exact_key("hello world", "whitespace")
    assert exact_key("a b", "none") != exact_key("a  b", "none")


def test_natural_key_orders_numbers_as_numbers():
    assert sorted(["w:a:139", "w:a:46", "w:a:5"], key=natural_key) == ["w:a:5", "w:a:46", "w:a:139"]


def test_similar_lines_on_real_text(zh_docs):
    lines = real_lines(zh_docs)
    assert len(lines) == 4
    # a line repeated with two characters changed (well under 10% of its length) is dropped
    repeat = perturb(lines[0], 2, seed=1)
    text = "\n".join([lines[0], lines[1], "", repeat, lines[2], "好", "好"])
    out, dropped = remove_similar_lines(text)
    assert dropped == 2  # the near repeat and the exact short repeat
    assert out == "\n".join([lines[0], lines[1], "", lines[2], "好"])
    # short lines that differ are kept: only exact repeats count below 15 characters
    out, dropped = remove_similar_lines("第一章\n第二章\n第三章")
    assert dropped == 0
    # a line changed beyond 10% stays
    far = perturb(lines[1], max(3, len(lines[1]) // 5), seed=2)
    assert remove_similar_lines(f"{lines[1]}\n{far}")[1] == 0


# --- the stage ---------------------------------------------------------------------------------------------------


def build_corpus(folder, books):
    """Real documents, plus: exact copies in other files, near copies (a few characters changed), and unrelated
    documents that share only boilerplate lines."""
    originals = [d for d in books if len(d) > 1500][:16]
    boiler_head = "首页 | 关于我们 | 联系方式 | 网站地图"
    boiler_foot = "版权所有 © 本站保留所有权利。转载请注明出处并附上原文链接，谢谢合作。"
    files = {
        "a.jsonl": [{"text": t} for t in originals[:8]],
        "b.jsonl": [{"text": t} for t in originals[8:]],
        # exact copies of two documents, with whitespace differences
        "c.jsonl": [{"text": originals[0] + "\n"}, {"text": originals[9].replace("\n", "\n\n")}],
        # near copies: 4 characters changed in texts of 1,500+ characters (Jaccard of 13-grams about 0.93)
        "d.jsonl": [{"text": perturb(originals[1], 4, seed=3)}, {"text": perturb(originals[10], 4, seed=4)}],
        # unrelated documents that share the same header and footer lines
        "e.jsonl": [{"text": f"{boiler_head}\n{t}\n{boiler_foot}"} for t in books[300:306]],
    }
    (folder / "src").mkdir()
    for name, rows in files.items():
        (folder / "src" / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return originals


BODY = """
[[sources]]
name = "s"
path = "src"
format = "jsonl"
"""


@pytest.fixture(scope="module")
def dedup_runs(tmp_path_factory, books):
    out = {}
    for tasks in (1, 4):
        folder = tmp_path_factory.mktemp(f"dedup{tasks}")
        build_corpus(folder, books)
        cfg = load_config(
            write_config(folder, BODY, tasks=tasks, workers=1),
            [
                "stages.langid.enabled=false",
                "stages.filter.enabled=false",
                "tokenizer.enabled=false",
                "tokens.enabled=false",
            ],
        )
        runner.run_stage(cfg, "ingest")
        out[tasks] = (cfg, runner.run_stage(cfg, "dedup"))
    return out


def test_exact_and_near_duplicates_removed_across_files(dedup_runs):
    cfg, stats = dedup_runs[4]
    assert stats["docs_in"] == 26 and stats["removed_by_reason"] == {"exact_duplicate": 2, "near_duplicate": 2}
    removed = pl.read_parquet(cfg.workdir / "dedup" / "removed" / "*.parquet").sort("id")
    assert removed.select("id", "reason", "duplicate_of").rows() == [
        ("s:c.jsonl:1", "exact_duplicate", "s:a.jsonl:1"),
        ("s:c.jsonl:2", "exact_duplicate", "s:b.jsonl:2"),
        ("s:d.jsonl:1", "near_duplicate", "s:a.jsonl:2"),
        ("s:d.jsonl:2", "near_duplicate", "s:b.jsonl:3"),
    ]
    kept = pl.read_parquet(cfg.workdir / "dedup" / "kept" / "*.parquet")
    clusters = kept.filter(pl.col("dup_cluster").is_not_null()).sort("id")
    assert clusters.select("id", "dup_cluster", "dup_cluster_size").rows() == [
        ("s:a.jsonl:1", "s:a.jsonl:1", 2),
        ("s:a.jsonl:2", "s:a.jsonl:2", 2),
        ("s:b.jsonl:2", "s:b.jsonl:2", 2),
        ("s:b.jsonl:3", "s:b.jsonl:3", 2),
    ]
    # documents that only share boilerplate lines are not merged
    assert len(kept.filter(pl.col("id").str.starts_with("s:e.jsonl"))) == 6
    assert verify(cfg, quiet=True) == []


def test_same_kept_set_with_1_and_4_tasks(dedup_runs):
    frames = [
        pl.read_parquet(cfg.workdir / "dedup" / "kept" / "*.parquet").sort("id").select("id", "text", "dup_cluster")
        for cfg, _ in dedup_runs.values()
    ]
    assert frames[0].equals(frames[1])


def test_similar_lines_rewrites_text_but_not_code(tmp_path, zh_docs):
    lines = real_lines(zh_docs, 3)
    text = "\n".join([lines[0], lines[1], perturb(lines[0], 1, seed=9), lines[2]])
    code = "def f(x):\n    return None\n\ndef g(y):\n    return None\n"
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "m.py").write_text(code)
    body = (
        BODY.replace('"src"', '"t.jsonl"')
        + '\n[[sources]]\nname = "c"\npath = "code"\nformat = "text"\nkind = "code"\n'
    )
    cfg = load_config(
        write_config(tmp_path, body),
        ["stages.langid.enabled=false", "stages.filter.enabled=false", "stages.dedup.minhash=false"],
    )
    runner.run_stage(cfg, "ingest")
    stats = runner.run_stage(cfg, "dedup")
    kept = {r["id"]: r for r in pl.read_parquet(cfg.workdir / "dedup" / "kept" / "*.parquet").to_dicts()}
    assert kept["s:t.jsonl:1"]["text"] == "\n".join([lines[0], lines[1], lines[2]])
    assert kept["s:t.jsonl:1"]["dup_lines_removed"] == 1
    assert kept["c:m.py"]["text"] == code and kept["c:m.py"]["dup_lines_removed"] == 0
    assert stats["counters"]["lines_removed"] == 1


@pytest.mark.slow
def test_verification_drops_weak_candidates(tmp_path, books):
    """With permissive bands (40 x 2) a pair at Jaccard ~0.73 becomes a candidate. Without verification (MAP-CC) it
    is merged; verified on signatures or exactly at 0.9 it is not; exactly at 0.6 it is."""
    doc = next(d for d in books if len(d) > 3000)
    other = perturb(doc, int(len(doc) * 0.012), seed=5)
    exact = jaccard(char_shingles(doc), char_shingles(other))
    assert 0.6 < exact < 0.8
    rows = [{"text": doc}, {"text": other}] + [{"text": t} for t in books[200:210]]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    removed = {}
    for mode, threshold in (("none", 0.9), ("signature", 0.9), ("exact", 0.9), ("exact", 0.6)):
        d = tmp_path / f"{mode}{threshold}"
        d.mkdir()
        cfg = load_config(
            write_config(d, BODY.replace('"src"', f'"{tmp_path / "d.jsonl"}"')),
            ["stages.langid.enabled=false", "stages.filter.enabled=false", "stages.dedup.exact=false",
             "stages.dedup.bands=40", "stages.dedup.rows=2", f"stages.dedup.verify_threshold={threshold}", f"stages.dedup.verify={mode}"],
        )  # fmt: skip
        runner.run_stage(cfg, "ingest")
        removed[(mode, threshold)] = runner.run_stage(cfg, "dedup")["removed"]
    assert removed == {("none", 0.9): 1, ("signature", 0.9): 0, ("exact", 0.9): 0, ("exact", 0.6): 1}


def test_bucket_parts_give_the_same_result(tmp_path, books, dedup_runs):
    """Splitting every band (and the exact keys) into 3 key ranges changes the memory per task, not the result."""
    build_corpus(tmp_path, books)
    cfg = load_config(
        write_config(tmp_path, BODY, tasks=2, workers=1),
        ["stages.langid.enabled=false", "stages.filter.enabled=false", "stages.dedup.bucket_parts=3"],
    )
    runner.run_stage(cfg, "ingest")
    stats = runner.run_stage(cfg, "dedup")
    assert len(list((cfg.workdir / "dedup" / "work" / "pairs" / "near" / "000").glob("band_*.npy"))) == 14 * 3
    ref_cfg, ref_stats = dedup_runs[1]
    assert stats["removed_by_reason"] == ref_stats["removed_by_reason"]
    for part in ("kept", "removed"):
        ours = pl.read_parquet(cfg.workdir / "dedup" / part / "*.parquet").sort("id").drop("text")
        ref = pl.read_parquet(ref_cfg.workdir / "dedup" / part / "*.parquet").sort("id").drop("text")
        assert ours.equals(ref)
