"""`make demo`: the whole flow on the bundled sample corpus, offline, ending with a short summary.

Runs every enabled stage of ./pipeline.toml (`pipeline run all`), checks that no document was lost
(`pipeline verify`), writes the report, and prints what was produced. Extra arguments are overrides written as after `--set` (`key=value`);
`--no-train` stops after the corpus stages (no pretraining, SFT, DPO or ablation).
"""

from __future__ import annotations

import json
import sys
import time

import polars as pl

from pipeline.config import ConfigError, load_config
from pipeline.report import write_report
from pipeline.runner import StageError, enabled_stages, input_stage, run_all, run_stage, stage_dir
from pipeline.status import status_rows
from pipeline.verify import verify
from stages.io import list_shards
from stages.quality import read_documents, train_classifier
from train.runlog import read_log

# The demo's quality classifier: the sample's curated sources (books, English articles, Wikipedia, e-books) as the
# reference set against its raw web pages, both as langid kept them (before the rules), DCLM's "reference against
# random pages" with the only labels the sample has. The rules' own keep/remove decisions would only teach the
# classifier the rules again. Small (dim 16: a 64 MiB model; fewer than 1,000,000 buckets diverged, see
# stages/quality.py) so that it adds seconds, not minutes.
DEMO_REFERENCE_SOURCES = ["books_zh", "articles_en", "wiki_en", "ebooks"]
DEMO_RAW_SOURCES = ["web"]
DEMO_KEEP_TOP_SHARE = 0.8


