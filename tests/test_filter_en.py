"""English: datatrove's Gopher repetition, Gopher quality, C4 and FineWeb filters, applied to lang = en only, with
FineWeb's settings from config and prefixed reasons. One passing and one failing real document per filter; then the
stage's `EnglishQualityFilter` (the four from one tokenization, every value measured) against datatrove's filters
on every English sample document."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from datatrove.utils.text import split_into_words

from stages.filters.en import (
    C4QualityConfig,
    EnglishConfig,
    EnglishQualityFilter,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    c4_quality,
    english_filters,
    english_tokens,
    fineweb_quality,
    gopher_quality,
    gopher_repetition,
)
from tests.conftest import SAMPLE

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


# --- one tokenization for the four filters (EnglishQualityFilter), and the `scores` column -----------------------


def variants(i: int, text: str) -> list[str]:
    """A sample document as it is and changed the ways web text differs: cut short (too few words, too few sentences),
    and for some of them repeated (duplicated paragraphs and n-grams) or ending in placeholder text."""
    out = [text, text[:1500]]
    if i < 20:
        out.append(text[:400])
    if i < 10:
        out.append(text + "\n\n" + text)
    if i % 4 == 0:
        out.append(text[: len(text) // 3] + LOREM)
    return out


LOREM = "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.\n"


@pytest.fixture(scope="module")
def all_en_texts() -> list[str]:
    """Every English document of the sample (articles_en), each with its variants."""
    texts = pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()
    return [v for i, t in enumerate(texts) for v in variants(i, t)]


def test_one_tokenization_decides_as_datatrove(all_en_texts):
    """Each filter's reason from the shared tokenization equals datatrove's own filter's, filter by filter (so C4
    and FineWeb are compared on documents Gopher removes too), the stage's decision equals the chain's, and C4's
    sentence count per line from the shared tokens equals spaCy's on each line."""
    cfg = EnglishConfig()
    reference = dict(
        zip(["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"], english_filters(cfg))
    )
    ours = EnglishQualityFilter(cfg)
    seen = set()
    for text in all_en_texts:
        doc = en(text)
        tokens = english_tokens(text)
        assert tokens.words == split_into_words(text, "en")
        # C4's sentences per kept line, replayed from the document's tokens, as spaCy counts them line by line
        assert c4_quality(text, cfg.c4_quality, tokens)[0] == c4_quality(text, cfg.c4_quality)[0]
        mine = {
            "gopher_repetition": gopher_repetition(text, tokens.words, cfg.gopher_repetition)[1],
            "gopher_quality": gopher_quality(text, tokens.words, cfg.gopher_quality)[1],
            "c4_quality": c4_quality(text, cfg.c4_quality, tokens)[1],
            "fineweb_quality": fineweb_quality(text, tokens.words, cfg.fineweb_quality)[1],
        }
        theirs = {name: f.filter(doc) for name, f in reference.items()}
        theirs = {name: None if r is True else r[1] for name, r in theirs.items()}
        assert mine == theirs, text[:80]
        chain = next((r for r in theirs.values() if r), None)
        assert ours.filter(doc) == (True if chain is None else (False, chain))
        seen |= {r for r in theirs.values() if r}
    # the comparison covers each filter's removals, not only Gopher quality's
    assert {"en_gopher_rep_dup_para_frac", "en_gopher_below_alpha_threshold", "en_c4_lorem_ipsum"} <= seen
    assert {"en_c4_curly_bracket", "en_c4_too_few_sentences", "en_fineweb_char_dup_ratio"} <= seen


def test_scores_are_the_values_datatrove_compares(en_docs):
    cfg = EnglishConfig()
    prose = by_title(en_docs, "1. Whetting")
    scores, reason = EnglishQualityFilter(cfg).evaluate(en(prose))
    assert reason is None
    words = split_into_words(prose, "en")
    assert scores["en_fineweb_list_ratio"] == prose.count("\n") / len(words)
    assert scores["en_gopher_too_many_hashes"] == prose.count("#") / len(words)
    assert scores["en_gopher_short_doc"] == scores["en_gopher_long_doc"] > 50
    assert scores["en_gopher_enough_stop_words"] == 8  # all eight of Gopher's stop words
    assert scores["en_c4_too_few_sentences"] >= 5 and scores["en_c4_curly_bracket"] == 0
    # a removed document still has every later rule measured: the classes chapter fails Gopher quality's
    # alphabetic-word share, and C4 (its {} in code) and FineWeb are measured anyway
    scores, reason = EnglishQualityFilter(cfg).evaluate(en(by_title(en_docs, "9. Classes")))
    assert reason == "en_gopher_below_alpha_threshold" and scores[reason] < 0.8
    assert scores["en_c4_too_few_sentences"] > 5 and scores["en_fineweb_line_punct_ratio"] is not None
    assert EnglishQualityFilter(cfg).evaluate(en("人人生而自由。", lang="zh")) is None
