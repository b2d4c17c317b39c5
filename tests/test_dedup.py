"""Deduplication: the rules on real text, and the stage through the runner (exact, near, similar lines, tasks)."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import unicodedata

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import xxhash
from datasketch import MinHash

from pipeline import runner
from pipeline.config import load_config
from pipeline.verify import verify
from stages import dedup, dedup_rules
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
    remove_similar_lines_reference,
    word_hashes,
    word_shingles,
)
from tests.conftest import REPO, SAMPLE, write_config

sys.path.insert(0, str(REPO / "bench"))
import make_corpus  # noqa: E402  (bench/ is a folder of scripts, not a package)


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
    # The blocked layout does not depend on the block width (narrower and wider than most documents, one shingle
    # per block) or on the number of permutations (the default 14 x 7 = 98).
    a98, b98 = minhash_params(98, seed=1234)
    for text in books[::7] + en_docs[:5]:
        shingles = char_shingles(text, 13)
        expected = ((shingles[:, None] * a98[None, :] + b98[None, :]) >> np.uint64(32)).min(axis=0)
        for chunk in (1, 37, 512, 4096):
            assert np.array_equal(minhash_signature(shingles, a98, b98, chunk), expected), chunk


def test_signatures_from_ngrams_with_repeats_equal_those_of_the_shingle_sets(books, en_docs):
    """The signatures step hashes each document's n-grams with their repeats (`ngram_hashes_for`, no sort): their
    distinct values are the shingle set, and the signature is the set's, on every book (char 13-grams), the English
    articles (word 5-grams) and texts made of one repeated line (most n-grams repeats), as code and as text."""
    from stages.dedup_rules import ngram_hashes_for, shingles_for

    a, b = minhash_params(98, seed=7)
    repeated = ["重复的一行文字，" * 40, "the same words again and again " * 30, "短", ""]
    repeats = 0
    for text, lang in [(t, "zh") for t in books] + [(t, "en") for t in en_docs] + [(t, None) for t in repeated]:
        for kind in ("text", "code"):
            hashes = ngram_hashes_for(text, lang, kind, 13, 5)
            shingles = shingles_for(text, lang, kind, 13, 5)
            assert np.array_equal(np.unique(hashes), shingles)
            repeats += len(hashes) - len(shingles)
            if len(shingles):
                assert np.array_equal(minhash_signature(hashes, a, b), minhash_signature(shingles, a, b))
    assert repeats > 1000  # the multisets do differ from the sets


@pytest.mark.slow
def test_fold_table_gives_the_string_fold(books, en_docs):
    """char_shingles folds code points through a per-character table where every character of the text is inert
    (`_fold_table`): the result equals `_WS.sub("", nfkc(text).casefold())` on every BMP character alone, on the
    sample's documents, and on random strings that mix inert characters with multi-character outputs (ligatures,
    circled and parenthesized forms, full-width and compatibility characters) and characters that compose or
    reorder (combining marks, Hangul jamo, kana voicing marks) or lie beyond the table, which take the string path."""
    from stages.dedup_rules import _WS, _codepoints, _fold_table, _nfkc_fold, folded_codepoints

    def by_strings(text: str) -> np.ndarray:
        return _codepoints(_WS.sub("", _nfkc_fold(text)))

    lengths = _fold_table()[0]
    assert len(lengths) == 0x40000  # planes 0-3; beyond, the string path
    for cp in range(1, len(lengths)):
        if not 0xD800 <= cp <= 0xDFFF:
            assert np.array_equal(folded_codepoints(chr(cp)), by_strings(chr(cp))), hex(cp)
    notes = (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n")
    code = [p.read_text(encoding="utf-8") for p in sorted((SAMPLE / "code").rglob("*")) if p.is_file()]
    texts = books + notes + en_docs + code
    by_table = 0  # documents that take the table path
    for text in texts:
        assert np.array_equal(folded_codepoints(text), by_strings(text))
        cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        by_table += bool(len(cp)) and cp.max() < len(lengths) and lengths[cp].min() >= 0
    assert by_table >= 0.95 * len(books)  # the table path is what runs on the Chinese books
    inert = np.flatnonzero(lengths >= 0)
    expanding = np.flatnonzero(lengths > 1)  # …, ㈠, ﬁ, ㍿, ß (casefold), ...
    assert len(expanding) > 500 and (lengths == 0).sum() > 20  # whitespace folds to nothing
    composing = [ord(c) for c in "\u0301\u0327\u0323\u0300\u1161\u11a8\u1100\u3099\u309a가\U0001d15e\U000e0041\x00"]
    starters = [ord(c) for c in "aeiouyAEIOUcnsかカはゝ"]  # what those compose with
    rng = np.random.default_rng(0)
    for _ in range(20_000):
        picks = [rng.choice(inert, 3), rng.choice(expanding, 2), rng.choice(starters, 1), rng.choice(composing, 1)]
        picks = np.concatenate(picks[:4] if rng.random() < 0.5 else picks)
        text = "".join(map(chr, rng.permutation(picks)))
        assert np.array_equal(folded_codepoints(text), by_strings(text)), ascii(text)


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


def test_exact_key_folds_whitespace_as_the_regex_definition(books, en_docs):
    """exact_key's split/join equals collapsing `\\s+` to one space and stripping, on every code point and on the
    sample's documents."""
    ws = re.compile(r"\s+")
    assert [chr(c) for c in range(0x110000) if bool(ws.fullmatch(chr(c))) != chr(c).isspace()] == []
    odd = "\u3000全角\u3000空格\x1c分隔\u2028行\xa0不断 \t\n  Ab"
    for text in [*books[:100], *en_docs, odd]:
        for normalize in ("whitespace", "whitespace_case"):
            folded = ws.sub(" ", text).strip()
            folded = folded.casefold() if normalize == "whitespace_case" else folded
            h = xxhash.xxh3_128_intdigest(folded.encode("utf-8", "surrogatepass"))
            assert exact_key(text, normalize) == (h >> 64, h & 0xFFFFFFFFFFFFFFFF)


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


