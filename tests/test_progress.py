"""Progress of a running stage (the live line's counts, `pipeline status` tasks done / total) and how a failed task
ends a stage on the local executor, on the bundled sample."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.progress import ProgressLine
from tests.conftest import REPO


def pipeline(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", *args, "--config", str(REPO / "pipeline.toml")]
    cmd += ["--set", f"run.workdir={workdir}", "--set", "executor.tasks=2", "--set", "executor.workers=2"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_progress_counts_and_failed_task_reported(tmp_path):
    r = pipeline(tmp_path, "run", "ingest")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((tmp_path / "ingest" / "stats.json").read_text())

    # the tasks' progress files add up to what the stage read; the line reports it all done
    records = [json.loads(p.read_text()) for p in (tmp_path / "ingest" / "progress" / "main").glob("*.json")]
    assert len(records) == 2
    assert sum(r["docs"] for r in records) == stats["docs_in"]
    assert sum(r["bytes"] for r in records) == stats["bytes_in"]
    sources = sum(p.stat().st_size for p in (REPO / "data" / "sample").rglob("*") if p.is_file())
    line = ProgressLine(
        "ingest",
        tmp_path / "ingest" / "progress" / "main",
        tmp_path / "ingest" / "logs" / "main" / "completions",
        2,
        None,
        sum(r["file_bytes_done"] for r in records),
    ).snapshot()
    assert f"ingest: {stats['docs_in']:,} docs" in line and "2/2 tasks done, 100%" in line
    assert sum(r["file_bytes_done"] for r in records) <= sources

    # one damaged input shard: that langid task fails, the stage ends naming it and its log; status shows 1/2
    shard = sorted((tmp_path / "ingest" / "kept").glob("*.parquet"))[0]
    shard.write_bytes(b"PAR1 this is not a parquet file")
    r = pipeline(tmp_path, "run", "langid")
    assert r.returncode == 1, r.stderr[-3000:]
    # (the local executor stops the other task when one fails: 1 or 2 of 2 are reported)
    assert re.search(r"stage 'langid' phase 'main' \(1/1\): [12]/2 task\(s\) failed", r.stderr), r.stderr[-3000:]
    failed = [ln for ln in r.stderr.splitlines() if "failed: pyarrow.lib.ArrowInvalid: Parquet magic bytes" in ln]
    assert len(failed) == 1, r.stderr[-3000:]
    assert Path(failed[0].split("log: ", 1)[1].strip()).is_file()
    status = pipeline(tmp_path, "status")
    assert status.returncode == 0
    langid_row = next(ln for ln in status.stdout.splitlines() if ln.startswith("langid"))
    assert re.search(r"incomplete \([01]/2 tasks\)", langid_row), langid_row
