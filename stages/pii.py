"""PII removal: finds personal identifiers with the detectors of `stages/pii_rules.py` and replaces each with a
typed placeholder (`<EMAIL>`, `<PHONE>`, `<ID_CARD>` ...), so the text keeps its length class and structure.

Every document gets `pii_count` (the spans replaced); `stats.json` counts them per type (`pii_<type>`) and counts
the documents that had any (`pii_docs_with_pii`). With `max_per_doc` set, a document with more hits than that is
removed instead (reason `too_much_pii`: contact lists, leaked tables), with its text already redacted, so that
`removed/` holds no more PII than `kept/`.

Code documents (`kind = "code"`) are searched for `code_types` only, by default emails and IP addresses: the
numbers in source files are constants, test vectors, hashes and ids whose replacement would break the code and
protect nobody, while an author's email address or a server's public IP is exactly what should not be trained on.

The document formats' `title` and `author` columns are redacted too (a PDF's author field often holds an email
address), with the text's detectors; their hits count in `pii_count` like the text's.
"""

from __future__ import annotations

import pyarrow as pa
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from stages import pii_rules
from stages.base import Phase, StageContext
from stages.config.pii import PiiConfig
from stages.io import ReportsCounters

METADATA_FIELDS = ("title", "author")  # string columns some sources carry beside the text (ingest's document formats)


class PiiRedactor(ReportsCounters, BaseFilter):
    """Replaces PII with placeholders and sets `pii_count`; removes documents over `max_per_doc` hits."""

    name = "🔒 PII"
    counter_prefixes = ("pii_",)

    def __init__(self, cfg: PiiConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg
        self.placeholders = {**pii_rules.DEFAULT_PLACEHOLDERS, **cfg.placeholders}

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        code = doc.metadata.get("kind") == "code"
        types = self.cfg.code_types if code else self.cfg.types
        doc.text, spans = self._redact(doc.text, types)
        for field in METADATA_FIELDS:
            value = doc.metadata.get(field)
            if isinstance(value, str) and value:
                doc.metadata[field], found = self._redact(value, types)
                spans += found
        doc.metadata["pii_count"] = len(spans)
        if spans:
            self.stat_update("pii_docs_with_pii")
            for s in spans:
                self.stat_update(f"pii_{s.type}")
        if self.cfg.max_per_doc is not None and len(spans) > self.cfg.max_per_doc:
            return False, "too_much_pii"
        return True

    def _redact(self, text: str, types: list[str]) -> tuple[str, list]:
        spans = pii_rules.find_pii(text, types, public_ip_only=self.cfg.public_ip_only)
        return (pii_rules.redact(text, spans, self.placeholders) if spans else text), spans


def build(ctx: StageContext) -> list[Phase]:
    cfg: PiiConfig = ctx.stage_cfg
    return [ctx.standard_phase([PiiRedactor(cfg)], new_columns=[pa.field("pii_count", pa.int32())])]
