"""The pipeline on a real one-node Slurm (Debian's slurmctld, slurmd, munge; bench/slurm_local.sh starts them by
hand), against the local executor, on part of the bundled sample.

The cluster needs root (daemons, apt-get when the packages are missing). Elsewhere without it the test skips; in CI
(CI=true) a cluster that cannot be set up is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import REPO, SAMPLE

SCRIPT = REPO / "bench" / "slurm_local.sh"
STATE = Path(os.environ.get("MAPCC_SLURM_DIR", "/tmp/mapcc-slurm"))


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"Slurm cluster could not be set up in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def slurm_env():
    """SLURM_CONF of a running one-node cluster; stopped at the end if this fixture started it."""
    if os.geteuid() != 0:
        _unavailable("a local Slurm cluster needs root (bench/slurm_local.sh up)")
    if not (shutil.which("slurmctld") or shutil.which("apt-get")):
        _unavailable("neither Slurm nor apt-get to install it")
    was_running = all(
        (STATE / f).is_file() and _alive(int((STATE / f).read_text()))
        for f in ("slurmctld.started.pid", "slurmd.started.pid")
    )
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        _unavailable(f"bench/slurm_local.sh up failed: {up.stderr[-2000:]}")
    env = {**os.environ, "SLURM_CONF": str(STATE / "slurm.conf")}
    yield env
    if not was_running:
        subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, text=True, timeout=120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    """pipeline.toml on the sample's Chinese books, notes and code (the WARC and English sources left out for time)."""
    text = (REPO / "pipeline.toml").read_text(encoding="utf-8")
    for name in ("web", "articles_en"):
        text, n = re.subn(rf'\[\[sources\]\]\nname = "{name}"\n(?:[^\n]+\n)*\n', "", text)
        assert n == 1, name
    text = text.replace('"data/sample/', f'"{SAMPLE}/')
    path = tmp_path_factory.mktemp("slurm_cfg") / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def pipeline(config: Path, workdir: Path, *args: str, env=None, sets=()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", *args, "--config", str(config)]
    # 3 LSH bands instead of 14: 4 bucket array tasks instead of 15 (each a fresh Python process); same on both sides
    for s in [f"run.workdir={workdir}", "stages.dedup.bands=3", *sets]:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)


def on_slurm() -> list[str]:
    # The jobs run this checkout with this interpreter's venv (PYTHONPATH: a copied venv may point elsewhere).
    return [
        "executor.kind=slurm",
        "executor.slurm.partition=debug",
        "executor.slurm.qos=",
        "executor.slurm.time=00:30:00",
        f"executor.slurm.env_command=export PATH={Path(sys.executable).parent}:$PATH PYTHONPATH={REPO}",
    ]


def kept_ids(workdir: Path, stage: str) -> set[str]:
    return set(pl.read_parquet(workdir / stage / "kept" / "*.parquet")["id"])


@pytest.mark.slow
def test_slurm_chain_matches_local_and_reruns_only_failed_tasks(slurm_env, small_config, tmp_path):
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    r = pipeline(small_config, local, "run", "all")
    assert r.returncode == 0, r.stderr[-3000:]

    # `run all` submits every stage at once, each phase after the previous one (afterok), and waits for the chain.
    r = pipeline(small_config, slurm, "run", "all", "--wait", env=slurm_env, sets=on_slurm())
    assert r.returncode == 0, r.stderr[-4000:]
    assert re.search(r"langid: submitted to Slurm: main \d+ after \d+", r.stderr)
    assert re.search(r"tokenize: submitted to Slurm: main \d+ after \d+, \d+", r.stderr)  # decontam and tokenizer
    assert "tokenizer: 1 phase(s), 1 task(s)" in r.stderr
    for stage in ("ingest", "langid", "filter", "dedup", "pii", "decontam"):
        assert kept_ids(slurm, stage) == kept_ids(local, stage), stage
    for bin_file in sorted((local / "tokenize").glob("*/*.bin")):
        assert (slurm / "tokenize" / bin_file.relative_to(local / "tokenize")).read_bytes() == bin_file.read_bytes()
    status = pipeline(small_config, slurm, "status", env=slurm_env, sets=on_slurm())
    assert "stale" not in status.stdout and status.stdout.count("finished") == 8, status.stdout
    import json

    stats = json.loads((slurm / "dedup" / "stats.json").read_text())
    assert stats["wall_seconds"] and stats["wall_seconds"] > 0  # timed from the task files, not left empty
    assert pipeline(small_config, slurm, "verify", env=slurm_env, sets=on_slurm()).returncode == 0

    # A damaged input shard: the failed array task is reported with its logs; a rerun resubmits only that task.
    fail = tmp_path / "fail"
    shutil.copytree(local / "ingest", fail / "ingest")
    shard = sorted((fail / "ingest" / "kept").glob("*.parquet"))[0]
    good = shard.read_bytes()
    shard.write_bytes(b"PAR1 this is not a parquet file")
    r = pipeline(small_config, fail, "run", "langid", "--wait", env=slurm_env, sets=on_slurm())
    assert r.returncode == 1, r.stderr[-3000:]
    failed = [ln for ln in r.stderr.splitlines() if "langid phase 'main' task" in ln]
    assert len(failed) == 1 and "slurm_logs/" in failed[0], r.stderr[-3000:]
    for path in re.findall(r"(/\S+\.(?:log|out))", failed[0]):
        assert Path(path).is_file(), path
    shard.write_bytes(good)
    r = pipeline(small_config, fail, "run", "langid", "--wait", env=slurm_env, sets=on_slurm())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(1 tasks)" in r.stderr  # datatrove's launch line: only the failed task went back to Slurm
    assert kept_ids(fail, "langid") == kept_ids(local, "langid")
