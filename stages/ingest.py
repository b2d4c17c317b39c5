"""Ingest: read every `[[sources]]` entry into the document schema.

Formats: JSONL (plain, .gz, .zst, any compression fsspec infers), Parquet, WARC (HTML responses, text extracted
with trafilatura after charset detection; WET conversion records as they are), and plain text files (one document
per file or per blank-line block), plus the document formats of `stages/formats/` (MediaWiki dumps, LaTeX
sources, PDF, EPUB). Ids are `<source>:<file relative to the source>:<line or record number>` (or
`<source>:<id_field value>`), so they are the same on every rerun whatever the number of tasks: tasks split the
work by whole files.

Bad records are not dropped: they go to `removed/` with a reason and `source_file`/`source_line`. A file that cannot
be read at all is reported by name in `stats.json` (`failed_files`) and makes the run exit non-zero at the end,
while what the other files produced is kept.
"""

from __future__ import annotations

import glob as globlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.logging import logger
from pydantic import Field
from tqdm import tqdm

from stages.base import Phase, StageConfig, StageContext
from stages.formats import Extracted, arxiv, epub, pdf, wikipedia


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


# ---------------------------------------------------------------------------------------------------------------
# Text normalization (pure functions)

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def normalize_text(text: str, unicode_form: str = "NFC") -> str:
    """Safe, lossless-in-spirit cleanup: ANSI escapes, NUL and other control characters (tab and newline stay),
    lone surrogates (replaced by U+FFFD), a leading BOM, CRLF/CR line endings, and Unicode NFC.
    Full-width punctuation, spacing and case are left alone."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = _CONTROL.sub("", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800" escape
        text = _SURROGATE.sub("\ufffd", text)
    if unicode_form == "NFC":
        text = unicodedata.normalize("NFC", text)
    return text


def decode_bytes(data: bytes) -> str:
    """UTF-8 with invalid sequences replaced by U+FFFD."""
    return data.decode("utf-8", errors="replace")


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# Chinese sites that say gb2312 or gbk routinely serve characters only GB18030 (a superset) has.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030"}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = _CHARSET_ALIASES.get(name.strip().lower(), name.strip().lower())
    try:
        import codecs

        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_html(payload: bytes, content_type: str | None) -> str:
    """Decode an HTML payload: the HTTP header's charset, then the page's <meta> charset, then UTF-8 if it
    decodes cleanly, then statistical detection (cchardet), then UTF-8 with replacement."""
    candidates = []
    if content_type and (m := _HEADER_CHARSET.search(content_type)):
        candidates.append(_codec(m.group(1)))
    if m := _META_CHARSET.search(payload[:4096]):
        candidates.append(_codec(m.group(1).decode("ascii", "ignore")))
    candidates.append("utf-8")
    for codec in candidates:
        if codec:
            try:
                return payload.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
    try:
        import cchardet

        detected = _codec(cchardet.detect(payload).get("encoding"))
        if detected:
            return payload.decode(detected, errors="replace")
    except ImportError:
        pass
    return payload.decode("utf-8", errors="replace")


def extract_html(html: str, favor_precision: bool = False, include_tables: bool = True) -> str | None:
    """Main text of an HTML page with paragraphs on their own lines (trafilatura), or None when nothing is found."""
    import trafilatura

    return trafilatura.extract(
        html,
        output_format="txt",
        include_comments=False,
        include_tables=include_tables,
        favor_precision=favor_precision,
        deduplicate=False,  # trafilatura's cache is per process: it would make output depend on task layout
        with_metadata=False,
    )


# ---------------------------------------------------------------------------------------------------------------
# Reading sources


@dataclass
class SourceSpec:
    """A `[[sources]]` entry resolved to a folder and a file pattern."""

    name: str
    base: str  # folder that relative file names are taken from
    files: list[str] | None  # explicit relative file list (a single file), or None to list the folder
    pattern: str | None  # glob inside `base` (None: every file)
    format: str
    text_field: str
    id_field: str | None
    url_field: str | None
    kind: str
    text_mode: str
    wiki_variant: str | None = None

    def list_files(self) -> list[str]:
        if self.files is not None:
            return list(self.files)
        folder = get_datafolder(self.base)
        files = [f for f in folder.list_files(recursive=True, glob_pattern=self.pattern) if not _is_hidden(f)]
        if self.format == "arxiv":  # a paper is an archive or a folder of files: one unit of work each
            return arxiv.paper_units(files)
        return files


def _is_hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in Path(rel).parts)


def resolve_source(src, cfg) -> SourceSpec:
    """Turn a config source (file, folder or glob) into a folder plus pattern."""
    raw = str(src.path)
    common = dict(
        name=src.name,
        format=src.format,
        text_field=src.text_field,
        id_field=src.id_field,
        url_field=src.url_field,
        kind=src.kind,
        text_mode=src.text_mode,
        wiki_variant=src.wiki_variant,
    )
    if globlib.has_magic(raw):
        full = str(cfg.path(raw))
        parts = Path(full).parts
        first_magic = next(i for i, p in enumerate(parts) if globlib.has_magic(p))
        base = str(Path(*parts[:first_magic]))
        pattern = str(Path(*parts[first_magic:]))
        return SourceSpec(base=base, files=None, pattern=pattern, **common)
    p = cfg.path(raw)
    if p.is_dir():
        return SourceSpec(base=str(p), files=None, pattern=src.glob, **common)
    return SourceSpec(base=str(p.parent), files=[p.name], pattern=None, **common)


def open_decompressed(folder, rel: str):
    """A binary, line-iterable stream of `rel`, decompressed by its extension (.gz, .zst, .bz2, .xz)."""
    import bz2
    import gzip
    import io
    import lzma

    raw = folder.open(rel, "rb")
    name = rel.lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if name.endswith((".zst", ".zstd")):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader)
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw)
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw)
    return raw


class IngestReader(PipelineStep):
    """Reads every source's files; the combined, sorted file list is split across tasks file by file."""

    name = "sources"
    type = "📖 - READER"

    def __init__(self, sources: list[SourceSpec], cfg: IngestConfig, progress: bool = False):
        super().__init__()
        self.sources = sources
        self.cfg = cfg
        self.progress = progress
        self.docs = self.chars = self.bytes = 0
        self.failed_files: list[dict] = []
        self._current_file = ""

    def all_files(self) -> list[tuple[int, str]]:
        return [(i, rel) for i, s in enumerate(self.sources) for rel in s.list_files()]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.docs = self.chars = self.bytes = 0
        self.failed_files = []
        if data:
            yield from data
        files = self.all_files()[rank::world_size]
        for si, rel in tqdm(files, desc=f"ingest task {rank}", unit="file", disable=not self.progress):
            src = self.sources[si]
            full = self._current_file = str(Path(src.base) / rel)
            self.stat_update("input_files")
            try:
                for doc in self._read(src, rel):
                    self.docs += 1
                    self.chars += len(doc.text)
                    self.bytes += len(doc.text.encode("utf-8"))
                    yield doc
            except Exception as e:  # the file itself is unreadable (truncated gzip, corrupt Parquet, ...)
                msg = f"{type(e).__name__}: {e}"
                logger.error(f"ingest: cannot read {full}: {msg}")
                self.failed_files.append({"source": src.name, "file": full, "error": msg})
                self.stat_update("failed_files")

    # -- one function per format ------------------------------------------------------------------------------

    def _read(self, src: SourceSpec, rel: str) -> Iterator[Document]:
        folder = get_datafolder(src.base)
        reader = {
            "jsonl": self._jsonl,
            "parquet": self._parquet,
            "warc": self._warc,
            "text": self._text,
            "wikipedia": self._wikipedia,
            "arxiv": self._arxiv,
            "pdf": self._pdf,
            "epub": self._epub,
        }
        yield from reader[src.format](src, folder, rel)

    def _doc(self, src: SourceSpec, rel: str, line: int, text, rid=None, url=None, error: str | None = None):
        if rid is not None and rid != "":
            doc_id = f"{src.name}:{rid}"
        else:
            doc_id = f"{src.name}:{rel}:{line}" if line else f"{src.name}:{rel}"
        if error is None:
            if text is None:
                error, text = "missing_text_field", ""
            elif not isinstance(text, str):
                error, text = "non_string_text", json.dumps(text, ensure_ascii=False, default=str)
            else:
                text = normalize_text(text, self.cfg.unicode_form)
                if not text.strip():
                    error = "empty_text"
        meta = {
            "source": src.name,
            "kind": src.kind,
            "url": None if url is None else str(url),
            "lang": None,
            "lang_score": None,
            "source_file": self._current_file,
            "source_line": line or 1,
        }
        if error:
            meta["filter_reason"] = error
        return Document(text=text, id=doc_id, metadata=meta)

    def _extracted(self, src: SourceSpec, rel: str, record: Extracted) -> Document:
        """A document from a format module's record: same ids, normalization and removed/ routing as the other
        formats, plus the title and author the document formats carry."""
        doc = self._doc(src, rel, record.record, record.text, url=record.url, error=record.error)
        for key, value in (("title", record.title), ("author", record.author)):
            doc.metadata[key] = None if value is None else normalize_text(value, self.cfg.unicode_form)
        return doc

    def _wikipedia(self, src, folder, rel):
        if "multistream-index" in rel:  # the offsets file that sits beside a multistream dump: not pages
            return
        with open_decompressed(folder, rel) as f:
            for record in wikipedia.read_dump(f, src.wiki_variant):
                yield self._extracted(src, rel, record)

    def _arxiv(self, src, folder, rel):
        if rel.lower().endswith(arxiv.ARCHIVE_SUFFIXES):
            with folder.open(rel, "rb") as f:
                files = arxiv.archive_files(f.read())
        else:  # a paper's folder: its .tex files, by path inside it
            sub = get_datafolder(str(Path(src.base) / rel))
            files = {
                name: arxiv.decode_tex(sub.open(name, "rb").read())
                for name in sub.list_files(recursive=True)
                if name.lower().endswith(".tex") and not _is_hidden(name)
            }
        # a `path` naming one paper's folder: the paper is named after the folder, not "."
        yield self._extracted(src, Path(src.base).name if rel == "." else rel, arxiv.extract_paper(files))

    def _pdf(self, src, folder, rel):
        with folder.open(rel, "rb") as f:
            record = pdf.extract_pdf(f)
        if record.repaired:
            logger.warning(f"ingest: {src.base}/{rel}: damaged PDF (cross-reference table) rebuilt with pypdf")
            self.stat_update("pdf_repaired")
        yield self._extracted(src, rel, record)

    def _epub(self, src, folder, rel):
        with folder.open(rel, "rb") as f:
            for record in epub.read_epub(f, "chapter" if src.text_mode == "chapter" else "book"):
                yield self._extracted(src, rel, record)

    def _jsonl(self, src, folder, rel):
        with open_decompressed(folder, rel) as f:
            for lineno, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                line = decode_bytes(raw).rstrip("\n")
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    try:  # orjson refuses lone surrogate escapes that the json module accepts
                        record = json.loads(line)
                    except ValueError:
                        yield self._doc(src, rel, lineno, line, error="invalid_json")
                        continue
                if not isinstance(record, dict):
                    yield self._doc(src, rel, lineno, line, error="not_an_object")
                    continue
                yield self._record(src, rel, lineno, record)

    def _record(self, src, rel, n, record: dict):
        rid = record.get(src.id_field) if src.id_field else None
        url = record.get(src.url_field) if src.url_field else None
        if src.text_field not in record:
            return self._doc(
                src, rel, n, json.dumps(record, ensure_ascii=False, default=str), rid, url, "missing_text_field"
            )
        return self._doc(src, rel, n, record[src.text_field], rid, url)

    def _parquet(self, src, folder, rel):
        import pyarrow.parquet as pq

        with folder.open(rel, "rb") as f, pq.ParquetFile(f) as pqf:
            n = 0
            for batch in pqf.iter_batches(batch_size=1000):
                for record in batch.to_pylist():
                    n += 1
                    yield self._record(src, rel, n, record)

    def _warc(self, src, folder, rel):
        from warcio.archiveiterator import ArchiveIterator

        with folder.open(rel, "rb") as f:
            for n, record in enumerate(ArchiveIterator(f), start=1):
                if record.rec_type not in ("response", "conversion"):
                    continue  # request, warcinfo, metadata records are not documents
                url = record.rec_headers.get_header("WARC-Target-URI")
                payload = record.content_stream().read()
                if record.rec_type == "conversion":  # WET: already plain text
                    yield self._doc(src, rel, n, decode_bytes(payload), url=url)
                    continue
                ctype = record.http_headers.get_header("Content-Type") if record.http_headers else None
                ptype = record.rec_headers.get_header("WARC-Identified-Payload-Type") or ctype or ""
                if "html" not in ptype.lower() and "text/plain" not in ptype.lower():
                    yield self._doc(src, rel, n, "", url=url, error="not_html")
                    continue
                html = decode_html(payload, ctype)
                if "text/plain" in ptype.lower():
                    yield self._doc(src, rel, n, html, url=url)
                    continue
                text = extract_html(html, self.cfg.html_favor_precision, self.cfg.html_include_tables)
                if not text:
                    # keep the page itself so nothing is lost
                    yield self._doc(src, rel, n, normalize_text(html), url=url, error="no_text_extracted")
                    continue
                yield self._doc(src, rel, n, text, url=url)

    def _text(self, src, folder, rel):
        with open_decompressed(folder, rel) as f:
            content = decode_bytes(f.read())
        if src.text_mode == "file":
            yield self._doc(src, rel, 0, content)
            return
        lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        block: list[str] = []
        start = 0
        for i, line in enumerate(lines + [""], start=1):
            if line.strip():
                if not block:
                    start = i
                block.append(line)
            elif block:
                yield self._doc(src, rel, start, "\n".join(block))
                block = []


