"""File helpers that need neither pyarrow nor datatrove: an atomic JSON write and the shard list of a folder.

Apart from stages/io.py (which imports both, and exports these too) so that the runner's bookkeeping (run.json,
stats.json) does not import them: a command that finds its stage finished, `pipeline status` and `verify` need
no reader or writer (BENCHMARKS.md, "Fourth pass: process start").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def list_shards(folder: Path) -> list[Path]:
    folder = Path(folder)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def atomic_write_json(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
