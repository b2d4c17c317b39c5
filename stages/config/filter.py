"""`[stages.filter]` and its tables: the zh rules (stages/filters/zh.py, stages/zh_rules.py), datatrove's English
filters (stages/filters/en.py), the code rules (stages/filters/code.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from stages.config.base import IntKey, StageConfig, StrictModel

# Line endings that mark a "read more" link (zh_rules.readmore_line_ratio's default). Here, not in zh_rules.py, so
# that a config loads without importing jieba, regex and NumPy; zh_rules imports it.
READMORE_SUFFIXES = ("readmore", "展开", "更多", "。。。")


class ZhRulesConfig(StrictModel):
    """MAP-CC's thresholds (CT-LLM `filter/filter.py`), plus FineWeb-2's duplicated-line share for cmn_Hani."""

    enabled: bool = True
    """false: zh documents pass unfiltered."""
    min_sentences: int = Field(2, ge=0)
    """Sentences a document needs (split at . ! ? ; 。 ！ ？ ； …): MAP-CC's "more than one sentence"."""
    min_length: int = Field(50, ge=0)
    """Characters after NFKC, at least."""
    max_length: int = Field(10_000, ge=1)
    """Characters after NFKC, at most."""
    min_mean_word_length: float = Field(1.3, ge=0)
    """Mean word length (segmenter below, punctuation removed), at least."""
    max_mean_word_length: float = Field(10.0, ge=0)
    """Mean word length, at most: above it are long unbroken strings (hashes, base64, URLs)."""
    segmenter: Literal["jieba-rs", "jieba"] = "jieba-rs"
    """"jieba-rs" (rjieba, about 25x faster) or "jieba" (the Python original MAP-CC used)."""
    max_hash_ratio: float = Field(0.1, ge=0)
    """Runs of # per character, at most."""
    max_ellipsis_ratio: float = Field(0.1, ge=0)
    """Ellipses (…, .., 。。) per character, at most."""
    max_digit_ratio: float = Field(0.3, ge=0)
    """Digits over non-punctuation, non-space characters, at most."""
    max_readmore_lines: float = Field(0.3, ge=0)
    """Share of non-empty lines ending with one of readmore_suffixes, at most."""
    readmore_suffixes: list[str] = Field(default_factory=lambda: list(READMORE_SUFFIXES))
    """Line endings that mark a "read more" link; compared case-insensitively."""
    max_ellipsis_lines: float = Field(0.3, ge=0)
    """Share of non-empty lines ending in an ellipsis (…, ..., 。。), at most: Gopher's 0.3 (Rae et al. 2021), which
    catches teaser lists of truncated snippets that max_ellipsis_ratio (per character) lets through."""
    max_bullet_lines: float = Field(0.9, ge=0)
    """Share of non-empty lines starting with a bullet (• ● ○ ■ □ ▪ ▫ ※ · ➢ ‣ ▶ ◀ ◦ – -), at most."""
    min_punctuation: float = Field(0.0, ge=0)
    """Punctuation per character must be above this (i.e. some punctuation)."""
    min_unique_chars: float = Field(0.1, ge=0)
    """Distinct characters / characters must be above this (penalises long, plain texts)."""
    min_entropy: float = Field(3.0, ge=0)
    """Character unigram entropy (natural log), at least."""
    max_bracket_ratio: float = Field(0.1, ge=0)
    """Characters inside 【】 per character, at most."""
    max_top_ngram: dict[IntKey, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    """n -> the share of word characters the most frequent character n-gram may cover."""
    max_dup_ngram: dict[IntKey, float] = Field(default_factory=lambda: {n: 0.60 for n in range(5, 11)})
    """n -> the share of characters that may lie in character n-grams repeating an earlier one."""
    max_dup_lines: float = Field(0.287, ge=0)
    """Share of non-empty lines repeating an earlier line, at most (FineWeb-2's value for cmn_Hani)."""
    skip: list[str] = Field(default_factory=list)
    """Rule names not applied, e.g. ["unique_chars"]."""

    @field_validator("skip")
    @classmethod
    def _known_rules(cls, v: list[str]):
        if not v:
            return v
        # The names are zh_rules.RULES' keys. That module brings jieba, regex and NumPy (0.18 s in `python -X
        # importtime`), so it is imported only when a config skips a rule, not by every config load.
        from stages import zh_rules

        unknown = sorted(set(v) - set(zh_rules.RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; rules are: {', '.join(zh_rules.RULES)}")
        return v

    @field_validator("max_top_ngram", "max_dup_ngram")
    @classmethod
    def _positive_n(cls, v: dict[int, float]):
        if any(n < 1 for n in v):
            raise ValueError("n-gram sizes must be >= 1")
        return v


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


class CodeConfig(StrictModel):
    """Codex (Chen et al. 2021) and The Stack / StarCoder: drop generated or minified files."""

    enabled: bool = True
    """false switches this filter off."""
    max_line_length: int = Field(1000, ge=1)
    """Longest line in characters, at most."""
    max_mean_line_length: float = Field(100, gt=0)
    """Mean line length in characters, at most."""
    min_alnum_ratio: float = Field(0.25, ge=0, le=1)
    """Share of letters and digits, at least."""


class FilterConfig(StageConfig):
    """Quality rules chosen per document by its `lang` (zh, en), and by `kind` for code. A removed document's reason is
    the first rule it failed."""

    zh: ZhRulesConfig = Field(default_factory=ZhRulesConfig)
    en: EnglishConfig = Field(default_factory=EnglishConfig)
    code: CodeConfig = Field(default_factory=CodeConfig)
    url_blocklist: str | None = None
    """File of blocked domains (a line without `/`: the domain and its subdomains) and URL prefixes."""
    bad_words: str | None = None
    """File of words or phrases, one a line; Latin-script entries match whole words, case-insensitively."""
    max_bad_words: int = Field(0, ge=0)
    """A document with more bad-word occurrences than this is removed."""
    ascii_punctuation: bool = False
    """Rewrite full-width punctuation to ASCII in kept zh documents, as MAP-CC did. Changes training text."""
