"""The chain langid -> filter -> dedup -> pii -> decontam -> tokenize on Chinese text, each stage as a whole
`pipeline run <stage>` process (one task, one worker): wall and CPU seconds per stage, MB/s, and where the time goes.

    .venv/bin/python bench/bench_chain.py --mb 13 --mb 50 [--rounds 1] [--code CHECKOUT] --out bench/results/chain.md

Input: the Chinese documents (ground truth `lang = zh`) of the 0.1 GB scale corpus (`bench/make_corpus.py --size
0.1GB`), taken in corpus order until `--mb` megabytes of UTF-8 text, read from an ingested copy of that corpus
(`--ingested`, a finished ingest stage's kept/ folder) and written as one Parquet source. Outside the timing, once
per size: `pipeline run ingest` on that source, and the tokenizer, trained by `pipeline run tokenizer` on the
ingested documents (mixed by source; the tokenizer is a one-off on a bounded sample, not part of the chain);
tokenize then encodes with it (`tokens.tokenizer`). Timed, in order, for each round in a fresh workdir sharing that
ingest: langid, filter, dedup, pii, decontam, tokenize, each `python -m pipeline run <stage>` with the repository's
pipeline.toml (sources replaced, `executor.tasks = 1`, `executor.workers = 1`; the chain's other settings as the
sample run has them). CPU seconds are the child process's user + system time (getrusage), which the machine's load
does not inflate; wall seconds are what it took on this machine at its load, quoted with the load average.

Process start: right after a stage finishes, the same command is run again; the stage is finished, so it starts,
loads and checks the config and the stage's state, and exits ("already finished"): its CPU and wall seconds are
what every stage command pays before its first document.

`--one-command`: each round also runs the chain as a user runs it, `pipeline run all` in a fresh workdir sharing
the same ingest (finished: `run all` passes over it) with the tokenizer stage disabled (tokenize encodes with the
tokenizer trained outside the timing, as above), so langid -> tokenize run in one process that pays the start
once. The per-stage chain and the one command take turns (which goes first alternates by round); the table gets a
row for the one command beside the chain's, with its MB/s wall and MB per CPU-s and the ratio to the chain's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from common import emit, timed_run  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
CHAIN = ["langid", "filter", "dedup", "pii", "decontam", "tokenize"]
CORPUS = Path("/work/scale_data/c0.1")
INGESTED = Path("/work/scale_data/s3run0.1/out/ingest/kept")


def run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and stderr of one process run to its end (the stage's log is on stderr)."""
    wall, cpu, _, stderr = timed_run(cmd, cwd, env)
    return wall, cpu, stderr


def chinese_documents(corpus: Path, ingested: Path, mb: float) -> pa.Table:
    """The corpus's `lang = zh` documents in corpus order, as ingested, until `mb` MB of text."""
    truth = pl.read_parquet(corpus / "ground_truth.parquet", columns=["id", "lang"]).with_row_index("order")
    docs = pl.read_parquet(ingested / "*.parquet", columns=["id", "text", "url"])
    zh = (
        docs.join(truth.filter(pl.col("lang") == "zh"), on="id")
        .sort("order")
        .with_columns(pl.col("text").str.len_bytes().cum_sum().alias("_bytes"))
    )
    zh = zh.filter(pl.col("_bytes").shift(1, fill_value=0) < mb * 1e6)
    return zh.select("id", "text", "url").to_arrow()


def overrides(workdir: Path, source_dir: Path) -> list[str]:
    """--set options of every command: one Parquet source, one task, one worker."""
    sets = [
        f"run.workdir={workdir}",
        "executor.tasks=1",
        "executor.workers=1",
        # the sample's sources replaced by one: the Chinese documents, with their corpus ids
        f'sources=[{{name = "zh", path = "{source_dir}", format = "parquet", text_field = "text", '
        'id_field = "id", url_field = "url", kind = "text"}]',
    ]
    return [a for s in sets for a in ("--set", s)]


