"""Process start: what a `pipeline` command costs before its first document, per checkout, rounds interleaved.

    .venv/bin/python bench/bench_start.py --workdir FINISHED_WORKDIR [--stages langid dedup tokenize]
        [--run-config CONFIG [--run-stages langid pii]] [--code CHECKOUT ...] [--rounds 12]
        [--out bench/results/start.md]

FINISHED_WORKDIR is a `run.workdir` where the flow of the repository's pipeline.toml has finished (e.g. after
`pipeline run all --set run.workdir=/tmp/w`). Each round runs, for every `--code` checkout in turn (default: this
one; another one runs with its own sources on PYTHONPATH and its own pipeline.toml): `pipeline run <stage>` for each
stage (finished, so the command loads the config, checks the stage's state and exits: the "start" of
bench_chain.py), `pipeline status`, per checkout the same imports after `import pipeline` (whose
`pipeline/hf_deferred.py` keeps huggingface_hub's network stack out of datatrove's imports), and, once per round, a
bare process importing what any datatrove-executor stage needs (the floor a stage run cannot go under without
`pipeline`). CPU seconds are the child's user + system time (getrusage); medians.
A finished stage's fingerprint is the same for checkouts of one mapcc version, so they can share the workdir.

`--run-config CONFIG` adds real stage runs: `pipeline run <stage> --force --config CONFIG` for each of
`--run-stages` (CONFIG's workdir must have the stages before them finished; a tiny input, e.g. 20 sample books, so
the command is nearly all floor), with the CPU seconds of the process when the stage's reader yields its first
document (the command runs under a small prelude that wraps `stages.io.ShardReader.run`, after `import pipeline`,
so the import order is the command's own) and of the whole command.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from common import emit, timed_run  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
FLOOR = "import datatrove.executor.local, pyarrow.parquet, pydantic, datatrove.pipeline.base, datatrove.data, numpy"
# `python -c FIRST_DOC stage config`: a stage run that prints, on its last stdout line, the process's CPU seconds
# when the stage's reader yields its first document
FIRST_DOC = """import sys, time
import pipeline
import stages.io
first = []
read = stages.io.ShardReader.run
def run(self, *args, **kwargs):
    for doc in read(self, *args, **kwargs):
        if not first:
            first.append(time.process_time())
        yield doc
stages.io.ShardReader.run = run
from pipeline.cli import main
rc = main(["run", sys.argv[1], "--force", "--config", sys.argv[2]])
print(first[0] if first else -1.0)
sys.exit(rc)
"""


def label(code: Path) -> str:
    rev = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return rev.stdout.strip() or code.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="a run.workdir where every stage has finished (or give --run-config)")
    ap.add_argument("--stages", nargs="+", default=["langid", "dedup", "tokenize"])
    ap.add_argument("--code", type=Path, action="append", help="a checkout to time (repeatable; default: this one)")
    ap.add_argument("--run-config", type=Path, help="also time real runs of --run-stages with this config (--force)")
    ap.add_argument("--run-stages", nargs="+", default=["langid", "pii"])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not args.workdir and not args.run_config:
        ap.error("give --workdir, --run-config or both")
    codes = [c.resolve() for c in args.code or [REPO]]
    commands = {}  # row name -> (argv, cwd, env)
    for code in codes:
        env = {**os.environ, "PYTHONPATH": str(code)}
        base = [sys.executable, "-m", "pipeline"]
        workdir = ["--set", f"run.workdir={args.workdir}"]
        for stage in args.stages if args.workdir else []:
            commands[f"`pipeline run {stage}` (finished) | {label(code)}"] = (
                [*base, "run", stage, *workdir],
                code,
                env,
            )
        if args.workdir:
            commands[f"`pipeline status` | {label(code)}"] = ([*base, "status", *workdir], code, env)
        commands[f"process: `import pipeline` then the bare process's imports | {label(code)}"] = (
            [sys.executable, "-c", "import pipeline; " + FLOOR],
            code,
            env,
        )
        for stage in args.run_stages if args.run_config else []:
            commands[f"`pipeline run {stage} --force` (real run) | {label(code)}"] = (
                [sys.executable, "-c", FIRST_DOC, stage, str(args.run_config.resolve())],
                code,
                env,
            )
    commands["bare process: `" + FLOOR + "` | "] = ([sys.executable, "-c", FLOOR], REPO, dict(os.environ))
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    wall: dict[str, list[float]] = {name: [] for name in commands}
    first_doc: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        names = list(commands)
        names = names[r % len(names) :] + names[: r % len(names)]  # the order rotates each round
        for name in names:
            argv, cwd, env = commands[name]
            w, c, stdout, stderr = timed_run(argv, cwd, env)
            if argv[1] == "-c" and argv[2] == FIRST_DOC:
                first_doc[name].append(float(stdout.splitlines()[-1]))
            elif " run " in " ".join(argv) and "already finished" not in stderr:
                raise SystemExit(f"{name}: the stage is not finished in {args.workdir}:\n{stderr[-2000:]}")
            cpu[name].append(c)
            wall[name].append(w)
    load_after = os.getloadavg()
    lines = [
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}. "
        f"Command: `{' '.join(sys.argv)}`. Load average {' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after; {args.rounds} rounds, order rotating, medians.",
        "",
        "| command | code | CPU s | min | max | wall s | CPU s at the first document |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in commands:
        at_first = f"{statistics.median(first_doc[name]):.3f}" if first_doc[name] else ""
        lines.append(
            f"| {name} | {statistics.median(cpu[name]):.3f} | {min(cpu[name]):.3f} | {max(cpu[name]):.3f} | "
            f"{statistics.median(wall[name]):.2f} | {at_first} |"
        )
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
