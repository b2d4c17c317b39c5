"""English: datatrove's Gopher repetition, Gopher quality, C4 and FineWeb filters, applied to lang = en only, with
FineWeb's settings from config and prefixed reasons. One passing and one failing real document per filter."""

from __future__ import annotations

import pytest
from datatrove.data import Document

from stages.filters.en import (
    C4QualityConfig,
    EnglishConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    english_filters,
)

UDHR_EN = (
    "All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience "
    "and should act towards one another in a spirit of brotherhood."
)


@pytest.fixture(scope="module")
def filters() -> dict:
    steps = english_filters(EnglishConfig())
    return dict(zip(["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"], steps))


def en(text: str, lang: str = "en", kind: str = "text") -> Document:
    return Document(text=text, id="t", metadata={"lang": lang, "kind": kind})


def by_title(docs: list[str], title: str) -> str:
    return next(d for d in docs if d.startswith(title))


def test_filters_in_fineweb_order(filters):
    names = [f.name for f in filters.values()]
    assert names == ["en: 👯 Gopher Repetition", "en: 🥇 Gopher Quality", "en: ⛰ C4 Quality", "en: 🍷 FineWeb Quality"]


def test_prose_passes_all_four_and_is_not_rewritten(filters, en_docs):
    prose = by_title(en_docs, "1. Whetting Your Appetite")  # the Python tutorial's first chapter
    doc = en(prose)
    assert [f.filter(doc) for f in filters.values()] == [True] * 4
    assert doc.text == prose  # C4 drops short lines from what it checks; the document keeps them


def test_gopher_repetition(filters, en_docs):
    assert filters["gopher_repetition"].filter(en(by_title(en_docs, "1. Whetting"))) is True
    # the argparse tutorial repeats its command-line transcripts line for line
    argparse = by_title(en_docs, "Argparse Tutorial")
    assert filters["gopher_repetition"].filter(en(argparse)) == (False, "en_gopher_rep_dup_line_frac")


def test_gopher_quality(filters, en_docs):
    assert filters["gopher_quality"].filter(en(by_title(en_docs, "1. Whetting"))) is True
    assert filters["gopher_quality"].filter(en(UDHR_EN)) == (False, "en_gopher_short_doc")
    # code in a text document: the tutorial's chapter on classes is half Python, so under 80% of its words
    # have a letter
    classes = by_title(en_docs, "9. Classes")
    assert filters["gopher_quality"].filter(en(classes)) == (False, "en_gopher_below_alpha_threshold")


def test_c4_quality(filters, en_docs):
    assert filters["c4_quality"].filter(en(by_title(en_docs, "1. Whetting"))) is True
    assert filters["c4_quality"].filter(en(UDHR_EN)) == (False, "en_c4_too_few_sentences")
    logging = by_title(en_docs, "Logging HOWTO")  # its format strings use {}
    assert filters["c4_quality"].filter(en(logging)) == (False, "en_c4_curly_bracket")


def test_fineweb_quality(filters, en_docs):
    assert filters["fineweb_quality"].filter(en(by_title(en_docs, "1. Whetting"))) is True
    modules = by_title(en_docs, "6. Modules")  # its interpreter transcripts repeat lines
    assert filters["fineweb_quality"].filter(en(modules)) == (False, "en_fineweb_char_dup_ratio")
    tour = by_title(en_docs, "10. Brief Tour of the Standard Library")  # mostly code lines without a full stop
    assert filters["fineweb_quality"].filter(en(tour)) == (False, "en_fineweb_line_punct_ratio")


def test_thresholds_come_from_config():
    loose = english_filters(
        EnglishConfig(
            gopher_quality=GopherQualityConfig(min_doc_words=10),
            c4_quality=C4QualityConfig(min_num_sentences=2),
            fineweb_quality=FineWebQualityConfig(enabled=False),
            gopher_repetition=GopherRepetitionConfig(enabled=False),
        )
    )
    assert len(loose) == 2
    assert [f.filter(en(UDHR_EN)) for f in loose] == [True, True]


def test_only_english_documents_are_checked(filters):
    for doc in (
        en("人人生而自由，在尊严和权利上一律平等。", lang="zh"),
        en("int main(){return 0;}", lang="code", kind="code"),
    ):
        assert all(f.filter(doc) is True for f in filters.values())


def test_edge_cases_do_not_crash(filters, en_docs):
    for text in ("", "\n\n\n", "... !!! ???", "—" * 50):
        for f in filters.values():
            result = f.filter(en(text))
            assert result is True or (result[0] is False and result[1].startswith("en_"))
    long_line = " ".join(by_title(en_docs, "1. Whetting").split())  # one very long line
    assert filters["gopher_quality"].filter(en(long_line)) is True
