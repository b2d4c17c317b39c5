"""Issue 13 (ingest throughput): every fast path of ingest and of the shared shard writer gives what its definition
gives, on the sample corpus's real documents and on the inputs each shortcut skips work for."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from datatrove.io import get_datafolder
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers.parquet import ParquetWriter

from stages.ingest import (
    _NEEDS_CLEANUP,
    ID_SCHEMA,
    IngestConfig,
    IngestReader,
    SourceSpec,
    _normalize_text_full,
    cleanup_rows,
    normalize_text,
    repeated_records,
    writable,
)
from stages.io import BASE_SCHEMA, REMOVED_COLUMNS, KeptWriter, RemovedWriter, merge_schema
from tests.conftest import SAMPLE

# Strings each of normalize_text's steps changes, and strings none of them does.
EDGE_TEXTS = [
    "",
    " ",
    "\ufeff前言\r\n第一章\r結束",
    "\x1b[31m紅字\x1b[0m and \x1b]0;title\x07 after",
    "nul\x00 bel\x07 del\x7f c1\x85\x9f tab\t newline\n kept",
    "lone \ud800 and \udfff surrogates",
    "e\u0301 A\u030a \u1100\u1161 decomposed",  # NFC composes these
    "\u2126 \u212b singletons",  # NFC maps these to other code points
    "\ufeff",
    "middle \ufeff BOM",
    "plain ASCII text",
    "全角，标点。　空格",
]


@pytest.fixture(scope="module")
def sample_texts() -> list[str]:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line)["content"] for line in f]
    notes = (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n")
    articles = pq.read_table(SAMPLE / "articles_en.parquet").column("text").to_pylist()
    return books + notes + articles


@pytest.mark.parametrize("form", ["NFC", "none"])
def test_normalize_text_equals_its_definition(sample_texts, form):
    texts = sample_texts + EDGE_TEXTS + [t + edge for t in sample_texts[:20] for edge in EDGE_TEXTS]
    for text in texts:
        assert normalize_text(text, form) == _normalize_text_full(text, form), repr(text[:80])
    # the fast path does run: most sample texts need no cleanup, and some edge texts do
    changed = [t for t in EDGE_TEXTS if _normalize_text_full(t, form) != t]
    assert len(changed) >= (7 if form == "NFC" else 5)
    assert sum(normalize_text(t, form) is t for t in sample_texts) > len(sample_texts) // 2


class _DatatroveRowPath:
    """datatrove's own per-row path (ParquetWriter._write, a row dict per document, `RecordBatch.from_pylist` per
    batch), put back in front of our writers' batched path."""

    _write = ParquetWriter._write
    _write_batch = ParquetWriter._write_batch
    run = DiskWriter.run

    def close(self):
        ParquetWriter.close(self)


class DatatroveRowsWriter(_DatatroveRowPath, KeptWriter):
    """The writer as it was before issue 13: datatrove's DiskWriter.write -> ParquetWriter._write (a row dict per
    document, `RecordBatch.from_pylist` per batch), with the same counts."""

    def write(self, document: Document, rank: int = 0, **kwargs):
        self.docs += 1
        self.chars += len(document.text)
        self.bytes += len(document.text.encode("utf-8", "surrogatepass"))
        DiskWriter.write(self, document, rank, **kwargs)


class DatatroveRowsRemovedWriter(_DatatroveRowPath, RemovedWriter):
    def write(self, document: Document, rank: int = 0, **kwargs):
        meta = document.metadata
        meta["reason"] = meta.pop("filter_reason", None) or meta.get("reason") or self.default_reason
        meta["stage"] = self.stage
        self.reasons[meta["reason"]] += 1
        DatatroveRowsWriter.write(self, document, rank, **kwargs)


