"""`pipeline eval`: validation loss and bits per byte on token shards or held-out text (per language), k-shot
multiple-choice accuracy by log-likelihood on C-Eval / CMMLU / MMLU-format files (per subject and overall), and
generation tasks scored with BLEU and ROUGE-L against references.

Multiple choice: each item's prompt lists the options (A. ..., B. ..., as many as the item has) and ends with 答案：
or Answer:, and the option whose letter the model finds most likely wins (mc_mode "letter", as the C-Eval and MMLU
harnesses score); or, with mc_mode "content", the option whose text has the highest log-likelihood per UTF-8 byte
after the question (length normalised, lm-eval's acc_norm). Prompt and continuation are encoded separately, as the
SFT masks are. With k shots the prompt is laid out as C-Eval's and MMLU's few-shot prompts: a header naming the
subject (以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。 / The following are multiple choice
questions (with answers) about {subject}.), then k solved examples of the same subject (question, options, answer
letter), then the question. The examples come from a dev split file, or else are the first k items of each subject
of the task, which are then not scored.

Generation: greedy answers to each prompt, scored against the references with sacrebleu's corpus BLEU and
rouge-score's ROUGE-L F1 (best reference per item, averaged). Chinese is scored by characters, as is usual for it:
sacrebleu's `zh` tokenizer, and for ROUGE-L a tokenizer that makes each Han character a token (rouge-score's default
tokenizer keeps only [a-z0-9] and would drop Chinese text entirely).
"""

from __future__ import annotations

import csv
import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sacrebleu
import torch
from rouge_score import rouge_scorer

from model.han import HAN
from model.vocab import guess_lang, load_samples
from train.chat_data import DataError, parse_message, read_records

# Option letters: C-Eval/CMMLU/MMLU use A-D, CHARM up to F, other sets more (8 and 10 options exist); one item may
# have up to 26.
LETTERS = string.ascii_uppercase


