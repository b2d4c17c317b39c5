"""Output helpers shared by the benchmark scripts (run as `python bench/<name>.py`, so this folder is on sys.path)."""

from __future__ import annotations

import resource
import statistics
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


def peer_table(
    times: dict[str, list[tuple[float, float]]],
    peer: str,
    mb: float,
    first: str,
    last: str,
    last_cells: dict[str, str],
    digits: int = 2,
) -> list[str]:
    """Markdown rows for implementations timed round by round against a peer: per name the medians of its (wall,
    CPU) seconds, MB/s and MB per CPU-second, the ratios to the peer's medians, and `last_cells[name]`; then each
    name's wall seconds per round. `first` and `last` head the first and last columns."""
    median = {name: tuple(statistics.median(x[i] for x in rounds) for i in (0, 1)) for name, rounds in times.items()}
    peer_wall, peer_cpu = median[peer]
    lines = [
        f"| {first} | wall s | MB/s wall | CPU s | MB per CPU-s | vs datatrove (wall) | vs datatrove (CPU) | {last} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (wall, cpu) in median.items():
        lines.append(
            f"| {name} | {wall:.{digits}f} | {mb / wall:.2f} | {cpu:.{digits}f} | {mb / cpu:.2f} | "
            f"{peer_wall / wall:.2f}x | {peer_cpu / cpu:.2f}x | {last_cells[name]} |"
        )
    lines.append("")
    for name, rounds in times.items():
        lines.append(f"- {name}, each round (wall s): " + ", ".join(f"{w:.{digits}f}" for w, _ in rounds))
    return lines
