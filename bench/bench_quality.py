"""What the quality classifier adds over the heuristic filters, on held-out labelled text.

    .venv/bin/python bench/bench_quality.py --run /work/scale_data/run0.1/out \
        --truth /work/scale_data/c0.1/ground_truth.parquet --out bench/results/quality-0.1GB.json

The labelled text is a corpus of bench/make_corpus.py that a flow has run over (`--run`: its workdir, with langid's
and filter's outputs) and its ground_truth.parquet: `junk` documents are bad, every other category (originals,
their copies, PII and benchmark plantings: real text) good. Documents langid removed are left out (the classifier
runs after filter, on what langid kept).

Held out: the 10% of documents that `stages.quality.held_out` picks by id hash, the split `pipeline quality train`
uses, so no model below saw them. Each classifier is trained by `train_classifier` (the code behind `pipeline quality
train`) on the other 90%:
  rules      positive: filter's kept documents, negative: filter's removed ones (no ground truth: the labels a user
             of the pipeline has for free)
  truth      positive: good, negative: junk (ground truth: an upper bound on what a classifier learns here)
each with the two text normalizations (han_chars, whitespace). On the held-out documents the table gives, for the
rules alone, each classifier alone (threshold 0.5) and both together (removed by either): junk caught, good text
lost; and, on the held-out documents the rules KEPT, what the classifier removes (junk it catches that the rules
missed, good text it costs). Scoring speed is timed on filter's kept documents with the last model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from stages.quality import fasttext_text, held_out, load_classifier, predict_scores, train_classifier

SEED = 1234


def load(run: Path, truth: Path) -> pl.DataFrame:
    """langid's kept documents with `good` (ground truth), `rules_kept` (filter's decision) and `held_out`."""
    docs = pl.read_parquet(run / "langid" / "kept" / "*.parquet", columns=["id", "text", "kind"])
    kept_ids = pl.read_parquet(run / "filter" / "kept" / "*.parquet", columns=["id"])["id"]
    gt = pl.read_parquet(truth, columns=["id", "category"])
    df = docs.join(gt, on="id", how="left")
    missing = df.filter(pl.col("category").is_null())
    if len(missing):
        raise SystemExit(f"{len(missing)} documents have no ground truth, e.g. {missing['id'][:3].to_list()}")
    return df.with_columns(
        good=pl.col("category") != "junk",
        rules_kept=pl.col("id").is_in(kept_ids.implode()),
        held_out=pl.col("id").map_elements(lambda i: held_out(i, SEED, 0.1), return_dtype=pl.Boolean),
    ).filter(pl.col("kind") == "text")  # code skips the classifier, as it skips the text rules


def rates(removed: np.ndarray, good: np.ndarray) -> dict:
    junk = ~good
    return {
        "junk": int(junk.sum()),
        "junk_caught": int((removed & junk).sum()),
        "junk_recall": round(float((removed & junk).sum() / max(junk.sum(), 1)), 4),
        "good": int(good.sum()),
        "good_lost": int((removed & good).sum()),
        "good_lost_share": round(float((removed & good).sum() / max(good.sum(), 1)), 4),
        "precision": round(float((removed & junk).sum() / max(removed.sum(), 1)), 4) if removed.any() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the flow's workdir (langid/, filter/)")
    ap.add_argument("--truth", type=Path, required=True, help="the corpus's ground_truth.parquet")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--dim", type=int, default=32)
    args = ap.parse_args()
    df = load(args.run, args.truth)
    train, test = df.filter(~pl.col("held_out")), df.filter(pl.col("held_out"))
    good = test["good"].to_numpy()
    rules_removed = ~test["rules_kept"].to_numpy()
    result: dict = {
        "run": str(args.run),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}",
        "documents": {"train": len(train), "held_out": len(test), "held_out_junk": int((~good).sum())},
        "rules": rates(rules_removed, good),
        "models": {},
    }
    labelings = {
        "rules": (train.filter(pl.col("rules_kept")), train.filter(~pl.col("rules_kept"))),
        "truth": (train.filter(pl.col("good")), train.filter(~pl.col("good"))),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_quality_"))
    model_path = None
    for label_name, (pos, neg) in labelings.items():
        for norm in ("han_chars", "whitespace"):
            name = f"{label_name}/{norm}"
            model_path = tmp / f"{label_name}_{norm}.bin"
            summary = train_classifier(
                list(zip(pos["id"], pos["text"])),
                list(zip(neg["id"], neg["text"])),
                model_path,
                normalization=norm,
                epochs=args.epochs,
                dim=args.dim,
                seed=SEED,
            )
            model, meta = load_classifier(model_path)
            scores = predict_scores(model, [fasttext_text(t, norm) for t in test["text"]])
            clf_removed = scores < 0.5
            kept_by_rules = ~rules_removed
            result["models"][name] = {
                "train_documents": summary["documents"],
                "train_seconds": summary["seconds"],
                "model_bytes": summary["model_bytes"],
                "held_out_of_training": summary["held_out"],
                "classifier": rates(clf_removed, good),
                "rules_or_classifier": rates(rules_removed | clf_removed, good),
                "on_rules_kept": rates(clf_removed[kept_by_rules], good[kept_by_rules]),
                "on_rules_removed_good_rescued": int((~clf_removed & rules_removed & good).sum()),
            }
            print(name, json.dumps(result["models"][name]["classifier"]), flush=True)
    # scoring speed, the stage's own work: normalization + fastText predict over filter's kept documents
    kept = df.filter(pl.col("rules_kept"))["text"].to_list()
    model, meta = load_classifier(model_path)
    start = time.perf_counter()
    for i in range(0, len(kept), 512):
        predict_scores(model, [fasttext_text(t, meta["normalization"]) for t in kept[i : i + 512]])
    seconds = time.perf_counter() - start
    mb = sum(len(t.encode()) for t in kept) / 1e6
    result["scoring"] = {
        "documents": len(kept),
        "MB": round(mb, 1),
        "seconds": round(seconds, 2),
        "MB_per_s": round(mb / seconds, 2),
        "normalization": meta["normalization"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result["rules"]), json.dumps(result["scoring"]))


if __name__ == "__main__":
    main()
