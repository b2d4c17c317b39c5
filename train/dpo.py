"""Direct preference optimisation (Rafailov et al. 2023) as TRL and CT-LLM ran it.

loss = -log sigmoid(beta * ((log pi(y+|x) - log ref(y+|x)) - (log pi(y-|x) - log ref(y-|x))))

with log-probabilities summed over the response tokens only (the prompt is context, never scored). The reference is
the starting checkpoint, frozen: its log-probs are computed once before training (`precompute_reference`, the default,
and kept in the checkpoints), or on the fly from a frozen copy (the LoRA base when adapters are on, so no second
model is held). An optional NLL term on the chosen answer (per token) keeps the likelihood of good answers up.
Logged per step as TRL names them: rewards/chosen, rewards/rejected (beta * policy-reference log-ratio),
rewards/margins, rewards/accuracies (share of pairs with chosen reward above rejected), and the losses.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.lora import has_lora, lora_disabled
from model.vocab import guess_lang
from train.chat_data import (
    IGNORE,
    BenchmarkFilter,
    ChatTemplate,
    DataError,
    data_files,
    mix_by_ratio,
    normalize_lang,
    parse_message,
    read_records,
)
from train.finetune import RowLoader, finetune, finetune_runtime, start_or_resume
from train.loop import StepOutput
from train.source import load_model


@dataclass
class Pair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    lang: str


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair sigmoid DPO losses, and the implicit rewards of chosen and rejected answers (detached)."""
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    losses = -F.logsigmoid(beta * logits)
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards


