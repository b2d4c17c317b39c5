"""The whole dedup stage against datatrove's 4-step MinHash on the same documents, one worker each (issue 13).

    .venv/bin/python bench/bench_dedup_stage.py [--input GLOB] [--mb 8] [--rounds 3] [--out bench/results/dedup_stage.md]
        [--also CHECKOUT ...]

The documents: Chinese documents (`lang == "zh"` when the files have a lang column) from `--input` (Parquet with a
`text` column; default the scale corpus's filter output when /work/scale_data exists, else the sample's books_zh),
taken in file order up to `--mb` MB of UTF-8. They are ingested once (`pipeline run ingest`, langid and filter off),
and both sides then read the same `ingest/kept/*.parquet`:

- ours: `python -m pipeline run dedup --force` (one task, one worker) with the default settings: exact dedup,
  MinHash (character 13-grams, 14 x 7, exact Jaccard verification at 0.85), similar lines, kept/removed Parquet
  shards; and the same with exact and similar-lines off (`ours, MinHash only`), the part that datatrove's four
  steps also do. `--also CHECKOUT` adds the whole stage run from another checkout of this repository (PYTHONPATH
  set to it, same interpreter), e.g. the commit before a change, timed in the same rounds.
- datatrove: `MinhashDedupSignature` (its defaults, FineWeb's 5-word shingles x 14 buckets x 8 hashes, with
  language "zh": spaCy's jieba segmenter, as FineWeb-2 does for Chinese) -> `MinhashDedupBuckets` (14 tasks) ->
  `MinhashDedupCluster` -> `MinhashDedupFilter` with Parquet writers for kept and removed, on datatrove's local
  executor, one worker, in a fresh process (`--datatrove-run`, called by this script).

Each is timed as a whole command (process start and imports included), wall seconds and CPU seconds of the child
process (getrusage), taking turns round by round; the table gives medians and the ratios to datatrove's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from common import emit, peer_table, timed_run  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
SCALE_FILTER = Path("/work/scale_data/s3run0.1/out/filter/kept")
PY = sys.executable


def pick_documents(pattern: str | None, mb: float) -> list[str]:
    budget = int(mb * 1e6)
    texts: list[str] = []
    if pattern is None and not SCALE_FILTER.is_dir():
        with gzip.open(REPO / "data" / "sample" / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = (json.loads(line)["content"] for line in f)
            for t in rows:
                texts.append(t)
                budget -= len(t.encode())
                if budget <= 0:
                    break
        return texts
    files = sorted(Path("/").glob(pattern.lstrip("/"))) if pattern else sorted(SCALE_FILTER.glob("*.parquet"))
    for path in files:
        table = pq.read_table(path)
        langs = table.column("lang").to_pylist() if "lang" in table.column_names else [None] * table.num_rows
        for text, lang in zip(table.column("text").to_pylist(), langs, strict=True):
            if lang not in (None, "zh"):
                continue
            texts.append(text)
            budget -= len(text.encode())
            if budget <= 0:
                return texts
    return texts


CONFIG = """
[run]
workdir = "out"

[executor]
tasks = 1
workers = 1

[[sources]]
name = "zh"
path = "docs.parquet"
format = "parquet"

[stages.langid]
enabled = false

[stages.filter]
enabled = false
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    wall, cpu, _, _ = timed_run(cmd, cwd, env)
    return wall, cpu


def datatrove_run(input_dir: str, out_dir: str) -> None:
    """datatrove's stock 4-step MinHash dedup, one worker (the peer; run in its own process by the bench)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    out = Path(out_dir)
    config = MinhashConfig()
    reader = ParquetReader(input_dir, glob_pattern="*.parquet")
    steps = [
        ([reader, MinhashDedupSignature(str(out / "sigs"), config=config, language="zh")], 1),
        ([MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), config=config)], config.num_buckets),
        ([MinhashDedupCluster(str(out / "buckets"), str(out / "remove_ids"), config=config)], 1),
        (
            [
                ParquetReader(input_dir, glob_pattern="*.parquet"),
                MinhashDedupFilter(str(out / "remove_ids"), exclusion_writer=ParquetWriter(str(out / "removed"))),
                ParquetWriter(str(out / "kept")),
            ],
            1,
        ),
    ]
    for i, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(out / f"logs{i}")).run()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="glob of Parquet files with a text column (default: see the docstring)")
    p.add_argument("--mb", type=float, default=8.0, help="MB of UTF-8 text to take")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    p.add_argument("--also", nargs="*", default=[], type=Path, help="other checkouts whose whole stage is timed too")
    p.add_argument("--datatrove-run", nargs=2, metavar=("INPUT_DIR", "OUT_DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.datatrove_run:
        datatrove_run(*args.datatrove_run)
        return

    texts = pick_documents(args.input, args.mb)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    with tempfile.TemporaryDirectory(prefix="bench_dedup_stage_") as tmp:
        folder = Path(tmp)
        pq.write_table(pa.table({"text": texts}), folder / "docs.parquet")
        (folder / "pipeline.toml").write_text(CONFIG, encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([PY, "-m", "pipeline", "run", "ingest", "--config", "pipeline.toml"], cwd=folder, env=env,
                       check=True, capture_output=True)  # fmt: skip
        kept = folder / "out" / "ingest" / "kept"
        ours = [PY, "-m", "pipeline", "run", "dedup", "--config", "pipeline.toml", "--force"]
        runs = {
            "ours, whole stage (exact + MinHash 14x7, exact verification + similar lines)": ours,
            "ours, MinHash only": [
                *ours,
                "--set",
                "stages.dedup.exact=false",
                "--set",
                "stages.dedup.similar_lines=false",
            ],  # fmt: skip
            "datatrove 4-step MinHash (zh words, 5-grams, 14x8)": [
                PY,
                str(Path(__file__).resolve()),
                "--datatrove-run",
                str(kept),
                str(folder / "dt"),
            ],  # fmt: skip
        }
        envs = {name: env for name in runs}
        for checkout in args.also:
            name = f"ours at {checkout}, whole stage"
            runs[name] = ours
            envs[name] = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        removed: dict[str, int] = {}
        for _ in range(args.rounds):  # round-robin: load from other processes hits every command alike
            for name, cmd in runs.items():
                shutil.rmtree(folder / "dt", ignore_errors=True)
                times[name].append(timed(cmd, folder, envs[name]))
                if name.startswith("datatrove"):
                    files = list((folder / "dt" / "removed").glob("*.parquet"))
                    removed[name] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
                else:
                    stats = json.loads((folder / "out" / "dedup" / "stats.json").read_text())
                    removed[name] = stats["removed"]
    peer = next(n for n in runs if n.startswith("datatrove"))
    lines = [
        f"{len(texts):,} Chinese documents, {mb:.2f} MB of UTF-8; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds",
        "",
        *peer_table(times, peer, mb, "command", "removed", {name: str(removed[name]) for name in times}, digits=1),
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
