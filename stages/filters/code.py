"""Code documents (`kind = "code"`): the line-length and alphanumeric-share checks of Codex / The Stack, which drop
minified bundles, data blobs and generated tables (reason `code_<rule>`)."""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from stages.config.filter import CodeConfig
from stages.filters.scores import Threshold, first_failing


def max_line_length(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def mean_line_length(text: str) -> float:
    lines = text.splitlines()
    return sum(map(len, lines)) / len(lines) if lines else 0.0


def alnum_ratio(text: str) -> float:
    return sum(map(str.isalnum, text)) / len(text) if text else 0.0


class CodeQualityFilter(BaseFilter):
    """Code documents: no line longer than `max_line_length`, a mean line length and a share of alphanumeric
    characters typical of hand-written code (minified bundles, data blobs and generated tables fail)."""

    name = "💻 code"

    def __init__(self, cfg: CodeConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg

    @property
    def thresholds(self) -> list[Threshold]:
        return [
            Threshold("code_max_line_length", high=self.cfg.max_line_length),
            Threshold("code_mean_line_length", high=self.cfg.max_mean_line_length),
            Threshold("code_alnum_ratio", low=self.cfg.min_alnum_ratio),
        ]

    def evaluate(self, doc: Document) -> tuple[dict[str, float], str | None] | None:
        """The three values and the first failing rule's reason; None for a document that is not code."""
        if doc.metadata.get("kind") != "code":
            return None
        scores = {
            "code_max_line_length": float(max_line_length(doc.text)),
            "code_mean_line_length": mean_line_length(doc.text),
            "code_alnum_ratio": alnum_ratio(doc.text),
        }
        return scores, first_failing(scores, self.thresholds)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        result = self.evaluate(doc)
        if result is None or result[1] is None:
            return True
        return False, result[1]
