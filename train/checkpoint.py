"""Checkpoint files in a run folder: `ckpt-<step, 7 digits>.pt`, written atomically, the last K kept.

A checkpoint holds only tensors and plain containers (dict, list, tuple, str, int, float, bool, None), so it loads
with `torch.load(..., weights_only=True)` and no pickle code runs.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

CKPT_RE = re.compile(r"^ckpt-(\d{7})\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt-{step:07d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if CKPT_RE.match(p.name))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Write to a temporary name, then rename (atomic on POSIX): a crash never leaves a half checkpoint under
    a name that resume would pick."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


class ResumeError(ValueError):
    """A run folder that cannot be resumed: its checkpoints are all unreadable, or were made with another tokenizer
    or model; the message names the file."""


# What torch.load raises on a file cut short or damaged (RuntimeError: the zip's central directory is missing; EOFError:
# an empty file; UnpicklingError/ValueError: a damaged record inside an intact zip). Anything else is a bug and
# propagates.
UNREADABLE_CHECKPOINT = (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError)


def load_latest_readable(run_dir: str | Path, warn: Callable[[str], None]) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest checkpoint that loads, and its state; (None, None) when the folder has none.

    Checkpoints are written atomically, but a file can still be cut short afterwards (a disk filled during a copy, a
    sync of the run folder interrupted): such a file is passed over with a warning naming it, and the one before it
    is used. It is left in place: the resumed run writes that step again (same name, atomic replace). When every
    checkpoint is unreadable, resuming from scratch would silently throw the run away, so that raises instead."""
    found = list_checkpoints(run_dir)
    bad: list[str] = []
    for path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except UNREADABLE_CHECKPOINT as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            bad.append(f"{path} ({reason})")
            warn(f"warning: {path} is not a readable checkpoint ({reason}); falling back to the one before it")
    if bad:
        raise ResumeError(
            f"no readable checkpoint in {run_dir}: {'; '.join(bad)}; remove them to start over, or use a new run folder"
        )
    return None, None


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "gauss": (has_gauss, cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["gauss"][0], n["gauss"][1]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
