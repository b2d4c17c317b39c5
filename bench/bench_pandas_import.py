"""What pandas' import costs a stage process (issue 13, process start): a fresh interpreter imports what a stage
that writes shards imports (`stages.io`: datatrove, pyarrow), then builds one record batch from a Python list,
either with pyarrow's conversion (which imports pandas) or with stages/arrow.py's `column_array` (which does not).

    .venv/bin/python bench/bench_pandas_import.py [--rounds 10] [--out FILE]

CPU seconds of each child process (getrusage: user + system), the two commands taking turns round by round; medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from common import emit, timed_run  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
PRELUDE = "import sys, pyarrow as pa, stages.io; from stages.arrow import column_array"
COMMANDS = {
    "pa.RecordBatch.from_arrays on a list": PRELUDE + "; pa.RecordBatch.from_arrays([['x']], names=['a'])",
    "column_array, then from_arrays": PRELUDE
    + "; pa.RecordBatch.from_arrays([column_array(['x'], pa.string())], names=['a'])",
    "stages.io imported, nothing built": PRELUDE,
}
CHECK = "; assert ('pandas' in sys.modules) == {}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for name, code in list(COMMANDS.items())[:: 1 if r % 2 == 0 else -1]:
            # the process fails (and timed_run stops the benchmark) unless pandas was imported exactly when expected
            _, seconds, _, _ = timed_run([sys.executable, "-c", code + CHECK.format(name.startswith("pa."))], REPO)
            cpu[name].append(seconds)
        loads.append(os.getloadavg()[0])
    lines = [
        f"Machine: {os.uname().machine}, {os.cpu_count()} CPUs; {args.rounds} rounds; load average (1 min) "
        f"{min(loads):.1f}-{max(loads):.1f}; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}.",
        "",
        "| process | CPU s (median) | per-round CPU s |",
        "| --- | ---: | --- |",
    ]
    for name, runs in cpu.items():
        lines.append(f"| {name} | {statistics.median(runs):.3f} | {' '.join(f'{x:.2f}' for x in runs)} |")
    meds = [statistics.median(v) for v in cpu.values()]
    lines.append(f"\npandas' import through pyarrow's conversion: {meds[0] - meds[1]:.3f} CPU-s per process")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
