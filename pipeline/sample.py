"""`pipeline sample <stage> --reason R -n 5 [--kept] [--seed S] [--chars N]`: a few documents of a stage's output,
removed for one reason (or kept), with their id, reason, measured rule values (`scores`, filter stage) and the
start of their text. Reading examples is how thresholds get tuned; `pipeline report` shows the distributions."""

from __future__ import annotations

import math

import polars as pl

from pipeline.config import STAGE_ORDER, Config, ConfigError
from pipeline.runner import stage_dir
from stages.files import list_shards
from stages.filters.scores import SCORES_COLUMN


def sample_documents(
    cfg: Config, stage: str, reason: str | None, n: int, kept: bool = False, seed: int | None = None
) -> pl.DataFrame:
    """`n` documents drawn at random (reproducibly, by `seed`, default run.seed) from `<stage>/removed` with that
    `reason` (any reason when None), or from `<stage>/kept`."""
    if stage not in STAGE_ORDER:
        raise ConfigError(f"sample: unknown stage {stage!r}; stages are: {', '.join(STAGE_ORDER)}")
    if kept and reason:
        raise ConfigError("sample: --kept draws kept documents, which have no reason; give one of --kept, --reason")
    if n < 1:
        raise ConfigError(f"sample: -n must be at least 1, not {n}")
    folder = stage_dir(cfg, stage) / ("kept" if kept else "removed")
    shards = list_shards(folder)
    if not shards:
        raise ConfigError(f"sample: no shards in {folder} (has `pipeline run {stage}` finished?)")
    frame = pl.scan_parquet([str(p) for p in shards])
    if reason:
        frame = frame.filter(pl.col("reason") == reason)
    ids = frame.select("id").collect()["id"]
    if ids.is_empty():
        reasons = pl.scan_parquet([str(p) for p in shards]).group_by("reason").len().sort("len", descending=True)
        known = ", ".join(f"{r} ({k:,})" for r, k in reasons.collect().iter_rows())
        raise ConfigError(f"sample: no document in {folder} has reason {reason!r}; reasons there: {known}")
    chosen = ids.sample(min(n, len(ids)), seed=cfg.run.seed if seed is None else seed)
    return frame.filter(pl.col("id").is_in(chosen.implode())).collect().sort("id")


def _value(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.4g}"


def format_documents(df: pl.DataFrame, chars: int = 300) -> str:
    blocks = []
    for row in df.iter_rows(named=True):
        head = f"── {row['id']}"
        if row.get("reason"):
            head += f"  reason: {row['reason']}"
        lines = [head, f"   source: {row.get('source')}  lang: {row.get('lang')}  characters: {len(row['text']):,}"]
        scores = row.get(SCORES_COLUMN) or {}
        measured = [f"{k}={_value(v)}" for k, v in scores.items() if v is not None]
        if measured:
            lines.append("   scores: " + ", ".join(measured))
        text = row["text"][:chars] + (" […]" if len(row["text"]) > chars else "")
        lines += ["   " + line for line in text.splitlines()] or ["   (empty)"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
