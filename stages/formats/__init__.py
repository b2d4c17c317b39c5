"""Extraction for ingest's document formats: MediaWiki XML dumps, arXiv-style LaTeX sources, PDF and EPUB.

Each module is pure extraction (bytes or a stream in, `Extracted` records out), so it can be tested on a file without
a pipeline; `stages/ingest.py` hooks them into its per-format dispatch, where ids, normalization and `removed/`
routing happen exactly as for the other formats.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Extracted:
    """One record a format module found in a file.

    `record` numbers the record inside its file (a page id, a chapter number; 0 when the file is one document), so
    ids are `<source>:<file>:<record>` (or `<source>:<file>` for 0). `error` is the `removed/` reason of a record
    that is not a document (a redirect, a missing chapter, a PDF without a text layer); its `text` keeps what was
    found so nothing is lost."""

    record: int
    text: str
    error: str | None = None
    url: str | None = None
    title: str | None = None
    author: str | None = None
    repaired: bool = False  # the file was damaged and the library rebuilt it before reading (counted in stats)