@dataclass
class McItem:
    question: str
    options: list[str]
    answer: int
    subject: str = ""


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_mc(path: str | Path) -> list[McItem]:
    """Items from columns question, A, B, C, ... (empty or absent = no such option; up to Z), answer (a letter); or
    question, choices (a list), answer (an index or a letter). Errors name the file and row."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such multiple-choice file")
    try:
        rows = _rows(path)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    items = []
    for n, r in enumerate(rows, 1):
        q = r.get("question")
        if "choices" in r:
            options = [str(o) for o in r["choices"]]
        else:
            options = []
            for letter in LETTERS:
                v = r.get(letter)
                if v is None or (isinstance(v, str) and not v.strip()):
                    break
                options.append(str(v))
        ans = r.get("answer")
        if isinstance(ans, str) and ans.strip().upper() in LETTERS:
            ans = LETTERS.index(ans.strip().upper())
        elif isinstance(ans, str) and ans.strip().isdigit():
            ans = int(ans)
        if not isinstance(q, str) or len(options) < 2 or not isinstance(ans, int) or not 0 <= ans < len(options):
            raise ValueError(f"{path}: row {n}: needs question, at least two options and an answer among them")
        items.append(McItem(q, options, ans, str(r.get("subject") or r.get("task") or "")))
    if not items:
        raise ValueError(f"{path}: no items")
    return items


def _subject_name(subject: str) -> str:
    return subject.replace("_", " ").strip()


def _mc_block(item: McItem, lang: str, mode: str, answer: bool) -> str:
    """One question as laid out in the prompt; with `answer`, solved (a few-shot example)."""
    if mode == "letter":
        listed = "".join(f"{LETTERS[i]}. {o}\n" for i, o in enumerate(item.options))
        if lang == "zh":
            return f"{item.question}\n{listed}答案：" + (f"{LETTERS[item.answer]}\n\n" if answer else "")
        return f"{item.question}\n{listed}Answer:" + (f" {LETTERS[item.answer]}\n\n" if answer else "")
    if lang == "zh":
        return f"{item.question}\n答案：" + (f"{item.options[item.answer]}\n\n" if answer else "")
    return f"Question: {item.question}\nAnswer:" + (f" {item.options[item.answer]}\n\n" if answer else "")


def mc_prompt(item: McItem, lang: str, mode: str, shots: Sequence[McItem] = ()) -> tuple[str, list[str]]:
    """The prompt text and the continuation per option. `shots`: solved examples put before the question, after a
    header naming the subject (C-Eval's and MMLU's few-shot layout)."""
    if len(item.options) > len(LETTERS):
        raise ValueError(f"{len(item.options)} options: at most {len(LETTERS)} can be lettered")
    examples = "".join(_mc_block(s, lang, mode, answer=True) for s in shots)
    block = _mc_block(item, lang, mode, answer=False)
    subject = _subject_name(item.subject)
    if mode == "letter":
        if lang == "zh":
            head = (
                f"以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n"
                if subject and shots
                else "以下是单项选择题，请选出正确答案。\n\n"
            )
            return head + examples + block, list(LETTERS[: len(item.options)])
        head = (
            f"The following are multiple choice questions (with answers) about {subject}.\n\n"
            if subject and shots
            else "The following is a multiple choice question. Choose the correct answer.\n\n"
        )
        return head + examples + block, [f" {c}" for c in LETTERS[: len(item.options)]]
    if lang == "zh":
        return examples + block, list(item.options)
    return examples + block, [f" {o}" for o in item.options]


@dataclass
class FewShot:
    """Where a task's k solved examples come from: per subject, else the first ones of the pool."""

    k: int
    by_subject: dict[str, list[McItem]] = field(default_factory=dict)
    pool: list[McItem] = field(default_factory=list)
    source: str = ""

    def examples(self, item: McItem) -> list[McItem]:
        if self.k == 0:
            return []
        same = [s for s in self.by_subject.get(item.subject, []) if s is not item][: self.k]
        if len(same) < self.k:
            same += [s for s in self.pool if s is not item and s not in same][: self.k - len(same)]
        return same


def split_few_shot(
    items: list[McItem], k: int, dev: list[McItem] | None = None, dev_name: str = ""
) -> tuple[FewShot, list[McItem]]:
    """(the few-shot examples, the items to score). With a dev split the examples are its items of the same
    subject (else its first ones) and every task item is scored; without, the first k items of each subject are
    the examples and are not scored."""
    if k == 0:
        return FewShot(0, source="zero-shot"), items
    by_subject: dict[str, list[McItem]] = {}
    if dev is not None:
        for d in dev:
            by_subject.setdefault(d.subject, []).append(d)
        return FewShot(k, by_subject, list(dev), f"dev split {dev_name}"), items
    scored = []
    for item in items:
        taken = by_subject.setdefault(item.subject, [])
        if len(taken) < k:
            taken.append(item)
        else:
            scored.append(item)
    pool = [s for group in by_subject.values() for s in group]
    return FewShot(k, by_subject, pool, f"the first {k} items of each subject, not scored"), scored


@torch.no_grad()
def continuation_logps(model, tok, pairs: list[tuple[list[int], list[int]]], batch_size: int) -> list[float]:
    """Summed log p(continuation | prompt) for (prompt ids, continuation ids) pairs; prompts are cut from the left
    to fit the model's context."""
    device = next(model.parameters()).device
    T_max = model.cfg.max_seq_len
    seqs, spans = [], []
    for prompt, cont in pairs:
        cont = cont[: T_max - 1]
        prompt = prompt[-(T_max + 1 - len(cont)) :] if prompt else []
        ids = prompt + cont
        seqs.append(ids)
        spans.append((len(ids) - 1 - len(cont), len(cont)))  # targets at positions [start, start + n) of x
    out: list[float] = []
    pad = tok.pad_id if tok.pad_id is not None else 0
    for m in range(0, len(seqs), batch_size):
        chunk = seqs[m : m + batch_size]
        T = max(len(s) for s in chunk) - 1
        x = torch.full((len(chunk), T), pad, dtype=torch.long)
        for i, s in enumerate(chunk):
            x[i, : len(s) - 1] = torch.tensor(s[:-1])
        logp = model(x.to(device))[0].float().log_softmax(-1).cpu()
        for i, s in enumerate(chunk):
            start, n = spans[m + i]
            targets = torch.tensor(s[start + 1 : start + 1 + n])
            out.append(float(logp[i, start : start + n].gather(-1, targets.unsqueeze(-1)).sum()))
    return out


