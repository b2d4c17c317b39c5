"""The shard writer's column building: `RecordBatch.from_arrays` on Python lists (pyarrow's conversion, which imports
pandas) against stages/arrow.py's `column_array` per column then `from_arrays` (issue 13, process start).

    .venv/bin/python bench/bench_writer_columns.py --mb 50 [--rounds 5] [--kept DIR] [--out FILE]

Input: the kept documents of a finished stage (default: decontam's on the 0.1 GB scale corpus, every column of its
schema: strings, float32, int32, a list of strings), in batches of 1,000 rows (the writer's batch size) until `--mb`
MB of text, turned into fresh Python lists per column before each timed pass. Timed in this process with `time.process_time`, rounds interleaved
(the order alternates), after every batch was built both ways once, written to Parquet (zstd) and the two files'
bytes compared (pyarrow's first conversion imports pandas there, outside the timing). Prints CPU seconds per pass
(medians), MB of text per CPU-second and the ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from common import emit  # bench/ is on sys.path when run as a script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stages.arrow import column_array  # noqa: E402

KEPT = Path("/work/scale_data/s3run0.1/out/decontam/kept")
BATCH = 1000


def load(kept: Path, mb: float) -> tuple[pa.Schema, list[pa.RecordBatch], float]:
    """Arrow batches until `mb` MB of UTF-8 text; the schema and the MB read."""
    shards = sorted(kept.glob("*.parquet"))
    schema = pq.read_schema(shards[0])
    batches, text_bytes = [], 0
    for shard in shards:
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=BATCH):
            batches.append(batch)
            text_bytes += pc.sum(pc.binary_length(batch.column("text"))).as_py()
            if text_bytes >= mb * 1e6:
                return schema, batches, text_bytes / 1e6
    return schema, batches, text_bytes / 1e6


def as_lists(batches: list[pa.RecordBatch]) -> list[list[list]]:
    """Per-column Python lists of fresh objects, as a writer holds them: a str's UTF-8 form is not cached yet (pyarrow
    reads it with PyUnicode_AsUTF8AndSize, which keeps it in the str: a second conversion of the same strings would
    skip the encode)."""
    return [[column.to_pylist() for column in batch.columns] for batch in batches]


def from_lists(schema: pa.Schema, columns: list[list]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def from_column_arrays(schema: pa.Schema, columns: list[list]) -> pa.RecordBatch:
    arrays = [column_array(values, field.type, field.name) for values, field in zip(columns, schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kept", type=Path, default=KEPT)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    schema, batches, mb = load(args.kept, args.mb)
    ways = {"from_arrays on lists (pyarrow)": from_lists, "column_array + from_arrays": from_column_arrays}
    # the same batches, and the same Parquet bytes (zstd, as the shard writer writes them), both ways
    shards = []
    for build in ways.values():
        sink = io.BytesIO()
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            for batch in as_lists(batches):
                writer.write_batch(build(schema, batch))
        shards.append(sink.getvalue())
    assert shards[0] == shards[1], "the Parquet bytes differ"
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(args.rounds):
        for name in list(ways)[:: 1 if r % 2 == 0 else -1]:
            build, lists = ways[name], as_lists(batches)
            start = time.process_time()
            for batch in lists:
                build(schema, batch)
            cpu[name].append(time.process_time() - start)
    rows = sum(b.num_rows for b in batches)
    lines = [
        f"Machine: {os.uname().machine}, {os.cpu_count()} CPUs, load average {os.getloadavg()}. Input: {rows:,} rows, "
        f"{mb:.1f} MB of text, {len(batches)} batches of {BATCH}, columns {schema.names}. {args.rounds} rounds. "
        f"Parquet bytes both ways: identical ({len(shards[0]):,} bytes).",
        "",
        "| build | CPU s (median) | MB per CPU-s | per-round CPU s |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, runs in cpu.items():
        med = statistics.median(runs)
        lines.append(f"| {name} | {med:.3f} | {mb / med:.0f} | {' '.join(f'{x:.3f}' for x in runs)} |")
    base, new = (statistics.median(v) for v in cpu.values())
    lines.append(f"\ncolumn_array's speed / from_arrays': {base / new:.2f}x")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
