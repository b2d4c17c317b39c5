"""Supervised fine-tuning: loss masks, packing, and the SFT run on the shared loop.

- Examples come from train/chat_data.py (records, templates, language-ratio mixing); `encode_example` cuts one to
  the training length, keeping it only while an assistant token is left to learn.
- `pack` puts several examples into one row with per-example positions and segment ids (the model then attends
  within an example only), or leaves one example per row.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from train.chat_data import IGNORE, BenchmarkFilter, ChatTemplate, DataError, Example, load_examples, mix_by_ratio
from train.finetune import RowLoader, finetune, finetune_runtime, start_or_resume
from train.loop import StepOutput


@dataclass
class Encoded:
    """One tokenized example: input ids x, targets y (next-token labels, IGNORE where no loss), its language."""

    x: list[int]
    y: list[int]
    lang: str


def encode_example(template: ChatTemplate, ex: Example, max_tokens: int) -> Encoded | None:
    """Cut to max_tokens + 1 tokens (max_tokens positions); None if no assistant token is left to learn."""
    ids, labels = template.encode(ex.messages)
    ids, labels = ids[: max_tokens + 1], labels[: max_tokens + 1]
    x, y = ids[:-1], labels[1:]
    if not any(t != IGNORE for t in y):
        return None
    return Encoded(x, y, ex.lang)


# ---------------------------------------------------------------------------------------------------------------
# rows: packed or one example each


@dataclass
class Row:
    """One training row: examples' (x, y) laid end to end, with per-example positions and segment numbers."""

    x: list[int] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    seg: list[int] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)

    def add(self, e: Encoded) -> None:
        k = len(self.langs) + 1
        self.x += e.x
        self.y += e.y
        self.pos += range(len(e.x))
        self.seg += [k] * len(e.x)
        self.langs.append(e.lang)


def pack(examples: list[Encoded], seq_len: int, packing: bool) -> list[Row]:
    """Next-fit packing in the given order (shuffle first): a row is closed when the next example does not fit."""
    rows: list[Row] = []
    cur = Row()
    for e in examples:
        if cur.langs and (not packing or len(cur.x) + len(e.x) > seq_len):
            rows.append(cur)
            cur = Row()
        cur.add(e)
    if cur.langs:
        rows.append(cur)
    return rows


def collate(rows: list[Row], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row: pad inputs, IGNORE targets, segment 0 (padding attends to padding only)."""
    T = max(len(r.x) for r in rows)
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), T), dtype=torch.long)
    seg = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.x)
        x[i, :n], y[i, :n] = torch.tensor(r.x), torch.tensor(r.y)
        pos[i, :n], seg[i, :n] = torch.tensor(r.pos), torch.tensor(r.seg)
    batch = {"x": x, "y": y}
    if packed:  # one example per row needs neither: positions start at 0 and right padding is never attended to
        batch["position_ids"], batch["segment_ids"] = pos, seg
    return batch


# ---------------------------------------------------------------------------------------------------------------
# the run


def run_sft(job, say=print) -> dict:
    """`pipeline train sft`: start from job.init_from (or resume job.out_dir), train on the assistant tokens."""
    t = job.train
    rt = finetune_runtime(job)
    start = start_or_resume(job, say)
    template = ChatTemplate(start.tokenizer, t.template)
    benchmarks = BenchmarkFilter(job.contamination) if job.contamination else None
    examples = load_examples(job.data, t.lang_field, t.system, benchmarks)
    if benchmarks:
        say(f"SFT data: {benchmarks.describe()}")
    selected, report = mix_by_ratio(examples, [e.lang for e in examples], t.zh_en_ratio, t.seed)
    encoded, no_target = [], 0
    for ex in selected:
        e = encode_example(template, ex, start.seq_len)
        if e is None:
            no_target += 1
        else:
            encoded.append(e)
    if not encoded:
        raise DataError(
            f"no example in {', '.join(map(str, job.data))} keeps an assistant token within {start.seq_len}"
        )
    random.Random(t.seed).shuffle(encoded)
    rows = pack(encoded, start.seq_len, t.packing)
    target_tokens = Counter()
    for e in encoded:
        target_tokens[e.lang] += sum(1 for v in e.y if v != IGNORE)
    filled = sum(len(r.x) for r in rows) / (len(rows) * start.seq_len)
    say(
        f"SFT data: {report.describe()}; {len(encoded)} examples in {len(rows)} rows of {start.seq_len} tokens "
        f"({'packed, ' if t.packing else ''}{100 * filled:.0f}% filled); assistant tokens "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(target_tokens.items()))
    )
    pad_id = start.tokenizer.pad_id if start.tokenizer.pad_id is not None else 0
    loader = RowLoader(len(rows), t.batch_size * t.grad_accum, t.seed)
    seen: Counter = Counter((start.resume or {}).get("seen_examples", {}))

    model, device = start.model, rt.device

    def forward_backward(idx: list[int]) -> StepOutput:
        batch_rows = [rows[i] for i in idx]
        n_targets = sum(1 for r in batch_rows for v in r.y if v != IGNORE)
        # summed in float64 on the device: the value the log shows, read only on log steps
        total = torch.zeros((), dtype=torch.float64, device=device)
        for m in range(0, len(batch_rows), t.batch_size):
            rows_m = batch_rows[m : m + t.batch_size]
            b = {k: v.to(device, non_blocking=True) for k, v in collate(rows_m, pad_id, t.packing).items()}
            with rt.autocast:
                logits, _ = model(b["x"], position_ids=b.get("position_ids"), segment_ids=b.get("segment_ids"))
            loss = F.cross_entropy(logits.float().flatten(0, 1), b["y"].flatten(), ignore_index=IGNORE, reduction="sum")
            (loss / n_targets).backward()
            total += loss.detach().double()
        for r in batch_rows:
            seen.update(r.langs)
        zh, en = seen.get("zh", 0), seen.get("en", 0)
        tokens = sum(len(r.x) for r in batch_rows)
        metrics = {
            "tokens": tokens,
            "target_tokens": n_targets,
            "seen_zh": zh,
            "seen_en": en,
            "realised_zh_en": zh / en if en else None,
        }
        return StepOutput(total / n_targets, tokens, metrics)

    run_info = {
        "data": [str(p) for p in job.data],
        "zh_en_ratio": t.zh_en_ratio,
        "examples_available": report.available,
        "examples_selected": report.selected,
        "realised_zh_en": report.realised,
        "assistant_tokens": dict(target_tokens),
        "examples_without_target": no_target,
        "benchmark_check": benchmarks.summary() if benchmarks else None,
        "rows": len(rows),
        "packing": t.packing,
        "rows_filled": filled,
    }
    return finetune(
        job,
        start,
        rt,
        loader,
        forward_backward,
        run_info=run_info,
        template=t.template,
        extra_state=lambda: {"seen_examples": dict(seen)},
    )