@torch.no_grad()
def next_token_logps(model, prompts: list[list[int]], batch_size: int) -> list[torch.Tensor]:
    """log p(next token | prompt) over the vocabulary for each prompt (cut from the left to the model's context):
    what `continuation_logps` gives for a one-token continuation, with one forward pass per prompt instead of one per
    option."""
    device = next(model.parameters()).device
    T_max = model.cfg.max_seq_len
    cut = [p[-T_max:] for p in prompts]
    out: list[torch.Tensor] = []
    for m in range(0, len(cut), batch_size):
        chunk = cut[m : m + batch_size]
        T = max(len(p) for p in chunk)
        x = torch.zeros((len(chunk), T), dtype=torch.long)  # right padding: causal, so it never reaches the prompt
        for i, p in enumerate(chunk):
            x[i, : len(p)] = torch.tensor(p)
        logits = model(x.to(device))[0]
        for i, p in enumerate(chunk):
            out.append(logits[i, len(p) - 1].float().log_softmax(-1).cpu())
    return out


def mc_accuracy(
    model, tok, items: list[McItem], *, mode: str, lang: str, batch_size: int = 16, few_shot: FewShot | None = None
) -> dict:
    """Accuracy of picking the most likely option: overall (over items), macro (mean over subjects), per subject."""
    pairs, owners, norms = [], [], []
    for k, item in enumerate(items):
        item_lang = lang if lang != "auto" else guess_lang(item.question)
        shots = few_shot.examples(item) if few_shot else []
        prompt, conts = mc_prompt(item, item_lang, mode, shots)
        p_ids = tok.encode(prompt)
        for c in conts:
            pairs.append((p_ids, tok.encode(c)))
            owners.append(k)
            norms.append(len(c.encode("utf-8")) if mode == "content" else 1)
    if all(len(c) == 1 and p for p, c in pairs):  # letters are one token each: one pass per item scores them all
        first = {k: i for i, k in reversed(list(enumerate(owners)))}
        logps = next_token_logps(model, [pairs[first[k]][0] for k in range(len(items))], batch_size)
        scores = [float(logps[k][c[0]]) for k, (_, c) in zip(owners, pairs)]
    else:
        scores = continuation_logps(model, tok, pairs, batch_size)
    best: dict[int, tuple[float, int]] = {}
    option = [0] * len(items)
    for k, s, z in zip(owners, scores, norms):
        s = s / z
        if k not in best or s > best[k][0]:
            best[k] = (s, option[k])
        option[k] += 1
    correct = [best[k][1] == item.answer for k, item in enumerate(items)]
    by_subject: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct):
        by_subject.setdefault(item.subject or "-", []).append(ok)
    subjects = {
        s: {"items": len(v), "correct": sum(v), "accuracy": sum(v) / len(v)} for s, v in sorted(by_subject.items())
    }
    return {
        "items": len(items),
        "correct": sum(correct),
        "accuracy": sum(correct) / len(items),
        "macro_accuracy": sum(r["accuracy"] for r in subjects.values()) / len(subjects),
        "chance": sum(1 / len(i.options) for i in items) / len(items),
        "shots": few_shot.k if few_shot else 0,
        "shots_from": few_shot.source if few_shot else "zero-shot",
        "by_subject": {s: r["accuracy"] for s, r in subjects.items()},
        "subjects": subjects,
    }


