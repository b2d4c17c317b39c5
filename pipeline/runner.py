"""Builds a datatrove pipeline for a stage and runs it on the configured executor.

Per stage, under `<workdir>/<stage>/`:
- `kept/`, `removed/`: Parquet shards (written by the stage's steps);
- `tasks/<rank>.json`: each finished task's counts (the last step of every task writes it);
- `logs/<phase>/`: datatrove's logs, per-task stats and completion markers (`completions/<rank>`);
- `run.json`: how the stage was launched (tasks, phases), so a rerun with another task count is refused;
- `stats.json`: the merged counts, written once every task of the last phase is complete.
A finished task is never redone (datatrove's completion markers); `--force` deletes the stage folder first.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import STAGE_ORDER, Config

# The module of each stage of STAGE_ORDER; it provides the stage's `build` (see docs/architecture.md).
STAGE_MODULES = {
    "ingest": "stages.ingest",
    "langid": "stages.langid",
    "filter": "stages.filter",
    "dedup": "stages.dedup",
    "pii": "stages.pii",
    "decontam": "stages.decontam",
    "tokenizer": "stages.tokenizer",
    "tokenize": "stages.tokenize",
}
CORPUS_STAGES = ["ingest", "langid", "filter", "dedup", "pii", "decontam"]


class StageError(Exception):
    """A stage cannot run (unknown, disabled, input missing, inconsistent rerun). The message says what to do."""


@dataclass
class StageState:
    stage: str
    enabled: bool
    state: str  # disabled | not started | incomplete | finished | stale
    tasks_done: int = 0
    tasks: int = 0
    stats: dict | None = None


def stage_dir(cfg: Config, stage: str) -> Path:
    return cfg.workdir / stage


def enabled_stages(cfg: Config) -> list[str]:
    return [s for s in STAGE_ORDER if cfg.stage_section(s).enabled]


def input_stage(cfg: Config, stage: str) -> str | None:
    """The stage whose kept shards this stage reads: the nearest earlier enabled corpus stage."""
    if stage == "ingest":
        return None
    earlier = CORPUS_STAGES[: CORPUS_STAGES.index(stage)] if stage in CORPUS_STAGES else CORPUS_STAGES
    for s in reversed(earlier):
        if cfg.stage_section(s).enabled:
            return s
    return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stage_state(cfg: Config, stage: str) -> StageState:
    enabled = cfg.stage_section(stage).enabled
    d = stage_dir(cfg, stage)
    stats = _read_json(d / "stats.json")
    run = _read_json(d / "run.json")
    st = StageState(stage, enabled, "not started", stats=stats)
    if run:
        st.tasks = run.get("tasks", 0)
        st.tasks_done = len(list((d / "tasks").glob("*.json"))) if (d / "tasks").is_dir() else 0
    if stats:
        st.state = "finished"
        st.tasks_done = st.tasks = stats.get("tasks", st.tasks)
        src = stats.get("input_stage")
        if src:
            upstream = _read_json(stage_dir(cfg, src) / "stats.json")
            if not upstream or upstream.get("finished_at") != stats.get("input_finished_at"):
                st.state = "stale"
    elif run:
        st.state = "incomplete"
    elif not enabled:
        st.state = "disabled"
    return st


def finalize_stage(cfg: Config, stage: str, wall_seconds: float | None = None) -> dict | None:
    """Merge `tasks/*.json` into `stats.json` once every task has finished. Returns the stats, or None."""
    from stages.io import atomic_write_json

    d = stage_dir(cfg, stage)
    run = _read_json(d / "run.json")
    if not run:
        return None
    existing = _read_json(d / "stats.json")
    if existing:
        return existing
    tasks = run["tasks"]
    per_task = [_read_json(d / "tasks" / f"{r:05d}.json") for r in range(tasks)]
    if any(t is None for t in per_task):
        return None
    merged: dict = merge_task_stats(per_task)
    merged.update(
        stage=stage,
        tasks=tasks,
        input_stage=run.get("input_stage"),
        input_finished_at=run.get("input_finished_at"),
    )
    merged.pop("rank", None)
    merged.pop("world_size", None)
    merged["task_seconds"] = round(merged.pop("seconds", 0.0), 3)
    if "removed_by_reason" in merged:
        merged["removed_by_reason"] = dict(sorted(merged["removed_by_reason"].items(), key=lambda kv: -kv[1]))
    merged["wall_seconds"] = round(wall_seconds, 3) if wall_seconds is not None else None
    merged["finished_at"] = datetime.now(UTC).isoformat()
    module = importlib.import_module(STAGE_MODULES[stage])
    if hasattr(module, "finalize"):
        module.finalize(cfg, d, merged)  # stage-level outputs that need every task (e.g. token meta.json)
    atomic_write_json(d / "stats.json", merged)
    return merged


def merge_task_stats(per_task: list[dict]) -> dict:
    """Sum numbers, merge nested dicts the same way, concatenate lists; other values keep the first task's."""
    merged: dict = {}
    for t in per_task:
        for k, v in t.items():
            if isinstance(v, bool) or not isinstance(v, int | float | dict | list):
                merged.setdefault(k, v)
            elif isinstance(v, dict):
                merged[k] = merge_task_stats([merged.get(k, {}), v])
            elif isinstance(v, list):
                merged[k] = merged.get(k, []) + v
            else:
                merged[k] = merged.get(k, 0) + v
    return merged


