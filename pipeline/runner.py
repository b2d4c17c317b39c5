"""Builds a datatrove pipeline for a stage and runs it on the configured executor.

Per stage, under `<workdir>/<stage>/`:
- `kept/`, `removed/`: Parquet shards (written by the stage's steps);
- `tasks/<rank>.json`: each finished task's counts (the last step of every task writes it);
- `logs/<phase>/`: datatrove's logs, per-task stats and completion markers (`completions/<rank>`);
- `run.json`: how the stage was launched (tasks, phases) and from what (`fingerprint`: its settings, inputs, code
  version), so a rerun with another task count or other settings is refused;
- `stats.json`: the merged counts, written once every task of the last phase is complete;
- `run.lock`: locked (pipeline/runlock.py) by the one command running or submitting the stage and by its local workers;
  holds that command's host and pid.
A finished task is never redone (datatrove's completion markers); `--force` empties the stage folder first.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import runlock
from pipeline.cluster import ExecutorError, connect_ray, slurm_jobs_in_queue
from pipeline.config import STAGE_ORDER, Config
from stages.files import atomic_write_json

# Building and running a stage's phases needs datatrove's executors, the progress step and the stage's steps, which
# bring datatrove and pyarrow: about 0.5 of the 0.8-1.0 CPU-s a `pipeline` process paid before its first document
# (BENCHMARKS.md, "Fourth pass: process start"). A command that finds its stage finished, `pipeline status` and
# `verify` need none of it, so the functions that build or run phases import those modules themselves
# (`_run_stage_locked` past its "already finished" return, `_progress_line`, `_submit_to_slurm`).
if TYPE_CHECKING:
    from pipeline.progress import ProgressLine

# The module of each stage of STAGE_ORDER; it provides the stage's `build` (see docs/architecture.md).
STAGE_MODULES = {
    "ingest": "stages.ingest",
    "langid": "stages.langid",
    "filter": "stages.filter",
    "quality": "stages.quality",
    "dedup": "stages.dedup",
    "pii": "stages.pii",
    "decontam": "stages.decontam",
    "tokenizer": "stages.tokenizer",
    "tokenize": "stages.tokenize",
}
CORPUS_STAGES = ["ingest", "langid", "filter", "quality", "dedup", "pii", "decontam"]


class StageError(Exception):
    """A stage cannot run (unknown, disabled, input missing, inconsistent rerun). The message says what to do."""


class TaskFailure(StageError):
    """Tasks of a stage failed while running; the message names them and their logs."""


@dataclass
class StageState:
    stage: str
    enabled: bool
    state: str  # disabled | not started | incomplete | finished | stale
    tasks_done: int = 0
    tasks: int = 0
    stats: dict | None = None
    changes: list[str] = field(default_factory=list)  # how the config differs from the run's (fingerprint_changes)


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


def run_record(cfg: Config, stage: str) -> dict:
    """How the stage was last launched (`run.json`): phases, tasks per phase, Slurm job ids; {} if never."""
    return _read_json(stage_dir(cfg, stage) / "run.json") or {}


def upstream_stages(cfg: Config, stage: str) -> list[str]:
    """Stages whose output this stage needs: its input stage, and for `tokenize` the tokenizer it encodes with."""
    ups = [input_stage(cfg, stage)]
    if stage == "tokenize" and cfg.tokenizer.enabled and not cfg.tokens.tokenizer:
        ups.append("tokenizer")
    return [u for u in ups if u]


# Keys of a stage's section that change how fast it runs, not what it writes: left out of its fingerprint, so
# retuning them never turns a finished stage stale. (Executor settings are outside the sections altogether.)
NOT_OUTPUT_KEYS = {
    "enabled": "a stage that runs is enabled; disabling it is seen downstream, as another input stage",
    "batch_size": "langid and tokenize: documents per fastText / SentencePiece call; results are per document",
}
# Where each stage's section lives in pipeline.toml, to name a changed key as the user writes it.
SECTION_KEYS = {"tokenizer": "tokenizer", "tokenize": "tokens"}


@functools.cache  # one lookup per process: importlib.metadata scans site-packages each time (5 calls per command)
def code_version() -> str:
    """The mapcc package version. Deliberately not the git commit: an edit during development (a comment, a test)
    must not make every finished stage stale; a change of what a stage writes comes with a version bump."""
    try:
        return importlib.metadata.version("mapcc")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "not installed"


def stage_settings(cfg: Config, stage: str) -> dict:
    """Everything in the config that decides the stage's output, by config key: its section (less NOT_OUTPUT_KEYS),
    and for ingest the [[sources]]."""
    section = cfg.stage_section(stage).model_dump(mode="json")
    settings = {
        SECTION_KEYS.get(stage, f"stages.{stage}"): {k: v for k, v in section.items() if k not in NOT_OUTPUT_KEYS}
    }
    if stage == "ingest":
        settings["sources"] = [src.model_dump(mode="json") for src in cfg.sources]
    if stage == "quality" and section.get("model") and cfg.path(section["model"]).is_file():
        # a classifier retrained into the same file scores differently: its content decides the output too
        settings["quality_model_sha256"] = hashlib.sha256(cfg.path(section["model"]).read_bytes()).hexdigest()
    return settings


def stage_fingerprint(cfg: Config, stage: str) -> dict:
    """What decides the stage's output under the current config: its settings, the fingerprints of the stages it
    reads (so a change upstream, or a stage disabled in between, reaches every stage after it), and the code
    version. Stored in run.json; `hash` is the sha256 of the rest."""
    fp = {
        "settings": stage_settings(cfg, stage),
        "inputs": {u: stage_fingerprint(cfg, u)["hash"] for u in upstream_stages(cfg, stage)},
        "code": code_version(),
    }
    fp["hash"] = hashlib.sha256(json.dumps(fp, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return fp


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _diff(old, new, key: str) -> list[str]:
    """The dotted keys whose values differ between two JSON values, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{key}.{k}" if key else str(k)
            if k not in old:
                out.append(f"{sub} added ({_short(new[k])})")
            elif k not in new:
                out.append(f"{sub} removed (was {_short(old[k])})")
            else:
                out += _diff(old[k], new[k], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _diff(a, b, f"{key}.{i}")]
    return [f"{key}: {_short(old)} -> {_short(new)}"] if old != new else []


