"""English: datatrove's GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter in
FineWeb's order and with FineWeb's settings, on lang = en documents only. Reasons are datatrove's, prefixed
(`en_gopher_rep_top_2_gram`, `en_gopher_short_doc`, `en_c4_too_few_sentences`, `en_fineweb_line_punct_ratio`).
C4's filter also rewrites the text (it drops lines); here it only decides, as docs/architecture.md leaves text
changes to the pii and dedup stages."""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from pydantic import Field

from stages.base import IntKey, StrictModel


class GopherRepetitionConfig(StrictModel):
    """datatrove's GopherRepetitionFilter; defaults are Gopher's (Rae et al. 2021, table A1), as FineWeb used."""

    enabled: bool = True
    """false switches this filter off."""
    dup_line_frac: float = 0.3
    """Share of lines that repeat an earlier line, at most."""
    dup_para_frac: float = 0.3
    """Share of paragraphs that repeat an earlier one, at most."""
    dup_line_char_frac: float = 0.2
    """Share of characters in repeated lines, at most."""
    dup_para_char_frac: float = 0.2
    """Share of characters in repeated paragraphs, at most."""
    top_n_grams: dict[IntKey, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    """n -> the share of characters the most frequent word n-gram may cover."""
    dup_n_grams: dict[IntKey, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    """n -> the share of characters that may lie in repeated word n-grams."""


class GopherQualityConfig(StrictModel):
    """datatrove's GopherQualityFilter with Gopher's thresholds."""

    enabled: bool = True
    """false switches this filter off."""
    min_doc_words: int = 50
    """Words (not pure punctuation), at least."""
    max_doc_words: int = 100_000
    """Words, at most."""
    min_avg_word_length: float = 3
    """Mean word length in characters, at least."""
    max_avg_word_length: float = 10
    """Mean word length in characters, at most."""
    max_symbol_word_ratio: float = 0.1
    """# and ellipses per word, at most."""
    max_bullet_lines_ratio: float = 0.9
    """Share of lines starting with • or -, at most."""
    max_ellipsis_lines_ratio: float = 0.3
    """Share of lines ending with an ellipsis, at most."""
    max_non_alpha_words_ratio: float = 0.8
    """At least this share of words must contain a letter."""
    min_stop_words: int = 2
    """Distinct stop words a document must contain."""
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    """Gopher's stop words."""


class C4QualityConfig(StrictModel):
    """datatrove's C4QualityFilter as FineWeb ran it (terminal-punctuation line rule off)."""

    enabled: bool = True
    """false switches this filter off."""
    split_paragraph: bool = True
    """Lines are split at newlines (false: at sentences)."""
    remove_citations: bool = True
    """Strip [1], [edit] before checking lines."""
    filter_no_terminal_punct: bool = False
    """Drop lines without terminal punctuation (C4 does; FineWeb: off)."""
    min_num_sentences: int = 5
    """Sentences left after dropping lines, at least."""
    min_words_per_line: int = 3
    """Shorter lines are dropped before counting."""
    max_word_length: int = 1000
    """Lines with a longer word are dropped."""
    filter_lorem_ipsum: bool = True
    """Remove documents containing "lorem ipsum"."""
    filter_javascript: bool = True
    """Drop lines mentioning javascript."""
    filter_curly_bracket: bool = True
    """Remove documents containing {."""
    filter_policy: bool = True
    """Drop cookie and terms-of-use lines."""


class FineWebQualityConfig(StrictModel):
    """datatrove's FineWebQualityFilter with FineWeb's thresholds."""

    enabled: bool = True
    """false switches this filter off."""
    line_punct_thr: float = 0.12
    """Share of lines ending with terminal punctuation, at least."""
    line_punct_exclude_zero: bool = False
    """true: a document with no such line at all is not removed by that rule."""
    short_line_thr: float = 0.67
    """Share of short lines (at most short_line_length characters), at most."""
    short_line_length: int = 30
    """A line of at most this many characters is short."""
    char_duplicates_ratio: float = 0.01
    """Share of characters in repeated lines, at most."""
    new_line_ratio: float = 0.3
    """Newlines per word, at most."""


class EnglishConfig(StrictModel):
    """English: datatrove's filters in FineWeb's order and settings; reasons en_gopher_rep_*, en_gopher_*, en_c4_*,
    en_fineweb_*. Each table takes enabled = false to switch that filter off."""

    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityConfig = Field(default_factory=C4QualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)


class EnglishOnly(BaseFilter):
    """Runs one of datatrove's filters on lang = en documents, as a decision only, with a prefixed reason."""

    def __init__(self, inner: BaseFilter, reason_prefix: str, exclusion_writer=None):
        self.name = f"en: {inner.name}"  # before __init__, which names the step's stats
        super().__init__(exclusion_writer)
        self.inner = inner
        self.reason_prefix = reason_prefix

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("lang") != "en" or doc.metadata.get("kind") == "code":
            return True
        probe = Document(text=doc.text, id=doc.id, metadata=doc.metadata)  # C4 rewrites the text it is given
        try:
            kept, reason = get_filter_result(self.inner.filter(probe))
        except ZeroDivisionError:  # a text without a single word
            kept, reason = False, "no_words"
        return True if kept else (False, self.reason_prefix + (reason or "failed"))


def english_filters(cfg: EnglishConfig) -> list[EnglishOnly]:
    steps = []
    if (c := cfg.gopher_repetition).enabled:
        inner = GopherRepetitionFilter(
            dup_line_frac=c.dup_line_frac,
            dup_para_frac=c.dup_para_frac,
            dup_line_char_frac=c.dup_line_char_frac,
            dup_para_char_frac=c.dup_para_char_frac,
            top_n_grams=tuple(sorted(c.top_n_grams.items())),
            dup_n_grams=tuple(sorted(c.dup_n_grams.items())),
            language="en",
        )
        steps.append(EnglishOnly(inner, "en_gopher_rep_"))
    if (c := cfg.gopher_quality).enabled:
        inner = GopherQualityFilter(**c.model_dump(exclude={"enabled"}), language="en")
        steps.append(EnglishOnly(inner, "en_"))  # its reasons already start with gopher_
    if (c := cfg.c4_quality).enabled:
        inner = C4QualityFilter(**c.model_dump(exclude={"enabled"}), language="en")
        steps.append(EnglishOnly(inner, "en_c4_"))
    if (c := cfg.fineweb_quality).enabled:
        inner = FineWebQualityFilter(**c.model_dump(exclude={"enabled"}), language="en")
        steps.append(EnglishOnly(inner, "en_fineweb_"))
    return steps
