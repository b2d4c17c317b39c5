"""`pipeline verify`: no document disappears silently.

For every finished stage it checks, from the shards themselves and not only from `stats.json`:
- every kept and removed shard is a readable Parquet file (`--deep`: every row is read);
- documents in = kept + removed, in `stats.json` and in the actual row counts;
- ids are unique in `kept/`;
- for stages after ingest: the ids that went in (the input stage's kept shards) are exactly the ids that came out,
  kept or removed; a lost or an invented id is named.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from pipeline.config import STAGE_ORDER, Config
from pipeline.runner import CORPUS_STAGES, finalize_stage, stage_dir, stage_state
from stages.files import list_shards
from stages.megatron import read_index_header


def _rows(shards: list[Path], deep: bool, problems: list[str], stage: str) -> int:
    total = 0
    for path in shards:
        try:
            meta = pq.ParquetFile(path).metadata
            total += meta.num_rows
            if deep:
                pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - any failure to read is what we report
            problems.append(f"{stage}: shard {path} is not readable: {type(e).__name__}: {e}")
    return total


def _ids(shards: list[Path]) -> pl.Series:
    if not shards:
        return pl.Series("id", [], dtype=pl.String)
    return pl.scan_parquet([str(p) for p in shards]).select("id").collect()["id"]


def verify_stage(cfg: Config, stage: str, deep: bool = False) -> tuple[list[str], list[str]]:
    """Returns (problems, notes) for one stage."""
    problems: list[str] = []
    notes: list[str] = []
    finalize_stage(cfg, stage)
    st = stage_state(cfg, stage)
    if st.state not in ("finished", "stale"):
        if st.state == "incomplete":
            notes.append(f"{stage}: not verified: {st.tasks_done}/{st.tasks} tasks finished")
        return problems, notes
    if stage == "tokenize":
        return verify_tokens(cfg, st.stats), notes
    if stage not in CORPUS_STAGES:
        return problems, notes
    stats = st.stats
    d = stage_dir(cfg, stage)
    kept_shards, removed_shards = list_shards(d / "kept"), list_shards(d / "removed")
    if stats["docs_in"] != stats["kept"] + stats["removed"]:
        problems.append(
            f"{stage}: stats.json says {stats['docs_in']} in but {stats['kept']} kept + {stats['removed']} removed"
        )
    kept_rows = _rows(kept_shards, deep, problems, stage)
    removed_rows = _rows(removed_shards, deep, problems, stage)
    if kept_rows != stats["kept"]:
        problems.append(f"{stage}: kept/ holds {kept_rows} documents but the stage kept {stats['kept']}")
    if removed_rows != stats["removed"]:
        problems.append(f"{stage}: removed/ holds {removed_rows} documents but the stage removed {stats['removed']}")
    if problems:
        return problems, notes
    kept_ids = _ids(kept_shards)
    dup = kept_ids.filter(kept_ids.is_duplicated()).unique()
    if len(dup):
        problems.append(f"{stage}: {len(dup)} id(s) appear more than once in kept/, e.g. {dup.head(3).to_list()}")
    src = stats.get("input_stage")
    if src:
        in_ids = _ids(list_shards(stage_dir(cfg, src) / "kept")).to_frame()
        out_ids = pl.concat([kept_ids.to_frame(), _ids(removed_shards).to_frame()])
        if len(in_ids) != stats["docs_in"]:
            problems.append(f"{stage}: {src}/kept holds {len(in_ids)} documents but {stage} read {stats['docs_in']}")
        lost = in_ids.join(out_ids, on="id", how="anti")["id"]
        extra = out_ids.join(in_ids, on="id", how="anti")["id"]
        if len(lost):
            problems.append(
                f"{stage}: {len(lost)} document(s) from {src} are neither kept nor removed, e.g. {lost.head(3).to_list()}"
            )
        if len(extra):
            problems.append(
                f"{stage}: {len(extra)} document id(s) did not come from {src}, e.g. {extra.head(3).to_list()}"
            )
    if stats.get("failed_files"):
        notes.append(f"{stage}: {len(stats['failed_files'])} input file(s) could not be read (see stats.json)")
    return problems, notes


def verify_tokens(cfg: Config, stats: dict) -> list[str]:
    """Every document the tokenize stage read is in exactly one shard, and every shard pair is complete."""
    problems = []
    d = stage_dir(cfg, "tokenize")
    total = 0
    for idx in sorted(d.glob("*/*.idx")):
        if not idx.with_suffix(".bin").exists():
            problems.append(f"tokenize: {idx} has no .bin beside it")
        try:
            total += read_index_header(idx)[2]
        except (OSError, ValueError) as e:
            problems.append(f"tokenize: {idx} is not readable: {e}")
    for name in {p.parent.name for p in d.glob("*/*.idx")}:
        if not (d / name / "meta.json").exists():
            problems.append(f"tokenize: dataset {name} has no meta.json")
    copies = stats.get("upsample_copies", 0)  # tokens.upsample writes some training documents more than once
    if total != stats.get("docs_in", 0) + copies:
        problems.append(
            f"tokenize: the shards hold {total} documents but the stage read {stats.get('docs_in')}"
            + (f" and up-sampling added {copies} copies" if copies else "")
        )
    src = stats.get("input_stage")
    if src:
        n = sum(pq.ParquetFile(p).metadata.num_rows for p in list_shards(stage_dir(cfg, src) / "kept"))
        if n != stats.get("docs_in"):
            problems.append(f"tokenize: {src}/kept holds {n} documents but tokenize read {stats.get('docs_in')}")
    return problems


def verify(cfg: Config, deep: bool = False, quiet: bool = False) -> list[str]:
    all_problems: list[str] = []
    for stage in STAGE_ORDER:
        problems, notes = verify_stage(cfg, stage, deep)
        st = stage_state(cfg, stage)
        if not quiet:
            if st.state in ("finished", "stale") and (stage in CORPUS_STAGES or stage == "tokenize"):
                print(f"{stage:<10} {'FAIL' if problems else 'ok'}")
            for n in notes:
                print(f"  note: {n}")
            for p in problems:
                print(f"  FAIL: {p}")
        all_problems.extend(problems)
    if not quiet:
        print(f"verify: {len(all_problems)} problem(s)" if all_problems else "verify: every document accounted for")
    return all_problems
