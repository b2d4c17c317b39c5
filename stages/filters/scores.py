"""The `scores` column: every rule's measured value, for kept and removed documents alike, so that a threshold can be
tuned with Polars instead of a rerun (`pl.col("scores").struct.field("zh_entropy") < 3.2`).

Each rule family (`zh`, `en`, `code`, the blocklists) measures every rule that applies to a document, not only up
to the first one that fails, and names each value as the reason that rule gives when it removes a document. A rule
that does not apply to a document (another language, or `kind = "code"`) leaves its field null. `Threshold` says
where a rule's limit lies, which the family's decision and `pipeline report`'s histograms share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

SCORES_COLUMN = "scores"


@dataclass(frozen=True)
class Threshold:
    """A rule's limits on its value: a document fails below `low` (at or below it when `low_strict`) or above
    `high` (at or above it when `high_strict`). A NaN or missing value never fails, as in datatrove."""

    field: str
    low: float | None = None
    high: float | None = None
    low_strict: bool = False
    high_strict: bool = False

    def fails(self, value: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_strict else value < self.low):
            return True
        return self.high is not None and (value >= self.high if self.high_strict else value > self.high)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_strict else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_strict else '<='} {self.high:g}")
        return "kept if " + " and ".join(parts) if parts else "no limit"


def first_failing(scores: dict[str, float | None], thresholds: list[Threshold]) -> str | None:
    """The first rule, in order, whose value fails its threshold: the removal reason."""
    return next((t.field for t in thresholds if t.fails(scores.get(t.field))), None)


def scores_type(fields: list[str]) -> pa.StructType:
    """The struct type of the column: one float64 per rule, in the order the rules run."""
    seen = list(dict.fromkeys(fields))
    return pa.struct([pa.field(name, pa.float64()) for name in seen])