@pytest.mark.parametrize(
    ("max_distance", "exact_only_below", "max_candidates", "block", "step"),
    [
        (0.1, 15, 2000, None, 1),  # the defaults, every document
        (0.1, 15, 3, None, 3),  # a window of 3 kept lines: which earlier lines still count matters
        (0.3, 5, 7, 4, 3),  # blocks of 4 lines: the window carried from block to block
        (0.0, 0, 2000, 4, 3),  # exact repeats only, every line long
        (1.0, 15, 50, None, 3),  # every pair within the length bound
    ],
)
def test_similar_lines_fast_path_equals_its_definition(
    books, en_docs, monkeypatch, max_distance, exact_only_below, max_candidates, block, step
):
    """The blocked rapidfuzz path drops exactly the lines of the line-by-line reference, on the sample's books and
    English articles (228 of the 580 books lose lines at the defaults, 3,248 lines), with windows and blocks small
    enough that the lines carried from block to block and out of the window decide."""
    if block is not None:
        monkeypatch.setattr(dedup_rules, "SIMILAR_LINES_BLOCK", block)
    docs = (books + en_docs)[::step]
    params = (max_distance, exact_only_below, max_candidates)
    expected = [remove_similar_lines_reference(d, *params) for d in docs]
    assert sum(dropped for _, dropped in expected) > 100
    assert [remove_similar_lines(d, *params) for d in docs] == expected


