"""Tokenize throughput per worker, against a bare SentencePiece process, and the tokenizer compression table.

    .venv/bin/python bench/bench_tokenize.py [--repeats 5] [--copies 4] [--out bench/results/tokenize.md]
    .venv/bin/python bench/bench_tokenize.py --input DIR/kept --tokenizer M.model [--code OTHER_CHECKOUT ...]

1. Throughput. The input is either the sample corpus (books, articles, web, notes, code; copied `--copies` times under
   new ids), ingested and given a tokenizer trained on it by this checkout, or `--input`: a stage's `kept/` folder
   (e.g. the 0.1 GB scale corpus's decontam output) with `--tokenizer`. Then, round by round and in turn:
   - `pipeline run tokenize` as a whole process (one task, one worker), once per `--code` checkout (default: this
     one; another checkout runs with its own sources on PYTHONPATH), each into its own workdir;
   - the peer: a bare Python process doing the same job without the pipeline: start, read the same Parquet
     (polars), `SentencePieceProcessor.encode` in batches of 256, count the tokens (nothing written);
   - the start alone: `python -c "import pipeline.cli"` per checkout, and `import polars, sentencepiece`;
   - the command's imports: every module `pipeline run tokenize` has imported when its first document is read
     (`IMPORTS`; datatrove's executor and readers, pyarrow, SentencePiece, ...), per checkout. Its CPU seconds less
     the peer's start are the start cost our process pays on top of the peer's; the table quotes the ratio with that
     difference left out too, so that the cost of the work after the start reads apart from the import floor.
   CPU seconds are the child process's user + system time (getrusage), which the machine's load does not inflate;
   wall seconds are quoted too. Medians; the order of the rows rotates each round. At the end the token shards
   (.bin/.idx) and meta.json of every checkout are compared byte by byte with the first checkout's.
2. Compression (sample input only; `--no-compression` skips it): characters and bytes per token per language on
   held-out text (the sample's web pages, which no tokenizer below was trained on) for: an English-centric base
   (BPE 4k, trained on the English articles and code, standing in for LLaMA's tokenizer, which cannot be downloaded
   here), a Chinese tokenizer (BPE 6k, books and notes), their Chinese-LLaMA-Alpaca style merge, and the pipeline's
   own mixed tokenizer (BPE 8k).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from common import emit, timed_run  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The peer: what a user would write to tokenize the same Parquet without the pipeline.
BARE = """
import sys
import polars as pl
import sentencepiece as spm
texts = pl.read_parquet(sys.argv[1], columns=["text"])["text"].to_list()
sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
n = 0
for i in range(0, len(texts), 256):
    n += sum(len(x) + 1 for x in sp.encode(texts[i : i + 256]))
print(n)
"""
# What `pipeline run tokenize` has imported by its first document: the command line, the runner, the executor and
# the progress step (imported when a stage runs), and the stage's module.
IMPORTS = "import pipeline.cli, pipeline.runner, pipeline.executors, pipeline.progress, stages.tokenize"
# Every corpus stage off but ingest: tokenize reads <workdir>/ingest/kept, which is the prepared input.
STAGES_OFF = ["langid", "filter", "quality", "dedup", "pii", "decontam"]


def run(cmd: list[str], cwd: Path = REPO, env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and stdout of one process run to its end."""
    wall, cpu, stdout, _ = timed_run(cmd, cwd, env)
    return wall, cpu, stdout


def code_env(code: Path) -> dict:
    """The environment a checkout's command runs in: its own packages first on the path."""
    return {**os.environ, "PYTHONPATH": str(code)}


def code_label(code: Path) -> str:
    rev = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    label = rev.stdout.strip() or code.name
    return label + (" + uncommitted changes" if dirty.stdout.strip() else "")


def prepare_sample(tmp: Path, copies: int) -> tuple[Path, list[str]]:
    """The sample corpus copied `copies` times, ingested, and a tokenizer trained on it (one task, one worker):
    returns the workdir holding ingest/ and tokenizer/, and the --set overrides of that run."""
    work = tmp / "prepared"
    base = ["--set", "executor.tasks=1", "--set", "executor.workers=1"]
    for stage in STAGES_OFF:
        base += ["--set", f"stages.{stage}.enabled=false"]
    base += ["--set", "tokenizer.mix_by=source"]  # no langid, so no lang column to mix by
    # copy the corpus: the same text under other ids, so the shards are big enough to time
    for i in range(copies):
        for src in ("books_zh.jsonl.gz", "articles_en.parquet", "notes_zh.txt"):
            d = tmp / "in" / src.split(".")[0]
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "data" / "sample" / src, d / f"{i:03d}_{src}")
    for i, name in zip((0, 2, 3), ("books_zh", "articles_en", "notes_zh")):
        base += ["--set", f"sources.{i}.path={tmp / 'in' / name}"]
    config = ["--config", str(REPO / "pipeline.toml"), "--set", f"run.workdir={work}"]
    run([sys.executable, "-m", "pipeline", "run", "ingest", *config, *base])
    run([sys.executable, "-m", "pipeline", "run", "tokenizer", *config, *base])
    return work, base


