"""The results of `pipeline ablate` as text: the table and the verdicts, for the command, results.md and
`pipeline report`. Apart from pipeline/ablate.py so that the report reads them without importing the trainer."""

from __future__ import annotations

import json
from pathlib import Path


def verdicts(rows: list[dict]) -> list[str]:
    """Each variant against the first, per held-out file: lower bits per byte is better; a difference no larger
    than the larger spread of the two is called within the spread (with one seed, no spread is measured)."""
    if len(rows) < 2:
        return []
    base = rows[0]
    lines = []
    for row in rows[1:]:
        for stem, bpb in row["heldout_bpb"].items():
            diff = bpb - base["heldout_bpb"][stem]
            spread = max(
                row.get("spread", {}).get("heldout_bpb", {}).get(stem, 0.0),
                base.get("spread", {}).get("heldout_bpb", {}).get(stem, 0.0),
            )
            what = f"{row['name']} vs {base['name']} on {stem}: {diff:+.4f} bits/byte"
            if len(row["seeds"]) < 2:
                lines.append(f"{what} (one seed: no spread measured, so the noise of this difference is unknown)")
            elif abs(diff) <= spread:
                lines.append(f"{what}: within the spread across seeds ({spread:.4f}), not a measured difference")
            else:
                lines.append(
                    f"{what}: {'better' if diff < 0 else 'worse'}, beyond the spread across seeds ({spread:.4f})"
                )
    return lines


def results_table(rows: list[dict]) -> str:
    stems = list(rows[0]["heldout_bpb"])
    tasks = list(rows[0]["tasks"])
    head = ["variant", "documents", "training tokens", "epochs", *(f"{s} bpb" for s in stems), *tasks, "seconds"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for r in rows:
        sp = r.get("spread", {})

        def pm(value: float, spread: float | None, fmt: str) -> str:
            return format(value, fmt) + (f" ± {format(spread / 2, fmt)}" if spread is not None else "")

        cells = [
            r["name"],
            f"{r['documents']:,}",
            f"{r['tokens']:,.0f}",
            f"{r['epochs']:.2g}" + (" (capped)" if r["capped"] else ""),
            *(pm(r["heldout_bpb"][s], sp.get("heldout_bpb", {}).get(s), ".4f") for s in stems),
            *(pm(100 * r["tasks"][t]["accuracy"], 100 * sp["tasks"][t] if sp else None, ".1f") + "%" for t in tasks),
            f"{r['seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if tasks:
        chance = ", ".join(f"{t} {100 * rows[0]['tasks'][t]['chance']:.1f}%" for t in tasks)
        lines.append(f"\nChance accuracy: {chance}. ± is half the spread (max - min) across seeds.")
    return "\n".join(lines)


def report_section(workdir: Path) -> list[str]:
    """`pipeline report`'s ablation section (report.md lives in <workdir>/report/), or [] before any ablation."""
    path = workdir / "ablate" / "results.json"
    if not path.is_file():
        return []
    result = json.loads(path.read_text(encoding="utf-8"))
    seeds = ", ".join(str(s) for s in result["seeds"])
    held = ", ".join(
        f"{s} ({c['kept']} rows, {c['dropped']} dropped as also in a variant)" for s, c in result["heldout"].items()
    )
    lines = [
        "## Ablation: the same model trained on each variant of the corpus",
        "",
        f"Preset {result['preset']}, {result['budget_tokens']:,} training tokens per run, seeds {seeds}; "
        f"held-out text: {held}. Lower bits per byte is better.",
        "",
        results_table(result["variants"]),
        "",
        *(f"- {line}" for line in result["verdicts"]),
        "",
        "![held-out bits per byte against training tokens](../ablate/heldout_bpb.png)",
        "",
    ]
    return lines