def sequence_logps(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log p(target) over the positions with a target (not IGNORE), and how many there are, per row."""
    mask = targets != IGNORE
    logp = logits.float().log_softmax(-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1), mask.sum(-1)


def _response_text(where: str, v: object) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, dict):  # {"role": "assistant", "content": ...} or ShareGPT {"from": "gpt", "value": ...}
        return parse_message(where, v)["content"]
    raise DataError(f"{where}: chosen and rejected must be text")


def load_pairs(
    entries,
    template: ChatTemplate,
    seq_len: int,
    max_prompt_len: int | None,
    lang_field: str,
    system: str | None,
    benchmarks: BenchmarkFilter | None = None,
) -> tuple[list[Pair], int]:
    """Pairs cut to fit seq_len + 1 tokens (prompt from the left to max_prompt_len, answers from the right); the
    count of pairs dropped because an answer had no token left. With `benchmarks`, pairs whose prompt, chosen or
    rejected text holds a benchmark item are left out (counted there, not in the returned count)."""
    max_prompt = max_prompt_len or seq_len // 2
    pairs, dropped = [], 0
    for path in data_files(entries):
        for where, rec in read_records(path):
            if not isinstance(rec, dict) or not all(k in rec for k in ("prompt", "chosen", "rejected")):
                raise DataError(f"{where}: expected an object with prompt, chosen and rejected")
            p = rec["prompt"]
            if isinstance(p, str):
                messages = [{"role": "user", "content": p}]
            elif isinstance(p, list) and p:
                messages = [parse_message(where, m) for m in p]
            else:
                raise DataError(f"{where}: prompt must be text or a list of messages")
            if system and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": system})
            chosen, rejected = _response_text(where, rec["chosen"]), _response_text(where, rec["rejected"])
            if benchmarks is not None and not benchmarks.keep(
                where, [m["content"] for m in messages] + [chosen, rejected]
            ):
                continue
            lang = normalize_lang(rec.get(lang_field)) or guess_lang(" ".join(m["content"] for m in messages))
            prompt_ids = template.prompt_ids(messages)[-max_prompt:]
            budget = seq_len + 1 - len(prompt_ids)
            c, r = template.response_ids(chosen)[:budget], template.response_ids(rejected)[:budget]
            if not c or not r:
                dropped += 1
                continue
            pairs.append(Pair(prompt_ids, c, r, lang))
    if not pairs:
        raise DataError(f"no usable preference pairs in {', '.join(str(e) for e in entries)}")
    return pairs, dropped


def pair_batch(pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """2B rows, the chosen sequences then the rejected ones; targets are the answer tokens only."""
    seqs = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    T = max(len(a) + len(b) for a, b in seqs) - 1
    x = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    y = torch.full((len(seqs), T), IGNORE, dtype=torch.long)
    for i, (prompt, answer) in enumerate(seqs):
        ids = prompt + answer
        labels = [IGNORE] * len(prompt) + answer
        x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        y[i, : len(ids) - 1] = torch.tensor(labels[1:])
    return x, y


@torch.no_grad()
def reference_logps(model, pairs: list[Pair], batch_size: int, pad_id: int, device, autocast) -> torch.Tensor:
    """(N, 2) summed log-probs of chosen and rejected under `model` (adapters off), computed once."""
    was_training = model.training
    model.eval()
    out = []
    with lora_disabled(model):
        for m in range(0, len(pairs), batch_size):
            chunk = pairs[m : m + batch_size]
            x, y = pair_batch(chunk, pad_id)
            with autocast:
                logits, _ = model(x.to(device))
            lp, _ = sequence_logps(logits, y.to(device))
            out.append(torch.stack([lp[: len(chunk)], lp[len(chunk) :]], dim=1).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def run_dpo(job, say=print) -> dict:
    """`pipeline train dpo`: start from job.init_from (or resume job.out_dir) and optimise the DPO loss."""
    t = job.train
    rt = finetune_runtime(job)
    start = start_or_resume(job, say)
    device, autocast = rt.device, rt.autocast
    model = start.model.to(device)
    template = ChatTemplate(start.tokenizer, t.template)
    benchmarks = BenchmarkFilter(job.contamination) if job.contamination else None
    all_pairs, dropped = load_pairs(
        job.data, template, start.seq_len, t.max_prompt_len, t.lang_field, t.system, benchmarks
    )
    pairs, report = mix_by_ratio(all_pairs, [p.lang for p in all_pairs], t.zh_en_ratio, t.seed)
    checked = f"; {benchmarks.describe()}" if benchmarks else "; no benchmark check"
    say(
        f"DPO data: {report.describe()}; {len(pairs)} pairs ({dropped} dropped: no answer token left{checked}), "
        f"beta {t.beta}"
    )
    pad_id = start.tokenizer.pad_id if start.tokenizer.pad_id is not None else 0

    loader = RowLoader(len(pairs), t.batch_size * t.grad_accum, t.seed)
    ref_table = None
    ref_model = None
    if t.precompute_reference:
        ref_table = (start.resume or {}).get("reference_logps")
        if ref_table is None or len(ref_table) != len(pairs):
            if start.resume is not None:
                raise DataError(
                    f"{job.out_dir}: the resumed run has no reference log-probs for these {len(pairs)} pairs; "
                    "start a new run folder (or set precompute_reference = false)"
                )
            # only the pairs this run will visit: the loader's order is fixed by the seed
            plan = RowLoader(len(pairs), t.batch_size * t.grad_accum, t.seed)
            visit = sorted({i for _ in range(t.max_steps) for i in plan.next_step()})
            ref_table = torch.full((len(pairs), 2), float("nan"))
            ref_table[visit] = reference_logps(model, [pairs[i] for i in visit], t.batch_size, pad_id, device, autocast)
            say(f"reference log-probs of {len(visit)} pairs computed (the start checkpoint, frozen)")
    elif not has_lora(model):
        ref_model = load_model(start.origin["init_from"], merge=True).model.to(device).eval()
        for p in ref_model.parameters():
            p.requires_grad_(False)

    def reference(idx: list[int], x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if ref_table is not None:
            r = ref_table[idx]  # on the CPU: checked before it goes to the device, so no device sync
            if torch.isnan(r).any():
                raise DataError(
                    f"{job.out_dir}: no reference log-probs for some pairs (max_steps raised on resume?); "
                    "start a new run folder"
                )
            r = r.to(device, non_blocking=True)
            return r[:, 0], r[:, 1]
        with torch.no_grad(), lora_disabled(model) if ref_model is None else nullcontext():
            with autocast:
                logits, _ = (ref_model or model)(x)
            lp, _ = sequence_logps(logits, y)
        return lp[:k], lp[k:]

    def forward_backward(idx: list[int]) -> StepOutput:
        n = len(idx)
        # the metrics are summed in float64 on the device and read only on log steps
        sums = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("loss", "dpo", "sft")}
        sums |= {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("rc", "rr", "acc", "lc", "lr")}
        tokens = 0
        for m in range(0, n, t.batch_size):
            chunk = idx[m : m + t.batch_size]
            k = len(chunk)
            x, y = (v.to(device, non_blocking=True) for v in pair_batch([pairs[i] for i in chunk], pad_id))
            with autocast:
                logits, _ = model(x)
            lp, counts = sequence_logps(logits, y)
            pc, pr = lp[:k], lp[k:]
            rc, rr = reference(chunk, x, y, k)
            losses, chosen_r, rejected_r = dpo_loss(pc, pr, rc, rr, t.beta)
            dpo = losses.mean()
            sft = -pc.sum() / counts[:k].sum()
            loss = dpo + t.sft_weight * sft if t.sft_weight else dpo
            (loss * k / n).backward()
            w = k / n
            sums["loss"] += loss.detach().double() * w
            sums["dpo"] += dpo.detach().double() * w
            sums["sft"] += sft.detach().double() * w
            sums["rc"] += chosen_r.mean().double() * w
            sums["rr"] += rejected_r.mean().double() * w
            sums["acc"] += (chosen_r > rejected_r).float().mean().double() * w
            sums["lc"] += pc.detach().mean().double() * w
            sums["lr"] += pr.detach().mean().double() * w
            tokens += x.numel()
        metrics = {
            "dpo_loss": sums["dpo"],
            "sft_loss": sums["sft"],
            "rewards/chosen": sums["rc"],
            "rewards/rejected": sums["rr"],
            "rewards/margins": sums["rc"] - sums["rr"],
            "rewards/accuracies": sums["acc"],
            "logps/chosen": sums["lc"],
            "logps/rejected": sums["lr"],
            "tokens": tokens,
        }
        return StepOutput(sums["loss"], tokens, metrics)

    run_info = {
        "data": [str(p) for p in job.data],
        "zh_en_ratio": t.zh_en_ratio,
        "pairs_available": report.available,
        "pairs_selected": report.selected,
        "realised_zh_en": report.realised,
        "pairs_dropped": dropped,
        "benchmark_check": benchmarks.summary() if benchmarks else None,
        "beta": t.beta,
        "sft_weight": t.sft_weight,
        "reference": "precomputed" if ref_table is not None else ("lora-base" if ref_model is None else "frozen copy"),
    }
    return finetune(
        job,
        start,
        rt,
        loader,
        forward_backward,
        run_info=run_info,
        template=t.template,
        extra_state=lambda: {"reference_logps": ref_table} if ref_table is not None else {},
    )
