"""The executors a stage's phases run on: datatrove's local, Slurm and Ray executors, with what running them on a real
cluster needed (a one-node Slurm 22.05 and a `ray start --head` runtime, see README "Scaling out").

- Slurm: memory is requested in whole megabytes (sbatch rejects datatrove's `--mem-per-cpu=2.0G`); a job whose
  dependency failed is cancelled (`--kill-on-invalid-dep=yes`) instead of sitting in `DependencyNeverSatisfied`;
  datatrove's extra stats-merging job is not submitted (the runner merges `stats.json` itself, and that job, too,
  would wait forever behind a failed array).
- Ray: the runner connects once, prints the address it uses, and refuses a per-task request no node can meet (Ray
  would wait for it forever). Phases run one at a time, so a failed phase ends the stage instead of the next phase
  polling datatrove's "Dependency job still has 1/2 tasks" every two minutes.
The Ray connection and the Slurm queue query, which need no datatrove, are in pipeline/cluster.py.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor

from pipeline.cluster import ExecutorError, connect_ray, slurm_jobs_in_queue  # noqa: F401 (their home before)
from pipeline.config import Config


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
        if ex.start_method == "forkserver" and min(ex.workers, tasks) > 1:
            import multiprocess  # datatrove's worker pool

            # Workers fork from multiprocess's fork server: with `pipeline` imported there first (its __init__ installs
            # pipeline/hf_deferred.py's finder), their datatrove imports skip huggingface_hub's network stack too.
            # Takes effect when the server starts, i.e. before the first pool; "__main__" is the default list.
            multiprocess.set_forkserver_preload(["__main__", "pipeline"])
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