@torch.no_grad()
def text_loss(model, tok, path: str | Path, batch_size: int, seq_len: int) -> dict[str, dict]:
    """Per language of a held-out text file: mean loss per token and bits per UTF-8 byte. Documents are encoded
    with EOS after each, joined, and cut into windows of seq_len targets; every token after the first is predicted
    once. Bytes are counted from the tokens (tokenizer.piece_bytes), so the figure is comparable across
    tokenizers."""
    device = next(model.parameters()).device
    by_lang: dict[str, list[str]] = {}
    for lang, text in load_samples(path):
        by_lang.setdefault(lang, []).append(text)
    piece_bytes = torch.from_numpy(tok.piece_bytes).double()
    pad = tok.pad_id if tok.pad_id is not None else 0
    out = {}
    for lang, texts in sorted(by_lang.items()):
        ids = [i for t in texts for i in tok.encode(t, eos=True)]
        windows = [ids[s : s + seq_len + 1] for s in range(0, len(ids) - 1, seq_len)]
        windows = [w for w in windows if len(w) > 1]
        nll = nbytes = ntok = 0.0
        for m in range(0, len(windows), batch_size):
            chunk = windows[m : m + batch_size]
            T = max(len(w) for w in chunk) - 1
            x = torch.full((len(chunk), T), pad, dtype=torch.long)
            y = torch.full((len(chunk), T), -100, dtype=torch.long)
            for i, w in enumerate(chunk):
                x[i, : len(w) - 1], y[i, : len(w) - 1] = torch.tensor(w[:-1]), torch.tensor(w[1:])
            logits = model(x.to(device))[0].float().cpu()
            losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            mask = y.flatten() != -100
            nll += float(losses[mask].double().sum())
            ntok += int(mask.sum())
            nbytes += float(piece_bytes[y.flatten()[mask]].sum())
        out[lang] = {
            "docs": len(texts),
            "tokens": int(ntok),
            "loss": nll / ntok if ntok else float("nan"),
            "bpb": nll / (math.log(2) * nbytes) if nbytes else float("nan"),
        }
    return out


