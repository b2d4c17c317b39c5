"""The pipeline on a real Ray runtime (`ray start --head`, 2 CPUs, loopback), against the local executor.

Ray comes with `make install` (the `ray` extra). Elsewhere without it the test skips; in CI (CI=true) it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import REPO

# Stages of the parity run: ingest, langid and the four-phase MinHash dedup (filter, pii, decontam and the
# tokenizer are single-phase stages like langid; they are left out to keep the test to a couple of minutes).
STAGES_OFF = [
    "stages.filter.enabled=false",
    "stages.pii.enabled=false",
    "stages.decontam.enabled=false",
    "tokenizer.enabled=false",
    "tokens.enabled=false",
    "stages.dedup.bands=3",  # 4 bucket tasks instead of 15 (each a Ray worker process); the same on both sides
]


def _ray_or_skip():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray is not installed in CI: `make install` installs the `ray` extra")
        pytest.skip("Ray is not installed (pip install 'mapcc[ray]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """A Ray head on loopback with 2 CPUs and its own temp dir; stopped (its process group) at the end."""
    _ray_or_skip()
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    # `python -c` instead of the `ray` script: its workers then run this interpreter, with this checkout importable.
    cmd = [
        sys.executable,
        "-c",
        "from ray.scripts.scripts import main; main()",
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    log = open(Path(temp_dir) / "ray_start.log", "w")  # noqa: SIM115 (closed at teardown)
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            probe = subprocess.run(
                [sys.executable, "-c", f"import ray; ray.init(address={address!r}); print(ray.cluster_resources())"],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                break
            if head.poll() is not None or time.time() > deadline:
                pytest.fail(f"ray head did not start: {(Path(temp_dir) / 'ray_start.log').read_text()[-2000:]}")
            time.sleep(2)
        yield address
    finally:
        # Only what this fixture started: the `ray start --block` process group (it stops its raylet and GCS).
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(head.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def pipeline(workdir: Path, *args: str, sets: list[str] = (), **popen) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", *args, "--config", str(REPO / "pipeline.toml")]
    for s in [f"run.workdir={workdir}", *STAGES_OFF, *sets]:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **popen)


def kept_ids(workdir: Path, stage: str) -> set[str]:
    return set(pl.read_parquet(workdir / stage / "kept" / "*.parquet")["id"])


@pytest.mark.slow
def test_ray_matches_local_fails_fast_and_resumes(ray_address, tmp_path):
    on_ray = [
        "executor.kind=ray",
        f"executor.ray.address={ray_address}",
        "executor.tasks=2",
        "executor.workers=2",
        "executor.ray.mem_per_cpu_gb=0.5",
    ]
    local, ray_dir = tmp_path / "local", tmp_path / "ray"

    # A request no node can meet fails at once with the numbers (Ray itself would wait for it forever).
    t0 = time.time()
    r = pipeline(ray_dir, "run", "ingest", sets=[*on_ray, "executor.ray.mem_per_cpu_gb=100"])
    assert r.returncode == 2, r.stderr[-2000:]
    # the address in use is printed: the GCS's own (Ray advertises the node's address even when joined on loopback)
    port = ray_address.rsplit(":", 1)[1]
    assert "asks for 1 CPU(s) and 100 GB" in r.stderr and re.search(rf"the cluster at \S+:{port} has", r.stderr), (
        r.stderr
    )
    assert time.time() - t0 < 60
    assert not (ray_dir / "ingest" / "stats.json").exists()

    r = pipeline(local, "run", "all")
    assert r.returncode == 0, r.stderr[-3000:]
    for stage in ("ingest", "langid"):
        r = pipeline(ray_dir, "run", stage, sets=on_ray)
        assert r.returncode == 0, r.stderr[-3000:]
        assert re.search(rf"ray: using the cluster at \S+:{port} ", r.stderr), r.stderr[-2000:]
        assert kept_ids(ray_dir, stage) == kept_ids(local, stage)

    # A damaged input shard: the dedup task reading it fails and the stage ends with the task and its log named,
    # instead of the next phase waiting for it every two minutes.
    shard = sorted((ray_dir / "langid" / "kept").glob("*.parquet"))[0]
    good = shard.read_bytes()
    shard.write_bytes(b"PAR1 this is not a parquet file")
    t0 = time.time()
    r = pipeline(ray_dir, "run", "dedup", sets=on_ray)
    assert r.returncode == 1, r.stderr[-3000:]
    assert time.time() - t0 < 120
    assert "stage 'dedup' phase 'signatures' (1/6)" in r.stderr and "phases not run: buckets" in r.stderr
    log = next(w for w in r.stderr.split() if w.endswith(".log"))
    assert Path(log.rstrip(",")).is_file(), r.stderr[-2000:]
    shard.write_bytes(good)

    # Interrupted on Ray (the driver killed mid-stage): a second `pipeline run` finishes it, same result as local.
    cmd = [sys.executable, "-m", "pipeline", "run", "dedup", "--config", str(REPO / "pipeline.toml")]
    for s in [f"run.workdir={ray_dir}", *STAGES_OFF, *on_ray]:
        cmd += ["--set", s]
    driver = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    done = ray_dir / "dedup" / "logs" / "signatures" / "completions"
    deadline = time.time() + 180
    while not (done.is_dir() and len(list(done.iterdir())) == 2) and driver.poll() is None:
        assert time.time() < deadline, "dedup signatures did not finish on Ray in 180 s"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (ray_dir / "dedup" / "stats.json").exists(), "the stage finished before it could be interrupted"
    r = pipeline(ray_dir, "run", "dedup", sets=on_ray)
    assert r.returncode == 0, r.stderr[-3000:]
    assert kept_ids(ray_dir, "dedup") == kept_ids(local, "dedup")
    r = pipeline(ray_dir, "verify", sets=on_ray)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
