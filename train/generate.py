"""Generation: greedy or sampled (temperature, top-k, top-p), with a repetition penalty, stop tokens and stop strings,
for a batch of prompts at once (left-padded) and with a KV cache (model.model.KVCache), from plain prompts or chat
turns built with the SFT template; and `generate_file`, which answers a JSONL file of prompts, resumably.

Left padding: the prompts are right-aligned so every row's next token is at the same column; padding is segment 0 and
text segment 1 (the model's packed-sequence mask keeps them apart) and positions count from each row's first real
token, so a row gets the tokens it would get alone.

`dpo_pairs_file` builds preference pairs CT-LLM's way: the SFT data's reference answer is chosen, a weak model's
answer to the same prompt rejected."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from model.model import KVCache
from train.chat_data import ChatTemplate, DataError, parse_message, read_records, to_example


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits (vocab,) with everything outside the top k and outside the top-p nucleus set to -inf. The most likely
    token always stays."""
    logits = logits.clone()
    if top_k and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability mass strictly above each token
        drop = before >= top_p
        drop[0] = False
        logits[order[drop]] = float("-inf")
    return logits


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019, as in Hugging Face): the logit of every token already in the context
    (`seen`, a bool mask shaped like logits) is divided by `penalty` where positive and multiplied where negative, so
    a penalty above 1 makes repeats less likely and one below 1 more likely."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


@dataclass
class Generation:
    ids: list[int]  # the new tokens (a stop token is not included; the tokens completing a stop string are)
    finish: str  # "stop" (a stop token or stop string) or "length" (max_new_tokens reached)


def _window(tokens: torch.Tensor, segments: torch.Tensor, max_len: int):
    """The last max_len columns, with the positions of each row's text counted from its first token in them."""
    tokens, segments = tokens[:, -max_len:], segments[:, -max_len:]
    if bool(segments.all()):  # no padding: the plain causal forward, exactly as a single prompt gets it
        return tokens, None, None
    return tokens, (segments.cumsum(1) - 1).clamp(min=0), segments