class IngestErrors(BaseFilter):
    """Routes records the reader flagged (invalid JSON, missing or non-string text, empty text, ...) to
    `removed/`; clean documents lose their provenance columns, which their id already carries."""

    name = "ingest errors"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason = doc.metadata.get("filter_reason")
        if reason:
            return False, reason
        del doc.metadata["source_file"], doc.metadata["source_line"]
        return True


REMOVED_COLUMNS = [pa.field("source_file", pa.string()), pa.field("source_line", pa.int64())]
# Columns the document formats fill; declared only when a source has such a format, so corpora of the other
# formats keep the schema of docs/architecture.md unchanged.
DOCUMENT_FORMATS = {"wikipedia", "arxiv", "pdf", "epub"}
DOCUMENT_COLUMNS = [pa.field("title", pa.string()), pa.field("author", pa.string())]


def build(ctx: StageContext) -> list[Phase]:
    cfg = ctx.cfg
    if not cfg.sources:
        raise ValueError(f"{cfg.file}: no [[sources]] to ingest")
    specs = [resolve_source(s, cfg) for s in cfg.sources]
    stage_cfg: IngestConfig = ctx.stage_cfg
    reader = IngestReader(specs, stage_cfg, progress=ctx.workers == 1)
    phase = ctx.standard_phase(
        [IngestErrors()],
        new_columns=DOCUMENT_COLUMNS if any(s.format in DOCUMENT_FORMATS for s in specs) else None,
        removed_columns=REMOVED_COLUMNS,
        reader=reader,
        max_shard_bytes=stage_cfg.max_shard_mb * 2**20,
    )
    return [phase]