def fingerprint_changes(cfg: Config, stage: str, run: dict | None = None) -> list[str]:
    """How the current config differs from the one the stage's output was made with (its run.json): changed keys,
    a changed input, another code version; [] when they agree or the run predates fingerprints."""
    run = run_record(cfg, stage) if run is None else run
    old = run.get("fingerprint")
    if not old:
        return []
    new = stage_fingerprint(cfg, stage)
    if new["hash"] == old["hash"]:
        return []
    changes = _diff(old["settings"], new["settings"], "")
    if set(old["inputs"]) != set(new["inputs"]):
        was, now = ", ".join(old["inputs"]) or "the sources", ", ".join(new["inputs"]) or "the sources"
        changes.append(f"input stage {was} -> {now} (a stage was enabled or disabled)")
    else:
        for u, h in old["inputs"].items():
            if new["inputs"][u] != h:
                why = fingerprint_changes(cfg, u)
                changes.append(
                    f"input stage {u!r} changed ({'; '.join(why)})"
                    if why
                    else f"input stage {u!r} was redone with other settings since"
                )
    if old["code"] != new["code"]:
        changes.append(f"mapcc version {old['code']} -> {new['code']}")
    return changes


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
        st.changes = fingerprint_changes(cfg, stage, run)
    if stats:
        st.state = "stale" if st.changes else "finished"
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
        input_finished_at=run.get("input_finished_at") or _finished_at(cfg, run.get("input_stage")),
    )
    merged.pop("rank", None)
    merged.pop("world_size", None)
    merged["task_seconds"] = round(merged.pop("seconds", 0.0), 3)
    if "removed_by_reason" in merged:
        merged["removed_by_reason"] = dict(sorted(merged["removed_by_reason"].items(), key=lambda kv: -kv[1]))
    finished = datetime.now(UTC)
    if wall_seconds is None:  # finished on Slurm while nobody watched: time it from the task files
        finished, wall_seconds = _timed_from_task_files(cfg, d, run)
    merged["wall_seconds"] = round(wall_seconds, 3) if wall_seconds is not None else None
    merged["finished_at"] = finished.isoformat()
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


