"""Talking to a cluster without datatrove: the Slurm queue's state of a stage's jobs, and the Ray connection.

Apart from pipeline/executors.py (datatrove's executors, whose import brings datatrove.io, fsspec and
huggingface_hub: about 0.35 CPU-s) so that `pipeline status` and a command that finds its stage finished do not
import them (BENCHMARKS.md, "Fourth pass: process start").
"""

from __future__ import annotations

import subprocess
import sys

from pipeline.config import Config


class ExecutorError(Exception):
    """The executor cannot run a phase (cluster unreachable, request it cannot meet). The message says what to do."""


def connect_ray(cfg: Config) -> str:
    """Join the Ray cluster of `executor.ray.address` (unset: "auto", the one `ray start` runs here) and check that one
    node can hold a task's request. Returns the address in use. Never starts a private instance unless asked
    ("local"): one started by accident lingers and later runs talk to it instead of the real cluster."""
    try:
        import ray  # the optional extra: pip install 'mapcc[ray]'
    except ImportError:
        raise ExecutorError("executor.kind = 'ray' needs Ray: pip install 'mapcc[ray]'") from None
    r = cfg.executor.ray
    address = r.address or "auto"
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as e:
            raise ExecutorError(
                f"no Ray cluster at executor.ray.address = {address!r} ({e}). Start one with `ray start --head` "
                f"and use its address, or set executor.ray.address = 'local' to start a private one for this command"
            ) from None
    in_use = ray.get_runtime_context().gcs_address
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    need_cpu = r.cpus_per_task
    need_mem = r.mem_per_cpu_gb * r.cpus_per_task
    fits = [
        n
        for n in nodes
        if n["Resources"].get("CPU", 0) >= need_cpu and n["Resources"].get("memory", 0) >= need_mem * 2**30
    ]
    largest = max(nodes, key=lambda n: n["Resources"].get("CPU", 0), default=None)
    have = (
        f"{largest['Resources'].get('CPU', 0):g} CPUs and {largest['Resources'].get('memory', 0) / 2**30:.1f} GB"
        if largest
        else "no live node"
    )
    print(f"[pipeline] ray: using the cluster at {in_use} ({len(nodes)} node(s); largest {have})", file=sys.stderr)
    if not fits:
        raise ExecutorError(
            f"Ray cannot schedule a task: executor.ray asks for {need_cpu} CPU(s) and {need_mem:g} GB "
            f"(cpus_per_task x mem_per_cpu_gb) on one node, and the cluster at {in_use} has {have} on its largest "
            f"node; lower executor.ray.mem_per_cpu_gb / cpus_per_task or add a bigger node"
        )
    return in_use


def slurm_jobs_in_queue(job_ids: list[str]) -> dict[str, str]:
    """{job id: state} of the given jobs Slurm still holds (pending, running, completing); finished ones drop out."""
    ids = [j for j in job_ids if j and j != "-1"]
    if not ids:
        return {}
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "PD,R,CG,CF,S,RQ", "-o", "%F %T %r", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise ExecutorError(f"squeue failed: {out.stderr.strip() or out.stdout.strip()}")
    queued: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job, state, *reason = line.split(maxsplit=2)
        if job in ids:
            queued[job] = f"{state} ({reason[0]})" if reason and reason[0] != "None" else state
    return queued
