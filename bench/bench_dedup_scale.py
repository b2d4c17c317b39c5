"""Dedup alone on a bench/make_corpus.py corpus: recall by the copies' exact Jaccard, precision, and peak memory per
phase, for several settings, runs interleaved.

    .venv/bin/python bench/bench_dedup_scale.py --corpus /work/scale_data/c0.1 --workdir /tmp/dedup_bench/base \
        --variant default= --variant mapcc=stages.dedup.preset=mapcc --variant before=@/tmp/old --repeats 2 --out bench/results/dedup-scale.json

`--workdir` must hold a finished ingest -> langid -> filter of the corpus (bench/bench_scale.py --stages
ingest,langid,filter). Each variant gets its own copy of it (`<workdir>-<name>`) and reruns only dedup (`--force`).

Recall: a near copy counts as found when it and its original both reached dedup and not both were kept, as in
bench_scale.py, binned by the copy's exact character-13-gram Jaccard with its original (ground truth `jaccard`);
"same group": the copy and its own original ended in one duplicate group (stricter: an original removed in favour
of another copy of it counts as found above, not here).
Precision: of the documents removed as near duplicates, the share whose exact Jaccard with the document named in
`duplicate_of` is at least 0.85 (computed here from the texts, with dedup's own shingles), and the share at least 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import pyarrow.parquet as pq
from bench_scale import loadavg, machine, make_config, read_ids, run_stage  # bench/ is on sys.path as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stages.dedup_rules import char_shingles, jaccard  # noqa: E402  (after the repo root is on sys.path)

BINS = [("J=0.95", 0.93, 1.0), ("J=0.90", 0.885, 0.93), ("J>=0.85 (target 0.85)", 0.85, 0.885),
        ("0.835<=J<0.85 (target 0.85)", 0.835, 0.85), ("J=0.70", 0.0, 0.75)]  # fmt: skip


def quality(corpus: Path, out: Path) -> dict:
    gt = pq.read_table(corpus / "ground_truth.parquet", columns=["id", "category", "original_id", "jaccard"])
    gt = gt.to_pylist()
    kept = read_ids(out / "dedup" / "kept", ["id", "dup_cluster"])
    dd_kept = set(kept["id"])
    rem = read_ids(out / "dedup" / "removed", ["id", "reason", "duplicate_of"])
    dd_in = dd_kept | set(rem["id"])
    # the duplicate group of each document: its keeper's id (removed: duplicate_of; kept: dup_cluster), or None
    group = dict(zip(kept["id"], kept["dup_cluster"], strict=True)) | dict(
        zip(rem["id"], rem["duplicate_of"], strict=True)
    )
    res: dict = {}
    near = [r for r in gt if r["category"] == "near_dup" and r["id"] in dd_in and r["original_id"] in dd_in]
    for name, lo, hi in BINS:
        sub = [r for r in near if lo <= r["jaccard"] < hi]
        found = sum(not (r["id"] in dd_kept and r["original_id"] in dd_kept) for r in sub)
        res[f"recall {name}"] = {"found": found, "of": len(sub), "recall": round(found / len(sub), 4) if sub else None}
        # stricter: the copy and its own original end in one group (not: one of them went with some other document)
        same = sum(group[r["id"]] is not None and group[r["id"]] == group[r["original_id"]] for r in sub)
        res[f"same group {name}"] = {"found": same, "of": len(sub), "share": round(same / len(sub), 4) if sub else None}
    pairs = [(i, d) for i, r, d in zip(rem["id"], rem["reason"], rem["duplicate_of"], strict=True)]
    pairs = [(i, d) for (i, d), r in zip(pairs, rem["reason"], strict=True) if r == "near_duplicate"]
    wanted = {x for p in pairs for x in p}
    texts: dict[str, str] = {}
    for f in sorted((out / "filter" / "kept").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "text"], filters=[("id", "in", list(wanted))] if wanted else None)
        texts.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True))
    jac = [jaccard(char_shingles(texts[i]), char_shingles(texts[d])) for i, d in pairs]
    res["near_removed"] = len(pairs)
    res["precision J>=0.85"] = round(sum(j >= 0.85 for j in jac) / len(jac), 4) if jac else None
    res["precision J>=0.80"] = round(sum(j >= 0.80 for j in jac) / len(jac), 4) if jac else None
    has_copy = {r["original_id"] for r in gt if r["original_id"]}
    lone = [r["id"] for r in gt if r["category"] in ("original", "pii", "bench") and r["id"] not in has_copy]
    removed = set(rem["id"])
    res["removed without copy"] = sum(i in removed for i in lone if i in dd_in)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, required=True, help="a run folder with ingest, langid, filter done")
    ap.add_argument("--variant", action="append", required=True, help="name=key=value,key=value (--set overrides)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    variants = {}
    for v in args.variant:
        name, _, sets = v.partition("=")
        folder = args.workdir.with_name(f"{args.workdir.name}-{name}")
        if not (folder / "out" / "filter").exists():
            (folder / "out").mkdir(parents=True, exist_ok=True)
            for stage in ("ingest", "langid", "filter"):
                shutil.copytree(args.workdir / "out" / stage, folder / "out" / stage, symlinks=True)
        cfg = make_config(args.corpus, folder)
        code = next((s[1:] for s in sets.split(",") if s.startswith("@")), "")
        extra = ["--force"] + [a for s in sets.split(",") if s and not s.startswith("@") for a in ("--set", s)]
        variants[name] = (cfg, extra, code)
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved, so load from other jobs hits every variant alike
        for name, (cfg, extra, code) in variants.items():
            # "@DIR" in a variant: the pipeline runs that source tree's packages (e.g. a `git archive` of the commit
            # before a change); PYTHONPATH comes before the editable install's finder
            os.environ.pop("PYTHONPATH", None)
            if code:
                os.environ["PYTHONPATH"] = code
            row = run_stage(cfg, "dedup", args.tasks, args.workers, tuple(extra))
            os.environ.pop("PYTHONPATH", None)
            row["dedup_phases"] = json.loads((cfg.parent / "out" / "dedup" / "run.json").read_text()).get("phases")
            print(name, json.dumps(row), flush=True)
            runs[name].append(row)
    result = {"machine": machine(), "corpus": str(args.corpus), "tasks": args.tasks, "workers": args.workers,
              "load_after": loadavg(), "variants": {}}  # fmt: skip
    for name, (cfg, extra, code) in variants.items():
        rows = runs[name]
        result["variants"][name] = {
            "sets": extra[1:],
            "code": code or "this checkout",
            "wall_s_median": statistics.median(r["wall_s"] for r in rows),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in rows),
            "runs": rows,
            "quality": quality(args.corpus, cfg.parent / "out"),
        }
        print(name, json.dumps(result["variants"][name]["quality"]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
