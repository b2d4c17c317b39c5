"""The filter stage's rules before and after issue 14's `scores` column, per language, on a langid output: CPU
seconds per MB and the decisions compared document by document.

    .venv/bin/python bench/bench_filter_scores.py --input WORKDIR/langid/kept [--shards N] [--repeats 1]

Everything runs in this one process (one worker), shard by shard, the two paths interleaved (their order alternates
from shard to shard); `time.process_time` around the rules only (no Parquet I/O), summed per language.

- before, English: datatrove's GopherRepetition, GopherQuality, C4 and FineWeb filters one by one (`english_filters`,
  what the stage ran until now): each splits the text into words again, and a document stops at its first failing
  filter.
- before, Chinese: the same rules deciding only, measuring stops at the first failing rule (the stage's behaviour
  until now). Code: its three cheap measures, the same both ways.
- after: `ScoredRules` as the stage runs it now: every rule of the document's family measured (the `scores`
  column), English from one split into words.

Prints one table row per language and the number of documents whose decision (kept, or the reason) differs: the
change must not move any.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from datatrove.data import Document

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stages import zh_rules  # noqa: E402
from stages.filter import FilterConfig, ScoredRules, rule_families, rule_set  # noqa: E402
from stages.filters.code import CodeQualityFilter  # noqa: E402
from stages.filters.en import english_filters  # noqa: E402
from stages.filters.zh import ZhQualityFilter, zh_measures  # noqa: E402


def decide_early(measures, text: str) -> str | None:
    """The first failing rule, measuring no further (the duplicated n-gram shares are non-increasing in n, so the
    early stop of `zh_rules.passes_dup_ngrams` is implied by stopping at the first failure)."""
    for threshold, measure in measures:
        if threshold.fails(measure(text)):
            return threshold.field
    return None


def before(doc: Document, cfg: FilterConfig, en_steps, zh_measure_list, code: CodeQualityFilter) -> str | None:
    family = rule_set(doc)
    if family == "zh":
        return decide_early(zh_measure_list, zh_rules.normalize(doc.text))
    if family == "en":
        for step in en_steps:
            result = step.filter(doc)
            if result is not True:
                return result[1]
        return None
    if family == "code":  # three cheap measures: the same code both ways
        result = code.filter(doc)
        return None if result is True else result[1]
    return None


def after(doc: Document, rules: ScoredRules) -> str | None:
    result = rules.filter(doc)
    return None if result is True else result[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, type=Path, help="a langid stage's kept/ folder")
    ap.add_argument("--shards", type=int, default=0, help="only the first N shards (0: all)")
    args = ap.parse_args()
    cfg = FilterConfig()
    rules = ScoredRules(rule_families(cfg))
    en_steps = english_filters(cfg.en)
    zh_list = zh_measures(cfg.zh)
    code = next(f for f in rules.families if isinstance(f, CodeQualityFilter))
    assert any(isinstance(f, ZhQualityFilter) for f in rules.families)
    shards = sorted(args.input.glob("*.parquet"))
    if args.shards:
        shards = shards[: args.shards]
    cpu = {(path, fam): 0.0 for path in ("before", "after") for fam in ("zh", "en", "code", "none")}
    docs = dict.fromkeys(("zh", "en", "code", "none"), 0)
    mb = dict.fromkeys(("zh", "en", "code", "none"), 0.0)
    differ: list[tuple[str, str | None, str | None]] = []
    # warm up spaCy, jieba-rs and numpy outside the timed loops
    warm = Document(text="Warm up the tokenizer. " * 30, id="w", metadata={"lang": "en", "kind": "text"})
    after(warm, rules), before(warm, cfg, en_steps, zh_list, code)
    for i, shard in enumerate(shards):
        rows = pq.read_table(shard, columns=["id", "text", "kind", "lang"]).to_pylist()
        batch = [Document(text=r.pop("text"), id=r.pop("id"), metadata=r) for r in rows]
        for d in batch:
            fam = rule_set(d)
            docs[fam] += 1
            mb[fam] += len(d.text.encode("utf-8")) / 1e6
        decisions = {}
        for path in ("before", "after") if i % 2 == 0 else ("after", "before"):
            out = decisions.setdefault(path, {})
            for d in batch:
                probe = Document(text=d.text, id=d.id, metadata=dict(d.metadata))
                t0 = time.process_time()
                out[d.id] = before(probe, cfg, en_steps, zh_list, code) if path == "before" else after(probe, rules)
                cpu[(path, rule_set(d))] += time.process_time() - t0
        differ += [(k, v, decisions["after"][k]) for k, v in decisions["before"].items() if decisions["after"][k] != v]
        print(f"shard {i + 1}/{len(shards)}: {len(batch)} docs, {len(differ)} decisions differ so far", flush=True)
    print()
    print(
        "| documents | count | MB | before: CPU s | after: CPU s | before: CPU s/MB | after: CPU s/MB | after/before |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for fam in ("zh", "en", "code"):
        if not docs[fam]:
            continue
        b, a = cpu[("before", fam)], cpu[("after", fam)]
        print(
            f"| {fam} | {docs[fam]:,} | {mb[fam]:.2f} | {b:.1f} | {a:.1f} | {b / mb[fam]:.2f} | {a / mb[fam]:.2f} "
            f"| {a / b:.2f} |"
        )
    total_b = sum(v for (p, _), v in cpu.items() if p == "before")
    total_a = sum(v for (p, _), v in cpu.items() if p == "after")
    total_mb = sum(mb.values())
    print(
        f"| all | {sum(docs.values()):,} | {total_mb:.2f} | {total_b:.1f} | {total_a:.1f} | {total_b / total_mb:.2f} "
        f"| {total_a / total_mb:.2f} | {total_a / total_b:.2f} |"
    )
    print(f"\ndecisions that differ: {len(differ)}")
    for doc_id, b, a in differ[:20]:
        print(f"  {doc_id}: before {b}, after {a}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