def prepare(size_dir: Path, table: pa.Table, python: str, code: Path, env: dict) -> tuple[Path, Path]:
    """Writes the source, ingests it and trains the tokenizer (both outside the timing); returns the ingest folder
    and the tokenizer model."""
    source = size_dir / "source"
    source.mkdir(parents=True)
    rows = max(1, -(-table.num_rows // 4))  # four files, as a corpus comes in several
    for i, start in enumerate(range(0, table.num_rows, rows)):
        pq.write_table(table.slice(start, rows), source / f"zh-{i:02d}.parquet", compression="zstd")
    work = size_dir / "prepared"
    base = [python, "-m", "pipeline", "run", "--config", str(code / "pipeline.toml"), *overrides(work, source)]
    run([*base[:4], "ingest", *base[4:]], code, env)
    off = [a for s in ("langid", "filter", "dedup", "pii", "decontam") for a in ("--set", f"stages.{s}.enabled=false")]
    run([*base[:4], "tokenizer", *base[4:], *off, "--set", "tokenizer.mix_by=source"], code, env)
    return work / "ingest", work / "tokenizer" / "tokenizer.model"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def code_label(code: Path) -> str:
    rev = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return (rev.stdout.strip() or code.name) + (" + uncommitted changes" if dirty.stdout.strip() else "")


def chain_round(workdir: Path, ingest: Path, model: Path, source: Path, python: str, code: Path, env: dict) -> dict:
    """One run of the chain in a fresh workdir: per stage wall, CPU, start wall and CPU, and its stats.json."""
    workdir.mkdir(parents=True)
    (workdir / "ingest").symlink_to(ingest, target_is_directory=True)
    cmd = [python, "-m", "pipeline", "run", "STAGE", "--config", str(code / "pipeline.toml")]
    cmd += [*overrides(workdir, source), "--set", f"tokens.tokenizer={model}"]
    out = {}
    for stage in CHAIN:
        c = [stage if a == "STAGE" else a for a in cmd]
        load = loadavg()
        wall, cpu, _ = run(c, code, env)
        start_wall, start_cpu, log = run(c, code, env)  # the stage is finished now: start, check, exit
        assert "already finished" in log, log[-2000:]
        stats = json.loads((workdir / stage / "stats.json").read_text())
        out[stage] = {"wall": wall, "cpu": cpu, "start_wall": start_wall, "start_cpu": start_cpu, "load": load}
        out[stage].update({k: stats.get(k) for k in ("docs_in", "bytes_in", "kept", "removed", "task_seconds")})
    return out


def one_command_round(
    workdir: Path, ingest: Path, model: Path, source: Path, python: str, code: Path, env: dict
) -> dict:
    """`pipeline run all` in a fresh workdir sharing the ingest: langid -> tokenize in one process. Its wall and
    CPU seconds; ingest must be passed over as finished, and every chain stage must have run."""
    workdir.mkdir(parents=True)
    (workdir / "ingest").symlink_to(ingest, target_is_directory=True)
    cmd = [python, "-m", "pipeline", "run", "all", "--config", str(code / "pipeline.toml")]
    cmd += [*overrides(workdir, source), "--set", f"tokens.tokenizer={model}", "--set", "tokenizer.enabled=false"]
    load = loadavg()
    wall, cpu, log = run(cmd, code, env)
    assert "ingest: already finished" in log, log[-2000:]
    ran = [s for s in CHAIN if (workdir / s / "stats.json").exists()]
    assert ran == CHAIN, f"`run all` ran {ran}, not {CHAIN}"
    return {"wall": wall, "cpu": cpu, "load": load}


def one_command_row(rounds: list[dict], ones: list[dict], mb_label: str) -> str:
    """The one command's row, beside the chain row of `table` (the same rounds' medians)."""
    mb = rounds[0][CHAIN[0]]["bytes_in"] / 1e6
    wall, cpu = (statistics.median(o[k] for o in ones) for k in ("wall", "cpu"))
    chain_wall = sum(statistics.median(r[s]["wall"] for r in rounds) for s in CHAIN)
    chain_cpu = sum(statistics.median(r[s]["cpu"] for r in rounds) for s in CHAIN)
    return (
        f"| **one command** (`pipeline run all`, {mb_label}) | {rounds[0][CHAIN[0]]['docs_in']:,} | {mb:.2f} | "
        f"{wall:.1f} | {cpu:.1f} | {mb / wall:.2f} | {mb / cpu:.2f} | one start | chain/one: CPU "
        f"{chain_cpu / cpu:.2f}x, wall {chain_wall / wall:.2f}x | {ones[-1]['load']} |"
    )


def table(rounds: list[dict], mb_label: str) -> list[str]:
    def med(stage: str, key: str) -> float:
        return statistics.median(r[stage][key] for r in rounds)

    lines = [
        "| stage | docs in | MB in | wall s | CPU s | MB/s wall | MB per CPU-s | start: CPU s (wall s) | start, share "
        "of CPU | load avg at start |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    total_wall = total_cpu = total_start = 0.0
    for stage in CHAIN:
        mb = rounds[0][stage]["bytes_in"] / 1e6
        wall, cpu, s_cpu, s_wall = (
            med(stage, "wall"),
            med(stage, "cpu"),
            med(stage, "start_cpu"),
            med(stage, "start_wall"),
        )
        total_wall, total_cpu, total_start = total_wall + wall, total_cpu + cpu, total_start + s_cpu
        lines.append(
            f"| {stage} | {rounds[0][stage]['docs_in']:,} | {mb:.2f} | {wall:.1f} | {cpu:.1f} | {mb / wall:.2f} | "
            f"{mb / cpu:.2f} | {s_cpu:.2f} ({s_wall:.1f}) | {s_cpu / cpu:.0%} | {rounds[-1][stage]['load']} |"
        )
    chain_mb = rounds[0][CHAIN[0]]["bytes_in"] / 1e6
    lines.append(
        f"| **chain** ({mb_label}: langid's input) | {rounds[0][CHAIN[0]]['docs_in']:,} | {chain_mb:.2f} | "
        f"{total_wall:.1f} | {total_cpu:.1f} | {chain_mb / total_wall:.2f} | {chain_mb / total_cpu:.2f} | "
        f"{total_start:.2f} | {total_start / total_cpu:.0%} | |"
    )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, action="append", help="MB of Chinese text per run (repeatable; default 13)")
    ap.add_argument("--rounds", type=int, default=1, help="chain runs per size; medians (default 1)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help=f"the scale corpus (default {CORPUS})")
    ap.add_argument(
        "--ingested", type=Path, default=INGESTED, help=f"that corpus's ingested kept/ folder (default {INGESTED})"
    )
    ap.add_argument("--code", type=Path, default=REPO, help="the checkout whose `pipeline` to run (default: this one)")
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a temporary folder, removed after)")
    ap.add_argument("--out", type=Path, help="write the Markdown result here too")
    ap.add_argument(
        "--one-command",
        action="store_true",
        help="each round also times `pipeline run all` (langid -> tokenize in one process) on the same input",
    )
    args = ap.parse_args()
    code = args.code.resolve()
    env = {**os.environ, "PYTHONPATH": str(code)}
    python = sys.executable
    lines = [
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f". Code: {code_label(code)}. Command: `{' '.join(sys.argv)}`. Each stage one task on one worker "
        "(`executor.tasks = 1`, `executor.workers = 1`), in its own `pipeline run <stage>` process.",
        "",
    ]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_chain_"))
    try:
        for mb in args.mb or [13.0]:
            size_dir = work / f"{mb:g}MB"
            if size_dir.exists():
                shutil.rmtree(size_dir)
            docs = chinese_documents(args.corpus, args.ingested, mb)
            t = time.perf_counter()
            ingest, model = prepare(size_dir, docs, python, code, env)
            prep_s = time.perf_counter() - t
            rounds, ones = [], []
            args_of = (ingest, model, size_dir / "source", python, code, env)
            for r in range(args.rounds):
                # the per-stage chain and the one command take turns going first
                for kind in ("one", "chain") if args.one_command and r % 2 else ("chain", "one"):
                    if kind == "chain":
                        rounds.append(chain_round(size_dir / f"round-{r}", *args_of))
                    elif args.one_command:
                        ones.append(one_command_round(size_dir / f"one-{r}", *args_of))
            rows = table(rounds, f"{mb:g} MB")
            if ones:
                rows.append(one_command_row(rounds, ones, f"{mb:g} MB"))
            section = [
                f"### {mb:g} MB: {docs.num_rows:,} Chinese documents of `{args.corpus}`",
                "",
                f"{args.rounds} round(s), medians. Outside the timing: ingest and tokenizer training, {prep_s:.0f} s.",
                "",
                *rows,
                "",
            ]
            print("\n".join(section), file=sys.stderr)  # each size as soon as it is done
            lines += section
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
