"""MAP-CC's Chinese rules on documents with lang = zh: the datatrove filter that wires the pure functions of
`stages/zh_rules.py` to keep/remove decisions, with their thresholds from `[stages.filter.zh]`. The text is measured
in its NFKC form, cheapest rule first; the reason is `zh_<rule>` for the first rule that fails (`zh_top_2gram`,
`zh_dup_5gram` for the n-gram rules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from pydantic import Field, field_validator

from stages import zh_rules
from stages.base import IntKey, StrictModel


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


def zh_checks(cfg: ZhRulesConfig) -> list[tuple[str, Callable[[str], str | None]]]:
    """(rule, check) pairs in the order they run, cheapest first; a check returns the removal reason or None."""

    def over(name: str, fn: Callable[[str], float], limit: float):
        return name, lambda t: f"zh_{name}" if fn(t) > limit else None

    def top_ngrams(t: str) -> str | None:
        for n, limit in sorted(cfg.max_top_ngram.items()):
            if zh_rules.top_ngram_ratio(t, n) > limit:
                return f"zh_top_{n}gram"
        return None

    def dup_ngrams(t: str) -> str | None:
        passed, n, _ = zh_rules.passes_dup_ngrams(t, cfg.max_dup_ngram)
        return None if passed else f"zh_dup_{n}gram"

    def mean_word_length(t: str) -> str | None:
        v = zh_rules.mean_word_length(t, cfg.segmenter)
        return "zh_mean_word_length" if not cfg.min_mean_word_length <= v <= cfg.max_mean_word_length else None

    suffixes = tuple(cfg.readmore_suffixes)
    checks = [
        ("length", lambda t: "zh_length" if not cfg.min_length <= len(t) <= cfg.max_length else None),
        ("sentences", lambda t: "zh_sentences" if zh_rules.sentence_count(t) < cfg.min_sentences else None),
        over("hash_ratio", zh_rules.hash_ratio, cfg.max_hash_ratio),
        over("ellipsis_ratio", zh_rules.ellipsis_ratio, cfg.max_ellipsis_ratio),
        over("bracket_ratio", zh_rules.bracket_ratio, cfg.max_bracket_ratio),
        ("punctuation", lambda t: "zh_punctuation" if zh_rules.punctuation_ratio(t) <= cfg.min_punctuation else None),
        (
            "unique_chars",
            lambda t: "zh_unique_chars" if zh_rules.unique_char_ratio(t) <= cfg.min_unique_chars else None,
        ),
        ("entropy", lambda t: "zh_entropy" if zh_rules.char_entropy(t) < cfg.min_entropy else None),
        over("digit_ratio", zh_rules.digit_ratio, cfg.max_digit_ratio),
        over("readmore_lines", lambda t: zh_rules.readmore_line_ratio(t, suffixes), cfg.max_readmore_lines),
        over("ellipsis_lines", zh_rules.ellipsis_line_ratio, cfg.max_ellipsis_lines),
        over("bullet_lines", zh_rules.bullet_line_ratio, cfg.max_bullet_lines),
        over("dup_lines", zh_rules.dup_line_ratio, cfg.max_dup_lines),
        ("top_ngram", top_ngrams),
        ("dup_ngram", dup_ngrams),
        ("mean_word_length", mean_word_length),  # segmentation: the dearest, so last
    ]
    return [(name, check) for name, check in checks if name not in cfg.skip]


class ZhQualityFilter(BaseFilter):
    """MAP-CC's Chinese rules on documents with lang = zh; every other document passes."""

    name = "🀄 MAP-CC zh rules"

    def __init__(self, cfg: ZhRulesConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg
        self._checks = None  # built in the worker: closures are rebuilt rather than pickled

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_checks"] = None
        return state

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("lang") != "zh" or doc.metadata.get("kind") == "code":
            return True
        if self._checks is None:
            self._checks = zh_checks(self.cfg)
        text = zh_rules.normalize(doc.text)
        for _, check in self._checks:
            if reason := check(text):
                return False, reason
        return True
