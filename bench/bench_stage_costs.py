"""One stage command's CPU split into process start, fixed cost and cost per MB, for one or two code versions taking
turns, on the inputs of a finished `bench/bench_chain.py` run.

    .venv/bin/python bench/bench_chain.py --mb 13 --rounds 1 --work W          # once: the chain's inputs, kept
    .venv/bin/python bench/bench_stage_costs.py --work W --mb 13 --stage pii --stage decontam \\
        [--code . --code OTHER_CHECKOUT] [--rounds 5] [--out bench/results/stage_costs.md]

For each stage, each round, each `--code` checkout in turn (the order rotates each round), in a fresh workdir whose
earlier stages are links to the chain run's `W/<mb>MB/round-0/` (the same input for every run):
- full: `pipeline run <stage>` on the stage's whole input (one task, one worker, the repository's pipeline.toml
  with the chain's sources and tokenizer, as bench_chain runs it);
- start: the same command again right after (the stage is finished: it starts, loads the config, checks, exits);
- small: the same stage on the first 20 documents of its input (a copy of the input stage holding only those).
CPU seconds are the child's user + system time (getrusage): robust to the machine's load; wall seconds and the
load average are quoted too. Medians over rounds. The split: start; fixed = small - start (what a command pays
whatever its input beyond the start: executor setup, model or index loads, the first Parquet write importing
pandas, finalize); per MB = (full - small) / MB in. At the end, every checkout's kept/ and removed/ (every column,
rows by id) and token shards (.bin/.idx bytes) are compared with the first checkout's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from bench_chain import code_label, loadavg, overrides  # bench/ is on sys.path when run as a script
from common import emit, timed_run

REPO = Path(__file__).resolve().parent.parent
ORDER = ["ingest", "langid", "filter", "dedup", "pii", "decontam", "tokenize"]
SMALL_DOCS = 20


def stage_workdir(work: Path, finished: Path, stage: str, small: bool) -> None:
    """A fresh workdir whose stages before `stage` link to the finished chain run's; with `small`, the input stage
    (the one just before) is a copy holding only its first SMALL_DOCS kept documents."""
    work.mkdir(parents=True)
    before = ORDER[: ORDER.index(stage)]
    for s in before:
        (work / s).symlink_to((finished / s).resolve(), target_is_directory=True)
    if small:
        src = (finished / before[-1]).resolve()
        (work / before[-1]).unlink()
        shutil.copytree(src, work / before[-1], ignore=shutil.ignore_patterns("*.parquet"))
        first = sorted((src / "kept").glob("*.parquet"))[0]
        pq.write_table(pq.read_table(first).slice(0, SMALL_DOCS), work / before[-1] / "kept" / first.name)


def frame(folder: Path) -> pl.DataFrame | None:
    files = sorted(folder.glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed").sort("id") if files else None


def same_output(a: Path, b: Path, stage: str) -> bool:
    """kept/ and removed/ equal in every column (rows by id); the token shards byte-identical."""
    for part in ("kept", "removed"):
        fa, fb = frame(a / stage / part), frame(b / stage / part)
        if (fa is None) != (fb is None) or (fa is not None and not fa.equals(fb)):
            return False
    for f in sorted(p for p in (a / stage).rglob("*") if p.suffix in (".bin", ".idx")):
        g = b / f.relative_to(a)
        if not g.exists() or hashlib.sha256(f.read_bytes()).digest() != hashlib.sha256(g.read_bytes()).digest():
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="bench_chain.py's --work folder, its run finished")
    ap.add_argument("--mb", type=float, default=13.0, help="the chain size to use (its <mb>MB folder; default 13)")
    ap.add_argument("--stage", action="append", required=True, choices=ORDER[1:], help="stage to measure (repeat)")
    ap.add_argument("--code", type=Path, action="append", help="checkout to run (repeat; default: this one)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; medians (default 3)")
    ap.add_argument("--out", type=Path, help="write the Markdown result here too")
    args = ap.parse_args()
    size_dir = args.work / f"{args.mb:g}MB"
    finished = size_dir / "round-0"
    model = size_dir / "prepared" / "tokenizer" / "tokenizer.model"
    if not (finished / "tokenize" / "stats.json").exists():
        raise SystemExit(f"{finished}: no finished chain run (run bench/bench_chain.py --work {args.work} first)")
    codes = [c.resolve() for c in args.code or [REPO]]
    python = sys.executable
    scratch = Path(tempfile.mkdtemp(prefix="stage_costs_", dir=args.work))
    times: dict[tuple[str, int, str], list[tuple[float, float]]] = {}  # (stage, code, kind) -> (wall, cpu) per round
    loads: list[str] = []
    mb_in: dict[str, float] = {}
    try:
        for r in range(args.rounds):
            for stage in args.stage:
                order = list(range(len(codes)))
                order = order[r % len(order) :] + order[: r % len(order)]
                for k in order:
                    env = {**os.environ, "PYTHONPATH": str(codes[k])}
                    for kind in ("full", "small"):
                        work = scratch / f"{stage}-{k}-{kind}"
                        shutil.rmtree(work, ignore_errors=True)
                        stage_workdir(work, finished, stage, small=kind == "small")
                        cmd = [python, "-m", "pipeline", "run", stage, "--config", str(codes[k] / "pipeline.toml")]
                        cmd += [*overrides(work, size_dir / "source"), "--set", f"tokens.tokenizer={model}"]
                        loads.append(loadavg())
                        wall, cpu, _, _ = timed_run(cmd, codes[k], env)
                        times.setdefault((stage, k, kind), []).append((wall, cpu))
                        if kind == "full":
                            wall, cpu, _, log = timed_run(cmd, codes[k], env)
                            assert "already finished" in log, log[-2000:]
                            times.setdefault((stage, k, "start"), []).append((wall, cpu))
                            stats = json.loads((work / stage / "stats.json").read_text())
                            mb_in[stage] = stats["bytes_in"] / 1e6
                    print(f"round {r + 1} {stage} code {k}: {times[(stage, k, 'full')][-1]}", file=sys.stderr)
        same = {
            (stage, k): same_output(scratch / f"{stage}-0-full", scratch / f"{stage}-{k}-full", stage)
            for stage in args.stage
            for k in range(1, len(codes))
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def med(stage: str, k: int, kind: str, i: int) -> float:
        return statistics.median(x[i] for x in times[(stage, k, kind)])

    one_minute = [float(x.split()[0]) for x in loads]
    lines = [
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average (1-minute, at each run's start) {min(one_minute):.2f} to "
        f"{max(one_minute):.2f}, median {statistics.median(one_minute):.2f}. Command: `{' '.join(sys.argv)}`. Input: "
        f"`{finished}`. {args.rounds} rounds, medians; CPU seconds of each child process.",
        "",
        "| stage | code | MB in | full: wall s | full: CPU s | MB per CPU-s | start CPU s | small (20 docs) CPU s "
        "| fixed = small - start | per MB (CPU s) | output vs first code |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for stage in args.stage:
        for k, code in enumerate(codes):
            full, start, small = (med(stage, k, kind, 1) for kind in ("full", "start", "small"))
            mb = mb_in[stage]
            verdict = "-" if k == 0 else ("identical" if same[(stage, k)] else "DIFFERENT")
            lines.append(
                f"| {stage} | {code_label(code)} | {mb:.2f} | {med(stage, k, 'full', 0):.2f} | {full:.2f} | "
                f"{mb / full:.2f} | {start:.2f} | {small:.2f} | {small - start:.2f} | {(full - small) / mb:.3f} | "
                f"{verdict} |"
            )
    lines.append("")
    for (stage, k, kind), rounds in times.items():
        per_round = ", ".join(f"{c:.2f}" for _, c in rounds)
        lines.append(f"- {stage}, {code_label(codes[k])}, {kind}: CPU s per round {per_round}")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
