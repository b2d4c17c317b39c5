"""A live progress line for a running stage: documents, MB/s and an ETA from input bytes.

Each task's reader counts documents and text bytes (`docs`, `bytes`, which the stats use too); a `ProgressMark` step
placed right after the reader writes those counts to `<stage>/progress/<phase>/<rank>.json` every two seconds, so it
works the same wherever the task runs (local processes, Ray workers, Slurm nodes sharing the workdir). The runner's
`ProgressLine` thread sums the files and prints one line: rewritten in place on a terminal, every 30 s otherwise.

The ETA's total is the input's text bytes: the previous stage's `bytes_kept`. Ingest reads raw files whose text size is
unknown until read, so its fraction is the on-disk size of the source files finished over that of all of them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

WRITE_EVERY_S = 2.0


class ProgressMark(PipelineStep):
    """Passes documents through; writes the reader's running counts for the progress line."""

    name = "progress"
    type = "⏱ - PROGRESS"

    def __init__(self, reader, folder: Path):
        super().__init__()
        self.reader = reader
        self.folder = Path(folder)

    def _write(self, rank: int, files_done: list[str]) -> None:
        done_bytes = 0
        for f in files_done:
            try:
                done_bytes += os.path.getsize(f)
            except OSError:
                pass
        record = {"docs": self.reader.docs, "bytes": self.reader.bytes, "file_bytes_done": done_bytes}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{rank:05d}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.folder / f"{rank:05d}.json")

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        last = time.monotonic()
        files_done: list[str] = []
        current = None
        for doc in data or ():
            now_file = getattr(self.reader, "_current_file", None)  # ingest's reader: the source file being read
            if now_file != current:
                if current:
                    files_done.append(current)
                current = now_file
            if time.monotonic() - last >= WRITE_EVERY_S:
                self._write(rank, files_done)
                last = time.monotonic()
            yield doc
        if current:
            files_done.append(current)
        self._write(rank, files_done)


def add_progress_mark(steps: list, folder: Path) -> list:
    """`steps` with a ProgressMark after the first step that counts documents (a reader); unchanged if none."""
    for i, step in enumerate(steps):
        if hasattr(step, "docs") and hasattr(step, "bytes") and not isinstance(step, ProgressMark):
            return [*steps[: i + 1], ProgressMark(step, folder), *steps[i + 1 :]]
    return steps


def _fmt_s(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressLine(threading.Thread):
    """Prints `<stage> <phase>: N docs, X MB, Y MB/s, T tasks done, ETA` while a phase runs."""

    def __init__(
        self,
        label: str,
        folder: Path,
        completions: Path,
        tasks: int,
        total_bytes: int | None,
        total_file_bytes: int | None,
    ):
        super().__init__(daemon=True)
        self.label, self.folder, self.completions, self.tasks = label, Path(folder), Path(completions), tasks
        self.total_bytes, self.total_file_bytes = total_bytes, total_file_bytes
        self.stop_event = threading.Event()
        self.tty = sys.stderr.isatty()
        self.start_time = time.monotonic()
        self.printed = False

    def snapshot(self) -> str | None:
        docs = nbytes = file_bytes = 0
        for f in self.folder.glob("*.json"):
            try:
                rec = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            docs += rec["docs"]
            nbytes += rec["bytes"]
            file_bytes += rec.get("file_bytes_done", 0)
        elapsed = time.monotonic() - self.start_time
        done = len(list(self.completions.iterdir())) if self.completions.is_dir() else 0
        if not docs and not done:
            return None
        rate = nbytes / elapsed / 1e6 if elapsed > 0 else 0.0
        fraction = None
        if self.total_bytes:
            fraction = min(nbytes / self.total_bytes, 1.0)
        elif self.total_file_bytes:
            fraction = min(file_bytes / self.total_file_bytes, 1.0)
        eta = ""
        if fraction:
            eta = f", {100 * fraction:.0f}%, ETA {_fmt_s(elapsed * (1 - fraction) / fraction)}"
        return (
            f"[pipeline] {self.label}: {docs:,} docs, {nbytes / 1e6:,.1f} MB at {rate:.1f} MB/s, "
            f"{done}/{self.tasks} tasks done{eta}"
        )

    def run(self) -> None:
        every = 1.0 if self.tty else 30.0
        while not self.stop_event.wait(every if self.printed else 5.0):  # short phases print nothing
            line = self.snapshot()
            if line:
                print(("\r\x1b[2K" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)
                sys.stderr.flush()
                self.printed = True

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        if self.printed and self.tty:
            print(file=sys.stderr)