def _timed_from_task_files(cfg: Config, d: Path, run: dict) -> tuple[datetime, float | None]:
    """When a stage nobody waited on finished: its last task file's time, and the seconds since it could start
    (submitted, and its input stages finished)."""
    files = list((d / "tasks").glob("*.json"))
    if not files:
        return datetime.now(UTC), None
    finished = datetime.fromtimestamp(max(f.stat().st_mtime for f in files), UTC)
    start = run.get("started_at")
    for up in run.get("upstream", [run.get("input_stage")] if run.get("input_stage") else []):
        up_stats = _read_json(stage_dir(cfg, up) / "stats.json")
        if up_stats and up_stats.get("finished_at") and start is not None:
            start = max(start, datetime.fromisoformat(up_stats["finished_at"]).timestamp())
    return finished, (finished.timestamp() - start) if start is not None else None


def _finished_at(cfg: Config, stage: str | None) -> str | None:
    """A finished stage's `finished_at` (a stage submitted in a Slurm chain learns its input's only at the end)."""
    stats = _read_json(stage_dir(cfg, stage) / "stats.json") if stage else None
    return stats.get("finished_at") if stats else None


def phase_progress(cfg: Config, stage: str) -> list[tuple[str, int, int]]:
    """(phase, tasks done, tasks) for each phase of a started stage, from datatrove's completion markers."""
    d = stage_dir(cfg, stage)
    run = _read_json(d / "run.json") or {}
    out = []
    for name, tasks in zip(run.get("phases", []), run.get("phase_tasks", [])):
        done = d / "logs" / name / "completions"
        out.append((name, len(list(done.iterdir())) if done.is_dir() else 0, tasks))
    return out


def failed_tasks(cfg: Config, stage: str) -> list[str]:
    """One line per unfinished task of the first unfinished phase of a stage that is no longer running: the task,
    and the logs to read (datatrove's task log; on Slurm, the array task's output too)."""
    d = stage_dir(cfg, stage)
    run = _read_json(d / "run.json") or {}
    for name, done, tasks in phase_progress(cfg, stage):
        if done == tasks:
            continue
        logs = d / "logs" / name
        complete = {p.name for p in (logs / "completions").iterdir()} if (logs / "completions").is_dir() else set()
        ranks_file = _read_json(logs / "ranks_to_run.json") if (logs / "ranks_to_run.json").exists() else None
        job = (run.get("slurm_jobs") or {}).get(name)
        if not complete and not (logs / "logs").is_dir():
            return [f"{stage} phase {name!r}: {tasks} task(s) never started (an earlier phase or stage failed)"]
        lines = []
        for rank in range(tasks):
            if f"{rank:05d}" in complete:
                continue
            task_log = logs / "logs" / f"task_{rank:05d}.log"
            where = [str(task_log)] if task_log.exists() else []
            if job and isinstance(ranks_file, list) and rank in ranks_file:
                slurm_out = logs / "slurm_logs" / f"{job}_{ranks_file.index(rank)}.out"
                if slurm_out.exists():
                    where.append(str(slurm_out))
            error = _last_error(task_log) if task_log.exists() else None
            if error:
                what = f"failed: {error}; log: "
            elif where:
                what = "did not finish (stopped when another task failed, or interrupted); log: "
            else:
                what = "never started (an earlier phase or stage failed)"
            lines.append(f"{stage} phase {name!r} task {rank}: {what}{', '.join(where)}")
        return lines
    return []


def _last_error(log: Path) -> str | None:
    """The last exception line of a task log (`SomeError: message`), for the failure summary."""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    errors = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    return errors[-1][:300] if errors else None


# A traceback's last line: the exception's (dotted) class name, a colon, the message.
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Invalid|Interrupt|Exit)\w*: \S")


