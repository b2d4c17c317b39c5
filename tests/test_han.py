"""The one "is this Chinese" definition (model/han.py) on real text, and its callers in every layer agreeing with it
on the bundled sample: langid's script check, dedup's shingle choice, decontam's item mode, the trainer's and the
tokenizer comparison's language guess."""

from __future__ import annotations

import gzip
import json

import pytest

from model.han import HAN, SAMPLE_CHARS, contains_han, han_share, is_chinese
from model.vocab import guess_lang
from stages.decontam import item_mode, read_items
from stages.dedup_rules import uses_char_shingles
from stages.langid import han_only
from tests.conftest import SAMPLE

UDHR_ZH = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"
UDHR_ZH_HANT = "人人生而自由，在尊嚴和權利上一律平等。他們賦有理性和良心，並應以兄弟關係的精神相對待。"
UDHR_EN = "All human beings are born free and equal in dignity and rights."
UDHR_KO = "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다."
NEKO = "吾輩は猫である。名前はまだ無い。"


@pytest.fixture(scope="module")
def books() -> list[str]:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["content"] for line in f]


def test_han_share_of_real_sentences():
    # 39 Han characters and 4 full-width punctuation marks: punctuation counts, spaces do not
    assert len(UDHR_ZH) == 43 and han_share(UDHR_ZH) == pytest.approx(39 / 43)
    assert han_share(UDHR_ZH) == han_share(UDHR_ZH.replace("，", "， "))
    assert han_share(UDHR_ZH_HANT) == han_share(UDHR_ZH)  # Traditional script is Han too
    assert han_share(UDHR_EN) == 0.0 and han_share(UDHR_KO) == 0.0
    assert han_share("") == 0.0 and han_share(" \n\t") == 0.0
    assert 0 < han_share(NEKO) < 1  # kanji are Han, kana are not


def test_han_ranges_beyond_the_basic_block():
    # 𠮷 (U+20BB7, extension B, as in 𠮷野家), 豈 (U+F900, a compatibility ideograph), 㐀 (U+3400, extension A)
    for char in ("𠮷", "豈", "㐀", "人"):
        assert contains_han(char) and han_share(char) == 1.0
    for char in ("あ", "ア", "한", "ㄅ", "，", "。", "A", "1"):  # kana, hangul, bopomofo, CJK punctuation
        assert not contains_han(char)


def test_is_chinese_on_sample_documents(books, en_docs):
    assert is_chinese(UDHR_ZH) and is_chinese(UDHR_ZH_HANT)
    assert not is_chinese(UDHR_EN) and not is_chinese(UDHR_KO)
    assert all(is_chinese(b) for b in books[:40])
    assert not any(is_chinese(t) for t in en_docs)
    quoted = en_docs[0][:1500] + " " + UDHR_ZH  # an English article quoting one Chinese sentence
    assert contains_han(quoted) and not is_chinese(quoted)
    code = (SAMPLE / "code" / "python" / "jieba" / "__init__.py").read_text(encoding="utf-8")
    assert not contains_han(code) and not is_chinese(code)


def test_only_the_first_characters_are_read(en_docs):
    assert is_chinese(UDHR_ZH * 100 + en_docs[0] * 10)
    assert not is_chinese(" ".join(en_docs)[:SAMPLE_CHARS] + UDHR_ZH * 1000)


def test_every_caller_uses_the_same_definition(books, zh_docs, en_docs):
    """Each layer's decision on the sample's texts is the helper's decision."""
    mixed = [b for b in books if "systemctl" in b or "apt-get" in b][:10]  # Chinese manuals with English commands
    texts = zh_docs + en_docs + mixed + [UDHR_ZH, UDHR_EN, NEKO, UDHR_KO, ""]
    for t in texts:
        zh = is_chinese(t)
        assert uses_char_shingles(None, "text", t) == zh  # dedup without a lang column
        assert guess_lang(t) == ("zh" if zh else "en")  # trainer data and tokenizer comparison without lang
        assert item_mode(t) == ("zh" if zh else "en")  # decontam benchmark items
    for t in (NEKO, UDHR_ZH, UDHR_EN):  # langid's ja/ko check: Han present, no kana or hangul
        assert han_only(t, "ja") == (contains_han(t) and t is not NEKO)


def test_benchmark_items_of_the_sample():
    charm = [" ".join(f) for f in read_items(SAMPLE / "benchmarks" / "charm_zh.csv", "csv", ["question"], "k")]
    mmlu = [" ".join(f) for f in read_items(SAMPLE / "benchmarks" / "mmlu.jsonl", "jsonl", ["question"], "k")]
    assert len(charm) == 42 and len(mmlu) == 285
    assert all(is_chinese(q) for q in charm)
    assert not any(is_chinese(q) for q in mmlu)


def _han_share_definition(text: str, sample: int = SAMPLE_CHARS) -> float:
    """han_share as first written: the regex's matches over the non-space characters."""
    head = text[:sample]
    visible = len(head) - sum(map(str.isspace, head))
    return len(HAN.findall(head)) / visible if visible else 0.0


def test_han_share_equals_its_regex_definition(books, en_docs):
    """The NumPy count gives exactly the regex's share: on every sample book and English article, whole and cut at
    the sample's edge, and on each range's first and last code point and their neighbours, every whitespace
    character, lone surrogates, characters beyond plane 3, mixed with Han text."""
    spaces = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    edges = []
    for first, last in ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF)):
        edges += [chr(c) for c in (first - 1, first, first + 1, last - 1, last, last + 1)]
    odd = ["\ud800", "\udfff", "\U00040000", "\U0010ffff", "\x00", "", spaces, spaces + "人", "A" + spaces]
    texts = [*books, *en_docs, *edges, *odd, "".join(edges) + spaces + "".join(odd) + UDHR_ZH]
    texts += [books[0][: SAMPLE_CHARS - 1] + spaces + "人人人", spaces * 200 + UDHR_ZH]
    for text in texts:
        for sample in (SAMPLE_CHARS, 7):
            assert han_share(text, sample) == _han_share_definition(text, sample), (text[:40], sample)
    assert sum(han_share(t) == 1.0 for t in edges) == 16  # the first, second, second-to-last and last of each range