def quality_side_run(cfg, overrides: list[str]) -> list[str]:
    """Trains the demo classifier and runs the (disabled) quality stage beside the flow on filter's output, so the
    report shows its score distribution while dedup still reads filter's kept documents. Returns summary lines."""
    if cfg.stages.quality.enabled or not stage_dir(cfg, "filter").joinpath("stats.json").exists():
        return []
    start = time.time()
    langid_kept = str(stage_dir(cfg, "langid") / "kept")
    model = cfg.workdir / "quality_model" / "classifier.bin"
    summary = train_classifier(
        list(read_documents(langid_kept, sources=DEMO_REFERENCE_SOURCES)),
        list(read_documents(langid_kept, sources=DEMO_RAW_SOURCES)),
        model,
        dim=16,
        bucket=1_000_000,
        seed=cfg.run.seed,
    )
    side = load_config(
        cfg.file,
        [
            *overrides,
            "stages.quality.enabled=true",
            f"stages.quality.model={json.dumps(str(model))}",
            f"stages.quality.keep_top_share={DEMO_KEEP_TOP_SHARE}",
        ],
    )
    stats = run_stage(side, "quality")
    h = summary["held_out"]
    return [
        f"quality classifier (beside the flow, {time.time() - start:.1f}s): trained on {', '.join(DEMO_REFERENCE_SOURCES)} "
        f"against {', '.join(DEMO_RAW_SOURCES)}, held-out ROC AUC {h['roc_auc']}; on filter's output it would keep "
        f"{stats['kept']:,} of {stats['docs_in']:,} (top {DEMO_KEEP_TOP_SHARE:.0%} of scored text, threshold "
        f"{stats['threshold']['threshold']:.3f}); score distribution in the report"
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    overrides = [a for a in args if a != "--no-train"]
    try:
        cfg = load_config("pipeline.toml", overrides)
        start = time.time()
        results = run_all(cfg)
    except (ConfigError, StageError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    quality_lines = quality_side_run(cfg, overrides)
    problems = verify(cfg, quiet=True)
    trained = None
    after: list[str] = []
    if "--no-train" not in args and stage_dir(cfg, "tokenize").joinpath("stats.json").exists():
        from train.cli import train_command

        print("\ndemo: pretraining the tiny model on the token shards (CPU)...", flush=True)
        if train_command(cfg, "pretrain") != 0:
            print("demo: pretraining failed", file=sys.stderr)
            return 1
        trained = cfg.under_workdir(cfg.train.pretrain.out)
        from pipeline.benchmark_check import finetune_benchmark_check
        from train.cli import demo_after_pretrain

        print("\ndemo: SFT, DPO pairs, DPO and a generation from the pretrained model (CPU)...", flush=True)
        after = demo_after_pretrain(cfg, finetune_benchmark_check(cfg))
        from pipeline.ablate import ablate, ablate_dir  # trains: imported only when training, as train.cli above

        print("\ndemo: ablation, the same tiny model on the raw and the final corpus (CPU)...", flush=True)
        t0 = time.time()
        try:
            ablation = ablate(cfg)
        except (ConfigError, StageError) as e:
            print(f"demo: ablation: {e}", file=sys.stderr)
            return 2
        after.append(f"ablation ({time.time() - t0:.0f}s, {ablate_dir(cfg) / 'results.md'}):")
        after += [
            f"  {r['name']}: {r['documents']:,} docs, {r['tokens']:,.0f} tokens seen ({r['epochs']:.2f} epochs), "
            + ", ".join(f"{stem} {bpb:.3f}" for stem, bpb in r["heldout_bpb"].items())
            + " bits/byte"
            for r in ablation["variants"]
        ]
        after += [f"  {line}" for line in ablation["verdicts"]]
    report = write_report(cfg)

    print("\n" + "=" * 78)
    print(f"demo finished in {time.time() - start:.0f}s; outputs under {cfg.workdir}")
    print("=" * 78)
    print(f"{'stage':<10} {'state':<12} {'in':>8} {'kept':>8} {'removed':>8}  top removal reasons")
    for row, stats in zip(
        (r for r in status_rows(cfg) if r["stage"] in enabled_stages(cfg)), results + [None] * 10, strict=False
    ):
        reasons = ", ".join(f"{k} {v}" for k, v in list((stats or {}).get("removed_by_reason", {}).items())[:3])
        n = {k: "" if row[k] is None else f"{row[k]:,}" for k in ("in", "kept", "removed")}
        print(f"{row['stage']:<10} {row['state']:<12} {n['in']:>8} {n['kept']:>8} {n['removed']:>8}  {reasons}")
    last = input_stage(cfg, "tokenize")  # the last enabled corpus stage
    shards = list_shards(stage_dir(cfg, last) / "kept") if last else []
    if shards:
        by_source = (
            pl.scan_parquet([str(p) for p in shards])
            .group_by("source")
            .agg(pl.len().alias("docs"), pl.col("text").str.len_chars().sum().alias("chars"))
            .sort("chars", descending=True)
            .collect()
        )
        print(
            f"\nfinal corpus ({last}/kept): "
            + ", ".join(f"{r[0]} {r[1]} docs/{r[2]:,} chars" for r in by_source.rows())
        )
    tok = next((r for r in results if r and r.get("stage") == "tokenize"), None)
    if tok:
        langs = ", ".join(
            f"{k} {v['tokens']:,}" for k, v in sorted(tok["by_lang"].items(), key=lambda kv: -kv[1]["tokens"])
        )
        print(f"tokens per language: {langs} (total {tok['tokens']:,}, EOS included)")
        sets = ", ".join(
            f"{name} {d.get('train', {}).get('tokens', 0):,}+{d.get('valid', {}).get('tokens', 0):,}"
            for name, d in tok["datasets"].items()
        )
        print(f"token shards (train+valid tokens) in {stage_dir(cfg, 'tokenize')}: {sets}")
    if trained is not None:
        rows = read_log(trained)
        val = [r for r in rows if r.get("val_loss") is not None]
        run = json.loads((trained / "run.json").read_text()) if (trained / "run.json").exists() else {}
        line = f"pretraining: {rows[-1]['step']} steps, train loss {rows[-1]['loss']:.3f}"
        if val:
            line += f", validation loss {val[-1]['val_loss']:.3f} ({val[-1]['val_bpb']:.3f} bits/byte)"
        if run.get("unigram_loss"):
            line += f" vs unigram baseline {run['unigram_loss']:.3f}"
        print(line + f"; checkpoints and loss.png in {trained}")
        for line in after:
            print(line)
    for line in quality_lines:
        print(line)
    failed = [f for s in results if s for f in s.get("failed_files", [])]
    print(f"verify: {'every document accounted for' if not problems else f'{len(problems)} problem(s)'}")
    for p in problems:
        print(f"  {p}")
    print(f"report: {report}")
    print(
        f'inspect: python -c \'import polars as pl; print(pl.scan_parquet("{cfg.workdir}/ingest/removed/*.parquet")'
        '.group_by("reason").len().collect())\''
    )
    return 1 if problems or failed else 0


if __name__ == "__main__":
    sys.exit(main())
