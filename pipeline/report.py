"""`pipeline report`: a Markdown report with PNG plots that a person reads instead of JSON.

Written to `<workdir>/report/report.md` with `funnel.png` (documents and characters left after each stage),
`reasons.png` (removal reasons per stage), per filter rule the distribution of its measured value with its threshold
(`scores_<family>.png`), the final corpus broken down by source and language, and, when a training run exists, its
loss curve.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from pipeline.ablate_results import report_section as ablate_report_section  # noqa: E402
from pipeline.config import STAGE_ORDER, Config  # noqa: E402
from pipeline.runner import CORPUS_STAGES, finalize_stage, stage_dir, stage_state  # noqa: E402
from stages.filter import ScoredRules, rule_families  # noqa: E402
from stages.filters.scores import SCORES_COLUMN, Threshold  # noqa: E402
from stages.io import list_shards  # noqa: E402
from stages.quality import REPORT_BINS  # noqa: E402
from train.runlog import read_log  # noqa: E402


def _finished_corpus_stages(cfg: Config) -> list[tuple[str, dict]]:
    out = []
    for stage in CORPUS_STAGES:
        if stage == "quality" and not cfg.stages.quality.enabled:
            continue  # a side run (the demo's): the next stage read filter's output, so it is not in the funnel
        finalize_stage(cfg, stage)
        st = stage_state(cfg, stage)
        if st.state in ("finished", "stale") and st.stats:
            out.append((stage, st.stats))
    return out


def _fmt(n: float | int | None) -> str:
    if n is None:
        return ""
    if isinstance(n, float):
        return f"{n:,.1f}"
    return f"{n:,}"


def _plot_funnel(stages: list[tuple[str, dict]], path: Path) -> None:
    names = ["input"] + [s for s, _ in stages]
    first = stages[0][1]
    docs = [first["docs_in"]] + [st["kept"] for _, st in stages]
    chars = [first["chars_in"]] + [st["chars_kept"] for _, st in stages]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, values, title in ((axes[0], docs, "documents"), (axes[1], chars, "characters")):
        base = values[0] or 1
        bars = ax.bar(names, values, color="#4C72B0")
        for b, v in zip(bars, values):
            ax.annotate(
                f"{100 * v / base:.0f}%", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8
            )
        ax.set_title(f"{title} left after each stage")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reasons(stages: list[tuple[str, dict]], path: Path) -> bool:
    rows = [(f"{s}: {r}", n) for s, st in stages for r, n in st["removed_by_reason"].items()]
    if not rows:
        return False
    rows.sort(key=lambda x: x[1])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    ax.barh([r for r, _ in rows], [n for _, n in rows], color="#C44E52")
    ax.set_xlabel("documents removed")
    ax.set_title("removal reasons per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _corpus_breakdown(kept: Path) -> pl.DataFrame | None:
    shards = list_shards(kept)
    if not shards:
        return None
    return (
        pl.scan_parquet([str(p) for p in shards])
        .group_by("source", "kind", "lang")
        .agg(pl.len().alias("documents"), pl.col("text").str.len_chars().sum().alias("characters"))
        .sort("characters", descending=True)
        .collect()
    )


def _training_section(cfg: Config, out_dir: Path) -> list[str]:
    lines: list[str] = []
    for mode in ("pretrain", "sft", "dpo"):
        run_dir = cfg.under_workdir(getattr(cfg.train, mode).out)
        rows = read_log(run_dir)
        train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
        val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if not train:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(*zip(*train), label="train loss")
        if val:
            ax.plot(*zip(*val), "o-", label="validation loss")
        run_info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
        if run_info.get("unigram_loss"):
            ax.axhline(run_info["unigram_loss"], color="grey", linestyle="--", label="unigram baseline")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title(f"{mode} loss")
        ax.legend()
        fig.tight_layout()
        png = out_dir / f"loss_{mode}.png"
        fig.savefig(png, dpi=110)
        plt.close(fig)
        lines += [f"## Training: {mode}", "", f"Run folder `{run_dir}`; {len(rows)} logged rows."]
        last = rows[-1]
        lines.append(
            f"Last step {last['step']}: train loss {train[-1][1]:.4f}"
            + (f", validation loss {val[-1][1]:.4f}" if val else "")
        )
        vb = [r["val_bpb"] for r in rows if r.get("val_bpb") is not None]
        if vb:
            lines[-1] += f", validation bits/byte {vb[-1]:.4f}"
        if run_info.get("unigram_loss"):
            lines[-1] += f" (unigram baseline {run_info['unigram_loss']:.4f} nats/token)"
        lines += ["", f"![{mode} loss]({png.name})", ""]
    return lines


def write_report(cfg: Config) -> Path:
    out_dir = cfg.workdir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = _finished_corpus_stages(cfg)
    lines = [
        "# Corpus report",
        "",
        f"Workdir `{cfg.workdir}`, config `{cfg.file}`, written {datetime.now(UTC):%Y-%m-%d %H:%M UTC}.",
        "",
        "## Stages",
        "",
        "| stage | state | documents in | kept | removed | kept % | characters in | characters kept | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage in STAGE_ORDER:
        st = stage_state(cfg, stage)
        s = st.stats or {}
        pct = f"{100 * s['kept'] / s['docs_in']:.1f}" if s.get("docs_in") and "kept" in s else ""
        state = "disabled, holds a side run" if not st.enabled and s else st.state  # as `pipeline status` says
        lines.append(
            f"| {stage} | {state} | {_fmt(s.get('docs_in'))} | {_fmt(s.get('kept'))} | {_fmt(s.get('removed'))} "
            f"| {pct} | {_fmt(s.get('chars_in'))} | {_fmt(s.get('chars_kept'))} | {_fmt(s.get('wall_seconds'))} |"
        )
    lines.append("")
    if stages:
        _plot_funnel(stages, out_dir / "funnel.png")
        lines += ["![funnel](funnel.png)", "", "## Why documents were removed", ""]
        if _plot_reasons(stages, out_dir / "reasons.png"):
            lines += ["| stage | reason | documents |", "| --- | --- | ---: |"]
            for s, st in stages:
                for r, n in st["removed_by_reason"].items():
                    lines.append(f"| {s} | {r} | {n:,} |")
            lines += ["", "![reasons](reasons.png)", ""]
            lines.append(
                "Inspect them with Polars: "
                f'`pl.scan_parquet("{cfg.workdir}/<stage>/removed/*.parquet").group_by("reason").len()`.'
            )
            lines.append("")
        else:
            lines += ["No document was removed.", ""]
        failed = [f for _, st in stages for f in st.get("failed_files", [])]
        if failed:
            lines += ["## Input files that could not be read", ""]
            lines += [f"- `{f['file']}`: {f['error']}" for f in failed]
            lines.append("")
        final_stage = stages[-1][0]
        df = _corpus_breakdown(stage_dir(cfg, final_stage) / "kept")
        if df is not None:
            lines += [f"## Final corpus ({final_stage}/kept) by source and language", ""]
            lines += ["| source | kind | lang | documents | characters |", "| --- | --- | --- | ---: | ---: |"]
            for r in df.iter_rows(named=True):
                lines.append(
                    f"| {r['source']} | {r['kind']} | {r['lang'] or '(not identified yet)'} | {r['documents']:,} "
                    f"| {r['characters']:,} |"
                )
            lines.append("")
    else:
        lines += ["No corpus stage has finished yet.", ""]
    lines += _filter_scores_section(cfg, stages, out_dir)
    lines += _pii_decontam_section(stages)
    lines += _quality_section(cfg, out_dir)
    lines += _training_section(cfg, out_dir)
    lines += _evaluation_section(cfg)
    lines += ablate_report_section(cfg.workdir)
    path = out_dir / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    return path


def _pii_decontam_section(stages: list[tuple[str, dict]]) -> list[str]:
    """PII replaced per type and documents flagged per benchmark, from the pii and decontam stats counters."""
    lines: list[str] = []
    stats = dict(stages)
    if "pii" in stats:
        c = stats["pii"].get("counters", {})
        types = sorted((k.removeprefix("pii_"), v) for k, v in c.items() if k != "pii_docs_with_pii")
        lines += ["## PII", "", f"{c.get('pii_docs_with_pii', 0):,} documents had PII replaced.", ""]
        if types:
            lines += ["| type | replaced |", "| --- | ---: |"] + [f"| {t} | {n:,} |" for t, n in types] + [""]
    if "decontam" in stats:
        st = stats["decontam"]
        c, index = st.get("counters", {}), st.get("index", {})
        lines += ["## Benchmark decontamination", ""]
        if index:
            lines.append(
                f"Index: {index.get('items', 0):,} items, {index.get('ngrams', 0):,} n-grams "
                f"({index.get('bytes', 0) / 2**20:.1f} MiB); n-grams of {index.get('ngram', {}).get('en')} words "
                f"(en) and {index.get('ngram', {}).get('zh')} characters (zh)."
            )
            lines.append("")
        lines += ["| benchmark | items | documents flagged | item matches |", "| --- | ---: | ---: | ---: |"]
        for name, b in (index.get("per_benchmark") or {}).items():
            lines.append(
                f"| {name} | {b.get('items', 0):,} | {c.get(f'decontam_benchmark_{name}_docs', 0):,} "
                f"| {c.get(f'decontam_benchmark_{name}_item_matches', 0):,} |"
            )
        cut = c.get("decontam_docs_cut", 0)
        lines += [
            "",
            f"{c.get('decontam_docs_flagged', 0):,} documents flagged; "
            f"{st.get('removed_by_reason', {}).get('contaminated', 0):,} removed, {cut:,} cut "
            f"({c.get('decontam_chars_cut', 0):,} characters).",
            "",
        ]
    return lines


def _quality_section(cfg: Config, out_dir: Path) -> list[str]:
    """The quality classifier's score distribution (stats.json's score bins), its threshold and held-out metrics;
    also for a side run of a disabled quality stage (the demo's), which the funnel leaves out."""
    finalize_stage(cfg, "quality")
    st = stage_state(cfg, "quality")
    if st.state not in ("finished", "stale") or not st.stats:
        return []
    s = st.stats
    counters = s.get("counters", {})
    bins = [counters.get(f"quality_score_bin_{i:02d}", 0) for i in range(REPORT_BINS)]
    width = 1 / REPORT_BINS
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar([i * width for i in range(REPORT_BINS)], bins, width=width, align="edge", color="#55A868", edgecolor="w")
    cut = (s.get("threshold") or {}).get("threshold")
    if cut is not None:
        ax.axvline(cut, color="#C44E52", linestyle="--", label=f"threshold {cut:.3f}")
        ax.legend()
    ax.set_xlabel("quality_score (probability of the reference set)")
    ax.set_ylabel("documents")
    ax.set_title("quality classifier scores")
    fig.tight_layout()
    fig.savefig(out_dir / "quality_scores.png", dpi=110)
    plt.close(fig)
    side = (
        ""
        if cfg.stages.quality.enabled
        else " (run beside the flow: the stage is disabled, dedup read filter's output)"
    )
    lines = ["## Quality classifier", ""]
    lines.append(
        f"{s['docs_in']:,} documents in, {counters.get('quality_scored', 0):,} scored "
        f"({counters.get('quality_code_unscored', 0):,} code documents unscored), {s['kept']:,} kept, "
        f"{s['removed']:,} removed as quality_low{side}."
    )
    t = s.get("threshold") or {}
    if t.get("keep_top_share") is not None:
        lines.append(f"Threshold {t['threshold']:.4f}: the score that keeps the best {t['keep_top_share']:.0%}.")
    elif t.get("threshold") is not None:
        lines.append(f"Threshold {t['threshold']:.4f} (stages.quality.threshold).")
    m = s.get("model") or {}
    if m.get("held_out"):
        h, d = m["held_out"], m["documents"]
        lines.append(
            f"Model `{m['path']}` ({m['normalization']} tokens, {d['positive']['train']:,} reference / "
            f"{d['negative']['train']:,} raw training documents): held out {h['positive']:,} + {h['negative']:,}, "
            f"accuracy {h['accuracy']}, precision {h['precision']}, recall {h['recall']} at 0.5, ROC AUC {h['roc_auc']}."
        )
    lines += ["", "| score | documents |", "| --- | ---: |"]
    lines += [f"| {i * width:.2f}-{(i + 1) * width:.2f} | {n:,} |" for i, n in enumerate(bins)]
    lines += ["", "![quality scores](quality_scores.png)", ""]
    return lines


def _evaluation_section(cfg: Config) -> list[str]:
    """The `eval.json` that `pipeline eval` wrote in each training run folder: bits per byte per language on held-out
    text, multiple-choice accuracy (k-shot, overall and macro over subjects), BLEU and ROUGE-L of generation tasks."""
    lines: list[str] = []
    for mode in ("pretrain", "sft", "dpo"):
        path = cfg.under_workdir(getattr(cfg.train, mode).out) / "eval.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        lines += [f"## Evaluation: {mode}", "", f"`{path}` (step {r.get('step')}).", ""]
        rows = [("shards", "all", r["val_loss"], r["val_bpb"])] if "val_loss" in r else []
        rows += [(f, lang, t["loss"], t["bpb"]) for f, per in r.get("text", {}).items() for lang, t in per.items()]
        if rows:
            lines += ["| held-out data | lang | loss (nats/token) | bits/byte |", "| --- | --- | ---: | ---: |"]
            lines += [f"| {f} | {lang} | {loss:.4f} | {bpb:.4f} |" for f, lang, loss, bpb in rows] + [""]
        if r.get("tasks"):
            lines += [
                "| task | shots | items | accuracy | macro (subjects) | chance |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for name, t in r["tasks"].items():
                lines.append(
                    f"| {name} | {t.get('shots', 0)} | {t['items']} | {100 * t['accuracy']:.1f}% "
                    f"| {100 * t.get('macro_accuracy', t['accuracy']):.1f}% ({len(t.get('by_subject', {}))}) "
                    f"| {100 * t['chance']:.1f}% |"
                )
            lines.append("")
        if r.get("generation"):
            lines += ["| generation task | lang | items | BLEU | ROUGE-L |", "| --- | --- | ---: | ---: | ---: |"]
            for name, g in r["generation"].items():
                for lang, b in g["by_lang"].items():
                    lines.append(f"| {name} | {lang} | {b['items']} | {b['bleu']:.2f} | {b['rouge_l']:.2f} |")
            lines.append("")
    return lines


def _family(field: str) -> str:
    """zh, en or code by the reason's prefix; the URL blocklist and bad-word list are `lists`."""
    prefix = field.split("_", 1)[0]
    return prefix if prefix in ("zh", "en", "code") else "lists"


def _filter_scores(cfg: Config) -> pl.DataFrame | None:
    """The filter stage's `scores` column over kept and removed documents, one column per rule."""
    shards = [p for sub in ("kept", "removed") for p in list_shards(stage_dir(cfg, "filter") / sub)]
    if not shards or SCORES_COLUMN not in pl.read_parquet_schema(shards[0]):
        return None
    return pl.concat([pl.read_parquet(p, columns=[SCORES_COLUMN]) for p in shards]).unnest(SCORES_COLUMN)


def _plot_rule(ax, values: pl.Series, t: Threshold, share: float) -> None:
    lo, hi = values.quantile(0.005), values.quantile(0.995)
    lo = min([lo] + [b for b in (t.low, t.high) if b is not None])
    hi = max([hi] + [b for b in (t.low, t.high) if b is not None])
    if hi <= lo:
        hi = lo + 1
    ax.hist(values.clip(lo, hi).to_numpy(), bins=40, range=(lo, hi), color="#4C72B0")
    for bound in (t.low, t.high):
        if bound is not None:
            ax.axvline(bound, color="#C44E52", linestyle="--")
    ax.set_yscale("log")
    ax.set_title(f"{t.field}\n{t.describe()}; fails {100 * share:.1f}%", fontsize=7)
    ax.tick_params(labelsize=6)


def _filter_scores_section(cfg: Config, stages: list[tuple[str, dict]], out_dir: Path) -> list[str]:
    """Per rule of the filter stage: how many documents it measured, its threshold, the share whose value fails
    it (what the rule alone removes), the documents it removed as the first failing rule, and a histogram."""
    stats = dict(stages).get("filter")
    scores = _filter_scores(cfg) if stats else None
    if scores is None:
        return []
    removed = stats.get("removed_by_reason", {})
    rules = [t for t in ScoredRules(rule_families(cfg.stages.filter, cfg.path)).thresholds if t.field in scores.columns]
    lines = [
        "## Filter rules: measured values",
        "",
        "Every rule's value is stored for kept and removed documents alike (`scores` column of `filter/kept` and "
        "`filter/removed`). *Fails* is the share of the documents a rule measured whose value fails its threshold "
        "(what that rule alone would remove); *removed* counts the documents it removed as the first failing rule. "
        "Read examples with `pipeline sample filter --reason <rule> -n 5`.",
        "",
        "| rule | threshold | documents measured | median | fails | removed |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    plots = []
    for family in ("zh", "en", "code", "lists"):
        group = [t for t in rules if _family(t.field) == family]
        measured = [(t, scores[t.field].drop_nulls().drop_nans()) for t in group]
        measured = [(t, v) for t, v in measured if len(v)]
        if not measured:
            continue
        cols = 4
        rows = -(-len(measured) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(12, 2.4 * rows), squeeze=False)
        for ax, (t, values) in zip(axes.flat, measured):
            fails = sum(map(t.fails, values.to_list()))
            share = fails / len(values)
            _plot_rule(ax, values, t, share)
            lines.append(
                f"| {t.field} | {t.describe()} | {len(values):,} | {values.median():.4g} | {100 * share:.1f}% "
                f"| {removed.get(t.field, 0):,} |"
            )
        for ax in list(axes.flat)[len(measured) :]:
            ax.axis("off")
        fig.tight_layout()
        png = out_dir / f"scores_{family}.png"
        fig.savefig(png, dpi=90)
        plt.close(fig)
        plots.append(f"![{family} rules]({png.name})")
    return lines + [""] + [p for plot in plots for p in (plot, "")]
