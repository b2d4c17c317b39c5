"""MAP-CC's Chinese rules on documents with lang = zh: the datatrove filter that wires the pure functions of
`stages/zh_rules.py` to keep/remove decisions, with their thresholds from `[stages.filter.zh]`. The text is measured
in its NFKC form, cheapest rule first; the reason is `zh_<rule>` for the first rule that fails (`zh_top_2gram`,
`zh_dup_5gram` for the n-gram rules)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from datatrove.data import Document

from stages import zh_rules
from stages.config.filter import ZhRulesConfig
from stages.filters.routing import TaskCountedFilter
from stages.filters.scores import Threshold, first_failing


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