@torch.no_grad()
def generate_ids(
    model,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    stop_ids: set[int] | frozenset[int] = frozenset(),
    stop_strings: Sequence[str] = (),
    decode: Callable[[list[int]], str] | None = None,
    vocab_size: int | None = None,
    generators: Sequence[torch.Generator | None] | None = None,
    use_cache: bool = True,
) -> list[Generation]:
    """New tokens for each prompt, up to max_new_tokens, a stop id or a stop string (which needs `decode`).
    temperature 0 is greedy; vocab_size keeps padding rows of the embedding from being chosen; generators (one per
    prompt) make sampling independent of how prompts are batched. With use_cache the context is run once and each
    new token costs one step; once the context outgrows max_seq_len generation continues without the cache on the
    last max_seq_len tokens (as nanoGPT's sliding window)."""
    if any(not p for p in prompts):
        raise DataError("a prompt is empty")
    if stop_strings and decode is None:
        raise ValueError("stop strings need a decode function")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    B, L, max_len = len(prompts), max(len(p) for p in prompts), model.cfg.max_seq_len
    tokens = torch.zeros(B, L, dtype=torch.long, device=device)  # the pad id is irrelevant: padding is masked
    segments = torch.zeros(B, L, dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        tokens[b, L - len(p) :] = torch.tensor(p, device=device)
        segments[b, L - len(p) :] = 1
    vocab = model.cfg.vocab_size
    seen = torch.zeros(B, vocab, dtype=torch.bool)
    for b, p in enumerate(prompts):
        seen[b, p] = True
    generators = list(generators) if generators is not None else [None] * B
    out: list[list[int]] = [[] for _ in range(B)]
    finish: list[str | None] = [None] * B
    cache = None
    if use_cache and L < max_len:
        cache = KVCache(model.cfg, B, min(L + max_new_tokens, max_len), device, next(model.parameters()).dtype)
    x, pos, seg = _window(tokens, segments, max_len)
    logits, _ = model(x, position_ids=pos, segment_ids=seg, cache=cache)
    for step in range(max_new_tokens):
        last = logits[:, -1].float().cpu()
        if vocab_size is not None:
            last[:, vocab_size:] = float("-inf")
        last = apply_repetition_penalty(last, seen, repetition_penalty)
        nxt = []
        for b in range(B):
            if finish[b] is not None:
                nxt.append(0)
                continue
            if temperature == 0:
                t = int(last[b].argmax())
            else:
                probs = filter_logits(last[b] / temperature, top_k, top_p).softmax(-1)
                t = int(torch.multinomial(probs, 1, generator=generators[b]))
            nxt.append(t)
            if t in stop_ids:
                finish[b] = "stop"
                continue
            out[b].append(t)
            seen[b, t] = True
            if stop_strings and any(s in decode(out[b]) for s in stop_strings):
                finish[b] = "stop"
        if all(f is not None for f in finish) or step == max_new_tokens - 1:
            break
        new = torch.tensor(nxt, device=device)[:, None]
        tokens = torch.cat([tokens, new], dim=1)
        segments = torch.cat([segments, torch.ones_like(new)], dim=1)
        if cache is not None and cache.length >= cache.max_len:
            cache = None  # the context no longer fits: recompute on the window from here on
        if cache is not None:
            pos = None if seg is None else pos[:, -1:] + 1
            logits, _ = model(
                new, position_ids=pos, segment_ids=None if seg is None else torch.ones_like(new), cache=cache
            )
        else:
            x, pos, seg = _window(tokens, segments, max_len)
            logits, _ = model(x, position_ids=pos, segment_ids=seg)
    model.train(was_training)
    return [Generation(ids, f or "length") for ids, f in zip(out, finish)]


def sample(
    model,
    ids: list[int],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop_ids: set[int] | frozenset[int] = frozenset(),
    vocab_size: int | None = None,
    generator: torch.Generator | None = None,
    repetition_penalty: float = 1.0,
    use_cache: bool = True,
) -> list[int]:
    """New token ids after one prompt `ids` (see generate_ids)."""
    return generate_ids(
        model,
        [ids],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        stop_ids=stop_ids,
        vocab_size=vocab_size,
        generators=[generator],
        repetition_penalty=repetition_penalty,
        use_cache=use_cache,
    )[0].ids


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """text up to (not including) the earliest stop string in it."""
    cuts = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return text[: min(cuts)] if cuts else text


class Generator:
    """A loaded model (train.source.Loaded) and `[eval.generate]` settings: turns prompts or chat messages into
    token ids (chat template or plain text) and answers batches of them."""

    def __init__(self, loaded, settings, device: torch.device | None = None):
        self.tok, self.settings = loaded.tokenizer, settings
        self.model = loaded.model.to(device or torch.device("cpu"))
        mode = settings.chat
        self.chat = mode == "on" or (mode == "auto" and loaded.info.get("mode") in ("sft", "dpo"))
        self.stop_ids = {self.tok.eos_id} if self.tok.eos_id is not None else set()
        self.template_kind = loaded.info.get("template") or "chat"
        self._template: ChatTemplate | None = None

    @property
    def template(self) -> ChatTemplate:
        if self._template is None:  # built on first use: a plain model's tokenizer may have no chat control tokens
            self._template = ChatTemplate(self.tok, self.template_kind)
        return self._template

    def prompt_ids(
        self, prompt: str | None = None, messages: list[dict[str, str]] | None = None
    ) -> tuple[list[int], bool]:
        """(ids, whether the chat template was used): messages always use it, a prompt when chat is on."""
        if messages is not None or self.chat:
            msgs = messages if messages is not None else [{"role": "user", "content": prompt}]
            return self.template.prompt_ids(msgs), True
        ids = self.tok.encode(prompt or "")
        if not ids:
            raise DataError("the prompt is empty")
        return ids, False

    def answer(self, prompts: list[list[int]], chat: list[bool], seeds: list[int]) -> list[tuple[str, Generation]]:
        """(text, generation) per prompt; each prompt samples with its own seed, so batching does not change it."""
        s = self.settings
        stop = set(self.stop_ids)
        if any(chat):
            stop |= self.template.stop_ids
        gens = generate_ids(
            self.model,
            prompts,
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            repetition_penalty=s.repetition_penalty,
            stop_ids=stop,
            stop_strings=s.stop,
            decode=self.tok.decode,
            vocab_size=self.tok.vocab_size,
            generators=[torch.Generator().manual_seed(seed) for seed in seeds],
            use_cache=s.cache,
        )
        return [(cut_at_stop(self.tok.decode(g.ids), s.stop), g) for g in gens]


def generate_text(loaded, prompt: str, settings, device: torch.device | None = None) -> tuple[str, bool, int]:
    """(completion, whether the chat template was used, tokens generated) for a train.source.Loaded model and
    `[eval.generate]` settings."""
    gen = Generator(loaded, settings, device)
    ids, chat = gen.prompt_ids(prompt)
    [(text, g)] = gen.answer([ids], [chat], [settings.seed])
    return text, chat, len(g.ids)


def read_prompts(path: Path) -> list[dict]:
    """The records of a JSONL file, each with `prompt` (text) or `messages` (a chat); errors name file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{where}: expected a JSON object with `prompt` or `messages`")
            if isinstance(rec.get("messages"), list) and rec["messages"]:
                rec["messages"] = [parse_message(where, m) for m in rec["messages"]]
            elif not isinstance(rec.get("prompt"), str) or not rec["prompt"]:
                raise DataError(f"{where}: needs `prompt` (non-empty text) or `messages` (a non-empty list)")
            records.append(rec)
    return records


def _done_lines(output: Path, records: list[dict]) -> int:
    """Lines of an earlier run's output that are complete and match the input, in order; a partial last line (a run
    killed mid-write) is cut off so that it is redone."""
    if not output.exists():
        return 0
    data = output.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.decode("utf-8").splitlines()
    for n, line in enumerate(lines):
        rec = json.loads(line)
        if n >= len(records) or rec.get("index") != n or any(rec.get(k) != v for k, v in records[n].items()):
            raise DataError(
                f"{output}:{n + 1} is not the answer to input line {n + 1}: the input changed since it was written; "
                "remove the output to start over"
            )
    if len(complete) != len(data):
        with open(output, "r+b") as f:
            f.truncate(len(complete))
    return len(lines)


def generate_file(
    gen: Generator, input_path: Path, output: Path, *, batch_size: int, progress: bool = True
) -> tuple[int, int]:
    """Answer every record of input_path into output, one JSON line per input line in order: the input record plus
    `index`, `completion`, `tokens` and `finish`. A rerun resumes after the last complete line. Returns (lines done
    before this run, lines in total)."""
    records = read_prompts(input_path)
    done = _done_lines(output, records)
    output.parent.mkdir(parents=True, exist_ok=True)
    encoded = []
    for n, rec in enumerate(records[done:], done):
        try:
            encoded.append(gen.prompt_ids(rec.get("prompt"), rec.get("messages")))
        except DataError as e:
            raise DataError(f"{input_path}:{n + 1}: {e}") from None
    with open(output, "a", encoding="utf-8") as f, tqdm(total=len(records), initial=done, disable=not progress) as bar:
        for start in range(done, len(records), batch_size):
            stop = min(start + batch_size, len(records))
            batch = encoded[start - done : stop - done]
            answers = gen.answer(
                [ids for ids, _ in batch], [c for _, c in batch], [gen.settings.seed + n for n in range(start, stop)]
            )
            lines = []
            for n, (text, g) in zip(range(start, stop), answers):
                row = {**records[n], "index": n, "completion": text, "tokens": len(g.ids), "finish": g.finish}
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            f.write("".join(lines))  # whole lines, flushed per batch: a kill leaves at most one partial line
            f.flush()
            os.fsync(f.fileno())
            bar.update(stop - start)
    return done, len(records)


def similarity(a: str, b: str) -> float:
    """difflib's ratio of two answers (whitespace at the ends ignored): 1.0 = equal, 0.0 = nothing in common."""
    return difflib.SequenceMatcher(None, a.strip(), b.strip(), autojunk=False).ratio()


