"""`[tokens]`: the Megatron token shards of `pipeline run tokenize` (stages/tokenize.py)."""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, model_validator

from stages.config.base import StageConfig, StrictModel


class UpsampleRow(StrictModel):
    """One row of the up-sampling table: training documents whose `dup_cluster_size` is in [min_size, max_size]
    are written `repeat` times."""

    min_size: int = Field(ge=1)
    """Smallest cluster size of the row (1: a document dedup found no duplicate of)."""
    max_size: int | None = Field(None, ge=1)
    """Largest cluster size of the row, inclusive; omitted: no upper bound."""
    repeat: int = Field(ge=1, le=1000)
    """Times each such document is written (1: once, as without the table)."""


class TokensConfig(StageConfig):
    """`pipeline run tokenize`: Megatron .bin/.idx token shards under <workdir>/tokenize/."""

    tokenizer: str | None = None
    """SentencePiece model to encode with; default: the tokenizer stage's output
    (<workdir>/tokenizer/tokenizer.model). Point it at a merged tokenizer to grow a model's vocabulary."""
    valid_fraction: float = Field(0.01, ge=0, le=1)
    """Share of documents, chosen by a hash of the id, that go to the validation shards."""
    split_by: Literal["source", "lang"] = "source"
    """One dataset per source or per language ("code" for kind = code documents)."""
    add_bos: bool = False
    """Prepend BOS to each document (EOS is always appended)."""
    batch_size: int = Field(256, ge=1)
    """Documents encoded per SentencePiece call."""
    upsample: list[UpsampleRow] = []
    """Repeat training documents by the size of their near-duplicate cluster (dedup's `dup_cluster_size`), as
    FineWeb-2 does when building its mix, e.g. `[{min_size = 2, max_size = 4, repeat = 2}, {min_size = 5, repeat =
    3}]`; rows must not overlap; a size in no row is written once. Empty (default): every document once."""

    @model_validator(mode="after")
    def _rows_do_not_overlap(self) -> TokensConfig:
        rows = sorted(self.upsample, key=lambda r: r.min_size)
        for r in rows:
            if r.max_size is not None and r.max_size < r.min_size:
                raise ValueError(f"tokens.upsample: max_size {r.max_size} is below min_size {r.min_size}")
        for a, b in itertools.pairwise(rows):
            if a.max_size is None or a.max_size >= b.min_size:
                raise ValueError(
                    f"tokens.upsample: rows from min_size {a.min_size} and from min_size {b.min_size} overlap"
                )
        return self

    def repeats(self, cluster_size: int) -> int:
        """Times a training document of this duplicate cluster size is written."""
        for r in self.upsample:
            if r.min_size <= cluster_size and (r.max_size is None or cluster_size <= r.max_size):
                return r.repeat
        return 1