def _log(msg: str) -> None:
    print(f"[pipeline] {msg}", file=sys.stderr, flush=True)


def check_runnable(cfg: Config, stage: str) -> None:
    if stage not in STAGE_ORDER:
        raise StageError(f"unknown stage {stage!r}; stages are: {', '.join(STAGE_ORDER)}")
    if not cfg.stage_section(stage).enabled:
        raise StageError(f"stage {stage!r} is disabled in {cfg.file} (set enabled = true in its section to run it)")


LOCK_NAME = "run.lock"
# How long a rerun waits for the task processes of a killed run to exit (see pipeline/runlock.py). A killed process
# was gone 0.02 s after its runner was reaped at load 6; a worker that outlived its runner ends itself (TaskLock).
LEFTOVER_WAIT_SECONDS = 20.0


def _lock_record(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "a process that has not written its id"


@contextmanager
def stage_lock(cfg: Config, stage: str) -> Iterator[None]:
    """Hold `<stage>/run.lock` for the duration of the command that runs or submits the stage.

    Two commands on one stage (a second terminal, a retry while the first still runs) would write the same task
    files and one would die with a traceback; the second one is refused instead, naming the holder. The lock is a
    record lock of this process alone (pipeline/runlock.py): the kernel drops it while the process exits, so a killed
    run's lock is taken over (its file still holds the dead pid; the new holder overwrites it). Task processes of a
    killed run that are still exiting are waited for (LEFTOVER_WAIT_SECONDS); live ones are named and the run is
    refused. A `--wait`-less Slurm submit holds it only while submitting: the jobs' own tasks are guarded by the
    Slurm queue check in run_stage."""
    d = stage_dir(cfg, stage)
    d.mkdir(parents=True, exist_ok=True)
    path = d / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not runlock.try_lock(fd, runlock.RUNNER_BYTE, exclusive=True):
            raise StageError(
                f"stage {stage!r} is already being run by another command ({_lock_record(fd)}; lock {path}): wait "
                "for it to finish, or stop that process and run again"
            )
        previous = _lock_record(fd)

        def waiting(pid: int) -> None:
            _log(
                f"{stage}: the run that held {path} ({previous}) is gone; waiting up to {LEFTOVER_WAIT_SECONDS:g}s "
                f"for its task process {runlock.describe(pid)} to exit"
            )

        left = runlock.wait_for_task_processes(fd, LEFTOVER_WAIT_SECONDS, waiting)
        if left:
            names = "; ".join("a process on another host" if p == 0 else runlock.describe(p) for p in left)
            kill = " ".join(str(p) for p in left if p > 0)
            raise StageError(
                f"stage {stage!r}: the run that held {path} ({previous}) is gone, but task processes of it are still "
                f"alive after {LEFTOVER_WAIT_SECONDS:g}s and may still be writing the stage's files: {names}. "
                + (f"Stop them (`kill {kill}`) and run again" if kill else "Stop them and run again")
            )
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()} since {since}\n".encode(), 0)

        def on_sigterm() -> None:
            _log(
                f"{stage}: SIGTERM: stopping its tasks; `pipeline run {stage}` again resumes (finished tasks are kept)"
            )

        with runlock.held_by_this_process(on_sigterm):
            yield
    finally:
        os.close(fd)  # releases the lock


def run_stage(
    cfg: Config, stage: str, force: bool = False, pending: dict[str, str] | None = None, wait: bool = False
) -> dict | None:
    """Run one stage to completion (local, ray) or submit it (slurm). Returns its merged stats when finished.

    `pending` maps stages submitted to Slurm in this same invocation to their last job id: a stage reading their
    output is submitted to start after them (`afterok`) although that output does not exist yet. A stage this call
    submits is added to it. Only one command at a time runs a stage (`stage_lock`).
    """
    check_runnable(cfg, stage)
    with stage_lock(cfg, stage):
        return _run_stage_locked(cfg, stage, force, pending, wait)