def test_components_number_groups_as_scipy_does():
    """The NumPy union-find gives scipy's connected_components labels (components in the order of their smallest
    node) on random graphs of every density, chains (the most pointer jumps) and node values as large as a node's
    task << 40 | position."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(7)
    graphs = [rng.integers(0, n, size=(m, 2)) for n, m in [(2, 1), (50, 10), (50, 60), (1000, 700), (5000, 20000)]]
    graphs.append(np.stack([np.arange(999, 0, -1), np.arange(998, -1, -1)], axis=1))  # one chain, reversed
    graphs.append((rng.integers(0, 4, size=(300, 2)) << 40) | rng.integers(0, 200, size=(300, 2)))
    for pairs in graphs:
        nodes, inverse = np.unique(pairs.ravel(), return_inverse=True)
        edges = inverse.reshape(-1, 2)
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(nodes),) * 2)
        got_nodes, labels = dedup._components(pairs.astype(np.int64))
        assert np.array_equal(got_nodes, nodes)
        assert np.array_equal(labels, connected_components(graph, directed=False)[1])
    assert [len(x) for x in dedup._components(np.empty((0, 2), dtype=np.int64))] == [0, 0]


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


def test_single_task_phases_merged_write_what_separate_phases_write(dedup_runs, tmp_path, books, monkeypatch):
    """With one task, the seven phases before the filter run as one (no phase setup each), and every file they
    write under work/ (keys, pairs, candidates, shingle sets, verified pairs, groups, keepers' plans, ids) and the
    kept and removed shards equal those of the same run with each phase on its own."""
    cfg, stats = dedup_runs[1]
    run = json.loads((cfg.workdir / "dedup" / "run.json").read_text())
    assert run["phases"] == ["signatures+buckets+candidates+shingles+verify+clusters+keepers", "filter"]
    assert run["phase_tasks"] == [1, 1]
    monkeypatch.setattr(dedup, "merge_single_task_phases", lambda phases: phases)
    build_corpus(tmp_path, books)
    sets = ["stages.langid.enabled=false", "stages.filter.enabled=false", "tokenizer.enabled=false"]
    separate = load_config(write_config(tmp_path, BODY, tasks=1, workers=1), [*sets, "tokens.enabled=false"])
    runner.run_stage(separate, "ingest")
    assert runner.run_stage(separate, "dedup")["removed_by_reason"] == stats["removed_by_reason"]
    assert json.loads((separate.workdir / "dedup" / "run.json").read_text())["phases"] == [
        "signatures", "buckets", "candidates", "shingles", "verify", "clusters", "keepers", "filter"
    ]  # fmt: skip
    work, work_separate = cfg.workdir / "dedup" / "work", separate.workdir / "dedup" / "work"
    files = sorted(f.relative_to(work) for f in work.rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(work_separate) for f in work_separate.rglob("*") if f.is_file())
    assert len(files) > 40
    for name in files:
        if name.suffix == ".npy":
            assert np.array_equal(np.load(work / name), np.load(work_separate / name)), name
        else:
            assert pq.read_table(work / name).equals(pq.read_table(work_separate / name)), name
    for part in ("kept", "removed"):
        ours = pl.read_parquet(cfg.workdir / "dedup" / part / "*.parquet").sort("id")
        assert ours.equals(pl.read_parquet(separate.workdir / "dedup" / part / "*.parquet").sort("id"))


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


# --- recall just above the threshold, the MAP-CC preset, verification split by document (issue 14 item 3) --------


def near_copy_corpus(folder, books) -> dict[str, float]:
    """Real books and near copies of them made as bench/make_corpus.py makes them (Han characters replaced until
    the character-13-gram Jaccard reaches a target): 48 copies aimed just above 0.85 (0.855-0.88), 16 at 0.7, and
    16 books with no copy. Returns {copy id: its exact Jaccard with its original}."""
    rng = random.Random(14)
    originals = [d for d in books if len(d) > 1500][:64]
    copies, jaccards = [], {}
    for i, text in enumerate(originals[:48]):
        copies.append(make_corpus.near_duplicate(rng, text, 0.855 + 0.025 * (i % 6) / 5)[0])
    for text in originals[48:64]:
        copies.append(make_corpus.near_duplicate(rng, text, 0.7)[0])
    lone = [d for d in books if len(d) > 1500][64:80]
    (folder / "src").mkdir()
    rows = [{"text": t} for t in originals + lone + copies]
    (folder / "src" / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    first_copy = len(originals) + len(lone)
    for i, copy in enumerate(copies):  # ids as ingest gives them: <source>:<file>:<line>
        jaccards[f"s:a.jsonl:{first_copy + i + 1}"] = jaccard(char_shingles(originals[i]), char_shingles(copy))
    return jaccards


def run_dedup(folder, *sets: str, tasks: int = 2):
    cfg = load_config(
        write_config(folder, BODY, tasks=tasks, workers=1),
        ["stages.langid.enabled=false", "stages.filter.enabled=false", *sets],
    )
    runner.run_stage(cfg, "ingest")
    stats = runner.run_stage(cfg, "dedup")
    removed = pl.read_parquet(cfg.workdir / "dedup" / "removed" / "*.parquet")
    return cfg, stats, dict(zip(removed["id"], removed["reason"], strict=True))


@pytest.fixture(scope="module")
def near_copies(tmp_path_factory, books):
    folder = tmp_path_factory.mktemp("nearcopies")
    jaccards = near_copy_corpus(folder, books)
    return folder, jaccards, run_dedup(folder)


@pytest.mark.slow
def test_default_finds_near_copies_just_above_085_and_keeps_those_below(near_copies, tmp_path, books):
    """The default (14 x 7 bands, exact verification at 0.85) removes >= 95% of copies at Jaccard 0.85-0.89 and no
    copy below the threshold nor any book without a copy; MAP-CC's 9 x 13 unverified, on the same corpus, misses
    more than 10% of them (its S-curve gives ~70-85% there)."""
    folder, jaccards, (_, stats, removed) = near_copies
    above = [i for i, j in jaccards.items() if j >= 0.85]
    below = [i for i, j in jaccards.items() if j < 0.8]
    assert len(above) >= 40 and max(jaccards[i] for i in above) < 0.9 and len(below) == 16
    found = sum(removed.get(i) == "near_duplicate" for i in above)
    assert found / len(above) >= 0.95
    assert set(removed) <= set(above), "only copies at or above the threshold are removed"
    assert stats["docs_in"] == 144
    copy_ids = set(jaccards)
    shutil.copytree(folder / "src", tmp_path / "src")
    _, _, mapcc_removed = run_dedup(tmp_path, "stages.dedup.preset=mapcc")
    mapcc_found = sum(mapcc_removed.get(i) == "near_duplicate" for i in above)
    assert mapcc_found / len(above) < 0.9
    assert set(mapcc_removed) <= copy_ids


def mapcc_reference(docs: list[tuple[str, str]], seed: int) -> tuple[dict, dict]:
    """MAP-CC's decisions written straight from their definition, over every pair: exact groups (whitespace/case
    folding) keep their smallest id; then documents sharing any of 9 bands of 13 rows of a 117-permutation MinHash
    are linked, with no verification; each connected group keeps its smallest surviving id. Returns
    ({removed id: (reason, duplicate_of)}, {kept id in a group: group size})."""
    a, b = minhash_params(117, seed)
    parent = {i: i for i, _ in docs}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    def union(x, y):
        parent[find(x)] = find(y)

    keys = {i: exact_key(t) for i, t in docs}
    bands = {i: set(enumerate(band_keys(minhash_signature(char_shingles(t), a, b), 9, 13).tolist())) for i, t in docs}
    ids = [i for i, _ in docs]
    exact_groups: dict = {}
    for i in ids:
        exact_groups.setdefault(keys[i], []).append(i)
    removed = {}
    for members in exact_groups.values():
        keeper = min(members, key=natural_key)
        removed.update({m: ("exact_duplicate", keeper) for m in members if m != keeper})
    grouped = set()
    for x, y in itertools.combinations(ids, 2):
        if keys[x] == keys[y] or bands[x] & bands[y]:
            union(x, y)
            grouped |= {x, y}
    components: dict = {}
    for i in grouped:
        components.setdefault(find(i), []).append(i)
    sizes = {}
    for members in components.values():
        keeper = min((m for m in members if m not in removed), key=natural_key)
        sizes[keeper] = len(members)
        removed.update({m: ("near_duplicate", keeper) for m in members if m != keeper and m not in removed})
    return removed, sizes


@pytest.mark.slow
def test_mapcc_preset_gives_mapcc_decisions(tmp_path, books):
    """preset = "mapcc" is MAP-CC's 9 x 13 with no verification: the same removals, reasons, keepers and cluster
    sizes as the definition above, on the near-copy corpus plus exact copies."""
    near_copy_corpus(tmp_path, books)
    with open(tmp_path / "src" / "a.jsonl", "a") as f:
        for t in [d for d in books if len(d) > 1500][:3]:
            f.write(json.dumps({"text": t.replace("\n", "\n\n") + " "}, ensure_ascii=False) + "\n")
    cfg, _, _ = run_dedup(tmp_path, "stages.dedup.preset=mapcc", tasks=3)
    dedup = cfg.stages.dedup
    assert (dedup.bands, dedup.rows, dedup.verify) == (9, 13, "none")
    docs = pl.read_parquet(cfg.workdir / "ingest" / "kept" / "*.parquet").select("id", "text").rows()
    want_removed, want_sizes = mapcc_reference(docs, cfg.run.seed)
    removed = pl.read_parquet(cfg.workdir / "dedup" / "removed" / "*.parquet")
    assert {i: (r, d) for i, r, d in removed.select("id", "reason", "duplicate_of").rows()} == want_removed
    kept = pl.read_parquet(cfg.workdir / "dedup" / "kept" / "*.parquet").filter(pl.col("dup_cluster").is_not_null())
    assert dict(kept.select("id", "dup_cluster_size").rows()) == want_sizes
    assert all(k == c for k, c in kept.select("id", "dup_cluster").rows())
    # keys set beside the preset override it
    over = load_config(write_config(tmp_path, BODY), ["stages.dedup.preset=mapcc", "stages.dedup.bands=5"])
    assert (over.stages.dedup.bands, over.stages.dedup.rows, over.stages.dedup.verify) == (5, 13, "none")


@pytest.mark.slow
def test_verification_and_keeper_parts_hold_only_their_documents(near_copies, tmp_path):
    """verify_parts = 3: each verification task's shingle files hold exactly the documents of its own candidate
    pairs (fewer than all candidates), every candidate pair is in one part; cluster_parts = 3: every group's members
    are in one keeper part; the result equals the one-part run's."""
    folder, _, (ref_cfg, ref_stats, ref_removed) = near_copies
    shutil.copytree(folder / "src", tmp_path / "src")
    cfg, stats, removed = run_dedup(tmp_path, "stages.dedup.verify_parts=3", "stages.dedup.cluster_parts=3")
    assert removed == ref_removed and stats["kept"] == ref_stats["kept"]
    work = cfg.workdir / "dedup" / "work"
    parts = [np.load(work / "candidates" / f"{v:03d}.npy") for v in range(3)]
    everything = np.unique(np.concatenate(parts), axis=0)
    assert len(everything) == sum(len(p) for p in parts) > 0  # each pair in exactly one part
    all_docs = set(np.unique(everything).tolist())
    for v, pairs in enumerate(parts):
        held = set()
        for r in range(2):
            pos = np.load(work / "shingles" / f"{v:03d}" / f"{r:05d}_pos.npy")
            held |= {(r << 40) | int(p) for p in pos}
        assert held == set(np.unique(pairs).tolist())
        assert len(held) < len(all_docs)
    groups = [np.load(work / "groups" / f"{k:03d}.npy") for k in range(3)]  # rows: node, group, exact group
    assert all(len(g) < sum(map(len, groups)) for g in groups)
    for k, g in enumerate(groups):
        others = np.concatenate([groups[j] for j in range(3) if j != k])
        assert not set(g[:, 1].tolist()) & set(others[:, 1].tolist())
        assert not set(g[:, 0].tolist()) & set(others[:, 0].tolist())
    for f in ("kept", "removed"):
        ours = pl.read_parquet(cfg.workdir / "dedup" / f / "*.parquet").sort("id")
        ref = pl.read_parquet(ref_cfg.workdir / "dedup" / f / "*.parquet").sort("id")
        assert ours.equals(ref)


