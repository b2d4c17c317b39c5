"""What every stage shares: the document schema, and the context a stage is built in.

A stage is a module `stages/<name>.py` with a function `build(ctx: StageContext) -> list[Phase]`, and a pydantic
config class (a `StageConfig`) in `stages/config/<name>.py`, which the stage module imports (and `stages.<name>`
still exports under its name). The config classes live apart so that loading a config, which every `pipeline`
command does, imports pydantic only, not every stage's libraries: a command imports the module of the stage it
runs and no other (BENCHMARKS.md, "Fourth pass: process start"). Most stages are one phase:
`ctx.standard_phase(steps)` wraps the stage's own steps with a reader of the previous stage's `kept/` shards,
Parquet writers for `kept/` and `removed/`, and the per-task accounting that `stats.json` and `pipeline verify` rely
on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from datatrove.pipeline.filters.base_filter import BaseFilter

from stages.config.base import IntKey, StageConfig, StrictModel  # noqa: F401 (their home before stages/config)
from stages.io import (
    BASE_SCHEMA,
    DEFAULT_MAX_SHARD_BYTES,
    REMOVED_COLUMNS,
    KeptWriter,
    RemovedWriter,
    ReportsCounters,
    ShardReader,
    TaskAccounting,
    TaskStart,
    merge_schema,
    shard_schema,
)


@dataclass
class Phase:
    """One executor run: a datatrove pipeline executed as `tasks` tasks. Multi-step stages (MinHash) have several."""

    name: str
    steps: list[Any]
    tasks: int
    kept_schema: pa.Schema | None = None


@dataclass
class StageContext:
    """Everything a stage's `build` needs: its name, the whole config, where it reads and writes."""

    name: str
    cfg: Any  # pipeline.config.Config; typed loosely so stages/ does not import pipeline/
    stage_dir: Path
    input_dir: Path | None  # kept/ of the previous enabled stage; None for ingest
    input_stage: str | None
    tasks: int
    workers: int
    # True when an upstream stage is submitted (Slurm chain) but not finished: its output cannot be inspected yet.
    upstream_pending: bool = False

    @property
    def stage_cfg(self) -> StageConfig:
        return getattr(self.cfg.stages, self.name)

    @property
    def kept_dir(self) -> Path:
        return self.stage_dir / "kept"

    @property
    def removed_dir(self) -> Path:
        return self.stage_dir / "removed"

    def input_schema(self) -> pa.Schema:
        """Schema of the previous stage's kept shards (without `stage`/`reason`)."""
        if self.input_dir is None:
            return BASE_SCHEMA
        return shard_schema(self.input_dir)

    def standard_phase(
        self,
        steps: list[Any],
        new_columns: list[pa.Field] | None = None,
        removed_columns: list[pa.Field] | None = None,
        reader: Any = None,
        max_shard_bytes: int | None = None,
    ):
        """reader -> steps -> kept writer -> accounting, with every filter's exclusions going to `removed/`.

        `new_columns` are the columns this stage adds to kept documents; `removed_columns` the extra columns
        only its removed documents carry (for example `duplicate_of`).
        """
        max_bytes = max_shard_bytes or DEFAULT_MAX_SHARD_BYTES

        schema = merge_schema(self.input_schema(), new_columns or [])
        removed_schema = merge_schema(schema, REMOVED_COLUMNS + (removed_columns or []))
        if reader is None:
            reader = ShardReader(self.input_dir, progress=self.workers == 1)
        removed_writers = []
        for i, step in enumerate(steps):
            if isinstance(step, BaseFilter) and step.exclusion_writer is None:
                step.exclusion_writer = RemovedWriter(
                    self.removed_dir,
                    self.name,
                    removed_schema,
                    tag=f"{i:02d}",
                    default_reason=_snake(type(step).__name__),
                    max_file_size=max_bytes,
                )
                removed_writers.append(step.exclusion_writer)
            elif isinstance(step, BaseFilter):
                removed_writers.append(step.exclusion_writer)
        kept = KeptWriter(self.kept_dir, schema, max_file_size=max_bytes)
        counted = [step for step in steps if isinstance(step, ReportsCounters)]
        accounting = TaskAccounting(self.stage_dir, reader=reader, kept=kept, removed=removed_writers, counted=counted)
        start = TaskStart(self.stage_dir, [self.kept_dir, self.removed_dir])
        return Phase(
            name="main",
            steps=[start, reader, *steps, kept, accounting],
            tasks=self.tasks,
            kept_schema=schema,
        )


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))