def make_executor(cfg: Config, steps: list, tasks: int, logging_dir: Path, job_name: str, depends=None):
    ex = cfg.executor
    if ex.kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(
            steps,
            tasks=tasks,
            workers=min(ex.workers, tasks),
            logging_dir=str(logging_dir),
            start_method=ex.start_method,
            depends=depends,
        )
    if ex.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        s = ex.slurm
        return SlurmPipelineExecutor(
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
            depends=depends,
        )
    import ray  # noqa: F401  (pip install 'mapcc[ray]')
    from datatrove.executor.ray import RayPipelineExecutor

    if not ray.is_initialized():
        ray.init(address=ex.ray.address)
    r = ex.ray
    return RayPipelineExecutor(
        steps,
        tasks=tasks,
        workers=ex.workers,
        logging_dir=str(logging_dir),
        cpus_per_task=r.cpus_per_task,
        mem_per_cpu_gb=r.mem_per_cpu_gb,
        depends=depends,
    )


def _log(msg: str) -> None:
    print(f"[pipeline] {msg}", file=sys.stderr, flush=True)


def check_runnable(cfg: Config, stage: str) -> None:
    if stage not in STAGE_ORDER:
        raise StageError(f"unknown stage {stage!r}; stages are: {', '.join(STAGE_ORDER)}")
    if not cfg.stage_section(stage).enabled:
        raise StageError(f"stage {stage!r} is disabled in {cfg.file} (set enabled = true in its section to run it)")


def run_stage(cfg: Config, stage: str, force: bool = False, pending: set[str] | None = None) -> dict | None:
    """Run one stage to completion (local, ray) or submit it (slurm). Returns its merged stats when finished.

    `pending` names stages submitted in this same invocation (Slurm chains) whose output need not exist yet.
    """
    from stages.base import StageContext
    from stages.io import atomic_write_json, write_schema

    check_runnable(cfg, stage)
    d = stage_dir(cfg, stage)
    if force and d.exists():
        _log(f"{stage}: --force: removing {d}")
        shutil.rmtree(d)
    state = stage_state(cfg, stage)
    if state.state in ("finished", "stale") and not force:
        note = " (its input changed since: rerun with --force to rebuild it)" if state.state == "stale" else ""
        _log(f"{stage}: already finished, nothing to do{note}")
        return state.stats

    src = input_stage(cfg, stage)
    src_finished_at = None
    if src is not None and src not in (pending or set()):
        src_state = stage_state(cfg, src)
        if src_state.state not in ("finished", "stale"):
            raise StageError(
                f"stage {stage!r} reads the kept output of {src!r}, which is {src_state.state}: run it first"
            )
        src_finished_at = src_state.stats["finished_at"]

    tasks = cfg.executor.tasks
    ctx = StageContext(
        name=stage,
        cfg=cfg,
        stage_dir=d,
        input_dir=stage_dir(cfg, src) / "kept" if src else None,
        input_stage=src,
        tasks=tasks,
        workers=cfg.executor.workers,
    )
    module = importlib.import_module(STAGE_MODULES[stage])
    try:
        phases = module.build(ctx)
    except ValueError as e:
        raise StageError(str(e)) from None
    previous = _read_json(d / "run.json")
    if previous and previous["tasks"] != phases[-1].tasks:
        raise StageError(
            f"stage {stage!r} was started with {previous['tasks']} tasks and executor.tasks is now {tasks}: "
            f"finish it with --set executor.tasks={previous['tasks']}, or restart it with --force"
        )
    d.mkdir(parents=True, exist_ok=True)
    last = phases[-1]
    if last.kept_schema is not None:
        write_schema(d / "kept_schema.arrow", last.kept_schema)
    atomic_write_json(
        d / "run.json",
        {
            "stage": stage,
            "tasks": last.tasks,
            "phases": [p.name for p in phases],
            "input_stage": src,
            "input_finished_at": src_finished_at,
            "executor": cfg.executor.kind,
        },
    )
    _log(
        f"{stage}: {len(phases)} phase(s), {tasks} task(s) on {cfg.executor.kind} executor "
        f"({min(cfg.executor.workers, tasks)} at a time); reading {src + '/kept' if src else 'the sources'}"
    )
    start = time.time()
    executor = None
    for phase in phases:
        executor = make_executor(
            cfg, phase.steps, phase.tasks, d / "logs" / phase.name, f"{stage}-{phase.name}", executor
        )
    executor.run()  # runs the dependency chain
    if cfg.executor.kind == "slurm":
        _log(f"{stage}: submitted to Slurm; `pipeline status` shows progress and merges stats when it is done")
        return None
    stats = finalize_stage(cfg, stage, wall_seconds=time.time() - start)
    if stats is None:
        st = stage_state(cfg, stage)
        raise StageError(f"stage {stage!r}: only {st.tasks_done}/{st.tasks} tasks finished; rerun to resume")
    counts = ", ".join(
        f"{stats[k]:,} {k.replace('docs_in', 'in')}" for k in ("docs_in", "kept", "removed", "tokens") if k in stats
    )
    _log(f"{stage}: done: {counts} in {stats['wall_seconds']:.1f}s")
    return stats


def run_all(cfg: Config, force: bool = False) -> list[dict]:
    stages = enabled_stages(cfg)
    for s in stages:  # refuse before any work starts
        check_runnable(cfg, s)
    results = []
    pending: set[str] = set()
    for s in stages:
        stats = run_stage(cfg, s, force=force, pending=pending)
        if stats is None and cfg.executor.kind == "slurm":
            pending.add(s)
        results.append(stats)
    return results
