"""stages/nfkc.py: NFKC that skips ideograph runs gives exactly `unicodedata.normalize("NFKC", ...)`."""

from __future__ import annotations

import gzip
import json
import random
import sys
import unicodedata

from stages.nfkc import IDEOGRAPH_RANGES, nfkc
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
