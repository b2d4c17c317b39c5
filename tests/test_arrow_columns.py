"""Arrow columns without pandas (issue 13, process start): stages/arrow.py against pyarrow's own conversion.

`column_array` must give what `pa.array(values, type)` gives (or raise what it raises) on every column of every
stage's schema, with the sample's real text; `numpy_array`/`to_numpy` what `pa.array(ndarray)`/`to_numpy` give;
and a stage run in a fresh interpreter on the sample must not import pandas (the import hook prints the stack).
"""

from __future__ import annotations

import gzip
import io
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages import dedup, ingest
from stages.arrow import column_array, numpy_array, to_numpy
from stages.filters.scores import scores_type
from stages.io import BASE_SCHEMA, REMOVED_COLUMNS, merge_schema
from stages.quality import NEW_COLUMNS as QUALITY_COLUMNS
from tests.conftest import REPO, SAMPLE, pipeline_run_recording_imports, write_config

# Every column a stage writes (stages/*.py new_columns and removed_columns), with the filter's scores struct.
ALL_COLUMNS = merge_schema(
    BASE_SCHEMA,
    REMOVED_COLUMNS
    + ingest.REMOVED_COLUMNS
    + ingest.DOCUMENT_COLUMNS
    + dedup.NEW_COLUMNS
    + dedup.REMOVED_COLUMNS
    + QUALITY_COLUMNS
    + [
        pa.field("pii_count", pa.int32()),
        pa.field("contaminated_by", pa.list_(pa.string())),
        pa.field("scores", scores_type(["zh_entropy", "zh_punct_ratio", "en_words", "code_lines"])),
    ],
)


class _Text(str):
    pass


def _same(built: pa.Array, expected: pa.Array) -> bool:
    """Arrow equality, with NaN equal to NaN (pyarrow's `equals` says NaN != NaN)."""
    built.validate(full=True)
    return (
        built.type == expected.type
        and built.null_count == expected.null_count
        and repr(built.to_pylist()) == repr(expected.to_pylist())
    )


