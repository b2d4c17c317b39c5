"""`[stages.ingest]`: how the sources are read (stages/ingest.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stages.config.base import StageConfig


class IngestConfig(StageConfig):
    """Reads every `[[sources]]` input into the document schema; bad records go to removed/ with a reason."""

    unicode_form: Literal["NFC", "none"] = "NFC"
    """Unicode normalization applied to every text. NFC is lossless; NFKC (which folds full-width forms) is
    deliberately not offered here because it changes training text."""
    html_favor_precision: bool = False
    """trafilatura's favor_precision for WARC HTML: True drops more boilerplate and some real text."""
    html_include_tables: bool = True
    """trafilatura's include_tables for WARC HTML: keep the text of tables."""
    max_shard_mb: int = Field(256, ge=1)
    """Kept/removed Parquet shards rotate at this size."""
    max_payload_mb: float = Field(10, gt=0)
    """WARC: a record whose decoded payload is larger goes to removed/ as too_large (only this much is read, so a
    decompression bomb cannot exhaust memory)."""
    max_html_mb: float = Field(2, gt=0)
    """WARC: an HTML page larger than this after decoding goes to removed/ as too_large instead of being parsed
    (trafilatura's time and memory grow with the page)."""
    extract_timeout_s: float = Field(30, gt=0)
    """WARC: text extraction of one page stops after this many seconds and the page goes to removed/ as
    extraction_timeout (enforced with SIGALRM where the task runs in its process's main thread)."""
    id_buckets: int = Field(8, ge=1)
    """Sources with an id_field: ids are checked for repeats in this many buckets (one task each, holding about
    1/id_buckets of the ids); the result does not depend on it."""
