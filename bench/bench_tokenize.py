"""Tokenize throughput per worker and the tokenizer compression table.

    .venv/bin/python bench/bench_tokenize.py [--repeats 3] [--copies 4] [--out bench/results/tokenize.md]

1. Throughput: the sample corpus is ingested (books, articles, web, notes, code; copied `--copies` times under new
   ids), a tokenizer is trained on it, then `pipeline run tokenize` runs as one task on one worker. Side by side,
   in the same run, bare SentencePiece `encode` (batched, one thread) on the same documents, with nothing written:
   the ceiling for the stage. Medians of `--repeats`.
2. Compression: characters and bytes per token per language on held-out text (the sample's web pages, which no
   tokenizer below was trained on) for: an English-centric base (BPE 4k, trained on the English articles and code,
   standing in for LLaMA's tokenizer, which cannot be downloaded here), a Chinese tokenizer (BPE 6k, books and
   notes), their Chinese-LLaMA-Alpaca style merge, and the pipeline's own mixed tokenizer (BPE 8k).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if r.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")


def main() -> None:
    import polars as pl
    import sentencepiece as spm

    from model.vocab import compare, compare_table
    from stages.tokenizer import train_sentencepiece

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out_lines = [
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}, "
        f"sentencepiece {spm.__version__}; one task on one worker.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work = tmp / "out"
        base = ["--config", str(REPO / "pipeline.toml"), "--set", f"run.workdir={work}", "--set", "executor.tasks=1"]
        base += ["--set", "executor.workers=1", "--set", "stages.langid.enabled=false"]
        base += ["--set", "stages.filter.enabled=false"]
        # tokenizer and tokenize read the nearest enabled stage before them: with these off, ingest's output
        for stage in ("dedup", "pii", "decontam"):
            base += ["--set", f"stages.{stage}.enabled=false"]
        base += ["--set", "tokenizer.mix_by=source"]  # no langid, so no lang column to mix by
        # copy the corpus: the same text under other ids, so the shards are big enough to time
        for i in range(args.copies):
            for src in ("books_zh.jsonl.gz", "articles_en.parquet", "notes_zh.txt"):
                d = tmp / "in" / src.split(".")[0]
                d.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / "data" / "sample" / src, d / f"{i:03d}_{src}")
        over = []
        for i, name in enumerate(("books_zh", "articles_en", "notes_zh")):
            over += ["--set", f"sources.{[0, 2, 3][i]}.path={tmp / 'in' / name}"]
        run([sys.executable, "-m", "pipeline", "run", "ingest", *base, *over])
        run([sys.executable, "-m", "pipeline", "run", "tokenizer", *base, *over])
        kept = pl.read_parquet(work / "ingest" / "kept" / "*.parquet")
        texts = kept["text"].to_list()
        model = work / "tokenizer" / "tokenizer.model"
        sp = spm.SentencePieceProcessor(model_file=str(model))

        stage_s, task_s, bare_s = [], [], []
        for _ in range(args.repeats):  # stage and bare encode take turns, so that load hits both alike
            shutil.rmtree(work / "tokenize", ignore_errors=True)
            t = time.perf_counter()
            run([sys.executable, "-m", "pipeline", "run", "tokenize", *base, *over])
            stage_s.append(time.perf_counter() - t)
            stats = json.loads((work / "tokenize" / "stats.json").read_text())
            task_s.append(stats["task_seconds"])  # the task itself: load the model, read, encode, write the shards
            t = time.perf_counter()
            n = 0
            for i in range(0, len(texts), 256):
                n += sum(len(x) + 1 for x in sp.encode(texts[i : i + 256]))
            bare_s.append(time.perf_counter() - t)
        tokens = stats["tokens"]
        assert n == tokens, (n, tokens)
        s, b, ts = statistics.median(stage_s), statistics.median(bare_s), statistics.median(task_s)
        ratios = sorted(bs / x for bs, x in zip(bare_s, task_s))
        out_lines += [
            f"### Throughput ({len(texts):,} documents, {sum(map(len, texts)):,} characters, {tokens:,} tokens)",
            "",
            "| implementation | seconds | tokens/s per worker | relative |",
            "| --- | ---: | ---: | ---: |",
            f"| `pipeline run tokenize` (process start, read Parquet, encode, write .bin/.idx, meta.json) | {s:.2f} | {tokens / s:,.0f} | {b / s:.2f} |",
            f"| the tokenize task inside it (`task_seconds` in stats.json: load the model, read Parquet, encode, write .bin/.idx) | {ts:.2f} | {tokens / ts:,.0f} | {b / ts:.2f} (per-round ratios {ratios[0]:.2f}-{ratios[-1]:.2f}) |",
            f"| bare `SentencePieceProcessor.encode`, batches of 256, in memory | {b:.2f} | {tokens / b:,.0f} | 1.00 |",
            "",
        ]

        # compression table
        heldout = kept.filter(pl.col("source") == "web").select("text", "lang", "kind")
        heldout.write_parquet(tmp / "heldout.parquet")
        for name, sources, vocab in (
            ("en_base", ["articles_en", "code"], 4000),
            ("zh", ["books_zh", "notes_zh"], 6000),
        ):
            lines = [
                ln for t in kept.filter(pl.col("source").is_in(sources))["text"] for ln in t.split("\n") if ln.strip()
            ]
            (tmp / f"{name}.txt").write_text("\n".join(lines))
            train_sentencepiece(tmp / f"{name}.txt", tmp / f"{name}.model", vocab, character_coverage=0.995)
        run([sys.executable, "-m", "pipeline", "tokenizer", "merge", "--base", str(tmp / "en_base.model"),
             "--add", str(tmp / "zh.model"), "--out", str(tmp / "merged.model")])  # fmt: skip
        models = [tmp / "en_base.model", tmp / "zh.model", tmp / "merged.model", model]
        rows = compare([str(m) for m in models], tmp / "heldout.parquet")
        for r in rows:
            r["model"] = Path(r["model"]).stem.replace("tokenizer", "pipeline tokenizer (mixed)")
        out_lines += [
            "### Compression on held-out text (the sample's web pages; language by Han-character share)",
            "",
            compare_table(rows),
        ]
    text = "\n".join(out_lines)
    emit(text, args.out)


if __name__ == "__main__":
    main()