def sample_documents() -> list[Document]:
    docs = []
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            record = json.loads(line)
            meta = {"source": "books_zh", "kind": "text", "url": record.get("url"), "lang": None, "lang_score": None}
            if i % 7 == 3:
                meta.update(lang="zh", lang_score=0.5 + i / 10_000)
            if i % 11 == 5:  # metadata keys in another order, one absent (a null in its column)
                meta = {"url": meta["url"], "source": "books_zh", "lang": "zh"}
            docs.append(Document(text=record["content"], id=f"books_zh:{record['doc_id']}", metadata=meta))
    return docs


def shards(folder: Path) -> dict[str, tuple[bytes, list[int]]]:
    out = {}
    for f in sorted(folder.glob("*.parquet")):
        meta = pq.ParquetFile(f).metadata
        out[f.name] = (f.read_bytes(), [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    return out


@pytest.mark.parametrize("max_file_size", [256 * 2**20, 2_000_000, 1])
def test_shard_writer_writes_the_files_of_datatroves_row_path(tmp_path, max_file_size):
    """Same shard files byte for byte (rows, row groups of 1000, rotation points) as the row-dict path, for kept and
    removed writers, with shard rotation never, every few batches, and after every batch."""
    schema = BASE_SCHEMA
    removed_schema = merge_schema(schema, REMOVED_COLUMNS)
    results = []
    for name, kept_cls, removed_cls in (
        ("fast", KeptWriter, RemovedWriter),
        ("rows", DatatroveRowsWriter, DatatroveRowsRemovedWriter),
    ):
        kept_dir, removed_dir = tmp_path / name / "kept", tmp_path / name / "removed"
        kept_writer = kept_cls(kept_dir, schema, max_file_size=max_file_size)
        removed_writer = removed_cls(removed_dir, "ingest", removed_schema, tag="00", max_file_size=max_file_size)
        docs = sample_documents() * 12
        to_kept = (d for i, d in enumerate(docs) if i % 5)
        with removed_writer:
            for i, doc in enumerate(docs):
                if i % 5 == 0:
                    doc.metadata["filter_reason"] = "empty_text" if i % 2 else None
                    removed_writer.write(doc, rank=3)
        for _ in kept_writer.run(to_kept, rank=3):
            pass
        results.append(
            (
                shards(kept_dir),
                shards(removed_dir),
                (kept_writer.docs, kept_writer.chars, kept_writer.bytes),
                dict(removed_writer.reasons),
            )
        )
    fast, rows = results
    assert fast == rows
    groups = [g for _, g in fast[0].values()]
    assert sum(map(sum, groups)) == len(docs) * 4 // 5 and all(n == 1000 for g in groups for n in g[:-1])
    if max_file_size == 1:  # a new shard after every written batch
        assert len(groups) > 2 and all(len(g) == 1 for g in groups)
    elif max_file_size == 2_000_000:  # a new shard every few batches
        assert len(groups) > 2 and any(len(g) > 1 for g in groups)
    else:
        assert list(fast[0]) == ["000_00003.parquet"]


def test_shard_writer_refuses_an_undeclared_column(tmp_path):
    writer = KeptWriter(tmp_path, BASE_SCHEMA)
    doc = Document(text="文本", id="a", metadata={"source": "s", "dup_cluster": 3})
    with pytest.raises(ValueError, match=r"column\(s\) \['dup_cluster'\] that the stage did not declare"):
        writer.write(doc)


def parquet_reader(
    path: Path, text_field: str, id_field: str | None, url_field: str | None, name: str = "p", form: str = "NFC"
) -> IngestReader:
    spec = SourceSpec(
        name=name,
        base=str(path.parent),
        files=[path.name],
        pattern=None,
        format="parquet",
        text_field=text_field,
        id_field=id_field,
        url_field=url_field,
        kind="text",
        text_mode="file",
    )
    return IngestReader([spec], IngestConfig(unicode_form=form))


def as_rows(docs) -> list[tuple]:
    return [(d.id, d.text, sorted(d.metadata.items(), key=lambda kv: kv[0])) for d in docs]


@pytest.mark.parametrize(
    "id_field,url_field", [("doc_id", "url"), (None, None), ("missing", "url"), ("url", "url"), ("doc_id", "doc_id")]
)
def test_parquet_columns_give_the_documents_of_row_dicts(tmp_path, id_field, url_field):
    """The column-by-column Parquet read equals `_record` on every `to_pylist` row (its definition), with null,
    empty and non-string texts, null ids, extra columns, and id/url fields that are absent or shared."""
    articles = pq.read_table(SAMPLE / "articles_en.parquet").to_pylist()
    texts = [a["text"] for a in articles][:2500] + [None, "", "  \r\n", "\x1b[1m粗\x1b[0m"]
    n = len(texts)
    table = pa.table(
        {
            "doc_id": [f"d{i}" if i % 13 else None for i in range(n)],
            "text": texts,
            "url": [f"https://example.org/{i}" if i % 3 else None for i in range(n)],
            "extra": list(range(n)),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=700)
    numbers = tmp_path / "numbers.parquet"  # a text column of numbers: non_string_text
    pq.write_table(pa.table({"doc_id": ["a", "b"], "text": [1, 2], "url": ["u", None]}), numbers)
    for file in (path, numbers):
        reader = parquet_reader(file, "text", id_field, url_field)
        reader._current_file = reader._current_file_clean = str(file)
        fast = list(reader._read(reader.sources[0], file.name))
        reference = [
            reader._record(reader.sources[0], file.name, i, row)
            for i, row in enumerate(pq.read_table(file).to_pylist(), start=1)
        ]
        assert as_rows(fast) == as_rows(reference)
        assert len(fast) == pq.ParquetFile(file).metadata.num_rows


def test_parquet_without_the_text_column_still_goes_to_removed_whole(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"doc_id": ["a"], "body": ["正文"]}), path)
    reader = parquet_reader(path, "text", "doc_id", None)
    (doc,) = reader._read(reader.sources[0], path.name)
    assert doc.metadata["filter_reason"] == "missing_text_field" and json.loads(doc.text) == {
        "doc_id": "a",
        "body": "正文",
    }


def edge_parquet(tmp_path: Path) -> tuple[Path, ...]:
    """The sample's English articles and Chinese books with the rows each shortcut of `_parquet_fast` hands back to
    `_doc`: null, empty, blank and unclean texts (controls, CR, BOM, lone surrogates via JSON are not possible in
    Parquet), NFC-changing texts, null, empty and unclean ids and urls; and a file whose id and url are numbers."""
    articles = pq.read_table(SAMPLE / "articles_en.parquet").column("text").to_pylist()
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line)["content"] for line in f]
    edges = [t for t in EDGE_TEXTS if "\ud800" not in t] + [None, "\u3000\n\t", "\u00a0"]
    texts = articles[:1200] + books + edges + [b + e for b in books[:30] for e in edges if e is not None]
    n = len(texts)
    table = pa.table(
        {
            "doc_id": [
                None if i % 13 == 0 else "" if i % 17 == 0 else f"d{i}\r\ne\u0301" if i % 19 == 0 else f"d{i}"
                for i in range(n)
            ],
            "text": texts,
            "url": [
                f"https://example.org/{i}\x1b" if i % 7 == 0 else f"https://e.org/{i}" if i % 3 else None
                for i in range(n)
            ],
        }
    )
    path = tmp_path / "edges.parquet"
    pq.write_table(table, path, row_group_size=700)
    numbers = tmp_path / "numbers.parquet"  # numbers as ids and urls, and as texts (non_string_text)
    pq.write_table(pa.table({"doc_id": [1, None, 3], "text": ["一", "二", "三"], "url": [7, None, 9]}), numbers)
    number_texts = tmp_path / "number_texts.parquet"
    pq.write_table(pa.table({"doc_id": ["a", "b"], "text": [1, 2], "url": ["u", None]}), number_texts)
    large = tmp_path / "large.parquet"
    pq.write_table(table.cast(pa.schema([(f, pa.large_string()) for f in table.column_names])), large)
    return path, numbers, number_texts, large