def _run_stage_locked(
    cfg: Config, stage: str, force: bool = False, pending: dict[str, str] | None = None, wait: bool = False
) -> dict | None:

    pending = {} if pending is None else pending
    d = stage_dir(cfg, stage)
    if force and d.exists():
        _log(f"{stage}: --force: removing the contents of {d}")
        for entry in d.iterdir():  # all but the lock this command holds: removing it would let a second run in
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    state = stage_state(cfg, stage)
    if state.changes and not force:  # finished or not, going on would mix outputs of two configs
        raise StageError(
            f"stage {stage!r} was run with other settings than {cfg.file} gives now: {'; '.join(state.changes)}. "
            f"Its output would mix both: restore them, or redo the stage with `pipeline run {stage} --force`"
        )
    if state.state in ("finished", "stale") and not force:
        note = " (its input changed since: rerun with --force to rebuild it)" if state.state == "stale" else ""
        _log(f"{stage}: already finished, nothing to do{note}")
        return state.stats
    # the modules that build and run phases: see the note at the top of this module
    from pipeline.executors import make_executor
    from pipeline.progress import add_progress_mark
    from stages.base import Phase, StageContext
    from stages.io import write_schema

    kind = cfg.executor.kind
    previous = _read_json(d / "run.json")
    if kind == "slurm" and previous and previous.get("slurm_jobs"):
        try:
            queued = slurm_jobs_in_queue(list(previous["slurm_jobs"].values()))
        except ExecutorError as e:
            raise StageError(str(e)) from None
        if queued:  # submitted by an earlier `pipeline run` and not done: submitting again would run tasks twice
            jobs = ", ".join(f"{j} {st}" for j, st in queued.items())
            _log(f"{stage}: still in Slurm from an earlier run ({jobs}); not submitted again")
            pending[stage] = list(previous["slurm_jobs"].values())[-1]
            return None

    src = input_stage(cfg, stage)
    src_finished_at = None
    if src is not None and src not in pending:
        src_state = stage_state(cfg, src)
        if src_state.state not in ("finished", "stale"):
            raise StageError(
                f"stage {stage!r} reads the kept output of {src!r}, which is {src_state.state}: run it first"
            )
        src_finished_at = src_state.stats["finished_at"]
    after = [pending[u] for u in upstream_stages(cfg, stage) if u in pending]

    tasks = cfg.executor.tasks
    ctx = StageContext(
        name=stage,
        cfg=cfg,
        stage_dir=d,
        input_dir=stage_dir(cfg, src) / "kept" if src else None,
        input_stage=src,
        tasks=tasks,
        workers=cfg.executor.workers,
        upstream_pending=bool(after),
    )
    module = importlib.import_module(STAGE_MODULES[stage])
    try:
        phases = module.build(ctx)
    except ValueError as e:
        raise StageError(str(e)) from None
    if previous and previous["tasks"] != phases[-1].tasks:
        raise StageError(
            f"stage {stage!r} was started with {previous['tasks']} tasks and executor.tasks is now {tasks}: "
            f"finish it with --set executor.tasks={previous['tasks']}, or restart it with --force"
        )
    if kind == "ray":
        try:
            connect_ray(cfg)
        except ExecutorError as e:
            raise StageError(str(e)) from None
    d.mkdir(parents=True, exist_ok=True)
    last = phases[-1]
    if last.kept_schema is not None:
        write_schema(d / "kept_schema.arrow", last.kept_schema)
    run_record = {
        "stage": stage,
        "tasks": last.tasks,
        "phases": [p.name for p in phases],
        "phase_tasks": [p.tasks for p in phases],
        "input_stage": src,
        "input_finished_at": src_finished_at,
        "upstream": upstream_stages(cfg, stage),
        "executor": kind,
        "started_at": time.time(),
        "fingerprint": stage_fingerprint(cfg, stage),
    }
    atomic_write_json(d / "run.json", run_record)
    task_counts = "+".join(str(p.tasks) for p in phases)
    _log(
        f"{stage}: {len(phases)} phase(s), {task_counts} task(s) on {kind} executor "
        f"({min(cfg.executor.workers, max(p.tasks for p in phases))} at a time); "
        f"reading {src + '/kept' if src else 'the sources'}"
    )
    start = time.time()
    if kind == "slurm":
        phases = [Phase(p.name, add_progress_mark(p.steps, d / "progress" / p.name), p.tasks) for p in phases]
        stats = _submit_to_slurm(cfg, stage, phases, after, run_record, pending)
        if wait and stats is None:
            problems = wait_for_slurm(cfg, [stage])
            if problems:
                raise TaskFailure(_failure_text(problems))
            stats = stage_state(cfg, stage).stats
        return stats
    for i, phase in enumerate(phases, 1):
        steps = add_progress_mark(phase.steps, d / "progress" / phase.name)
        if kind == "local":  # a local worker holds the lock's tasks byte and ends when this runner is killed
            steps = [runlock.TaskLock(d / LOCK_NAME, os.getpid()), *steps]
        executor = make_executor(cfg, steps, phase.tasks, d / "logs" / phase.name, f"{stage}-{phase.name}")
        line = _progress_line(cfg, stage, phase, steps, src)
        line.start()
        error = None
        try:
            executor.run()
        except Exception as e:  # a task raised (local); judged below by which tasks are complete
            error = e
        finally:
            line.finish()
        failed = executor.get_incomplete_ranks(skip_completed=True)
        if failed:
            lines = failed_tasks(cfg, stage)
            later = f"; phases not run: {', '.join(p.name for p in phases[i:])}" if i < len(phases) else ""
            raise TaskFailure(
                f"stage {stage!r} phase {phase.name!r} ({i}/{len(phases)}): {len(failed)}/{phase.tasks} task(s) "
                f"failed{later}.\n  "
                + "\n  ".join(lines)
                + f"\n  Fix the cause and run `pipeline run {stage}` again: finished tasks are kept, only these rerun."
            )
        if error is not None:
            raise error
    stats = finalize_stage(cfg, stage, wall_seconds=time.time() - start)
    if stats is None:
        st = stage_state(cfg, stage)
        raise StageError(f"stage {stage!r}: only {st.tasks_done}/{st.tasks} tasks finished; rerun to resume")
    counts = ", ".join(
        f"{stats[k]:,} {k.replace('docs_in', 'in')}" for k in ("docs_in", "kept", "removed", "tokens") if k in stats
    )
    _log(f"{stage}: done: {counts} in {stats['wall_seconds']:.1f}s")
    return stats


