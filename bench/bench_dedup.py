"""Near-duplicate detection: signature speed, and precision/recall against exact Jaccard labels.

    .venv/bin/python bench/bench_dedup.py [--repeats 3] [--variants 300] [--out bench/results/dedup.md]
        [--speed-only] [--before /path/to/other/checkout] [--input <workdir>/filter/kept --mb 2.5]

1. Signature speed per worker (one process), side by side in one run (round-robin over the repeats) on the same
   Chinese documents (the sample's books_zh, 580 real documents, or with --input the first --mb MB of Chinese
   documents of a stage's kept shards): ours (`stages/dedup_rules.py`: vectorized character 13-gram shingles,
   MinHash, band keys once for the whole stack; the default 14 x 7 and the preset mapcc 9 x 13), with --before the
   same from another checkout's dedup_rules.py; MAP-CC's way (datasketch `MinHash(num_perm=128)`, one `update` per
   13-character shingle); datatrove's stock `MinhashDedupSignature` (shingling + signature, its defaults, no file
   writing). Medians of `--repeats` of wall time and of the process's CPU time; the ratios are taken on CPU time,
   which the load of other processes on a shared machine does not inflate.
2. Quality of the whole near-duplicate step (stage `dedup` through the runner, exact dedup off so that every pair
   is judged by MinHash): the corpus is the 580 documents plus `--variants` copies of random documents with random
   characters replaced (0.05% to 2% of the text: with 13-grams J ~ (1 - 13r) / (1 + 13r), so true similarities spread
   from about 0.6 to 1 around the 0.85 line). Every
   pair of documents is labelled by its exact character-13-gram Jaccard (sparse shingle matrix product). A labelled
   pair (Jaccard >= 0.85) counts as found when the stage puts both documents in one cluster (one is removed as a
   near duplicate of the other's keeper). Precision: of the pairs the stage put in one cluster, the share with
   Jaccard >= 0.85. Reported for MAP-CC's 9 x 13 bands with every LSH candidate accepted (verify = "none"), with
   the default signature verification (0.8), with exact verification (0.85), and the same for a steeper 20 x 13.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import emit  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def load_docs(input_dir: Path | None = None, mb: float = 0.0) -> list[str]:
    """The sample's books_zh, or the Chinese documents of a stage's kept Parquet shards up to `mb` MB of UTF-8."""
    if input_dir is None:
        with gzip.open(REPO / "data" / "sample" / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line)["content"] for line in f]
    docs, size = [], 0
    for shard in sorted(input_dir.glob("*.parquet")):
        table = pq.read_table(shard, columns=["text", "lang"])
        for text, lang in zip(table.column("text").to_pylist(), table.column("lang").to_pylist(), strict=True):
            if lang == "zh" and size < mb * 1e6:
                docs.append(text)
                size += len(text.encode("utf-8"))
    return docs


def load_rules(checkout: Path | None):
    """stages/dedup_rules.py of this repository, or of another checkout (to time the code before a change in the
    same run), loaded under its own module name; its own imports (stages.nfkc, model.han) come from this one."""
    if checkout is None:
        from stages import dedup_rules

        return dedup_rules
    spec = importlib.util.spec_from_file_location("dedup_rules_before", checkout / "stages" / "dedup_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signature_speed(
    docs: list[str], repeats: int, before: Path | None = None, peers: bool = True
) -> list[tuple[str, float, float]]:
    """(name, median wall seconds, median CPU seconds of this process) per implementation, taking turns each
    round. The first round also times the one-off set-up (our fold table), so the medians leave it out."""
    import unicodedata

    from datasketch import MinHash
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    def ours(rules, bands: int, rows: int):  # as the signature step does: per document, band keys once per task
        a, b = rules.minhash_params(bands * rows, 1)
        return lambda: rules.band_keys(
            np.asarray([rules.minhash_signature(rules.char_shingles(t, 13), a, b) for t in docs]), bands, rows
        )

    def mapcc():
        for t in docs:
            t = "".join(unicodedata.normalize("NFKC", t).casefold().split())
            m = MinHash(num_perm=128)
            for i in range(max(1, len(t) - 12)):
                m.update(t[i : i + 13].encode("utf-8"))

    with tempfile.TemporaryDirectory() as tmp:
        stock = MinhashDedupSignature(output_folder=tmp)

        def datatrove():
            for t in docs:
                sh = stock.get_shingles(t)
                if sh.size:
                    stock.get_signature(sh)

        rules = load_rules(None)
        impls = [("ours, default (vectorized char 13-grams, 14x7)", ours(rules, 14, 7)),
                 ("ours, preset mapcc (vectorized char 13-grams, 9x13)", ours(rules, 9, 13))]  # fmt: skip
        if before is not None:
            impls.append((f"ours before this change ({before}), default 14x7", ours(load_rules(before), 14, 7)))
        if peers:
            impls += [("MAP-CC: datasketch MinHash(128), update per 13-gram", mapcc),
                      ("datatrove MinhashDedupSignature (defaults: word 5-grams, 14x8)", datatrove)]  # fmt: skip
        wall: dict[str, list[float]] = {name: [] for name, _ in impls}
        cpu: dict[str, list[float]] = {name: [] for name, _ in impls}
        for _ in range(repeats):  # round-robin, so that load from other processes hits every implementation alike
            for name, fn in impls:
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
                print(f"{name}: {wall[name][-1]:.3f} s wall, {cpu[name][-1]:.3f} s CPU", file=sys.stderr, flush=True)
    return [(name, statistics.median(wall[name]), statistics.median(cpu[name])) for name, _ in impls]


def perturb(text: str, rate: float, rng: np.random.Generator) -> str:
    chars = list(text)
    n = max(1, int(len(chars) * rate))
    for i in rng.choice(len(chars), n, replace=False):
        chars[i] = "某" if chars[i] != "某" else "甲"
    return "".join(chars)


def exact_pairs(texts: list[str], threshold: float) -> tuple[set, dict]:
    """All pairs with exact character-13-gram Jaccard >= threshold, via a sparse doc x shingle product."""
    from scipy.sparse import csr_matrix

    from stages.dedup_rules import char_shingles

    sets = [char_shingles(t, 13) for t in texts]
    vocab, inverse = np.unique(np.concatenate(sets), return_inverse=True)
    indptr = np.concatenate(([0], np.cumsum([len(s) for s in sets])))
    m = csr_matrix((np.ones(len(inverse), dtype=np.int32), inverse, indptr), shape=(len(texts), len(vocab)))
    inter = (m @ m.T).tocoo()
    sizes = np.array([len(s) for s in sets])
    jac = {}
    for i, j, v in zip(inter.row, inter.col, inter.data, strict=True):
        if i < j:
            jac[(i, j)] = v / (sizes[i] + sizes[j] - v)
    return {p for p, v in jac.items() if v >= threshold}, jac


def quality(
    docs: list[str],
    variants: int,
    verify: float,
    bands: int = 9,
    rows: int = 13,
    mode: str = "signature",
    seed: int = 0,
) -> dict:
    import polars as pl

    from pipeline import runner
    from pipeline.config import load_config

    rng = np.random.default_rng(seed)
    texts = list(docs)
    for _ in range(variants):
        src = docs[rng.integers(len(docs))]
        texts.append(perturb(src, float(rng.uniform(0.0005, 0.02)), rng))
    truth, jac = exact_pairs(texts, 0.85)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "docs.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
        (tmp / "p.toml").write_text(
            f'[run]\nworkdir = "out"\n[executor]\ntasks = 2\nworkers = 2\n[[sources]]\nname = "b"\npath = "docs.jsonl"\n'
            'format = "jsonl"\n[stages.langid]\nenabled = false\n[stages.filter]\nenabled = false\n'
            f'[stages.dedup]\nexact = false\nsimilar_lines = false\nverify = "{mode}"\nverify_threshold = {verify}\n'
            f"bands = {bands}\nrows = {rows}\n"
        )
        cfg = load_config(tmp / "p.toml")
        runner.run_stage(cfg, "ingest")
        runner.run_stage(cfg, "dedup")
        accepted = np.load(cfg.workdir / "dedup" / "work" / "accepted_pairs.npy")
        ids = {
            r: pq.read_table(cfg.workdir / "dedup" / "work" / "ids" / f"{r:05d}.parquet").column("id").to_pylist()
            for r in range(2)
        }
        kept = pl.read_parquet(cfg.workdir / "dedup" / "kept" / "*.parquet").select("id", "dup_cluster")
        removed = pl.read_parquet(cfg.workdir / "dedup" / "removed" / "*.parquet").select("id", "duplicate_of")
    index = lambda doc_id: int(doc_id.rsplit(":", 1)[1]) - 1  # noqa: E731  (ids are b:docs.jsonl:<line>)
    cluster = {index(i): c for i, c in kept.filter(pl.col("dup_cluster").is_not_null()).rows()}
    cluster.update({index(i): d for i, d in removed.rows()})
    groups: dict[str, list[int]] = {}
    for doc, c in cluster.items():
        groups.setdefault(c, []).append(doc)
    predicted = {(min(a, b), max(a, b)) for g in groups.values() for a in g for b in g if a < b}
    tp = len(predicted & truth)
    node = lambda n: index(ids[int(n) >> 40][int(n) & ((1 << 40) - 1)])  # noqa: E731
    edges = {(min(node(a), node(b)), max(node(a), node(b))) for a, b in accepted.tolist()}
    return {
        "verify": f"{mode} {verify}" if mode != "none" else "none",
        "bands": f"{bands} x {rows}",
        "docs": len(texts),
        "true_pairs": len(truth),
        "predicted_pairs": len(predicted),
        "recall": tp / len(truth) if truth else 1.0,
        "precision": tp / len(predicted) if predicted else 1.0,
        "edges": len(edges),
        "edge_precision": len(edges & truth) / len(edges) if edges else 1.0,
        "false_pairs_jaccard": sorted(round(float(jac.get(p, 0.0)), 3) for p in predicted - truth)[:10],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", type=int, default=300)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--speed-only", action="store_true", help="skip the quality runs")
    ap.add_argument("--before", type=Path, default=None, help="another checkout: time its dedup_rules.py too")
    ap.add_argument("--input", type=Path, default=None, help="a stage's kept folder: its zh documents, not the books")
    ap.add_argument("--mb", type=float, default=2.5, help="with --input: this many MB of documents")
    ap.add_argument("--no-peers", action="store_true", help="ours (and --before) only: many cheap rounds")
    args = ap.parse_args()
    docs = load_docs(args.input, args.mb)
    speed = (
        signature_speed(docs, args.repeats, args.before, not args.no_peers) if args.repeats else [("ours", 1.0, 1.0)]
    )
    _, ours_wall, ours_cpu = speed[0]
    mb = sum(len(t.encode("utf-8")) for t in docs) / 1e6
    source = f"{args.input}, first {len(docs)} zh documents" if args.input else f"{len(docs)} Chinese documents"
    lines = [
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}; one process; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end.",
        "",
        f"### Signature speed ({source}, {sum(map(len, docs)):,} characters, {mb:.2f} MB of UTF-8)",
        "",
        "| implementation | docs/s per worker (wall) | MB/s per worker (wall) | MB per CPU-second | CPU s | "
        "ours is x faster (CPU) | (wall) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {len(docs) / w:,.0f} | {mb / w:.2f} | {mb / c:.2f} | {c:.3f} | {c / ours_cpu:.1f} | "
        f"{w / ours_wall:.1f} |"
        for name, w, c in speed
    ]
    lines += (
        []
        if args.speed_only
        else [
            "",
            f"### Near-duplicate step vs exact character-13-gram Jaccard (>= 0.85), {len(docs)} documents + "
            f"{args.variants} edited copies",
            "",
            "| bands x rows | verify, threshold | pairs with J >= 0.85 | recall (pairs put in one cluster) | "
            "accepted candidate pairs | precision of accepted pairs | pairs in one cluster | precision of clustered pairs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    )
    configs = [(9, 13, "none", 0.0), (9, 13, "signature", 0.8), (20, 13, "signature", 0.83), (9, 13, "exact", 0.85),
               (20, 13, "exact", 0.85)]  # fmt: skip
    for bands, rows, mode, verify in [] if args.speed_only else configs:
        q = quality(docs, args.variants, verify, bands, rows, mode)
        print(q, file=sys.stderr, flush=True)
        lines.append(
            f"| {q['bands']} | {q['verify']} | {q['true_pairs']} | {q['recall']:.3f} | {q['edges']} | "
            f"{q['edge_precision']:.3f} | {q['predicted_pairs']} | {q['precision']:.3f} |"
        )
    text = "\n".join(lines)
    emit(text, args.out)


if __name__ == "__main__":
    main()