@pytest.mark.parametrize("form", ["NFC", "none"])
@pytest.mark.parametrize("id_field,url_field", [("doc_id", "url"), (None, None), ("missing", "url"), ("url", "url")])
def test_parquet_fast_gives_the_documents_and_sizes_of_its_definition(tmp_path, form, id_field, url_field):
    """`_parquet_fast`'s (document, size) pairs equal `_parquet_columns`' documents (checked against the row dicts
    above) with `writable`'s size, row for row, including the rows routed to removed/ (empty, repeated ids)."""
    for file in edge_parquet(tmp_path):
        reader = parquet_reader(file, "text", id_field, url_field, form=form)
        reader._current_file = reader._current_file_clean = str(file)
        reader._repeats = {(0, 5), (0, 700), (0, 701), (0, 2000)}
        src = reader.sources[0]
        fast = list(reader._parquet(src, get_datafolder(src.base), file.name, sized=True))
        reference = list(reader._read(src, file.name))
        assert as_rows([d for d, _ in fast]) == as_rows(reference)
        assert [size if size is not None else writable(d) for d, size in fast] == [writable(d) for d in reference]
        if file.name == "edges.parquet":  # the inline path ran, and so did the hand-back to _doc
            assert sum(size is not None for _, size in fast) > 1000
            assert sum(size is None for _, size in fast) >= 1
            reasons = {d.metadata.get("filter_reason") for d, _ in fast}
            assert {"empty_text", "duplicate_id", "missing_text_field", None} <= reasons