def prepare_input(tmp: Path, kept: Path) -> Path:
    """A workdir whose ingest/kept is `kept` (linked, not copied): tokenize reads it as the finished input stage."""
    work = tmp / "prepared"
    (work / "ingest").mkdir(parents=True)
    (work / "ingest" / "kept").symlink_to(kept.resolve(), target_is_directory=True)
    stats = {"stage": "ingest", "finished_at": datetime.now(UTC).isoformat(), "note": f"linked from {kept}"}
    (work / "ingest" / "stats.json").write_text(json.dumps(stats))
    return work


def shard_differences(a: Path, b: Path) -> list[str]:
    """Token shards and meta.json files that are not byte-identical between two tokenize folders."""

    def shard_files(d: Path) -> set[Path]:  # tasks/*.json hold each task's seconds: not compared
        return {p.relative_to(d) for p in d.glob("*/*") if p.suffix in (".bin", ".idx") or p.name == "meta.json"}

    files = shard_files(a) | shard_files(b)
    return [
        str(f)
        for f in sorted(files)
        if not ((a / f).is_file() and (b / f).is_file() and filecmp.cmp(a / f, b / f, False))
    ]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def throughput(args, tmp: Path) -> tuple[list[str], Path | None, Path | None]:
    codes = [c.resolve() for c in args.code] or [REPO]
    if args.input:
        prepared, overrides = (
            prepare_input(tmp, args.input),
            ["--set", "executor.tasks=1", "--set", "executor.workers=1"],
        )
        for stage in STAGES_OFF:
            overrides += ["--set", f"stages.{stage}.enabled=false"]
        model = args.tokenizer.resolve()
    else:
        prepared, overrides = prepare_sample(tmp, args.copies)
        model = prepared / "tokenizer" / "tokenizer.model"
    overrides += ["--set", f"tokens.tokenizer={model}"]
    kept_glob = str(prepared / "ingest" / "kept" / "*.parquet")

    workdirs = [tmp / f"run-{i}" for i in range(len(codes))]
    for w in workdirs:
        w.mkdir()
        (w / "ingest").symlink_to(prepared / "ingest", target_is_directory=True)

    rows = [("command", i) for i in range(len(codes))] + [("bare", None)]
    rows += [("start", i) for i in range(len(codes))] + [("bare start", None)]
    rows += [("imports", i) for i in range(len(codes))]
    wall: dict = {r: [] for r in rows}
    cpu: dict = {r: [] for r in rows}
    task_s: dict = {i: [] for i in range(len(codes))}
    load_before = loadavg()
    stats = tokens = None
    for rnd in range(args.repeats):
        for row in rows[rnd % len(rows) :] + rows[: rnd % len(rows)]:  # rotate, so load hits every row alike
            kind, i = row
            if kind == "command":
                shutil.rmtree(workdirs[i] / "tokenize", ignore_errors=True)
                cmd = [sys.executable, "-m", "pipeline", "run", "tokenize", "--config", str(codes[i] / "pipeline.toml")]
                cmd += [*overrides, "--set", f"run.workdir={workdirs[i]}"]
                w, c, _ = run(cmd, cwd=codes[i], env=code_env(codes[i]))
                stats = json.loads((workdirs[i] / "tokenize" / "stats.json").read_text())
                task_s[i].append(stats["task_seconds"])
            elif kind == "bare":
                w, c, out = run([sys.executable, "-c", BARE, kept_glob, str(model)])
                tokens = int(out)
            elif kind == "start":
                w, c, _ = run([sys.executable, "-c", "import pipeline.cli"], cwd=codes[i], env=code_env(codes[i]))
            elif kind == "imports":
                w, c, _ = run([sys.executable, "-c", IMPORTS], cwd=codes[i], env=code_env(codes[i]))
            else:
                w, c, _ = run([sys.executable, "-c", "import polars, sentencepiece"])
            wall[row].append(w)
            cpu[row].append(c)
    load_after = loadavg()
    assert tokens == stats["tokens"], (tokens, stats["tokens"])
    mb = stats["bytes_in"] / 1e6

    differences = {
        i: shard_differences(workdirs[0] / "tokenize", workdirs[i] / "tokenize") for i in range(1, len(codes))
    }
    bare_cpu = statistics.median(cpu[("bare", None)])
    source = f"`{args.input}`" if args.input else f"the sample corpus x{args.copies} (books, articles, notes copied)"
    lines = [
        f"### Throughput: {source}, {stats['docs_in']:,} documents, {mb:.2f} MB of text, {tokens:,} tokens",
        "",
        f"Load average {load_before} before, {load_after} after; {args.repeats} rounds, medians; one task, one worker.",
        "",
        "| process | code | wall s | MB/s wall | CPU s | MB per CPU-s | vs bare (CPU) | per-round ratios | task_seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    labels = [code_label(c) for c in codes]
    for row in rows:
        kind, i = row
        w, c = statistics.median(wall[row]), statistics.median(cpu[row])
        name = {
            "command": "`pipeline run tokenize` (start, read Parquet, encode, write .bin/.idx, meta.json)",
            "bare": "bare process: start, read the Parquet (polars), `encode` in batches of 256",
            "start": '`python -c "import pipeline.cli"`',
            "bare start": '`python -c "import polars, sentencepiece"`',
            "imports": f'`python -c "{IMPORTS}"`: the command\'s imports',
        }[kind]
        code = labels[i] if i is not None else ""
        if kind in ("command", "bare"):
            ratio = f"{bare_cpu / c:.2f}x"
            rounds = sorted(b / x for b, x in zip(cpu[("bare", None)], cpu[row]))
            spread = f"{rounds[0]:.2f}-{rounds[-1]:.2f}"
            task = f"{statistics.median(task_s[i]):.2f}" if kind == "command" else ""
            lines.append(
                f"| {name} | {code} | {w:.2f} | {mb / w:.2f} | {c:.2f} | {mb / c:.2f} | {ratio} | {spread} | {task} |"
            )
        else:
            lines.append(f"| {name} | {code} | {w:.2f} | | {c:.2f} | | | | |")
    lines.append("")
    bare_start = statistics.median(cpu[("bare start", None)])
    for i, label in enumerate(labels):
        command, imports = statistics.median(cpu[("command", i)]), statistics.median(cpu[("imports", i)])
        extra = imports - bare_start
        lines.append(
            f"{label}: the command's imports take {imports:.2f} CPU s, the peer's start {bare_start:.2f}: "
            f"{extra:.2f} CPU s more. Without that difference the command takes {command - extra:.2f} CPU s, "
            f"{bare_cpu / (command - extra):.2f}x bare (medians)."
        )
    lines.append("")
    for i, diff in differences.items():
        verdict = "byte-identical" if not diff else f"DIFFERENT: {', '.join(diff[:10])}"
        lines.append(f"Token shards and meta.json of {labels[i]} against {labels[0]}: {verdict}.")
    lines.append("")
    failed = any(differences.values())
    return lines, (None if args.input else prepared), model if not failed else None


def compression(tmp: Path, prepared: Path, model: Path) -> list[str]:
    import polars as pl

    from model.vocab import compare, compare_table
    from stages.tokenizer import train_sentencepiece

    kept = pl.read_parquet(prepared / "ingest" / "kept" / "*.parquet")
    heldout = kept.filter(pl.col("source") == "web").select("text", "lang", "kind")
    heldout.write_parquet(tmp / "heldout.parquet")
    for name, sources, vocab in (("en_base", ["articles_en", "code"], 4000), ("zh", ["books_zh", "notes_zh"], 6000)):
        lines = [ln for t in kept.filter(pl.col("source").is_in(sources))["text"] for ln in t.split("\n") if ln.strip()]
        (tmp / f"{name}.txt").write_text("\n".join(lines))
        train_sentencepiece(tmp / f"{name}.txt", tmp / f"{name}.model", vocab, character_coverage=0.995)
    run([sys.executable, "-m", "pipeline", "tokenizer", "merge", "--base", str(tmp / "en_base.model"),
         "--add", str(tmp / "zh.model"), "--out", str(tmp / "merged.model")])  # fmt: skip
    models = [tmp / "en_base.model", tmp / "zh.model", tmp / "merged.model", model]
    rows = compare([str(m) for m in models], tmp / "heldout.parquet")
    for r in rows:
        r["model"] = Path(r["model"]).stem.replace("tokenizer", "pipeline tokenizer (mixed)")
    return [
        "### Compression on held-out text (the sample's web pages; language by Han-character share)",
        "",
        compare_table(rows),
    ]


def main() -> None:
    import sentencepiece as spm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--copies", type=int, default=4, help="sample input: copies of the sample corpus (default 4)")
    ap.add_argument("--input", type=Path, help="a stage's kept/ folder to tokenize instead of the sample")
    ap.add_argument("--tokenizer", type=Path, help="with --input: the SentencePiece model to encode with")
    ap.add_argument(
        "--code",
        type=Path,
        action="append",
        default=[],
        help="a checkout whose `pipeline run tokenize` to time (repeatable; default: this one), e.g. a worktree of "
        "the unchanged code; its token shards are compared with the first one's",
    )
    ap.add_argument("--no-compression", dest="compression", action="store_false", help="skip the compression table")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if bool(args.input) != bool(args.tokenizer):
        ap.error("--input and --tokenizer go together")
    out_lines = [
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, sentencepiece {spm.__version__}. Command: `{' '.join(sys.argv)}`.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="bench_tokenize_") as tmp:
        tmp = Path(tmp)
        lines, prepared, model = throughput(args, tmp)
        out_lines += lines
        if model is None:
            emit("\n".join(out_lines), args.out)
            raise SystemExit("the token shards differ between the checkouts")
        if args.compression and prepared is not None:
            out_lines += compression(tmp, prepared, model)
    emit("\n".join(out_lines), args.out)


if __name__ == "__main__":
    main()