def _sample_rows() -> list[dict]:
    """Rows of every column from the sample's real documents: Chinese books, English articles, the notes; with the
    nulls, empty strings, non-BMP characters, NaN scores and nested values the stages write."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line) for line in f]
    articles = pq.read_table(SAMPLE / "articles_en.parquet").to_pylist()
    notes = (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n")
    texts = [b["content"] for b in books] + [a["text"] for a in articles] + notes
    rows = []
    for i, text in enumerate(texts):
        chars = max(len(text), 1)
        han = sum("\u4e00" <= c <= "\u9fff" for c in text)
        rows.append(
            {
                "id": f"doc/{i}",
                "text": text if i % 11 else text + "𠀀𝄞",  # non-BMP characters (4 UTF-8 bytes)
                "source": ["books_zh", "articles_en", "notes_zh"][i % 3],
                "kind": "text" if i % 5 else None,
                "url": None if i % 3 else f"https://example.org/{i}/页面",
                "lang": "zh" if han else "en",
                "lang_score": [han / chars, float("nan"), None, np.float32(0.5), 1][i % 5],
                "title": [None, "", text[:20]][i % 3],
                "author": None,
                "stage": "filter",
                "reason": ["zh_entropy", "", None][i % 3],
                "source_file": str(SAMPLE / "books_zh.jsonl.gz"),
                "source_line": [i, None, 2**40][i % 3],
                "dup_cluster": None if i % 4 else f"doc/{i - 1}",
                "dup_cluster_size": None if i % 4 else i % 7 + 2,
                "dup_lines_removed": i % 3,
                "duplicate_of": None,
                "quality_score": [han / chars, None, float("inf")][i % 3],
                "pii_count": [0, None, 3, 2**31 - 1][i % 4],
                "contaminated_by": [None, [], ["ceval", "cmmlu"], ["mmlu", None, "𝄞"]][i % 4],
                "scores": [
                    {"zh_entropy": math.log2(chars), "zh_punct_ratio": han / chars, "en_words": None},
                    None,
                    {"code_lines": float(text.count("\n")), "zh_entropy": float("nan")},
                    {"zh_entropy": 1, "unknown_rule": 3.0},
                ][i % 4],
            }
        )
    return rows


def test_every_stage_column_is_what_pa_array_makes_of_the_sample():
    """Each column of every stage's schema, from the sample's documents: the same array as `pa.array`, and the same
    Parquet bytes when the batch is written as the shard writer writes it."""
    rows = _sample_rows()
    assert len(rows) > 50
    built, expected = [], []
    for field in ALL_COLUMNS:
        values = [r[field.name] for r in rows]
        built.append(column_array(values, field.type, field.name))
        expected.append(pa.array(values, field.type))
        assert _same(built[-1], expected[-1]), field.name
    shards = []
    for arrays in (built, expected):
        sink = io.BytesIO()
        with pq.ParquetWriter(sink, ALL_COLUMNS, compression="zstd") as writer:
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=ALL_COLUMNS))
        shards.append(sink.getvalue())
    assert shards[0] == shards[1]


@pytest.mark.parametrize(
    "values, arrow_type",
    [
        (["a", None, "", "𝄞x中", "é"], pa.string()),
        (["中", None], pa.string()),  # a null after a non-ASCII text
        ([_Text("x"), "y"], pa.string()),  # a str subclass
        (["a", None, "", "𝄞x中"], pa.large_string()),
        ([None, None], pa.string()),
        ([], pa.string()),
        ([b"bytes"], pa.string()),  # pyarrow takes bytes: the fallback
        ([1, None, -5, 2**31 - 1, -(2**31)], pa.int32()),
        ([1, None, 2**63 - 1, -(2**63), np.int64(3)], pa.int64()),
        ([1.5], pa.int32()),  # pyarrow truncates: the fallback
        ([0.5, None, float("nan"), 1, float("inf"), 1e40, np.float32(0.1), 2**24], pa.float32()),
        ([0.5, None, float("nan"), 1, -0.0, 0.1, 2**53], pa.float64()),
        ([True, None, False], pa.bool_()),
        ([["a", None], None, [], ["𝄞"]], pa.list_(pa.string())),
        ([("a",), None], pa.list_(pa.string())),  # a tuple for a list: the fallback
        (["xy"], pa.list_(pa.string())),  # pyarrow reads a str as a list of its characters: the fallback
        ([{"a": 1.0, "b": None}, None, {"a": 2.5}, {"a": 0.1, "b": 3, "zz": "x"}, {}], scores_type(["a", "b"])),
        ([[{"a": 1.0}], None, []], pa.list_(scores_type(["a"]))),
    ],
)
def test_edge_cases_are_what_pa_array_makes(values, arrow_type):
    assert _same(column_array(values, arrow_type, "col"), pa.array(values, arrow_type))


@pytest.mark.parametrize(
    "values, arrow_type",
    [
        (["\ud800"], pa.string()),  # a lone surrogate
        ([1], pa.string()),
        ([True], pa.int32()),
        ([2**53 + 1], pa.float64()),
        ([2**24 + 1], pa.float32()),
        (["x"], pa.float64()),
        ([{"a": "x"}], scores_type(["a"])),
    ],
)
def test_bad_values_raise_what_pa_array_raises(values, arrow_type):
    with pytest.raises(Exception) as ours:
        column_array(values, arrow_type, "col")
    with pytest.raises(Exception) as theirs:
        pa.array(values, arrow_type)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("value, arrow_type", [(2**31, pa.int32()), (-(2**31) - 1, pa.int32()), (2**63, pa.int64())])
def test_an_integer_out_of_range_names_the_column(value, arrow_type):
    with pytest.raises(pa.ArrowInvalid, match=rf"column 'pii_count': integer {value} is out of the range of"):
        column_array([1, None, value], arrow_type, "pii_count")
    with pytest.raises((pa.ArrowInvalid, OverflowError)):
        pa.array([1, None, value], arrow_type)


@pytest.mark.parametrize(
    "values, arrow_type",
    [
        (np.arange(5, dtype=np.int64), None),
        (np.arange(10, dtype=np.int64)[::3], pa.int64()),
        (np.array([True, False] * 9), None),
        (np.array([1.5, np.nan]), None),
        (np.empty(0, np.int64), None),
        (np.array([1, 2], np.int32), pa.int64()),  # a cast: the fallback
    ],
)
def test_numpy_array_is_pa_array(values, arrow_type):
    assert _same(numpy_array(values, arrow_type), pa.array(values, arrow_type))


@pytest.mark.parametrize(
    "array",
    [
        pa.chunked_array([pa.array(np.arange(3)), pa.array(np.arange(4))]),
        pa.array(np.arange(10)).slice(3, 4),
        pa.array(np.array([True, False, True] * 5)).slice(2, 7),
        pa.array(["a", "中", ""]).slice(1),
        pa.chunked_array([], pa.int64()),
        pa.array([1, None]),
    ],
)
def test_to_numpy_is_pyarrows(array):
    ours, theirs = to_numpy(array), array.to_numpy(zero_copy_only=False)
    assert ours.dtype == theirs.dtype and repr(ours.tolist()) == repr(theirs.tolist())


@pytest.mark.slow
def test_a_stage_run_imports_no_pandas(tmp_path):
    """Ingest (60 sample books from JSONL, no id field), then langid, filter, dedup, pii and decontam, each as a
    whole `pipeline run` in a fresh interpreter: none imports pandas. Dedup reads its id and clusters files with
    `pq.ParquetFile` (`pq.read_table` goes through `pyarrow.dataset`, which imports pandas). Ingest's own call sites
    (the id files and the repeats phase) run only with an `id_field` source."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        (tmp_path / "books.jsonl").write_text("".join(next(f) for _ in range(60)), encoding="utf-8")
    body = '[[sources]]\nname = "books"\npath = "books.jsonl"\nformat = "jsonl"\ntext_field = "content"\n'
    body += "[stages.decontam]\nenabled = true\n[[stages.decontam.benchmarks]]\n"
    body += f'name = "mmlu"\npath = "{REPO / "data/sample/benchmarks/mmlu.jsonl"}"\nformat = "jsonl"\n'
    body += 'fields = ["question", "A", "B", "C", "D"]\n'
    config = write_config(tmp_path, body, tasks=1, workers=1)
    results = {}
    for stage in ("ingest", "langid", "filter", "dedup", "pii", "decontam"):
        done, results[stage] = pipeline_run_recording_imports("run", stage, "--config", str(config))
        assert done.returncode == 0, done.stderr[-3000:]
        assert results[stage]["rc"] == 0, (stage, done.stderr[-3000:])
    for stage in ("ingest", "langid", "filter", "dedup", "pii", "decontam"):
        assert "pandas" not in results[stage]["loaded"], f"{stage} imported pandas:\n{results[stage]['stacks'][0]}"
