"""Chat data for fine-tuning (SFT and DPO) and chat generation: records, the chat templates, language, ratio mixing.

- `read_records` reads JSONL, a JSON array or Parquet; `to_example` turns a record in chat form (`messages` with
  role/content, or ShareGPT `conversations` with from/value) or Alpaca form (instruction, input, output) into
  messages and a language (the `lang` column, else a Han-character share guess, model.vocab.guess_lang).
- `ChatTemplate` encodes each segment (role marker, message text, end marker) on its own and concatenates the ids,
  so the loss mask is exact by construction: the labels are the assistant segments' ids, never found by searching
  a response template in the joined token stream (which breaks when tokens merge across the boundary, as they do in
  Chinese). The `chat` template uses the tokenizer's control tokens by id; the `alpaca` template is
  Chinese-LLaMA-Alpaca's plain-text prompt with EOS ending each answer.
- `BenchmarkFilter` drops examples that hold a benchmark test item (the corpus decontam stage's check, handed in by
  the pipeline layer) and counts them for run.json.
- `mix_by_ratio` keeps every Chinese example and samples English to a zh:en ratio (CT-LLM's 1:1 ... 8:1), or the
  other way round when English is short.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from model.tokenizer import Tokenizer
from model.vocab import guess_lang
from train.config import parse_ratio

IGNORE = -100
ROLES = ("system", "user", "assistant")
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}
CONTROL_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>", "end": "<|end|>"}
# Chinese-LLaMA-Alpaca's prompt (scripts/training/build_dataset.py); an `input` is appended to the instruction.
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response: "
)
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


class DataError(ValueError):
    """An SFT/DPO data file that cannot be used; the message names the file (and line)."""


# ---------------------------------------------------------------------------------------------------------------
# records


def data_files(entries: list[Path]) -> list[Path]:
    """Files as given, and the .jsonl/.json/.parquet files inside folders (sorted)."""
    out: list[Path] = []
    for e in entries:
        e = Path(e)
        if e.is_dir():
            found = sorted(p for p in e.iterdir() if p.suffix in DATA_SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"{e}: no .jsonl, .json or .parquet files in this folder")
            out.extend(found)
        elif e.is_file():
            out.append(e)
        else:
            raise DataError(f"{e}: no such file or folder")
    return out


def read_records(path: Path) -> list[tuple[str, dict]]:
    """(where, record) pairs; `where` is "file:line" (JSONL) or "file:#row" for error messages."""
    path = Path(path)
    if path.suffix == ".parquet":
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
        return [(f"{path}:#{i}", r) for i, r in enumerate(rows)]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: invalid JSON ({e})") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON array of records")
        return [(f"{path}:#{i}", r) for i, r in enumerate(rows)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: invalid JSON ({e})") from None
    return out


def normalize_lang(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip().lower().replace("_", "-")
    if v.startswith(("zh", "cmn")) or v in ("chinese", "wuu", "yue"):
        return "zh"
    if v.startswith("en") or v == "english":
        return "en"
    return v


def parse_message(where: str, m: object) -> dict[str, str]:
    if not isinstance(m, dict):
        raise DataError(f"{where}: a message must be an object with role and content")
    role = m.get("role", m.get("from"))
    content = m.get("content", m.get("value"))
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise DataError(f"{where}: unknown role {role!r} (expected system, user or assistant)")
    if not isinstance(content, str):
        raise DataError(f"{where}: message content must be text")
    return {"role": role, "content": content}


@dataclass
class Example:
    messages: list[dict[str, str]]
    lang: str
    where: str = ""


def to_example(where: str, rec: dict, lang_field: str = "lang", system: str | None = None) -> Example:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object")
    if "messages" in rec or "conversations" in rec:
        raw = rec.get("messages", rec.get("conversations"))
        if not isinstance(raw, list) or not raw:
            raise DataError(f"{where}: messages must be a non-empty list")
        messages = [parse_message(where, m) for m in raw]
    elif "instruction" in rec and "output" in rec:
        prompt = str(rec["instruction"])
        if rec.get("input"):
            prompt += "\n" + str(rec["input"])
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(rec["output"])}]
        if rec.get("system"):
            messages.insert(0, {"role": "system", "content": str(rec["system"])})
    else:
        raise DataError(f"{where}: expected `messages` (chat form) or `instruction` and `output` (Alpaca form)")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's")
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    lang = normalize_lang(rec.get(lang_field)) or guess_lang(" ".join(m["content"] for m in messages))
    return Example(messages, lang, where)


@dataclass
class BenchmarkFilter:
    """Drops fine-tuning examples holding a benchmark test item. `check(text)` names the benchmarks an example's
    text (all its messages, joined) holds, empty when clean: the decontam stage's index and thresholds, built by the
    pipeline layer (train/ does not import stages/). Counts go into the run's run.json."""

    check: Callable[[str], list[str]]
    checked: int = 0
    dropped: int = 0
    by_benchmark: Counter = field(default_factory=Counter)
    dropped_where: list[str] = field(default_factory=list)  # file:line of each dropped example

    def keep(self, where: str, texts: list[str]) -> bool:
        self.checked += 1
        flagged = self.check("\n\n".join(texts))
        if not flagged:
            return True
        self.dropped += 1
        self.by_benchmark.update(flagged)
        self.dropped_where.append(where)
        return False

    def summary(self) -> dict:
        return {
            "checked": self.checked,
            "dropped": self.dropped,
            "by_benchmark": dict(sorted(self.by_benchmark.items())),
            "dropped_examples": self.dropped_where,
        }

    def describe(self) -> str:
        per = ", ".join(f"{k} {v}" for k, v in sorted(self.by_benchmark.items()))
        return f"benchmark check: {self.dropped} of {self.checked} dropped" + (f" ({per})" if per else "")