def test_parquet_fast_leaves_a_source_name_that_does_not_encode_to_writable(tmp_path):
    """A source name with a lone surrogate (only possible from a command-line override) skips the fast path, so
    `writable` still escapes it and routes the record to removed/."""
    path = edge_parquet(tmp_path)[0]
    reader = parquet_reader(path, "text", "doc_id", "url", name="p\udcff")
    reader._current_file = reader._current_file_clean = str(path)
    src = reader.sources[0]
    pairs = list(reader._parquet(src, get_datafolder(src.base), path.name, sized=True))
    assert pairs and all(size is None for _, size in pairs)
    doc = pairs[0][0]
    writable(doc)
    assert doc.metadata["filter_reason"] == "unwritable_record"


def polars_repeats(ids: pa.Table) -> pa.Table:
    """The repeats phase as it was (polars): the definition `repeated_records` keeps."""
    frame = pl.from_arrow(ids)
    return (
        frame.sort("file_index", "record")
        .filter(pl.col("id").is_duplicated() & ~pl.col("id").is_first_distinct())
        .select("file_index", "record")
        .to_arrow()
    )


def test_repeated_records_equal_the_polars_definition():
    """Ids from the sample's books with repeats across and within files, rows in shuffled order, and no repeats."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        book_ids = [json.loads(line)["doc_id"] for line in f]
    rng = np.random.default_rng(13)
    rows = []
    for file_index in range(6):
        picked = rng.choice(len(book_ids), size=400, replace=True)  # repeats within a file too
        rows += [(f"books_zh:{book_ids[k]}", file_index, record) for record, k in enumerate(picked, start=1)]
    order = rng.permutation(len(rows))
    shuffled = [rows[i] for i in order]
    for case in (shuffled, [r for r in rows if r[1] == 0][:1], [], [(f"u{i}", 0, i) for i in range(50)]):
        table = pa.table(list(zip(*case)) if case else [[], [], []], schema=ID_SCHEMA)
        ours, reference = repeated_records(table), polars_repeats(table)
        assert ours.to_pylist() == reference.to_pylist()
    assert repeated_records(pa.table(list(zip(*shuffled)), schema=ID_SCHEMA)).num_rows > 1000


def test_shard_writer_counts_the_bytes_of_each_documents_text(tmp_path):
    """`bytes`, added per batch from the Arrow text column, equals the per-document UTF-8 sizes of the row path,
    also where a document's metadata replaces the written text (its own text's size is counted)."""
    docs = sample_documents() * 3
    for i in (2, 1500):
        docs[i] = Document(text=docs[i].text, id=docs[i].id, metadata={**docs[i].metadata, "text": "另一段文字"})
    counts = []
    for name, cls in (("fast", KeptWriter), ("rows", DatatroveRowsWriter)):
        writer = cls(tmp_path / name, BASE_SCHEMA, max_file_size=2_000_000)
        for _ in writer.run((Document(text=d.text, id=d.id, metadata=dict(d.metadata)) for d in docs), rank=0):
            pass
        counts.append((writer.docs, writer.chars, writer.bytes))
    assert counts[0] == counts[1]
    assert counts[0][2] == sum(len(d.text.encode("utf-8")) for d in docs) > counts[0][1]


@pytest.mark.parametrize("large", [False, True])
def test_cleanup_rows_flag_what_the_regex_finds(sample_texts, large):
    """`cleanup_rows` (bytes) flags exactly the strings `_NEEDS_CLEANUP` (characters) finds something in: every
    character of the class at the start, middle and end of real texts, near neighbours that must not be flagged
    (tab, newline, U+00A0, U+00B7, U+FEFE, other EF-led punctuation), nulls, and sliced arrays."""
    in_class = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20), *range(0x7F, 0xA0), 0xFEFF]]
    neighbours = ["\t", "\n", " ", "\u00a0", "\u00b7", "\u00bf", "\ufefe", "\uff0c", "\ufffd", "\u3000", "~"]
    base = sample_texts[:40]
    texts = list(sample_texts) + [None, ""]
    for i, ch in enumerate(in_class + neighbours):
        text = base[i % len(base)]
        texts += [ch + text, text[:50] + ch + text[50:], text + ch, ch]
    column = pa.array(texts, type=pa.large_string() if large else pa.string())
    expected = [t is not None and _NEEDS_CLEANUP.search(t) is not None for t in texts]
    assert cleanup_rows(column).tolist() == expected
    assert sum(expected) >= 4 * len(in_class) and not all(expected)
    for start, stop in ((1, 7), (len(sample_texts) - 3, len(texts)), (len(texts) - 5, len(texts))):
        assert cleanup_rows(column.slice(start, stop - start)).tolist() == expected[start:stop]
    assert cleanup_rows(pa.array([], pa.string())).tolist() == []


def test_a_one_task_id_field_ingest_is_one_phase_and_imports_no_pandas(tmp_path):
    """A one-task ingest of JSONL with an id_field and a repeated id, as a whole `pipeline run` in a fresh
    interpreter: it runs as one phase, reads again (the repeat goes to removed/ as duplicate_id, the first copy keeps
    the id), and imports neither pandas nor what imports it (pyarrow.dataset, Acero), nor warcio or the LaTeX reader."""
    from tests.conftest import pipeline_run_recording_imports, write_config

    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(next(f)) for _ in range(30)]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in books[:20]), "utf-8")
    (src / "b.jsonl").write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in books[18:]), "utf-8")
    body = f'[[sources]]\nname = "s"\npath = "{src}"\nformat = "jsonl"\ntext_field = "content"\nid_field = "doc_id"\n'
    config = write_config(tmp_path, body, tasks=1, workers=1)
    done, out = pipeline_run_recording_imports("run", "ingest", "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    assert out["rc"] == 0 and out["loaded"] == [], (out["loaded"], out["stacks"][:1])
    stage = tmp_path / "out" / "ingest"
    assert json.loads((stage / "run.json").read_text())["phases"] == ["main+repeats+duplicates"]
    kept = pl.read_parquet(sorted((stage / "kept").glob("*.parquet")))
    removed = pl.read_parquet(sorted((stage / "removed").glob("*.parquet")))
    assert sorted(kept["id"]) == sorted(f"s:{b['doc_id']}" for b in books)  # 30 distinct ids, each kept once
    assert removed["reason"].to_list() == ["duplicate_id"] * 2
    assert [Path(f).name for f in removed["source_file"]] == ["b.jsonl"] * 2  # a.jsonl comes first: its copy stays
