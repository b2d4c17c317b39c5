"""`pipeline status`: each stage's state and counts, as a table."""

from __future__ import annotations

from pipeline.cluster import ExecutorError, slurm_jobs_in_queue
from pipeline.config import STAGE_ORDER, Config
from pipeline.runner import finalize_stage, phase_progress, run_record, stage_state


def _progress(cfg: Config, stage: str) -> str:
    """Tasks done / total of the phase in progress (any executor: datatrove's completion markers), and on Slurm
    whether the stage's jobs are still queued or running."""
    prog = phase_progress(cfg, stage)
    current = next(((i, n, dn, t) for i, (n, dn, t) in enumerate(prog, 1) if dn < t), None)
    text = ""
    if current:
        i, name, done, total = current
        text = f"{done}/{total} tasks" + (f", phase {i}/{len(prog)} {name}" if len(prog) > 1 else "")
    jobs = (run_record(cfg, stage).get("slurm_jobs") or {}).values()
    if jobs:
        try:
            queued = slurm_jobs_in_queue(list(jobs))
        except (ExecutorError, OSError):
            queued = None
        if queued:
            text += ", slurm: " + ", ".join(sorted({q.split(" ")[0].lower() for q in queued.values()}))
        elif queued is not None:
            text += ", slurm: no job left (rerun to resubmit the rest)"
    return text


def status_rows(cfg: Config) -> list[dict]:
    rows = []
    for stage in STAGE_ORDER:
        finalize_stage(cfg, stage)  # merges stats of stages that finished on Slurm/Ray since the last look
        st = stage_state(cfg, stage)
        s = st.stats or {}
        state = st.state
        if state == "incomplete":
            state = f"incomplete ({_progress(cfg, stage)})"
        if not st.enabled and st.stats:  # run with another config (the demo's quality side run): not this flow's
            state = "disabled, holds a side run"
        elif st.changes:  # the key names only (the values are in `pipeline run`'s refusal): the column stays readable
            state += ", config changed: " + ", ".join(c.split(":")[0].split(" (")[0] for c in st.changes)
        if s.get("failed_files"):
            state += f", {len(s['failed_files'])} unreadable file(s)"
        rows.append(
            {
                "stage": stage,
                "state": state,
                "in": s.get("docs_in"),
                "kept": s.get("kept"),
                "removed": s.get("removed"),
                "kept_pct": (100.0 * s["kept"] / s["docs_in"]) if s.get("docs_in") and "kept" in s else None,
                "seconds": s.get("wall_seconds"),
            }
        )
    return rows


def print_status(cfg: Config) -> None:
    print(f"workdir: {cfg.workdir}")
    header = f"{'stage':<10} {'state':<34} {'in':>10} {'kept':>10} {'removed':>10} {'kept %':>7} {'secs':>8}"
    print(header)
    print("-" * len(header))

    def fmt(v, spec):
        return "" if v is None else format(v, spec)

    for r in status_rows(cfg):
        print(
            f"{r['stage']:<10} {r['state']:<34} {fmt(r['in'], ','):>10} {fmt(r['kept'], ','):>10} "
            f"{fmt(r['removed'], ','):>10} {fmt(r['kept_pct'], '.1f'):>7} {fmt(r['seconds'], '.1f'):>8}"
        )