def _progress_line(cfg: Config, stage: str, phase, steps: list, src: str | None) -> ProgressLine:
    """The live line of one phase; its ETA's total is the input stage's kept text bytes, or for ingest the size of
    the source files."""
    from pipeline.progress import ProgressLine, ProgressMark  # see the note at the top of this module

    d = stage_dir(cfg, stage)
    total_bytes = total_file_bytes = None
    reader = next((s for s in steps if isinstance(s, ProgressMark)), None)
    reader = reader.reader if reader else None
    if reader is not None and hasattr(reader, "all_files"):  # ingest: sizes of the source files on disk
        total_file_bytes = 0
        for si, rel in reader.all_files():
            try:
                total_file_bytes += os.path.getsize(Path(reader.sources[si].base) / rel)
            except (OSError, AttributeError):
                pass
    elif reader is not None and src:
        total_bytes = (_read_json(stage_dir(cfg, src) / "stats.json") or {}).get("bytes_kept")
    label = stage if phase.name == "main" else f"{stage} {phase.name}"
    return ProgressLine(
        label,
        d / "progress" / phase.name,
        d / "logs" / phase.name / "completions",
        phase.tasks,
        total_bytes,
        total_file_bytes,
    )


def _submit_to_slurm(
    cfg: Config, stage: str, phases: list, after: list[str], run_record: dict, pending: dict[str, str]
) -> dict | None:
    """Submit each phase as a job array that starts after the previous phase (and the upstream stages) succeeded.
    Only the tasks without a completion marker are submitted, so a rerun resubmits just the failed ones."""
    from pipeline.executors import make_executor  # see the note at the top of this module

    d = stage_dir(cfg, stage)
    depends = ":".join(after) or None
    jobs: dict[str, str] = {}
    for phase in phases:
        executor = make_executor(
            cfg, phase.steps, phase.tasks, d / "logs" / phase.name, f"{stage}-{phase.name}", depends_job_id=depends
        )
        try:
            executor.run()  # sbatch
        except subprocess.CalledProcessError as e:
            raise StageError(
                f"stage {stage!r} phase {phase.name!r}: sbatch refused the job: {(e.stderr or e.output or e)!s}"
            ) from None
        if executor.job_id not in (None, -1):
            jobs[phase.name] = depends = str(executor.job_id)
    atomic_write_json(d / "run.json", {**run_record, "slurm_jobs": jobs})
    if not jobs:  # every task was complete already
        return finalize_stage(cfg, stage)
    pending[stage] = depends
    chain = ", ".join(f"{name} {job}" for name, job in jobs.items())
    wait = f" after {', '.join(after)}" if after else ""
    _log(f"{stage}: submitted to Slurm: {chain}{wait}")
    return None