def dpo_pairs_file(
    gen: Generator,
    input_path: Path,
    output: Path,
    *,
    batch_size: int,
    max_similarity: float = 0.9,
    progress: bool = True,
) -> dict[str, int]:
    """CT-LLM's preference pairs: for every SFT record (chat `messages` or Alpaca `instruction`/`output`) the
    reference answer is `chosen` and the weak model's answer to the same prompt is `rejected`; pairs whose answers
    are (near) equal (similarity >= max_similarity) or whose rejected answer is empty are dropped. Writes
    `{prompt, chosen, rejected, lang}` lines (prompt: the user text, or the message list when there is more than one
    user turn or a system message) atomically, in input order, and returns the counts. Record n samples with
    seed + n."""
    examples = [to_example(where, rec) for where, rec in read_records(Path(input_path))]
    if not examples:
        raise DataError(f"{input_path}: no records")
    counts = {"records": len(examples), "kept": 0, "dropped_similar": 0, "dropped_empty": 0}
    rows = []
    with tqdm(total=len(examples), disable=not progress, desc="dpo-pairs") as bar:
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            prompts = [gen.template.prompt_ids(ex.messages[:-1]) for ex in batch]
            seeds = [gen.settings.seed + n for n in range(start, start + len(batch))]
            for ex, (rejected, _) in zip(batch, gen.answer(prompts, [True] * len(batch), seeds)):
                chosen = ex.messages[-1]["content"]
                if not rejected.strip():
                    counts["dropped_empty"] += 1
                    continue
                if similarity(chosen, rejected) >= max_similarity:
                    counts["dropped_similar"] += 1
                    continue
                turns = ex.messages[:-1]
                prompt = turns[0]["content"] if len(turns) == 1 else turns
                rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "lang": ex.lang})
            bar.update(len(batch))
    counts["kept"] = len(rows)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, output)  # atomic: a killed run leaves no half-written pairs file
    return counts
