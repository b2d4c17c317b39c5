"""Decontamination throughput at about a million benchmark n-grams, against datatrove's n-gram decontamination,
one worker, Chinese documents (issue 13).

    .venv/bin/python bench/bench_decontam_1m.py [--mb 4] [--ngrams 1000000] [--rounds 3] [--out FILE]

Documents: Chinese documents (lang zh) of the scale corpus's pii output (/work/scale_data/run0.1/out/pii/kept, made
by bench/make_corpus.py and `pipeline run`), the first `--mb` MB of UTF-8 in file order. Benchmark: the bundled
MMLU and CHARM samples plus, as items, the distinct paragraphs (>= 20 characters) of the corpus's Chinese documents
each with its characters shuffled (seeded; shuffled again, pass after pass, when the distinct paragraphs give
too few), until the index holds about `--ngrams` n-grams.

Rows, taking turns round by round (medians; wall and CPU seconds of this process; only the filter steps are
timed, no Parquet I/O):
- ours, `Decontaminate` as the stage runs it (documents hashed 64 at a time, `filter_batch`);
- ours, one document at a time (`batch_size=1`: the code before batching);
- datatrove `NGramsDecontFilter`, language "zh" (its default word 12-grams; datatrove's zh word tokenizer, spaCy
  with segmenter "jieba", gave clause-sized tokens in this install: 初，鄭武公娶於申，曰武姜 -> 初 / 鄭武公娶於申 /
  曰武姜, so its index holds far fewer, much longer n-grams than ours), with an index
  of the same items made by `NGramsDecontIndexer.compute_hashes` (the indexer's own hashing, called directly:
  the indexer's `run` insists on fetching lighteval tasks, which are not installed and not reachable offline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import emit, peer_table  # bench/ is on sys.path when run as a script
from datatrove.data import Document
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
from datatrove.utils.hashing import create_hash_func
from datatrove.utils.word_tokenizers import load_word_tokenizer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stages.decontam import BenchmarkFile, DecontamConfig, Decontaminate, build_index  # noqa: E402

CORPUS = Path("/work/scale_data/run0.1/out/pii/kept")
BENCH = REPO / "data" / "sample" / "benchmarks"
MMLU = BenchmarkFile(
    name="mmlu", path=str(BENCH / "mmlu.jsonl"), format="jsonl", fields=["question", "A", "B", "C", "D"]
)
CHARM = BenchmarkFile(
    name="charm_zh", path=str(BENCH / "charm_zh.csv"), format="csv", fields=["question", "A", "B", "C", "D", "E", "F"]
)


def chinese_texts(files: list[Path]):
    for path in files:
        table = pq.read_table(path, columns=["text", "lang"])
        for text, lang in zip(table.column("text").to_pylist(), table.column("lang").to_pylist(), strict=True):
            if lang == "zh":
                yield text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=4.0)
    p.add_argument("--ngrams", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    files = sorted(CORPUS.glob("*.parquet"))
    docs, budget = [], args.mb * 1e6
    for text in chinese_texts(files):
        docs.append(text)
        budget -= len(text.encode())
        if budget <= 0:
            break
    mb = sum(len(t.encode()) for t in docs) / 1e6
    # Items: distinct paragraphs of the documents with their characters shuffled (seeded): Chinese text's
    # character statistics, but (like real benchmark items) almost never in a document. The scale corpus is made
    # of the sample's paragraphs recombined, so its paragraphs as they are would flag most documents.
    rng = random.Random(0)
    distinct_paragraphs = {}
    for text in chinese_texts(files[::-1]):
        for para in text.split("\n"):
            para = para.strip()
            if len(para) >= 20:
                distinct_paragraphs[para] = None
    paragraphs, estimate = [], 0
    while estimate < args.ngrams:  # another shuffle of each paragraph when the distinct ones are not enough
        for para in distinct_paragraphs:
            chars = list(para)
            rng.shuffle(chars)
            paragraphs.append("".join(chars))
            estimate += max(0, sum(c.isalnum() for c in para) - 7)  # its character 8-grams (letters and digits)
            if estimate >= args.ngrams:
                break

    with tempfile.TemporaryDirectory(prefix="bench_decontam_") as tmp:
        tmp = Path(tmp)
        items = tmp / "paragraphs.jsonl"
        items.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in paragraphs))
        para_bench = BenchmarkFile(name="paragraphs", path=str(items), format="jsonl", fields=["text"])
        benches = [(MMLU, Path(MMLU.path)), (CHARM, Path(CHARM.path)), (para_bench, items)]
        cfg = DecontamConfig(enabled=True, benchmarks=[b for b, _ in benches])
        meta = build_index(cfg, benches, tmp / "ours")
        ours = Decontaminate(cfg, tmp / "ours")
        ours_one = Decontaminate(cfg, tmp / "ours", batch_size=1)

        dt_config = NGramsDecontConfig()
        hasher = types.SimpleNamespace(  # what NGramsDecontIndexer.compute_hashes reads from its instance
            tokenizer=load_word_tokenizer("zh"), config=dt_config, hash_func=create_hash_func(dt_config.hash_config)
        )
        (tmp / "dt").mkdir()
        dt_items = 0
        for name, path in ((MMLU.name, BENCH / "mmlu.jsonl"), ("paragraphs", items)):
            hashes: set[int] = set()
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                text = row["text"] if "text" in row else " ".join(str(row[k]) for k in MMLU.fields)
                hashes.update(NGramsDecontIndexer.compute_hashes(hasher, text))
                dt_items += 1
            arr = np.array(sorted(hashes), dtype=dt_config.hash_config.np_descr)
            arr.tofile(tmp / "dt" / f"{name}.index.hashes")
        dt_ngrams = sum((tmp / "dt" / f).stat().st_size // 8 for f in os.listdir(tmp / "dt"))
        stock = NGramsDecontFilter(str(tmp / "dt"), config=dt_config, language="zh")

        rows = {
            "ours (batches of 64, as the stage runs)": ours,
            "ours, one document at a time": ours_one,
            "datatrove NGramsDecontFilter (zh, jieba word 12-grams)": stock,
        }
        for step in rows.values():  # load indexes and tokenizers outside the timing
            list(step.run(iter([Document(text=docs[0], id="warm", metadata={})])))
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        kept: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, step in rows.items():
                batch = [Document(text=t, id=str(i), metadata={}) for i, t in enumerate(docs)]
                wall, cpu = time.perf_counter(), time.process_time()
                kept[name] = sum(1 for _ in step.run(iter(batch)))
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))

    peer = "datatrove NGramsDecontFilter (zh, jieba word 12-grams)"
    lines = [
        f"{len(docs):,} Chinese documents, {mb:.2f} MB of UTF-8; our index: {meta['ngrams']:,} n-grams of "
        f"{meta['items']:,} items (bundled MMLU + CHARM + {len(paragraphs):,} paragraphs); datatrove's: "
        f"{dt_ngrams:,} word 12-gram hashes of the MMLU items and the same paragraphs. {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds",
        "",
        *peer_table(
            times, peer, mb, "step", "kept", {name: f"{kept[name]} of {len(docs)}" for name in times}, digits=2
        ),
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
