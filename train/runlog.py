"""A run folder's `log.jsonl`: one JSON object per logged optimizer step. The one writer (`append_row`,
`truncate_log`) and the one reader (`read_log`); the trainer, the report, the demo and the CLI all go through here.

A run killed while writing leaves a partial last line: `read_log` skips it (the rows before it are whole), and a
resumed run rewrites the file without it (`truncate_log`). A bad line anywhere else is corruption and raises
`LogError` naming the file and line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

LOG_NAME = "log.jsonl"


class LogError(ValueError):
    """A log.jsonl line that is not a JSON object (other than a partial last line); the message names file:line."""


def log_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOG_NAME


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a log.jsonl (or of `<run folder>/log.jsonl` when given a folder); [] when there is none."""
    path = Path(path)
    if path.is_dir():
        path = log_path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # no newline after it: the write was cut off (a killed run); the rows before stand
                break
            raise LogError(f"{path}:{n}: not a JSON object ({e})") from None
        if not isinstance(row, dict):
            raise LogError(f"{path}:{n}: not a JSON object")
        rows.append(row)
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One row, written with its newline in one call (a reader sees either the whole row or a partial last line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def truncate_log(path: Path, step: int) -> None:
    """On resume, forget rows logged after the checkpoint's step (they will be produced again), and a partial last
    line. Written to a temporary file, then renamed."""
    if not path.exists():
        return
    kept = [row for row in read_log(path) if row.get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
    os.replace(tmp, path)


def plot_loss(log: str | Path, png_path: Path, baseline: float | None = None) -> None:
    """Train loss (and validation loss where logged) against step, with an optional horizontal baseline."""
    rows = read_log(log)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train loss")
    val = [r for r in rows if r.get("val_loss") is not None]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation loss")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label=f"unigram baseline {baseline:.2f}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, png_path)