def mc_table(results: dict[str, dict]) -> str:
    lines = [
        "| task | shots | items | accuracy | macro (subjects) | chance |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        macro = f"{100 * r['macro_accuracy']:.1f}% ({len(r['subjects'])})" if "macro_accuracy" in r else ""
        lines.append(
            f"| {name} | {r.get('shots', 0)} | {r['items']} | {100 * r['accuracy']:.1f}% | {macro} "
            f"| {100 * r['chance']:.1f}% |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# generation tasks: BLEU and ROUGE-L against references


@dataclass
class GenItem:
    messages: list[dict[str, str]]  # the prompt as chat turns (a plain prompt is one user turn)
    references: list[str]
    lang: str


def load_gen(path: str | Path, lang_field: str = "lang") -> list[GenItem]:
    """Items from JSONL, JSON or Parquet rows with a prompt (`prompt` text or chat list, `messages` without the
    answer, or Alpaca `instruction` + `input`) and `reference` (text) or `references` (a list; Alpaca: `output`).
    Errors name the file and row."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such generation task file")
    items = []
    for where, rec in read_records(path):
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object")
        if isinstance(rec.get("prompt"), str):
            messages = [{"role": "user", "content": rec["prompt"]}]
        elif isinstance(rec.get("prompt"), list) or isinstance(rec.get("messages"), list):
            messages = [parse_message(where, m) for m in rec.get("prompt") or rec["messages"]]
        elif isinstance(rec.get("instruction"), str):
            text = rec["instruction"] + (f"\n{rec['input']}" if rec.get("input") else "")
            messages = [{"role": "user", "content": text}]
        else:
            raise DataError(f"{where}: needs `prompt`, `messages` or `instruction`")
        refs = rec.get("references", rec.get("reference", rec.get("output")))
        refs = [refs] if isinstance(refs, str) else refs
        if not messages or not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise DataError(f"{where}: needs a non-empty prompt and `reference` text (or `references`, a list)")
        lang = rec.get(lang_field) if rec.get(lang_field) in ("zh", "en") else guess_lang(refs[0])
        items.append(GenItem(messages, refs, lang))
    if not items:
        raise DataError(f"{path}: no items")
    return items


_CJK_OR_WORD = re.compile(rf"{HAN.pattern}|[^\W\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


class CharTokenizer:
    """rouge-score tokenizer for Chinese: each Han character is a token, other runs of letters or digits are words
    (lower-cased), punctuation and spaces are dropped."""

    def tokenize(self, text: str) -> list[str]:
        return [t.lower() for t in _CJK_OR_WORD.findall(text)]


def bleu_rouge(hypotheses: list[str], references: list[list[str]], lang: str) -> dict:
    """Corpus BLEU (sacrebleu; tokenizer `zh` for Chinese, `13a` otherwise) and mean ROUGE-L F1 (best reference per
    item; characters for Chinese), both in 0..100."""
    n_refs = max(len(r) for r in references)
    # sacrebleu takes one stream per reference position; an item with fewer references repeats its last one
    streams = [[r[min(i, len(r) - 1)] for r in references] for i in range(n_refs)]
    tokenize = "zh" if lang == "zh" else "13a"
    metric = sacrebleu.BLEU(tokenize=tokenize)
    bleu = metric.corpus_score(hypotheses, streams)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer() if lang == "zh" else None)
    rouge = [
        max(scorer.score(ref, hyp)["rougeL"].fmeasure for ref in refs) for hyp, refs in zip(hypotheses, references)
    ]
    return {
        "bleu": round(bleu.score, 4),  # 4 decimals: sacrebleu's float sum can land at 100.00000000000004
        "rouge_l": round(100 * sum(rouge) / len(rouge), 4),
        "bleu_signature": str(metric.get_signature()),
    }


def generation_scores(gen, items: list[GenItem], batch_size: int, lang: str = "auto") -> dict:
    """Answers every item with `gen` (a train.generate.Generator: its settings decide decoding) and scores them,
    overall and per language."""
    hyps: list[str] = []
    for m in range(0, len(items), batch_size):
        chunk = items[m : m + batch_size]
        prompts = [
            gen.prompt_ids(messages=it.messages)[0] if gen.chat else gen.prompt_ids(_plain(it))[0] for it in chunk
        ]
        hyps += [
            text.strip() for text, _ in gen.answer(prompts, [gen.chat] * len(chunk), [gen.settings.seed] * len(chunk))
        ]
    by_lang: dict[str, list[int]] = {}
    for k, it in enumerate(items):
        by_lang.setdefault(lang if lang != "auto" else it.lang, []).append(k)
    per_lang = {
        g: {"items": len(ks), **bleu_rouge([hyps[k] for k in ks], [items[k].references for k in ks], g)}
        for g, ks in sorted(by_lang.items())
    }
    out = {"items": len(items), "chat": gen.chat, "by_lang": per_lang, "examples": []}
    if len(per_lang) == 1:
        out.update({k: v for k, v in next(iter(per_lang.values())).items() if k != "items"})
    for k in range(min(3, len(items))):
        out["examples"].append(
            {"prompt": items[k].messages[-1]["content"], "answer": hyps[k], "reference": items[k].references[0]}
        )
    return out


def _plain(item: GenItem) -> str:
    return "\n\n".join(m["content"] for m in item.messages)


def generation_table(results: dict[str, dict]) -> str:
    lines = ["| task | lang | items | BLEU | ROUGE-L |", "| --- | --- | ---: | ---: | ---: |"]
    for name, r in results.items():
        for lang, g in r["by_lang"].items():
            lines.append(f"| {name} | {lang} | {g['items']} | {g['bleu']:.2f} | {g['rouge_l']:.2f} |")
    return "\n".join(lines)
