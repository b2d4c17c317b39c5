"""Reading and writing stage shards, and the per-task accounting behind `stats.json` and `pipeline verify`.

Every write is atomic: a shard is written under `.tmp/` and renamed into place when it is closed, so a killed run
never leaves a half-written shard that looks complete. A task that is rerun first deletes whatever an earlier,
interrupted attempt of the same task left behind, so a rerun never duplicates documents.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.pipeline.writers.parquet import ParquetWriter
from datatrove.utils.logging import logger
from datatrove.utils.typeshelper import StatHints

from stages.arrow import column_array
from stages.files import atomic_write_json, list_shards

# The document schema (docs/architecture.md). Stages may add columns; a column once added keeps its name and type.
BASE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("url", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("lang_score", pa.float32()),
    ]
)
# Columns only `removed/` shards carry.
REMOVED_COLUMNS = [pa.field("stage", pa.string()), pa.field("reason", pa.string())]

SCHEMA_FILE = "kept_schema.arrow"
TMP_DIR = ".tmp"
# Shards rotate at this size so one shard never needs a huge row group buffer in a reader.
DEFAULT_MAX_SHARD_BYTES = 256 * 2**20


def merge_schema(schema: pa.Schema, fields: list[pa.Field]) -> pa.Schema:
    """`schema` plus `fields` that it lacks; a field it has must keep its type."""
    for f in fields:
        idx = schema.get_field_index(f.name)
        if idx == -1:
            schema = schema.append(f)
        elif not schema.field(idx).type.equals(f.type):
            raise ValueError(
                f"column {f.name!r} exists as {schema.field(idx).type} and cannot be re-added as {f.type}: "
                "a column once added keeps its name and type"
            )
    return schema


def write_schema(path: Path, schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as f:
        f.write(schema.serialize())
    os.replace(tmp, path)


def shard_schema(kept_dir: Path) -> pa.Schema:
    """The kept schema a finished stage recorded (falls back to its first shard, then to the base schema)."""
    recorded = Path(kept_dir).parent / SCHEMA_FILE
    if recorded.exists():
        with pa.memory_map(str(recorded)) as f:
            return pa.ipc.read_schema(f)
    shards = list_shards(kept_dir)
    if shards:
        return pq.read_schema(shards[0])
    return BASE_SCHEMA


class _AtomicParquetWriter(ParquetWriter):
    """datatrove's ParquetWriter with an explicit schema, zstd, and temp-then-rename shards.

    Its per-document path is datatrove's, minus work that does not change what is written (issue 13, ingest): a
    document is buffered as its id, its text and a shallow copy of its metadata (what datatrove's row dict held),
    and each batch is split into one list per schema column and built with `RecordBatch.from_arrays`, which is
    what `RecordBatch.from_pylist` does with the row dicts; the shard name is computed once per rank (the name
    templates use `${rank}` only) and once per rotation; the current shard's size is read with `tell()` only after
    something was written to it (a batch, or the Parquet writer's header), since nothing else moves it; and
    datatrove's own per-document statistics (`total`, the per-file count, `doc_len`, the time per document) are
    added up and recorded once when the writer closes. Batches of `batch_size` rows and shard rotation at
    `max_file_size` are datatrove's, so shards hold the same rows in the same row groups."""

    def __new__(cls, *args, **kwargs):
        # datatrove's PipelineStep.__new__ checks ParquetWriter's `_requires_dependencies` (pyarrow) by reading the
        # metadata of every installed distribution: 0.04 CPU-s per process on the shared VM (issue 13). This module
        # imports pyarrow at its top, so the check cannot fail here; what PipelineStep.__new__ returns after it is
        # object.__new__(cls).
        return object.__new__(cls)

    def __init__(self, folder: Path, schema: pa.Schema, filename: str, max_file_size: int = DEFAULT_MAX_SHARD_BYTES):
        super().__init__(
            str(folder),
            output_filename=f"{TMP_DIR}/{filename}",
            compression="zstd",
            schema=schema,
            max_file_size=max_file_size,
            use_content_defined_chunking=False,
        )
        if set(self.output_filename.get_identifiers()) != {"rank"}:
            raise ValueError(f"shard name {filename!r}: only ${{rank}} may vary (the name is computed once per rank)")
        self.folder = Path(folder)
        self._columns = set(schema.names)
        self._metadata_columns = self._columns - {"id", "text"}
        self._names: dict[int, tuple[str, str]] = {}  # rank -> (shard name, its name in datatrove's per-file stat)
        self._shard_names: dict[str, str] = {}  # name -> the name with the current shard number (000_...)
        self._size_check_due: set[str] = set()  # shards written to since their size was last read
        self._written: Counter = Counter()  # per-file stat label -> documents, recorded at close
        self._written_chars = 0
        self.docs = 0
        self.chars = 0
        self.bytes = 0

    def row(self, document: Document) -> dict:
        row = {"id": document.id, "text": document.text, **document.metadata}
        unknown = set(row) - self._columns
        if unknown:
            raise ValueError(
                f"document {document.id!r} has column(s) {sorted(unknown)} that the stage did not declare "
                f"(declared: {sorted(self._columns)})"
            )
        return row

    def _default_adapter(self, document: Document) -> dict:
        return self.row(document)

    def write(self, document: Document, rank: int = 0, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}.write takes no file name tags (got {sorted(kwargs)})")
        text = document.text
        self.docs += 1
        self.chars += len(text)
        # `bytes` (each document's text in UTF-8) is added per batch from the Arrow text column's lengths, which
        # hold the same numbers (a text Arrow refuses stops the writer either way): no encode per document
        names = self._names.get(rank)
        if names is None:
            names = self._names[rank] = (
                self._get_output_filename(document, rank),
                self._get_output_filename(document, "XXXXX"),
            )
        original_name, stat_label = names
        metadata = document.metadata
        if not self._metadata_columns.issuperset(metadata):
            self.row(document)  # raises, naming the undeclared columns
        output_filename = original_name
        if self.max_file_size > 0:
            output_filename = self._shard_names.get(original_name)
            if output_filename is None:
                output_filename = self._shard_names[original_name] = self._get_filename_with_file_id(original_name)
            if output_filename in self._size_check_due or output_filename not in self._writers:
                self._size_check_due.discard(output_filename)
                if self._get_output_file_with_retry(output_filename).tell() >= self.max_file_size:
                    self.file_id_counter[original_name] += 1
                    new_output_filename = self._get_filename_with_file_id(original_name)
                    self._shard_names[original_name] = new_output_filename
                    self._on_file_switch(original_name, output_filename, new_output_filename)
                    output_filename = new_output_filename
        if output_filename not in self._writers:
            self._writers[output_filename] = pq.ParquetWriter(
                self._get_output_file_with_retry(output_filename),
                schema=self.schema,
                compression=self.compression,
                use_content_defined_chunking=self.use_content_defined_chunking,
                write_page_index=self.write_page_index,
            )
            self._size_check_due.add(output_filename)  # the writer may have written the file's header
        batch = self._batches.get(output_filename)
        if batch is None:
            batch = self._batches[output_filename] = ([], [], [], [])
        ids, texts, metadatas, replaced_texts = batch
        # the row dict is {"id": ..., "text": ..., **metadata}: a metadata "id" or "text" would win
        ids.append(metadata["id"] if "id" in metadata else document.id)
        if "text" in metadata:  # the column holds another text: this row's size is the document's, counted here
            replaced_texts.append((len(texts), len(text.encode("utf-8", "surrogatepass"))))
            texts.append(metadata["text"])
        else:
            texts.append(text)
        metadatas.append(metadata.copy())  # shallow, taken now, as the row dict was
        if len(ids) == self.batch_size:
            self._write_batch(output_filename)
        self._written[stat_label] += 1
        self._written_chars += len(text)

    def _write_batch(self, filename):
        batch = self._batches.pop(filename, None)
        if not batch or not batch[0]:
            return
        ids, texts, metadatas, replaced_texts = batch
        # each column built by column_array, as `RecordBatch.from_arrays` would convert the lists, but without
        # pyarrow's pandas check, which imports pandas (0.2-0.3 CPU-s per process)
        columns = []
        for field in self.schema:
            if field.name in ("id", "text"):
                values = ids if field.name == "id" else texts
            else:
                values = [m.get(field.name) for m in metadatas]
            columns.append(column_array(values, field.type, field.name))
        record_batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        sizes = pc.binary_length(record_batch.column("text"))
        n_bytes = pc.sum(sizes).as_py() or 0
        for row, document_bytes in replaced_texts:
            n_bytes += document_bytes - (sizes[row].as_py() or 0)
        self.bytes += n_bytes
        self._writers[filename].write_batch(record_batch)
        self._size_check_due.add(filename)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self:
            for document in data:
                self.write(document, rank)
                yield document

    def close(self):
        for label, n in self._written.items():
            self.stat_update(label, value=n)
        if self._written:
            self.stat_update(StatHints.total, value=sum(self._written.values()))
            self.stat_update("doc_len", value=self._written_chars)
        self._written.clear()
        self._written_chars = 0
        super().close()

    def close_file(self, filename):
        if self.max_file_size > 0 and filename not in self._writers:
            filename = self._get_filename_with_file_id(filename)
        super().close_file(filename)
        self._size_check_due.discard(filename)
        final = filename.removeprefix(f"{TMP_DIR}/")
        os.replace(self.folder / filename, self.folder / final)


class KeptWriter(_AtomicParquetWriter):
    name = "kept shards"

    def __init__(self, folder: Path, schema: pa.Schema, max_file_size: int = DEFAULT_MAX_SHARD_BYTES):
        super().__init__(folder, schema, "${rank}.parquet", max_file_size)


class RemovedWriter(_AtomicParquetWriter):
    """The exclusion writer of one filter: adds `stage` and `reason` (from datatrove's `filter_reason`)."""

    name = "removed shards"

    def __init__(
        self,
        folder: Path,
        stage: str,
        schema: pa.Schema,
        tag: str,
        default_reason: str = "removed",
        max_file_size: int = DEFAULT_MAX_SHARD_BYTES,
    ):
        super().__init__(folder, schema, f"${{rank}}_{tag}.parquet", max_file_size)
        self.stage = stage
        self.default_reason = default_reason
        self.reasons: Counter = Counter()

    def write(self, document: Document, rank: int = 0, **kwargs):
        meta = document.metadata
        meta["reason"] = meta.pop("filter_reason", None) or meta.get("reason") or self.default_reason
        meta["stage"] = self.stage
        self.reasons[meta["reason"]] += 1
        super().write(document, rank, **kwargs)


class ShardReader(BaseDiskReader):
    """Reads a previous stage's kept shards back into Documents, every column included, dropping nothing."""

    name = "stage shards"

    def __init__(self, folder: Path | None, progress: bool = False, batch_size: int = 1000):
        super().__init__(
            str(folder) if folder else ".",
            glob_pattern="*.parquet",
            recursive=False,
            file_progress=progress,
            add_file_path=False,
        )
        self.folder = folder
        self.batch_size = batch_size
        self.docs = 0
        self.chars = 0
        self.bytes = 0
        self.failed_files: list[dict] = []

    def count(self, document: Document) -> None:
        self.docs += 1
        self.chars += len(document.text)
        self.bytes += len(document.text.encode("utf-8", "surrogatepass"))

    def read_file(self, filepath: str) -> DocumentsPipeline:
        with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f) as pqf:
            for batch in pqf.iter_batches(batch_size=self.batch_size):
                for row in batch.to_pylist():
                    doc = Document(text=row.pop("text"), id=row.pop("id"), metadata=row)
                    self.count(doc)
                    yield doc

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.docs = self.chars = self.bytes = 0
        if data:
            yield from data
        if self.folder is None or not list_shards(self.folder):
            logger.warning(f"no input shards in {self.folder}: this stage's input is empty")
            return
        shard = self.data_folder.get_shard(rank, world_size, recursive=False, glob_pattern="*.parquet") or []
        yield from self.read_files_shard(shard)


class TaskStart(PipelineStep):
    """First step of every task: removes what an interrupted earlier attempt of this task left behind."""

    name = "task start"
    type = "🏁 - START"

    def __init__(self, stage_dir: Path, folders: list[Path]):
        super().__init__()
        self.stage_dir = Path(stage_dir)
        self.folders = [Path(f) for f in folders]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        mine = re.compile(rf"^\d{{3}}_{rank:05d}(_\w+)?\.parquet$")
        for folder in self.folders:
            for sub in (folder, folder / TMP_DIR):
                if sub.is_dir():
                    for f in sub.iterdir():
                        if mine.match(f.name):
                            f.unlink()
        (self.stage_dir / "tasks" / f"{rank:05d}.json").unlink(missing_ok=True)
        if data:
            yield from data


class ReportsCounters:
    """Mixin for a stage's own step whose counts appear in `stats.json` under `counters`.

    The step counts the datatrove way, and only that way: `self.stat_update(label, value=n)`. Its labels that
    start with one of `counter_prefixes` are its stats.json counters; TaskAccounting writes this task's totals
    into `tasks/<rank>.json` and the runner sums them over tasks, as datatrove's executor sums each task's
    `stats/<rank>.json`. Other labels (datatrove's own bookkeeping in BaseFilter: `total`, `forwarded`,
    `dropped_<reason>`, `doc_len`) stay in datatrove's logs: stats.json has them as docs_in, kept,
    removed_by_reason and chars."""

    counter_prefixes: tuple[str, ...] = ()
    stats: Any  # datatrove's Stats, from PipelineStep


def reported_counters(step: ReportsCounters) -> dict[str, int | float]:
    """The step's counters so far: the totals of its stats whose label starts with one of `counter_prefixes`."""
    return {label: m.total for label, m in step.stats.stats.items() if label.startswith(step.counter_prefixes)}


class TaskAccounting(PipelineStep):
    """Last step of every task: drains the pipeline and writes `<stage>/tasks/<rank>.json` with what went in,
    what was kept and what was removed per reason, read from the reader's and writers' own counts, and the
    counters of the `counted` steps."""

    name = "accounting"
    type = "🧮 - STATS"

    def __init__(
        self,
        stage_dir: Path,
        reader: Any,
        kept: KeptWriter,
        removed: list[RemovedWriter],
        counted: list[ReportsCounters],
    ):
        super().__init__()
        self.stage_dir = Path(stage_dir)
        self.reader = reader
        self.kept = kept
        self.removed = removed
        self.counted = counted

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        start = time.time()
        # With one worker the same step objects run every task and datatrove's stats keep growing: this task's
        # counters are the growth from here, where the task begins (this body runs before any upstream step's,
        # since each step is a generator started by the one after it).
        at_start = [reported_counters(step) for step in self.counted]
        for _ in data or ():
            pass
        reasons: Counter = Counter()
        removed_chars = removed_bytes = 0
        for w in self.removed:
            reasons.update(w.reasons)
            removed_chars += w.chars
            removed_bytes += w.bytes
        counters: Counter = Counter()
        for step, before in zip(self.counted, at_start):
            counters.update({k: v - before.get(k, 0) for k, v in reported_counters(step).items()})
        stats = {
            "rank": rank,
            "world_size": world_size,
            "docs_in": self.reader.docs,
            "chars_in": self.reader.chars,
            "bytes_in": self.reader.bytes,
            "kept": self.kept.docs,
            "chars_kept": self.kept.chars,
            "bytes_kept": self.kept.bytes,
            "removed": sum(reasons.values()),
            "chars_removed": removed_chars,
            "bytes_removed": removed_bytes,
            "removed_by_reason": dict(reasons),
            "counters": dict(counters),
            "failed_files": list(getattr(self.reader, "failed_files", [])),
            "seconds": round(time.time() - start, 3),
        }
        atomic_write_json(self.stage_dir / "tasks" / f"{rank:05d}.json", stats)
        return
        yield  # a generator that yields nothing