def _failure_text(problems: list[str]) -> str:
    return (
        f"{len(problems)} Slurm task(s) did not finish:\n  "
        + "\n  ".join(problems)
        + "\n  Fix the cause and run the same `pipeline run` again: only unfinished tasks are resubmitted."
    )


def wait_for_slurm(cfg: Config, stages: list[str], poll_seconds: float = 5.0) -> list[str]:
    """Block until the Slurm jobs of `stages` have left the queue, printing progress; then merge each stage's stats.
    Returns one line per failed or never-run task (empty when every stage finished)."""
    jobs = {s: list((_read_json(stage_dir(cfg, s) / "run.json") or {}).get("slurm_jobs", {}).values()) for s in stages}
    all_jobs = [j for js in jobs.values() for j in js]
    last_line = ""
    while True:
        try:
            queued = slurm_jobs_in_queue(all_jobs)
        except ExecutorError as e:
            raise StageError(str(e)) from None
        line = progress_line(cfg, [s for s in stages if any(j in queued for j in jobs[s])], queued)
        if line != last_line:
            _log(line)
            last_line = line
        if not queued:
            break
        time.sleep(poll_seconds)
    problems = []
    for s in stages:
        if finalize_stage(cfg, s) is None:
            problems += failed_tasks(cfg, s) or [f"{s}: did not finish (see {stage_dir(cfg, s) / 'logs'})"]
    return problems


def progress_line(cfg: Config, stages: list[str], queued: dict[str, str] | None = None) -> str:
    """`stage phase done/total` for each stage in progress, and the Slurm states of its jobs."""
    parts = []
    for s in stages:
        prog = phase_progress(cfg, s)
        current = next(((i, n, dn, t) for i, (n, dn, t) in enumerate(prog, 1) if dn < t), None)
        if current and (current[0] > 1 or current[2] > 0 or not parts):  # started, or the next one to start
            i, n, dn, t = current
            parts.append(f"{s} {n} {dn}/{t} tasks" + (f" (phase {i}/{len(prog)})" if len(prog) > 1 else ""))
    states = sorted({st.split(" ")[0] for st in (queued or {}).values()})
    return ("running: " + "; ".join(parts) if parts else "waiting") + (f" [{', '.join(states)}]" if states else "")


def run_all(cfg: Config, force: bool = False, wait: bool = False) -> list[dict | None]:
    """Every enabled stage in order. On Slurm the stages are submitted as one chain of dependent jobs; `wait`
    blocks until it is done and raises TaskFailure naming the tasks that failed."""
    stages = enabled_stages(cfg)
    for s in stages:  # refuse before any work starts
        check_runnable(cfg, s)
    results = []
    pending: dict[str, str] = {}
    for s in stages:
        results.append(run_stage(cfg, s, force=force, pending=pending))
    if cfg.executor.kind == "slurm" and pending and wait:
        problems = wait_for_slurm(cfg, list(pending))
        if problems:
            raise TaskFailure(_failure_text(problems))
        results = [stage_state(cfg, s).stats for s in stages]
    return results
