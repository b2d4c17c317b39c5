"""`[stages.langid]`: language identification (stages/langid.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from stages.config.base import StageConfig


class LangidConfig(StageConfig):
    """fastText lid.176 (bundled: stages/assets/lid.176.ftz, CC BY-SA 3.0) sets `lang` and `lang_score` and keeps the
    configured languages; code documents skip it."""

    keep: list[str] = Field(default_factory=lambda: ["zh", "en"])
    """Languages kept (lid.176 codes after `aliases`)."""
    min_score: dict[str, float] = Field(default_factory=lambda: {"zh": 0.4, "en": 0.65})
    """Per-language score a kept document needs. zh 0.4 is MAP-CC's: Chinese pages that quote commands, code or
    English terms split lid.176's probability between zh and en (on the sample corpus such manuals score 0.35 to
    0.5), so a high bar removes exactly the technical Chinese a corpus wants. en 0.65 is FineWeb's lid.176 bar."""
    default_min_score: float = Field(0.5, ge=0, le=1)
    """Threshold for a kept language that `min_score` does not list."""
    aliases: dict[str, str] = Field(default_factory=lambda: {"wuu": "zh", "yue": "zh"})
    """Labels merged into another before deciding (their probabilities add up). lid.176 calls a good share of
    Mandarin, classical Chinese in particular, Wu (wuu) or Cantonese (yue); all are written in Han characters."""
    han_script_check: bool = True
    """A ja or ko label on a text without a single kana or hangul counts as zh. lid.176 calls classical Chinese
    (Tang poems, for one) Japanese with scores around 0.6; Japanese and Korean text always has kana or hangul."""
    top_k: int = Field(2, ge=1, le=176)
    """Labels read per document, so that aliases (and the script check) can add a second label's probability.
    1 reproduces MAP-CC's top-1 score; each extra label costs fastText about 2.5% more time."""
    to_simplified: bool = False
    """Convert zh documents from Traditional to Simplified characters (OpenCC t2s) for the later stages. Off by
    default: it changes training text, and lid.176 already counts Traditional Chinese as zh."""
    model: str | None = None
    """Another fastText language-ID model file (e.g. a downloaded lid.176.bin); default: the bundled lid.176.ftz."""
    batch_size: int = Field(512, ge=1)
    """Documents per fastText call (one C++ call per batch instead of one per document)."""

    @field_validator("min_score")
    @classmethod
    def _scores_in_range(cls, v: dict[str, float]):
        for lang, s in v.items():
            if not 0 <= s <= 1:
                raise ValueError(f"min_score.{lang} = {s} is not between 0 and 1")
        return v
