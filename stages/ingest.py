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

import codecs
import contextlib
import functools
import glob as globlib
import hashlib
import io
import json
import os
import re
import signal
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.logging import logger
from datatrove.utils.typeshelper import StatHints
from tqdm import tqdm

# The readers of PDF (pypdf, pdfminer: 1.2 s), EPUB and Wikipedia dumps are imported where they are used: every
# `pipeline` command imported this module for its config, and those imports were a third of the start of `pipeline
# run tokenize` (`python -X importtime -c "import pipeline.cli"`, 6.8 s under load 17 on the shared VM). polars,
# once imported here for the id-repeat check (0.7 s), is no longer used by ingest. warcio and the LaTeX reader
# (stages/formats/arxiv.py, with tarfile) too are imported by the formats that use them: every JSONL or Parquet
# ingest paid for them (`-X importtime`: warcio 9-25 ms, arxiv 6-28 ms at load 4-6; issue 13, fifth pass).
from stages.arrow import column_array, numpy_array, to_numpy
from stages.base import Phase, StageContext
from stages.config.ingest import IngestConfig
from stages.formats import Extracted
from stages.io import TMP_DIR

# ---------------------------------------------------------------------------------------------------------------
# Text normalization (pure functions)

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


# Any character that one of normalize_text's cleanups could change: a BOM, CR, ESC, the control characters and
# surrogates. A text with none of them only needs its Unicode form checked.
_NEEDS_CLEANUP = re.compile(r"[\ufeff\r\x1b\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def cleanup_rows(column: pa.Array) -> np.ndarray:
    """For each string of an Arrow string column, whether it holds a character `_NEEDS_CLEANUP` matches, read off
    its UTF-8 bytes in a few NumPy passes (issue 13: 1.5x faster than the regex over each Python string). In valid
    UTF-8, which Arrow's strings are, those characters are the bytes below 0x20 but tab and newline, 0x7F, C2 80-9F
    (U+0080-U+009F) and EF BB BF (U+FEFF); a byte below 0x80 is never inside a longer sequence, a lead byte's
    sequence never crosses into the next string, and lone surrogates cannot be encoded."""
    flags = np.zeros(len(column), dtype=bool)
    _, offsets_buffer, data = column.buffers()
    if data is None or len(column) == 0:
        return flags
    offset_type = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[column.offset : column.offset + len(column) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    b = np.frombuffer(data, dtype=np.uint8)[:end]
    low = np.flatnonzero(b[start:] < 0x20) + start
    low_bytes = b[low]
    c2 = np.flatnonzero(b[start : end - 1] == 0xC2) + start
    ef = np.flatnonzero(b[start : end - 2] == 0xEF) + start
    found = np.concatenate(
        [
            low[(low_bytes != 0x09) & (low_bytes != 0x0A)],
            np.flatnonzero(b[start:] == 0x7F) + start,
            c2[b[c2 + 1] < 0xA0],
            ef[(b[ef + 1] == 0xBB) & (b[ef + 2] == 0xBF)],
        ]
    )
    if len(found):
        flags[np.searchsorted(offsets, found, side="right") - 1] = True
    return flags


def normalize_text(text: str, unicode_form: str = "NFC") -> str:
    """Safe, lossless-in-spirit cleanup: ANSI escapes, NUL and other control characters (tab and newline stay),
    lone surrogates (replaced by U+FFFD), a leading BOM, CRLF/CR line endings, and Unicode NFC.
    Full-width punctuation, spacing and case are left alone."""
    if _NEEDS_CLEANUP.search(text) is None:  # the common case: one scan instead of five (issue 13)
        if unicode_form == "NFC" and not unicodedata.is_normalized("NFC", text):
            return unicodedata.normalize("NFC", text)
        return text
    return _normalize_text_full(text, unicode_form)


def _normalize_text_full(text: str, unicode_form: str = "NFC") -> str:
    """normalize_text's definition, every step in turn; normalize_text skips the steps that cannot change `text`."""
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


def decode_input(data: bytes, encoding: str | None) -> tuple[str, str | None]:
    """`data` decoded as `encoding` (UTF-8 when None), and the removed/ reason when it is not valid in it:
    `not_utf8` (a GBK file read as UTF-8 would otherwise turn into U+FFFD without a word) or `not_<encoding>`.
    The text is then decoded with replacement, so the removed record still shows what was there."""
    codec = encoding or "utf-8"
    try:
        return data.decode(codec), None
    except UnicodeDecodeError:
        return data.decode(codec, errors="replace"), "not_" + codec.replace("-", "").lower()


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# Chinese sites that say gb2312 or gbk routinely serve characters only GB18030 (a superset) has.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030"}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = _CHARSET_ALIASES.get(name.strip().lower(), name.strip().lower())
    try:
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


class ExtractionTimeout(BaseException):
    """Raised by SIGALRM inside trafilatura; a BaseException so that no `except Exception` in a library eats it."""


def extract_html_bounded(html: str, favor_precision: bool, include_tables: bool, timeout_s: float) -> str | None:
    """extract_html, stopped with ExtractionTimeout after `timeout_s` seconds. The alarm needs the main thread
    (datatrove's local executor and Ray run tasks there); elsewhere the page is extracted without a bound and
    max_html_mb is the only limit."""
    if threading.current_thread() is not threading.main_thread():
        return extract_html(html, favor_precision, include_tables)

    def on_alarm(signum, frame):
        raise ExtractionTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        return extract_html(html, favor_precision, include_tables)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# A too_large record keeps this much of its start as its removed/ text, to show what it was.
TOO_LARGE_SAMPLE = 64 * 1024


@functools.cache
def strict_archive_iterator() -> type:
    """StrictArchiveIterator, the class, made on first use (warcio is imported only by a WARC read)."""
    from warcio.archiveiterator import ArchiveIterator

    class StrictArchiveIterator(ArchiveIterator):
        """warcio's iterator, recording whether the last gzip member ended early: warcio stops quietly there."""

        truncated = False

        def close(self):
            reader = self.reader
            decompressor = reader.decompressor if reader is not None else None
            if decompressor is not None and not getattr(decompressor, "eof", True):
                self.truncated = True
            super().close()

    return StrictArchiveIterator


def check_record_complete(record) -> None:
    """After warcio moved past `record`: its block must have been as long as its Content-Length said. A file cut
    inside a record reads as a shorter record and then a clean end, without an error."""
    if record is not None and getattr(record.raw_stream, "limit", 0):
        raise EOFError(f"WARC record ends {record.raw_stream.limit} bytes before its Content-Length (truncated file)")


def writable(doc: Document) -> int:
    """The UTF-8 size of `doc`'s text, once every string of `doc` is known to encode. Normalization leaves nothing
    that cannot; should a string still fail, it is escaped and the document goes to removed/ as
    `unwritable_record`, so one record never stops the writer or the rest of its file."""
    try:
        doc.id.encode("utf-8")
        for value in doc.metadata.values():
            if isinstance(value, str):
                value.encode("utf-8")
        return len(doc.text.encode("utf-8"))
    except UnicodeEncodeError:

        def escaped(value):
            return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value

        doc.id, doc.text = escaped(doc.id), escaped(doc.text)
        doc.metadata = {k: escaped(v) for k, v in doc.metadata.items()}
        doc.metadata["filter_reason"] = "unwritable_record"
        return len(doc.text.encode("utf-8"))


def _encodes(value: str) -> bool:
    """Whether `value` encodes as UTF-8 (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    encoding: str | None = None

    def list_files(self) -> list[str]:
        if self.files is not None:
            return list(self.files)
        folder = get_datafolder(self.base)
        files = [f for f in folder.list_files(recursive=True, glob_pattern=self.pattern) if not _is_hidden(f)]
        if self.format == "arxiv":  # a paper is an archive or a folder of files: one unit of work each
            from stages.formats import arxiv

            return arxiv.paper_units(files)
        return files

    def unreadable_folders(self) -> list[tuple[str, str]]:
        """(folder, error) for every subfolder of a local source folder that cannot be listed: fsspec's listing
        skips them without a word, and their files would be missing from the corpus."""
        if self.files is not None or "://" in self.base:
            return []
        errors: list[tuple[str, str]] = []
        for _root, dirs, _ in os.walk(self.base, onerror=lambda e: errors.append((e.filename, e.strerror))):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        return errors


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
        encoding=src.encoding,
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


class ZstdFramesReader(io.RawIOBase):
    """A zstd stream read frame after frame that raises EOFError when the input ends inside a frame: zstandard's
    own stream reader returns a short read there, so a truncated .zst would read as a shorter file."""

    def __init__(self, raw):
        super().__init__()
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None  # decompressobj of the frame being read
        self._pending = b""  # compressed bytes after the end of the last frame
        self._out = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._pos >= len(self._out) and not self._eof:
            data = self._pending or self._raw.read(1 << 20)
            self._pending = b""
            if not data:
                if self._frame is not None and not self._frame.eof:
                    raise EOFError("zstd: the file ends inside a frame (truncated)")
                self._eof = True
                break
            if self._frame is None or self._frame.eof:
                self._frame = self._dctx.decompressobj()
            self._out, self._pos = self._frame.decompress(data), 0
            if self._frame.eof:
                self._pending = self._frame.unused_data
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_decompressed(folder, rel: str):
    """A binary, line-iterable stream of `rel`, decompressed by its extension (.gz, .zst, .bz2, .xz)."""
    import bz2
    import gzip
    import lzma

    raw = folder.open(rel, "rb")
    name = rel.lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if name.endswith((".zst", ".zstd")):
        return io.BufferedReader(ZstdFramesReader(raw))
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw)
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw)
    return raw


class IngestReader(PipelineStep):
    """Reads every source's files; the combined, sorted file list is split across tasks file by file."""

    name = "sources"
    type = "📖 - READER"

    def __init__(
        self,
        sources: list[SourceSpec],
        cfg: IngestConfig,
        progress: bool = False,
        repeats_dir: Path | None = None,
        id_work: Path | None = None,
        id_buckets: int = 8,
    ):
        super().__init__()
        self.sources = sources
        self.cfg = cfg
        self.progress = progress
        self.repeats_dir = repeats_dir  # the id check's verdicts (IdRepeats); None: no source has an id_field
        self.id_work = id_work  # where the main phase records the ids of id_field sources (IdRecorder); None: not
        self.id_buckets = id_buckets
        self.docs = self.chars = self.bytes = 0
        self.failed_files: list[dict] = []
        self._current_file = ""
        self._current_file_clean = ""  # normalized once per file, not once per document
        self._clean_names: dict[str, str] = {}  # this file's relative names, normalized
        self._file_index = 0
        self._repeats: set[tuple[int, int]] = set()

    def all_files(self) -> list[tuple[int, str]]:
        return [(i, rel) for i, s in enumerate(self.sources) for rel in s.list_files()]

    def my_files(self, rank: int, world_size: int) -> list[tuple[int, int, str]]:
        """(index in the whole sorted file list, source, file) of this task's files: the index orders records
        across files for the id check, whatever the number of tasks."""
        return [(fi, si, rel) for fi, (si, rel) in enumerate(self.all_files())][rank::world_size]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.docs = self.chars = self.bytes = 0
        self.failed_files = []
        if data:
            yield from data
        if rank == 0:  # reported once, by one task
            for src in self.sources:
                for folder, error in src.unreadable_folders():
                    logger.error(f"ingest: cannot list {folder}: {error}")
                    self.failed_files.append(
                        {"source": src.name, "file": folder, "error": f"unreadable folder: {error}"}
                    )
                    self.stat_update("failed_files")
        files = self.my_files(rank, world_size)
        ids = IdRecorder(self.id_work, self.id_buckets, rank) if self.id_work else None
        self._repeats = load_repeats(self.repeats_dir, {fi for fi, _, _ in files}) if self.repeats_dir else set()
        for fi, si, rel in tqdm(files, desc=f"ingest task {rank}", unit="file", disable=not self.progress):
            src = self.sources[si]
            full = self._current_file = str(Path(src.base) / rel)
            self._current_file_clean = self._clean(full)
            self._clean_names = {}
            self._file_index = fi
            self.stat_update("input_files")
            try:
                if src.format == "parquet":  # the fast read, which knows each text's UTF-8 size (issue 13)
                    sized = self._parquet(src, get_datafolder(src.base), rel, sized=True)
                else:
                    sized = ((doc, None) for doc in self._read(src, rel))
                for doc, n_bytes in sized:
                    if n_bytes is None:
                        n_bytes = writable(doc)
                    self.docs += 1
                    self.chars += len(doc.text)
                    self.bytes += n_bytes
                    # a removed record must not take the id from a good copy
                    if ids is not None and src.id_field and "filter_reason" not in doc.metadata:
                        ids.add(doc.id, fi, doc.metadata["source_line"])
                    yield doc
            except Exception as e:  # the file itself is unreadable (truncated gzip, corrupt Parquet, ...)
                msg = f"{type(e).__name__}: {e}"
                logger.error(f"ingest: cannot read {full}: {msg}")
                self.failed_files.append({"source": src.name, "file": full, "error": msg})
                self.stat_update("failed_files")
        if ids is not None:
            ids.close()

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

    def _clean(self, value: str) -> str:
        return normalize_text(value, self.cfg.unicode_form)

    def _doc(self, src: SourceSpec, rel: str, line: int, text, rid=None, url=None, error: str | None = None):
        # Every string that reaches Parquet is normalized like the text: a lone surrogate in an id, a URL or a
        # file name (undecodable bytes in a name come back from the OS as surrogates) would stop the writer.
        clean_rel = self._clean_names.get(rel)
        if clean_rel is None:
            clean_rel = self._clean_names[rel] = self._clean(rel)
        rel = clean_rel
        if rid is not None and rid != "":
            doc_id = f"{src.name}:{self._clean(str(rid))}"
        else:
            doc_id = f"{src.name}:{rel}:{line}" if line else f"{src.name}:{rel}"
        if error is None:
            if text is None:
                error, text = "missing_text_field", ""
            elif not isinstance(text, str):
                error, text = "non_string_text", json.dumps(text, ensure_ascii=False, default=str)
        text = self._clean(text)
        if error is None and not text.strip():
            error = "empty_text"
        if error is None and (self._file_index, line or 1) in self._repeats:
            error = "duplicate_id"
        meta = {
            "source": src.name,
            "kind": src.kind,
            "url": None if url is None else self._clean(str(url)),
            "lang": None,
            "lang_score": None,
            "source_file": self._current_file_clean,
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
        from stages.formats import wikipedia

        with open_decompressed(folder, rel) as f:
            for record in wikipedia.read_dump(f, src.wiki_variant):
                yield self._extracted(src, rel, record)

    def _arxiv(self, src, folder, rel):
        from stages.formats import arxiv

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
        from stages.formats import pdf

        with folder.open(rel, "rb") as f:
            record = pdf.extract_pdf(f)
        if record.repaired:
            logger.warning(f"ingest: {src.base}/{rel}: damaged PDF (cross-reference table) rebuilt with pypdf")
            self.stat_update("pdf_repaired")
        yield self._extracted(src, rel, record)

    def _epub(self, src, folder, rel):
        from stages.formats import epub

        with folder.open(rel, "rb") as f:
            for record in epub.read_epub(f, "chapter" if src.text_mode == "chapter" else "book"):
                yield self._extracted(src, rel, record)

    def _jsonl(self, src, folder, rel):
        utf8 = codecs.lookup(src.encoding or "utf-8").name == "utf-8"
        with open_decompressed(folder, rel) as f:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                if not raw or raw.isspace():  # bytes.isspace: ASCII whitespace, as bytes.strip removes
                    continue
                if utf8:
                    # orjson reads UTF-8 bytes directly, refusing invalid UTF-8 as Python's decoder does; whatever
                    # it refuses takes the path below, which decodes first and names the problem
                    try:
                        record = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        pass
                    else:
                        if isinstance(record, dict):
                            yield self._record(src, rel, lineno, record)
                            continue
                line, bad_encoding = decode_input(raw, src.encoding)
                line = line.rstrip("\n")
                if bad_encoding:
                    yield self._doc(src, rel, lineno, line, error=bad_encoding)
                    continue
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

    def _parquet(self, src, folder, rel, sized: bool = False):
        """The file's documents; with `sized`, (document, UTF-8 size of its text or None) pairs, from
        `_parquet_fast` where it applies (None: the caller measures with `writable`)."""
        with folder.open(rel, "rb") as f, pq.ParquetFile(f) as pqf:
            names = pqf.schema_arrow.names
            if src.text_field in names and len(set(names)) == len(names):
                if sized and _encodes(src.name) and _encodes(src.kind):
                    yield from self._parquet_fast(src, rel, pqf, names)
                    return
                docs = self._parquet_columns(src, rel, pqf, names)
            else:  # no text column (every record goes to removed/ whole) or repeated column names: row by row
                docs = (
                    self._record(src, rel, n, record)
                    for n, record in enumerate(
                        (r for batch in pqf.iter_batches(batch_size=1000) for r in batch.to_pylist()), start=1
                    )
                )
            for doc in docs:
                yield (doc, None) if sized else doc

    def _parquet_columns(self, src, rel, pqf, names):
        """_record on every row, reading only the text, id and url columns, one Python list per column: the same
        values as the rows of `to_pylist`, without a dict per row or the columns nothing reads."""
        fields = [src.text_field] + [f for f in (src.id_field, src.url_field) if f and f in names]
        fields = list(dict.fromkeys(fields))  # one field may serve twice (id_field = url_field)
        n = 0
        for batch in pqf.iter_batches(batch_size=1000, columns=fields):
            columns = {name: batch.column(name).to_pylist() for name in fields}
            nones = [None] * batch.num_rows
            texts = columns[src.text_field]
            ids = columns.get(src.id_field, nones) if src.id_field else nones
            urls = columns.get(src.url_field, nones) if src.url_field else nones
            for text, rid, url in zip(texts, ids, urls):
                n += 1
                yield self._doc(src, rel, n, text, rid, url)

    def _parquet_fast(self, src, rel, pqf, names):
        """(document, UTF-8 size of its text) for every row: `_parquet_columns`' documents, and the size `writable`
        returns for them, without its trial encodes (issue 13). The common row (a string text, a string or null id
        and url) is built here inline, as `_doc` builds it; its size is Arrow's byte length of the text as read when
        normalization leaves the text as it is (the same object), else the normalized text's encode; whether a text
        needs normalize_text's cleanup comes from its bytes (`cleanup_rows`). `writable` could only fail on a string
        that does not encode; here every string is normalize_text's output (which replaces lone surrogates) or the
        source's name and kind, which the caller checked once. Any other row (null or non-string text, a number as
        id, ...) goes through `_doc`, and its size through `writable`."""
        fields = [src.text_field] + [f for f in (src.id_field, src.url_field) if f and f in names]
        fields = list(dict.fromkeys(fields))
        form, nfc = self.cfg.unicode_form, self.cfg.unicode_form == "NFC"
        clean_rel = self._clean_names.get(rel)
        if clean_rel is None:
            clean_rel = self._clean_names[rel] = self._clean(rel)
        name, kind, source_file = src.name, src.kind, self._current_file_clean
        id_prefix, line_prefix = f"{name}:", f"{name}:{clean_rel}:"
        repeats, file_index = self._repeats, self._file_index
        is_normalized = unicodedata.is_normalized
        n = 0
        for batch in pqf.iter_batches(batch_size=1000, columns=fields):
            text_column = batch.column(src.text_field)
            nones = [None] * batch.num_rows
            texts = text_column.to_pylist()
            if pa.types.is_string(text_column.type) or pa.types.is_large_string(text_column.type):
                sizes = pc.binary_length(text_column).to_pylist()
                unclean = cleanup_rows(text_column).tolist()
            else:  # numbers, binary, ...: _doc names them
                sizes = unclean = nones
            ids = batch.column(src.id_field).to_pylist() if src.id_field and src.id_field in names else nones
            urls = batch.column(src.url_field).to_pylist() if src.url_field and src.url_field in names else nones
            for text, size, dirty, rid, url in zip(texts, sizes, unclean, ids, urls):
                n += 1
                if (
                    size is None
                    or (rid is not None and rid.__class__ is not str)
                    or (url is not None and url.__class__ is not str)
                ):
                    yield self._doc(src, rel, n, text, rid, url), None
                    continue
                if dirty or (nfc and not is_normalized("NFC", text)):  # dirty: needs_cleanup(text) is not None
                    text = normalize_text(text, form)
                    size = len(text.encode("utf-8"))
                meta = {
                    "source": name,
                    "kind": kind,
                    "url": None if url is None else normalize_text(url, form),
                    "lang": None,
                    "lang_score": None,
                    "source_file": source_file,
                    "source_line": n,
                }
                if not text or text.isspace():  # `not text.strip()`, without a copy of the text
                    meta["filter_reason"] = "empty_text"
                elif (file_index, n) in repeats:
                    meta["filter_reason"] = "duplicate_id"
                doc_id = id_prefix + normalize_text(rid, form) if rid else line_prefix + str(n)
                yield Document(text=text, id=doc_id, metadata=meta), size

    def _warc(self, src, folder, rel):
        max_payload = int(self.cfg.max_payload_mb * 2**20)
        max_html = int(self.cfg.max_html_mb * 2**20)
        with folder.open(rel, "rb") as f:
            records = strict_archive_iterator()(f)
            previous = None
            for n, record in enumerate(records, start=1):
                check_record_complete(previous)
                previous = record
                if record.rec_type not in ("response", "conversion"):
                    continue  # request, warcinfo, metadata records are not documents
                url = record.rec_headers.get_header("WARC-Target-URI")
                # read one byte past the cap: a record that inflates beyond it is never held in memory whole
                payload = record.content_stream().read(max_payload + 1)
                if len(payload) > max_payload:
                    sample = decode_bytes(payload[:TOO_LARGE_SAMPLE])
                    yield self._doc(src, rel, n, sample, url=url, error="too_large")
                    continue
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
                if len(html.encode("utf-8", "surrogatepass")) > max_html:
                    sample = html.encode("utf-8", "surrogatepass")[:TOO_LARGE_SAMPLE].decode("utf-8", "ignore")
                    yield self._doc(src, rel, n, sample, url=url, error="too_large")
                    continue
                try:
                    text = extract_html_bounded(
                        html, self.cfg.html_favor_precision, self.cfg.html_include_tables, self.cfg.extract_timeout_s
                    )
                except ExtractionTimeout:
                    yield self._doc(src, rel, n, html, url=url, error="extraction_timeout")
                    continue
                if not text:
                    # keep the page itself so nothing is lost
                    yield self._doc(src, rel, n, normalize_text(html), url=url, error="no_text_extracted")
                    continue
                yield self._doc(src, rel, n, text, url=url)
            check_record_complete(previous)
            if records.err_count:
                raise ValueError(f"{records.err_count} WARC record(s) longer or shorter than their Content-Length")
            if records.truncated:
                raise EOFError("the gzip stream ends inside a record (truncated file)")

    def _text(self, src, folder, rel):
        with open_decompressed(folder, rel) as f:
            content, bad_encoding = decode_input(f.read(), src.encoding)
        if bad_encoding:  # the whole file, as one record: its blocks cannot be trusted
            yield self._doc(src, rel, 0, content, error=bad_encoding)
            return
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


# ---------------------------------------------------------------------------------------------------------------
# Unique ids. An id from an `id_field` can repeat (the same record in two files, a dump with reused keys), and a
# repeated id would break every later stage's accounting and dedup's keeper-by-id. Sources with an id_field go
# through three phases that never hold more than one bucket of ids in a process:
#   main:       the read itself, as for any source, with no id known to repeat; each task also writes every good
#               record's (id, file index, record) of its id_field sources into `id_buckets` Parquet files, the
#               bucket chosen by a hash of the id (IdRecorder);
#   repeats:    one task per bucket finds the ids seen more than once there; the first occurrence (files in the
#               sorted order every task lists them in, then by line or row) keeps the id, the others are written
#               to repeats/<bucket>.parquet by (file index, record);
#   duplicates: a task whose files hold such a record reads its files again from the start, now routing those
#               records to removed/ as `duplicate_id` (its shards and tasks/<rank>.json are replaced); the other
#               tasks keep what the main phase wrote, which is what a read knowing the repeats gives them.
# So kept ids are unique, which copy is kept depends on neither the task count nor the bucket count, and the
# input is read twice only by tasks that hold a repeated id (until issue 13 every input was read twice: once for
# the ids, then for the documents).


def id_bucket(doc_id: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little") % buckets


ID_SCHEMA = pa.schema([("id", pa.string()), ("file_index", pa.int64()), ("record", pa.int64())])


class IdRecorder:
    """The main phase's ids of one task (see above): rows by id bucket, flushed every `flush_rows`, each bucket's
    file put in place (`ids/<bucket>/<rank>.parquet`) only when the task has read all its files."""

    def __init__(self, work: Path, buckets: int, rank: int, flush_rows: int = 100_000):
        self.work = Path(work)
        self.buckets = buckets
        self.rank = rank
        self.flush_rows = flush_rows
        tmp = self.work / "ids" / TMP_DIR
        tmp.mkdir(parents=True, exist_ok=True)
        self.paths = [tmp / f"{b:04d}_{rank:05d}.parquet" for b in range(buckets)]
        self.writers = [pq.ParquetWriter(p, ID_SCHEMA) for p in self.paths]
        self.rows: list[list[tuple[str, int, int]]] = [[] for _ in range(buckets)]

    def add(self, doc_id: str, file_index: int, record: int) -> None:
        b = id_bucket(doc_id, self.buckets)
        self.rows[b].append((doc_id, file_index, record))
        if len(self.rows[b]) >= self.flush_rows:
            self._flush(b)

    def _flush(self, b: int) -> None:
        if self.rows[b]:
            ids, files, records = zip(*self.rows[b])
            # built from buffers: `pa.table` of Python lists imports pandas (0.2-0.3 CPU-s, issue 13), and a
            # one-task ingest with an id_field had no other reason to
            columns = [
                column_array(ids, pa.string(), "id"),
                numpy_array(np.array(files, dtype=np.int64)),
                numpy_array(np.array(records, dtype=np.int64)),
            ]
            self.writers[b].write_table(pa.Table.from_arrays(columns, schema=ID_SCHEMA))
            self.rows[b] = []

    def close(self) -> None:
        for b, writer in enumerate(self.writers):
            self._flush(b)
            writer.close()
            final = self.work / "ids" / f"{b:04d}" / f"{self.rank:05d}.parquet"
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.paths[b], final)


class IdRepeats(PipelineStep):
    """The repeats phase (see above): task `rank` of `world_size` handles buckets rank, rank + world_size, ...,
    one after the other, so a process still holds one bucket of ids at a time. Fewer tasks than buckets (the
    stage's task count when it is smaller) save datatrove's per-task setup (its log handlers, about 10 ms of CPU
    each on the shared VM), which with one bucket per task cost more than the buckets' work on small inputs."""

    name = "id repeats"
    type = "🔑 - IDS"

    def __init__(self, work: Path, buckets: int | None = None):
        super().__init__()
        self.work = Path(work)
        self.buckets = buckets  # None: one task per bucket

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first
        for bucket in range(rank, self.buckets or world_size, world_size):
            self._bucket(bucket)

    def _bucket(self, bucket: int) -> None:
        files = sorted((self.work / "ids" / f"{bucket:04d}").glob("*.parquet"))
        # ParquetFile.read, not pq.read_table: read_table imports pyarrow.dataset, and with it pandas (0.2-0.3 CPU-s)
        ids = pa.concat_tables([pq.ParquetFile(f).read() for f in files]) if files else ID_SCHEMA.empty_table()
        repeats = repeated_records(ids)
        self.stat_update("duplicate_ids", value=repeats.num_rows)
        out = self.work / "repeats" / f"{bucket:04d}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        pq.write_table(repeats, tmp)
        os.replace(tmp, out)


REPEATS_SCHEMA = pa.schema([("file_index", pa.int64()), ("record", pa.int64())])


def repeated_records(ids: pa.Table) -> pa.Table:
    """(file_index, record) of every row of `ids` (ID_SCHEMA) whose id occurs at an earlier (file_index, record):
    every occurrence but the first, in that order. PyArrow and NumPy, not polars: polars' import alone was most of
    the repeats phase's time (issue 13); tests/test_ingest_fast_paths.py checks it against the polars expression
    it replaces (`is_duplicated() & ~is_first_distinct()` after the sort)."""
    if ids.num_rows == 0:
        return REPEATS_SCHEMA.empty_table()
    ids = ids.sort_by([("file_index", "ascending"), ("record", "ascending")])
    # Each id's first row in that order: its code in a dictionary encoding, then NumPy's first index of each code.
    # Not Table.group_by: it runs on Acero, whose import brings pyarrow.dataset and pandas (0.2-0.3 CPU-s).
    codes = pc.dictionary_encode(ids.column("id").combine_chunks()).indices
    _, first = np.unique(to_numpy(codes), return_index=True)
    later = np.ones(ids.num_rows, dtype=bool)
    later[first] = False
    return ids.filter(numpy_array(later)).select(REPEATS_SCHEMA.names).cast(REPEATS_SCHEMA)


def load_repeats(repeats_dir: Path, file_indexes: set[int]) -> set[tuple[int, int]]:
    """(file index, record) of the repeated ids in the given files: only this task's share is held."""
    files = sorted(Path(repeats_dir).glob("*.parquet"))
    if not files or not file_indexes:
        return set()
    mine: set[tuple[int, int]] = set()
    wanted = np.array(sorted(file_indexes), dtype=np.int64)
    for f in files:
        table = pq.ParquetFile(f).read(columns=REPEATS_SCHEMA.names)  # not read_table: see IdRepeats._bucket
        file_index = to_numpy(table.column("file_index"))
        keep = np.isin(file_index, wanted)
        mine.update(zip(file_index[keep].tolist(), to_numpy(table.column("record"))[keep].tolist()))
    return mine


class IdDuplicatesRedo(PipelineStep):
    """The duplicates phase (see above): runs `steps`, a whole main-phase pipeline whose reader knows the repeated
    ids, for a task whose files hold one; does nothing for the others."""

    name = "duplicate ids"
    type = "🔑 - IDS"

    def __init__(self, reader: IngestReader, steps: list):
        super().__init__()
        self.reader = reader
        self.steps = steps

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        files = {fi for fi, si, _ in self.reader.my_files(rank, world_size) if self.reader.sources[si].id_field}
        if not load_repeats(self.reader.repeats_dir, files):
            return
        self.stat_update("tasks_read_again")
        pipeline = None
        for step in self.steps:  # chained as datatrove's executor chains a task's steps
            pipeline = step(pipeline, rank, world_size)
        for _ in pipeline or ():
            pass


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

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """BaseFilter.run's routing (kept documents go on, flagged ones to the exclusion writer) with its
        statistics counted here and recorded once at the end: datatrove's per-document stat updates and timer
        were a sizeable share of ingest's time per document (issue 13)."""
        forwarded = 0
        dropped: Counter = Counter()
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                metadata = doc.metadata
                reason = metadata.get("filter_reason")
                if reason:
                    dropped[reason] += 1
                    if writer:
                        writer.write(doc, rank)
                    continue
                del metadata["source_file"], metadata["source_line"]
                forwarded += 1
                yield doc
        self.stat_update(StatHints.total, value=forwarded + dropped.total())
        self.stat_update(StatHints.forwarded, value=forwarded)
        self.stat_update(StatHints.dropped, value=dropped.total())
        for reason, n in dropped.items():
            self.stat_update(f"dropped_{reason}", value=n)


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

    def main_phase(reader: IngestReader) -> Phase:
        return ctx.standard_phase(
            [IngestErrors()],
            new_columns=DOCUMENT_COLUMNS if any(s.format in DOCUMENT_FORMATS for s in specs) else None,
            removed_columns=REMOVED_COLUMNS,
            reader=reader,
            max_shard_bytes=stage_cfg.max_shard_mb * 2**20,
        )

    progress = ctx.workers == 1
    if not any(s.id_field for s in specs):
        return [main_phase(IngestReader(specs, stage_cfg, progress=progress))]
    work = ctx.stage_dir / "work"
    main = main_phase(IngestReader(specs, stage_cfg, progress=progress, id_work=work, id_buckets=stage_cfg.id_buckets))
    again_reader = IngestReader(specs, stage_cfg, progress=progress, repeats_dir=work / "repeats")
    again = main_phase(again_reader)
    repeats = Phase("repeats", [IdRepeats(work, stage_cfg.id_buckets)], min(stage_cfg.id_buckets, ctx.tasks))
    duplicates = Phase("duplicates", [IdDuplicatesRedo(again_reader, again.steps)], ctx.tasks, again.kept_schema)
    if ctx.tasks == 1:
        # One task: one phase whose task reads, finds the repeats (IdRepeats drains the main steps first, so the
        # id files are complete), then reads again if its files hold one: the same files in the same order as three
        # phases. A phase's setup in datatrove's executor (log handlers, executor.json, stats and completion files)
        # is 0.02-0.05 CPU-s, and on Slurm a job and its queue wait (BENCHMARKS.md, issue 13, "Fifth pass").
        steps = [*main.steps, *repeats.steps, *duplicates.steps]
        return [Phase("main+repeats+duplicates", steps, 1, again.kept_schema)]
    return [main, repeats, duplicates]
