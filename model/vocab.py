"""Growing and comparing SentencePiece vocabularies (Chinese-LLaMA-Alpaca, arXiv 2304.08177).

`merge_vocab(base, add, out)` appends the pieces of `add` missing from `base` to the end of `base`'s vocabulary:
every id of `base` keeps its piece, so a model trained with `base` can be grown to the merged tokenizer by appending
embedding rows. Chinese-LLaMA-Alpaca gave appended pieces score 0, which ranks them above all of a BPE base's
merges (scores there are -rank) but ties them with each other; here they are also ranked above the base's merges,
and among themselves they keep the order `add` learned them in.

`compare(models, text)` measures characters and bytes per token per language on held-out text.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from model.han import is_chinese

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def _load_proto(path: str | Path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such tokenizer file") from None
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"{path}: not a SentencePiece model ({e})") from None
    if not proto.pieces:
        raise ValueError(f"{path}: not a SentencePiece model (no pieces)")
    return proto


def merge_vocab(base: str | Path, add: str | Path, out: str | Path) -> dict:
    """Write the merged model to `out` and `<out stem>.mapping.json`; return the mapping."""
    a, b = _load_proto(base), _load_proto(add)
    if a.trainer_spec.model_type != b.trainer_spec.model_type:
        raise ValueError(
            f"cannot merge a {a.trainer_spec.ModelType.Name(a.trainer_spec.model_type)} model with a "
            f"{b.trainer_spec.ModelType.Name(b.trainer_spec.model_type)} model"
        )
    existing = {p.piece for p in a.pieces}
    base_size = len(a.pieces)
    appendable = [(i, p) for i, p in enumerate(b.pieces) if p.type in (NORMAL, USER_DEFINED, CONTROL)]
    appendable = [(i, p) for i, p in appendable if p.piece not in existing]
    if appendable:
        top = max(p.score for p in a.pieces if p.type == NORMAL) if any(p.type == NORMAL for p in a.pieces) else 0.0
        lowest = min(p.score for _, p in appendable)
        appended = []
        for add_id, p in appendable:
            new = a.pieces.add()
            new.piece = p.piece
            new.type = p.type
            new.score = (p.score - lowest + top + 1.0) if p.type == NORMAL else 0.0
            appended.append({"piece": p.piece, "id": len(a.pieces) - 1, "add_id": add_id})
    else:
        appended = []
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(a.SerializeToString())
    os.replace(tmp, out)
    mapping = {
        "base": str(base),
        "add": str(add),
        "base_size": base_size,
        "add_size": len(b.pieces),
        "merged_size": len(a.pieces),
        "appended": appended,
    }
    mapping_path = out.with_suffix(".mapping.json")
    mapping_path.write_text(json.dumps(mapping, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return mapping


# ---------------------------------------------------------------------------------------------------------------


def guess_lang(text: str) -> str:
    """zh when the text is Chinese by the project's one definition (`model.han.is_chinese`), else en (for files
    without a lang column)."""
    return "zh" if is_chinese(text) else "en"


def load_samples(path: str | Path) -> list[tuple[str, str]]:
    """(lang, text) pairs from a .txt (blank-line blocks), .jsonl (`text`, optional `lang`/`kind`) or .parquet."""
    path = Path(path)
    rows: list[dict] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        blocks = path.read_text(encoding="utf-8").split("\n\n")
        rows = [{"text": b.strip("\n")} for b in blocks if b.strip()]
    out = []
    for r in rows:
        text = r.get("text")
        if not isinstance(text, str) or not text:
            continue
        lang = "code" if r.get("kind") == "code" else (r.get("lang") or guess_lang(text))
        out.append((lang, text))
    if not out:
        raise ValueError(f"{path}: no text to compare on")
    return out


def compare(models: list[str | Path], text: str | Path) -> list[dict]:
    import sentencepiece as spm

    samples = load_samples(text)
    rows = []
    first_tokens: dict[str, int] = {}
    for m in models:
        if not Path(m).is_file():
            raise ValueError(f"{m}: no such tokenizer file")
        sp = spm.SentencePieceProcessor(model_file=str(m))
        by_lang: dict[str, list] = {}
        for lang, t in samples:
            by_lang.setdefault(lang, []).append(t)
        for lang in sorted(by_lang):
            texts = by_lang[lang]
            tokens = sum(len(ids) for ids in sp.encode(texts))
            chars = sum(len(t) for t in texts)
            nbytes = sum(len(t.encode("utf-8")) for t in texts)
            first_tokens.setdefault(lang, tokens)
            rows.append(
                {
                    "model": str(m),
                    "vocab": sp.get_piece_size(),
                    "lang": lang,
                    "docs": len(texts),
                    "chars": chars,
                    "tokens": tokens,
                    "chars_per_token": chars / tokens,
                    "bytes_per_token": nbytes / tokens,
                    "tokens_vs_first": tokens / first_tokens[lang],
                }
            )
    return rows


def compare_table(rows: list[dict]) -> str:
    lines = [
        "| model | vocab | lang | docs | characters | tokens | chars/token | bytes/token | tokens vs first model |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['vocab']:,} | {r['lang']} | {r['docs']:,} | {r['chars']:,} | {r['tokens']:,} | "
            f"{r['chars_per_token']:.2f} | {r['bytes_per_token']:.2f} | {100 * r['tokens_vs_first']:.0f}% |"
        )
    return "\n".join(lines)


def merge_command(base: str, add: str, out: str) -> int:
    try:
        m = merge_vocab(base, add, out)
    except ValueError as e:
        print(f"pipeline tokenizer merge: {e}", file=sys.stderr)
        return 2
    print(
        f"merged {out}: {m['base_size']:,} pieces of {base} (ids unchanged) + {len(m['appended']):,} appended from "
        f"{add} = {m['merged_size']:,}; mapping in {Path(out).with_suffix('.mapping.json')}"
    )
    return 0


def compare_command(models: list[str], text: str) -> int:
    try:
        print(compare_table(compare(models, text)))
    except ValueError as e:
        print(f"pipeline tokenizer compare: {e}", file=sys.stderr)
        return 2
    return 0
