"""stages/nfkc.py: NFKC that skips ideograph runs gives exactly `unicodedata.normalize("NFKC", ...)`."""

from __future__ import annotations

import gzip
import json
import random
import sys
import unicodedata

import pyarrow.parquet as pq

from stages.nfkc import FOLD_CODE_POINTS, FOLD_FROM, IDEOGRAPH_RANGES, _fold, _fold_tables, nfkc
from tests.conftest import SAMPLE


def is_ideograph(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in IDEOGRAPH_RANGES)


def test_ideographs_never_decompose_or_compose():
    """The premise of the split: no ideograph of the ranges has a decomposition or a combining class, and none is
    part of a two-character canonical decomposition (so none composes with a neighbour)."""
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        decomposition = unicodedata.decomposition(ch)
        if is_ideograph(cp):
            assert decomposition == "" and unicodedata.combining(ch) == 0, hex(cp)
        if decomposition and not decomposition.startswith("<"):
            parts = [int(x, 16) for x in decomposition.split()]
            assert not (len(parts) == 2 and any(is_ideograph(p) for p in parts)), hex(cp)


def test_nfkc_equals_unicodedata_on_the_sample_and_on_composing_strings():
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["content"] for line in f]
    texts += (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n")
    changed = 0
    for text in texts:
        expected = unicodedata.normalize("NFKC", text)
        assert nfkc(text) == expected
        changed += expected != text
    assert changed > 100  # the sample's Chinese text is mostly not NFKC as it is (full-width punctuation)
    # Ideographs next to combining marks, jamo, full-width letters, ligatures and characters that compose.
    pool = (
        "一丁中国家ＡＢａ１，。：e\u0301\u0327\u0323A\u0300가\u1161\u11a8\u1100\u3131ﬁ①⑴㍿\uf900\u2f00 か\u3099\u309a"
    )
    rng = random.Random(0)
    for _ in range(50_000):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
        assert nfkc(s) == unicodedata.normalize("NFKC", s), ascii(s)


def test_fold_tables_hold_every_characters_nfkd_and_every_trailing_character():
    """The tables `nfkc` folds through: each Basic Multilingual Plane character's NFKD, and "foldable" only where no
    character of that NFKD is trailing (combining class, the second of any canonical pair up to U+10FFFF, Hangul V
    and T jamo; beyond the plane: U+FA6C decomposes to U+242EE), checked against unicodedata character by
    character."""
    foldable, lengths, offsets, flat = _fold_tables()
    trailing = set()
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if unicodedata.combining(ch):
            trailing.add(cp)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<") and len(decomposition.split()) == 2:
            trailing.add(int(decomposition.split()[1], 16))
    trailing |= set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(FOLD_CODE_POINTS):
        nfkd = unicodedata.normalize("NFKD", chr(cp))
        piece = flat[offsets[cp] : offsets[cp] + lengths[cp]]
        assert "".join(map(chr, piece)) == nfkd, hex(cp)
        assert foldable[cp] == all(ord(c) not in trailing and ord(c) < FOLD_CODE_POINTS for c in nfkd), hex(cp)
    assert not foldable[0xAC00] and not foldable[0x314F] and not foldable[0x0301]  # 가, ㅏ, a combining accent
    assert foldable[ord("，")] and foldable[ord("…")] and foldable[ord("e")] and foldable[0x4E00]


def test_folding_equals_unicodedata_on_long_texts():
    """Texts of FOLD_FROM characters and more go through the tables where every character is foldable: the same
    text as `unicodedata.normalize`, on the sample's Chinese and English, on strings of foldable characters drawn from
    the whole plane, and on strings mixing in trailing characters (which must take the run-by-run path)."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["content"] for line in f]
    texts += pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()
    folded = 0
    for text in texts:
        assert nfkc(text) == unicodedata.normalize("NFKC", text)
        folded += len(text) >= FOLD_FROM and _fold(text) is not None and not unicodedata.is_normalized("NFKC", text)
    assert folded > 300
    foldable = _fold_tables()[0]
    plane = [chr(cp) for cp in range(FOLD_CODE_POINTS) if foldable[cp]]
    rng = random.Random(1)
    for _ in range(3_000):
        s = "".join(rng.choices(plane, k=rng.randint(FOLD_FROM, 300)))
        assert _fold(s) == unicodedata.normalize("NFKC", s) == nfkc(s), ascii(s)
    pool = plane[:2000] + ["\u0301", "\u3099", "가", "\u1161", "\u11a8", "ㄱ", "\u0dcf", "\U0001d400", "ｶ", "ﾞ"]
    for _ in range(3_000):
        s = "".join(rng.choices(pool, k=rng.randint(FOLD_FROM, 200)))
        assert nfkc(s) == unicodedata.normalize("NFKC", s), ascii(s)