def load_examples(
    entries: list[Path], lang_field: str = "lang", system: str | None = None, benchmarks: BenchmarkFilter | None = None
) -> list[Example]:
    """Every example of the files; with `benchmarks`, those holding a benchmark item are left out (and counted)."""
    out = []
    for path in data_files(entries):
        for w, r in read_records(path):
            ex = to_example(w, r, lang_field, system)
            if benchmarks is None or benchmarks.keep(w, [m["content"] for m in ex.messages]):
                out.append(ex)
    if not out:
        raise DataError(f"no examples in {', '.join(str(e) for e in entries)}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# template and masks


def encode_segments(tok: Tokenizer, segments: list[tuple[str | list[int], bool]]) -> tuple[list[int], list[int]]:
    """Ids and labels of (text or ids, trained) segments, each text encoded on its own: the labels are exactly the
    trained segments' ids, wherever a joint encoding would have merged tokens across a boundary."""
    ids: list[int] = []
    labels: list[int] = []
    for seg, trained in segments:
        seg_ids = tok.encode(seg) if isinstance(seg, str) else list(seg)
        ids.extend(seg_ids)
        labels.extend(seg_ids if trained else [IGNORE] * len(seg_ids))
    return ids, labels


class ChatTemplate:
    """Encodes messages segment by segment; `encode` returns ids and labels (IGNORE outside assistant turns)."""

    def __init__(self, tok: Tokenizer, kind: str = "chat"):
        self.tok, self.kind = tok, kind
        if kind == "chat":
            self.control = {}
            for name, piece in CONTROL_TOKENS.items():
                i = tok.sp.piece_to_id(piece)
                if i == tok.sp.unk_id() or not tok.sp.is_control(i):
                    raise DataError(
                        f"{tok.path} has no control token {piece}: train the tokenizer with "
                        'tokenizer.special_tokens, or use template = "alpaca"'
                    )
                self.control[name] = i
            self.stop_ids = {self.control["end"]} | ({tok.eos_id} if tok.eos_id is not None else set())
        elif kind == "alpaca":
            if tok.eos_id is None:
                raise DataError(f"{tok.path} has no EOS token, which the alpaca template ends answers with")
            self.stop_ids = {tok.eos_id}
        else:
            raise ValueError(f"unknown template {kind!r}")

    def _segments(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[tuple[list[int], bool]]:
        """(ids, trained) per segment, in order."""
        enc = self.tok.encode
        segs: list[tuple[list[int], bool]] = []
        if self.kind == "chat":
            for m in messages:
                segs.append(([self.control[m["role"]]], False))
                if m["role"] == "assistant":
                    segs.append((enc(m["content"]) + [self.control["end"]], True))
                else:
                    segs.append((enc(m["content"]) + [self.control["end"]], False))
            if add_generation_prompt:
                segs.append(([self.control["assistant"]], False))
            return segs
        system = "".join(m["content"] + "\n\n" for m in messages if m["role"] == "system")
        pending = system
        for m in messages:
            if m["role"] == "user":
                pending += ALPACA_PROMPT.format(instruction=m["content"])
            elif m["role"] == "assistant":
                segs.append((enc(pending), False))
                segs.append((enc(m["content"]) + [self.tok.eos_id], True))
                pending = ""
        if add_generation_prompt and pending:
            segs.append((enc(pending), False))
        return segs

    def encode(self, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        return encode_segments(self.tok, self._segments(messages, add_generation_prompt=False))

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Ids up to where the assistant's answer begins (for generation and DPO prompts)."""
        return [i for seg, _ in self._segments(messages, add_generation_prompt=True) for i in seg]

    def response_ids(self, text: str) -> list[int]:
        """An assistant answer as the template trains it: the text, then <|end|> (chat) or EOS (alpaca)."""
        end = self.control["end"] if self.kind == "chat" else self.tok.eos_id
        return self.tok.encode(text) + [end]


# ---------------------------------------------------------------------------------------------------------------
# language ratio


@dataclass
class MixReport:
    ratio: str
    available: dict[str, int]
    selected: dict[str, int]

    @property
    def realised(self) -> float | None:
        zh, en = self.selected.get("zh", 0), self.selected.get("en", 0)
        return zh / en if en else None

    def describe(self) -> str:
        sel = ", ".join(f"{k} {v}" for k, v in sorted(self.selected.items()))
        r = self.realised
        return f"zh:en {self.ratio} -> {sel}" + (f" (realised {r:.2f}:1)" if r is not None else "")


def mix_by_ratio(items: list, langs: list[str], ratio: str, seed: int) -> tuple[list, MixReport]:
    """Select items for a zh:en ratio. A:B keeps the larger side whole where possible: every Chinese example, and
    English sampled (without replacement) to n_zh * B / A; when English is too short, every English example and
    Chinese sampled down instead. Languages other than zh/en are kept only with "all"."""
    rng = random.Random(seed)
    by_lang: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        by_lang.setdefault(lang, []).append(i)
    available = {k: len(v) for k, v in by_lang.items()}
    spec = parse_ratio(ratio)
    zh, en = by_lang.get("zh", []), by_lang.get("en", [])
    if spec == "all":
        keep = list(range(len(items)))
    elif spec == "zh":
        keep = list(zh)
    elif spec == "en":
        keep = list(en)
    else:
        a, b = spec
        n_zh = min(len(zh), int(len(en) * a / b)) if en else len(zh)
        n_en = min(len(en), round(n_zh * b / a))
        keep = sorted(rng.sample(zh, n_zh) + rng.sample(en, n_en))
    if not keep:
        raise DataError(f"zh_en_ratio {ratio!r} leaves no examples (available: {available})")
    selected = Counter(langs[i] for i in keep)
    return [items[i] for i in keep], MixReport(ratio, available, dict(selected))
