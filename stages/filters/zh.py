"""MAP-CC's Chinese rules on documents with lang = zh: the datatrove filter that wires the pure functions of
`stages/zh_rules.py` to keep/remove decisions, with their thresholds from `[stages.filter.zh]`. The text is measured
in its NFKC form, cheapest rule first; the reason is `zh_<rule>` for the first rule that fails (`zh_top_2gram`,
`zh_dup_5gram` for the n-gram rules)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

from datatrove.data import Document
from pydantic import Field, field_validator

from stages import zh_rules
from stages.base import IntKey, StrictModel
from stages.filters.routing import TaskCountedFilter
from stages.filters.scores import Threshold, first_failing


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
    readmore_suffixes: list[str] = Field(default_factory=lambda: list(zh_rules.READMORE_SUFFIXES))
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


def zh_measures(cfg: ZhRulesConfig) -> list[tuple[Threshold, Callable[[str], float]]]:
    """(threshold, measure) pairs in the order the rules decide, cheapest first; the threshold's field is the
    removal reason. Every measure runs on every zh document (the `scores` column), the decision is the first
    threshold that fails. The duplicated n-gram share never grows with n (a repeated (n+1)-gram is made of repeated
    n-grams), so "first n that fails" is the same decision `passes_dup_ngrams`'s early stop gives."""
    suffixes = tuple(cfg.readmore_suffixes)
    segmenter = cfg.segmenter
    rules: list[tuple[str, Threshold, Callable[[str], float]]] = [
        ("length", Threshold("zh_length", low=cfg.min_length, high=cfg.max_length), len),
        ("sentences", Threshold("zh_sentences", low=cfg.min_sentences), zh_rules.sentence_count),
        ("hash_ratio", Threshold("zh_hash_ratio", high=cfg.max_hash_ratio), zh_rules.hash_ratio),
        ("ellipsis_ratio", Threshold("zh_ellipsis_ratio", high=cfg.max_ellipsis_ratio), zh_rules.ellipsis_ratio),
        ("bracket_ratio", Threshold("zh_bracket_ratio", high=cfg.max_bracket_ratio), zh_rules.bracket_ratio),
        (
            "punctuation",
            Threshold("zh_punctuation", low=cfg.min_punctuation, low_strict=True),
            zh_rules.punctuation_ratio,
        ),
        (
            "unique_chars",
            Threshold("zh_unique_chars", low=cfg.min_unique_chars, low_strict=True),
            zh_rules.unique_char_ratio,
        ),
        ("entropy", Threshold("zh_entropy", low=cfg.min_entropy), zh_rules.char_entropy),
        ("digit_ratio", Threshold("zh_digit_ratio", high=cfg.max_digit_ratio), zh_rules.digit_ratio),
        (
            "readmore_lines",
            Threshold("zh_readmore_lines", high=cfg.max_readmore_lines),
            lambda t: zh_rules.readmore_line_ratio(t, suffixes),
        ),
        ("ellipsis_lines", Threshold("zh_ellipsis_lines", high=cfg.max_ellipsis_lines), zh_rules.ellipsis_line_ratio),
        ("bullet_lines", Threshold("zh_bullet_lines", high=cfg.max_bullet_lines), zh_rules.bullet_line_ratio),
        ("dup_lines", Threshold("zh_dup_lines", high=cfg.max_dup_lines), zh_rules.dup_line_ratio),
    ]
    rules += [
        ("top_ngram", Threshold(f"zh_top_{n}gram", high=limit), partial(zh_rules.top_ngram_ratio, n=n))
        for n, limit in sorted(cfg.max_top_ngram.items())
    ]
    rules += [
        ("dup_ngram", Threshold(f"zh_dup_{n}gram", high=limit), partial(zh_rules.dup_ngram_ratio, n=n))
        for n, limit in sorted(cfg.max_dup_ngram.items())
    ]
    rules.append(  # segmentation: the dearest, so last
        (
            "mean_word_length",
            Threshold("zh_mean_word_length", low=cfg.min_mean_word_length, high=cfg.max_mean_word_length),
            lambda t: zh_rules.mean_word_length(t, segmenter),
        )
    )
    return [(threshold, measure) for name, threshold, measure in rules if name not in cfg.skip]


class ZhQualityFilter(TaskCountedFilter):
    """MAP-CC's Chinese rules on documents with lang = zh; every other document passes."""

    name = "🀄 MAP-CC zh rules"

    def __init__(self, cfg: ZhRulesConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg
        self._measures = None  # built in the worker: closures are rebuilt rather than pickled
        self._thresholds = None  # the measures' thresholds, in order, built with them

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_measures"] = state["_thresholds"] = None
        return state

    @property
    def thresholds(self) -> list[Threshold]:
        return [t for t, _ in zh_measures(self.cfg)]

    def evaluate(self, doc: Document) -> tuple[dict[str, float], str | None] | None:
        """Every rule's value on the NFKC text and the first failing rule's reason; None for a non-zh document."""
        if doc.metadata.get("lang") != "zh" or doc.metadata.get("kind") == "code":
            return None
        if self._measures is None:
            self._measures = zh_measures(self.cfg)
            self._thresholds = [t for t, _ in self._measures]
        text = zh_rules.normalize(doc.text)
        scores = {t.field: float(measure(text)) for t, measure in self._measures}
        return scores, first_failing(scores, self._thresholds)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        result = self.evaluate(doc)
        if result is None or result[1] is None:
            return True
        return False, result[1]
