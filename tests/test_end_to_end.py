"""The whole flow on the bundled sample corpus through the `pipeline` command, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from pipeline.config import load_config
from pipeline.executors import make_executor
from tests.conftest import REPO


def pipeline(*args: str, workdir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            *args,
            "--config",
            str(REPO / "pipeline.toml"),
            "--set",
            f"run.workdir={workdir}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "out"
    r = pipeline("run", "all", workdir=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    return workdir, r


@pytest.mark.slow
def test_run_all_on_sample_corpus(demo_run):
    workdir, r = demo_run
    stats = json.loads((workdir / "ingest" / "stats.json").read_text())
    assert stats["docs_in"] == stats["kept"] + stats["removed"]
    assert stats["failed_files"] == []
    kept = pl.read_parquet(workdir / "ingest" / "kept" / "*.parquet")
    assert set(kept["source"]) == {
        *("books_zh", "web", "articles_en", "notes_zh", "code"),
        *("wiki_en", "papers", "pdf_zh", "ebooks"),  # the document formats
    }
    assert set(kept.filter(pl.col("source") == "code")["kind"]) == {"code"}
    assert kept["id"].n_unique() == len(kept) == stats["kept"]
    # the sample's WARC holds a redirect with no body and non-HTML records, its wiki dump redirects, disambiguation
    # and project pages, its PDFs an image-only page: removed, with reasons
    removed = pl.read_parquet(workdir / "ingest" / "removed" / "*.parquet")
    assert set(removed["reason"]) <= {
        *("not_html", "no_text_extracted", "empty_text"),
        *("wiki_redirect", "wiki_disambiguation", "wiki_not_article", "no_text_layer"),
    }
    assert {"wiki_redirect", "no_text_layer"} <= set(removed["reason"]) and len(removed) >= 2
    assert "ingest: done" in r.stderr  # progress is visible


@pytest.mark.slow
def test_status_verify_report(demo_run):
    workdir, _ = demo_run
    status = pipeline("status", workdir=workdir)
    assert status.returncode == 0
    line = next(line for line in status.stdout.splitlines() if line.startswith("ingest"))
    assert "finished" in line
    for stage in ("langid", "filter", "dedup", "tokenizer", "tokenize"):
        assert "finished" in next(line for line in status.stdout.splitlines() if line.startswith(stage))
    verify = pipeline("verify", workdir=workdir)
    assert verify.returncode == 0 and "every document accounted for" in verify.stdout
    report = pipeline("report", workdir=workdir)
    assert report.returncode == 0
    md = (workdir / "report" / "report.md").read_text()
    assert "| ingest | finished |" in md and "![funnel](funnel.png)" in md and "not_html" in md
    for png in ("funnel.png", "reasons.png"):
        data = (workdir / "report" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # a second `run all` finds everything finished and does nothing
    again = pipeline("run", "all", workdir=workdir)
    assert again.returncode == 0 and "already finished" in again.stderr


def test_slurm_settings_pass_through_to_datatrove(tmp_path):
    cfg = load_config(
        REPO / "pipeline.toml",
        [
            "executor.kind=slurm",
            "executor.tasks=64",
            "executor.workers=16",
            "executor.slurm.partition=cpu",
            "executor.slurm.time=02:00:00",
            "executor.slurm.cpus_per_task=2",
            "executor.slurm.sbatch_args={account='proj'}",
        ],
    )
    ex = make_executor(cfg, [], 64, tmp_path / "logs", "ingest-main")
    assert type(ex).__name__ == "MapccSlurmExecutor"
    assert (ex.tasks, ex.workers, ex.partition, ex.time, ex.cpus_per_task) == (64, 16, "cpu", "02:00:00", 2)
    assert ex.job_name == "mapcc-ingest-main"
    sbatch = ex.get_sbatch_args()
    assert sbatch["account"] == "proj" and sbatch["partition"] == "cpu" and sbatch["time"] == "02:00:00"
    # sbatch rejects "2.0G" (a float with a unit): whole megabytes; a job behind a failed one is cancelled
    assert sbatch["mem-per-cpu"] == "2048M" and sbatch["kill-on-invalid-dep"] == "yes"
