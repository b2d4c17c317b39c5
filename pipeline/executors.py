"""The executors a stage's phases run on: datatrove's local, Slurm and Ray executors, with what running them on a real
cluster needed (a one-node Slurm 22.05 and a `ray start --head` runtime, see README "Scaling out").

- Slurm: memory is requested in whole megabytes (sbatch rejects datatrove's `--mem-per-cpu=2.0G`); a job whose
  dependency failed is cancelled (`--kill-on-invalid-dep=yes`) instead of sitting in `DependencyNeverSatisfied`;
  datatrove's extra stats-merging job is not submitted (the runner merges `stats.json` itself, and that job, too,
  would wait forever behind a failed array).
- Ray: the runner connects once, prints the address it uses, and refuses a per-task request no node can meet (Ray
  would wait for it forever). Phases run one at a time, so a failed phase ends the stage instead of the next phase
  polling datatrove's "Dependency job still has 1/2 tasks" every two minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor

from pipeline.config import Config


class ExecutorError(Exception):
    """The executor cannot run a phase (cluster unreachable, request it cannot meet). The message says what to do."""


class MapccSlurmExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor with the sbatch options a real cluster accepts and a failed chain does not hang."""

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        args = super().get_sbatch_args(max_array)
        # sbatch takes an integer with a unit: "2.0G" (datatrove's f"{gb}G" of a float) is rejected.
        args["mem-per-cpu"] = f"{max(1, round(self.mem_per_cpu_gb * 1024))}M"
        args["kill-on-invalid-dep"] = "yes"
        return args

    def launch_merge_stats(self):
        """Not submitted: the runner merges each stage's `stats.json` from its tasks' files."""


def make_executor(cfg: Config, steps: list, tasks: int, logging_dir: Path, job_name: str, depends_job_id=None):
    """The executor for one phase. `depends_job_id` (Slurm): job ids this phase starts after, as "id[:id...]"."""
    ex = cfg.executor
    if ex.kind == "local":
        return LocalPipelineExecutor(
            steps,
            tasks=tasks,
            workers=min(ex.workers, tasks),
            logging_dir=str(logging_dir),
            start_method=ex.start_method,
        )
    if ex.kind == "slurm":
        s = ex.slurm
        return MapccSlurmExecutor(
            steps,
            tasks=tasks,
            workers=ex.workers,
            time=s.time,
            partition=s.partition,
            cpus_per_task=s.cpus_per_task,
            mem_per_cpu_gb=s.mem_per_cpu_gb,
            qos=s.qos,
            job_name=f"{s.job_name}-{job_name}",
            venv_path=s.venv_path,
            env_command=s.env_command,
            sbatch_args=s.sbatch_args or None,
            max_array_size=s.max_array_size,
            logging_dir=str(logging_dir),
            depends_job_id=depends_job_id,
        )
    from datatrove.executor.ray import RayPipelineExecutor  # imports ray: the optional extra, only on this path

    r = ex.ray
    return RayPipelineExecutor(
        steps,
        tasks=tasks,
        workers=ex.workers,
        logging_dir=str(logging_dir),
        cpus_per_task=r.cpus_per_task,
        mem_per_cpu_gb=r.mem_per_cpu_gb,
    )


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
