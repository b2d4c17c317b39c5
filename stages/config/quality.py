"""`[stages.quality]`: the fastText quality classifier stage (stages/quality.py)."""

from __future__ import annotations

from pydantic import Field, model_validator

from stages.config.base import StageConfig


class QualityConfig(StageConfig):
    """A trained fastText quality classifier (`pipeline quality train`) scores documents after filter; documents
    below `threshold`, or outside the `keep_top_share` best, go to removed/ as quality_low. Off by default."""

    enabled: bool = False
    """Run this stage (it needs a trained model: `pipeline quality train --positive A --negative B --out M.bin`)."""
    model: str | None = None
    """The classifier written by `pipeline quality train` (its `<model>.json` must sit beside it: it holds the text
    normalization the model was trained with)."""
    threshold: float | None = Field(None, ge=0, le=1)
    """Keep documents whose score (probability of the reference set) is at least this. Set this or keep_top_share."""
    keep_top_share: float | None = Field(None, gt=0, le=1)
    """Keep this share of the best-scored documents of the whole input (one threshold for all tasks, from a first
    pass over every score; the cut is the lower edge of a histogram bin 1/2048 of the score wide, so the share kept
    can exceed this by the documents of that bin). Set this or threshold."""
    batch_size: int = Field(512, ge=1)
    """Documents per fastText call."""

    @model_validator(mode="after")
    def _one_rule(self):
        if self.threshold is not None and self.keep_top_share is not None:
            raise ValueError("set either threshold or keep_top_share, not both")
        if self.enabled and self.threshold is None and self.keep_top_share is None:
            raise ValueError("the quality stage is enabled but neither threshold nor keep_top_share is set")
        return self