@pytest.mark.slow
def test_dedup_resumes_after_a_kill_between_verification_phases(near_copies, tmp_path):
    """Kill `pipeline run dedup` once the candidates phase is complete (the shingles pass is running), rerun: the
    stage finishes with exactly the uninterrupted run's output."""
    folder, _, (ref_cfg, _, _) = near_copies
    shutil.copytree(folder / "src", tmp_path / "src")
    cfg_path = write_config(tmp_path, BODY, tasks=2, workers=1)
    sets = ["stages.langid.enabled=false", "stages.filter.enabled=false", "stages.dedup.verify_parts=3"]
    cfg = load_config(cfg_path, sets)
    runner.run_stage(cfg, "ingest")
    args = [arg for s in sets for arg in ("--set", s)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "dedup", "--config", str(cfg_path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    completions = cfg.workdir / "dedup" / "logs" / "candidates" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(completions.glob("*"))) < 3:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert runner.stage_state(cfg, "dedup").state == "incomplete"
    # at once, as a user would: the runner's lock went with its process, and the rerun itself waits for any task
    # process of the killed run still exiting (pipeline/runlock.py)
    runner.run_stage(cfg, "dedup")
    for f in ("kept", "removed"):
        ours = pl.read_parquet(cfg.workdir / "dedup" / f / "*.parquet").sort("id")
        ref = pl.read_parquet(ref_cfg.workdir / "dedup" / f / "*.parquet").sort("id")
        assert ours.equals(ref)
    assert verify(cfg, quiet=True) == []
