"""`[tokenizer]`: the SentencePiece model `pipeline run tokenizer` trains (stages/tokenizer.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stages.config.base import StageConfig


class TokenizerConfig(StageConfig):
    """`pipeline run tokenizer`: a SentencePiece model trained on a sample of the final corpus."""

    out: str | None = None
    """Where the model goes; default <workdir>/tokenizer/tokenizer.model (tokenizer.vocab beside it)."""
    vocab_size: int = Field(8000, ge=300)
    """Pieces, byte fallback and specials included. 8k suits the bundled sample; 64k to 128k for real corpora."""
    model_type: Literal["bpe", "unigram"] = "bpe"
    """SentencePiece model: bpe (as Baichuan 2 and CT-LLM) | unigram."""
    sample_chars: int = Field(50_000_000, ge=1000)
    """Characters of corpus text to train on (drawn in the proportions below)."""
    mix_by: Literal["lang", "source"] = "lang"
    """Proportions per language (`lang_weights`; needs the langid stage) or per source (`[[sources]] weight`)."""
    lang_weights: dict[str, float] = Field(default_factory=lambda: {"zh": 800.0, "en": 300.0, "code": 100.0})
    """mix_by = "lang": relative share of characters per language; "code" is every `kind = code` document."""
    character_coverage: float = Field(0.9995, gt=0, le=1)
    """Share of characters covered by pieces; the rarest rest fall back to bytes (CJK needs < 1)."""
    byte_fallback: bool = True
    """Characters without a piece become UTF-8 byte pieces, so there is no <unk> and any text decodes back."""
    split_digits: bool = True
    """Numbers are split into single digits (2026 -> 2 0 2 6), as LLaMA and Baichuan 2."""
    max_line_chars: int = Field(4096, ge=64)
    """Training lines longer than this are cut into pieces (SentencePiece skips over-long sentences)."""
    special_tokens: list[str] = Field(default_factory=lambda: ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"])
    """Control tokens reserved for the SFT chat template; never produced from raw text."""
    threads: int = Field(0, ge=0)
    """SentencePiece training threads; 0 = executor.workers."""
