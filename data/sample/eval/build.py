"""Rebuild the bundled held-out evaluation files (data/sample/eval/) from the same PyPI sdist as the SFT sample.

    .venv/bin/python data/sample/eval/build.py                # pip download into a temp dir
    .venv/bin/python data/sample/eval/build.py --sdist FILE   # use llamafactory-0.9.5.tar.gz already downloaded

The SFT sample (../sft/) takes the first 200 short Alpaca examples of each language; these files take the short
examples right after them, so no row here is in the SFT data (checked below):
- gen_zh.jsonl, gen_en.jsonl: the next 30 short examples as generation tasks {prompt, reference, lang}
  (prompt = instruction, then input on its own line; reference = output);
- heldout.jsonl: the 30 short examples after those, per language, as held-out text {text, lang} for bits per byte
  (instruction, input and output joined by newlines).
Short = instruction+input+output <= 300 characters (zh) or 600 (en), as for the SFT sample. Text is unchanged.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SFT_BUILD = HERE.parent / "sft" / "build.py"
SPEC = importlib.util.spec_from_file_location("sft_build", SFT_BUILD)
sft_build = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(sft_build)

LIMITS = {"zh": ("alpaca_zh_demo.json", 300), "en": ("alpaca_en_demo.json", 600)}
SFT_ROWS, GEN_ROWS, TEXT_ROWS = 200, 30, 30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdist", type=Path, help="llamafactory-0.9.5.tar.gz already downloaded")
    args = ap.parse_args()
    heldout = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = args.sdist or sft_build.sdist(Path(tmp))
        if args.sdist:
            sft_build.sdist(args.sdist.parent)
        for lang, (member, max_chars) in LIMITS.items():
            short = sft_build.alpaca(sft_build.read_member(archive, member), lang, max_chars, 10**9)
            sft = {json.dumps(r, ensure_ascii=False) for r in short[:SFT_ROWS]}
            gen = short[SFT_ROWS : SFT_ROWS + GEN_ROWS]
            text = short[SFT_ROWS + GEN_ROWS : SFT_ROWS + GEN_ROWS + TEXT_ROWS]
            assert not any(json.dumps(r, ensure_ascii=False) in sft for r in gen + text)
            rows = [
                {
                    "prompt": r["instruction"] + (f"\n{r['input']}" if r["input"] else ""),
                    "reference": r["output"],
                    "lang": lang,
                }
                for r in gen
            ]
            sft_build.write_jsonl(HERE / f"gen_{lang}.jsonl", rows)
            heldout += [
                {"text": "\n".join(p for p in (r["instruction"], r["input"], r["output"]) if p), "lang": lang}
                for r in text
            ]
        sft_build.write_jsonl(HERE / "heldout.jsonl", heldout)


if __name__ == "__main__":
    main()
