"""Output helpers shared by the benchmark scripts (run as `python bench/<name>.py`, so this folder is on sys.path)."""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path


def emit(text: str, out: Path | None) -> None:
    """Print a result table, and save it to `out` when given."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section of BENCHMARKS.md that starts with `heading` (or append it), leaving the others alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt != -1 else "")
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def timed_run(cmd: list[str], cwd: Path | str | None = None, env: dict | None = None) -> tuple[float, float, str, str]:
    """Runs a process to its end: its wall seconds, its CPU seconds (user + system, its children included, from
    getrusage of this process's children), its stdout and its stderr. Exits with the command's output when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout, done.stderr
