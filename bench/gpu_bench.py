"""The GPU benchmark, one script that runs as it is on one H100/H200 (issue 15, item 6):

1. MFU of the 125m and 350m presets with bf16 autocast and torch.compile, model/model.py side by side with Hugging
   Face `LlamaForCausalLM` built from the same configuration and weights, alternating step by step in the same
   process (bench/bench_train.py's `bench_one`: forward + cross-entropy + backward + fused AdamW per timed step,
   median after warmup).
2. The continued-pretraining recipe once (Chinese-LLaMA-Alpaca's, README "Continued pretraining"), in-process on
   the bundled sample: an English tokenizer and a start model pretrained on English text, exported as a Hugging
   Face folder (re-saved in shards by transformers), a Chinese tokenizer merged onto the English one, Chinese
   shards written with it, stage 1 (embeddings only) and stage 2 (LoRA + embeddings), the merged export; held-out
   Chinese bits per byte before and after, and Chinese tokens per character of both tokenizers.

Prints a Markdown table per part and one JSON object (also written to --out/gpu_bench.json).

    .venv/bin/python bench/gpu_bench.py                      # on the GPU machine: everything, as is
    .venv/bin/python bench/gpu_bench.py --smoke              # CPU: tiny preset, a few steps (what the test runs)
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_train import bench_one  # noqa: E402  (bench/ is on sys.path when run as a script)

from model.tokenizer import Tokenizer  # noqa: E402
from model.vocab import compare, merge_vocab  # noqa: E402
from tests.train.helpers import train_sentencepiece, write_dataset  # noqa: E402
from train.config import LoraSection, ModelSection, PretrainSection  # noqa: E402
from train.evaluate import text_loss  # noqa: E402
from train.export import export  # noqa: E402
from train.pretrain import PretrainJob, pretrain  # noqa: E402
from train.runlog import read_log  # noqa: E402
from train.source import load_model  # noqa: E402

SAMPLE = REPO / "data" / "sample"

# What runs where: the full run on one H100/H200, and the CPU smoke run that proves the script executes.
FULL = dict(
    presets=["125m", "350m"],
    batch=16,
    seq=2048,
    steps=20,
    warmup=5,
    dtype="bf16",
    compile=True,
    cpt_model=dict(preset="125m", max_seq_len=512),
    cpt_seq=512,
    cpt_batch=32,
    cpt_steps=(300, 100, 300),  # English start model, stage 1, stage 2
    en_vocab=4000,
    zh_vocab=8000,
    zh_coverage=0.9995,
    zh_docs=None,  # all the training documents
)
SMOKE = dict(
    presets=["tiny"],
    batch=2,
    seq=64,
    steps=2,
    warmup=1,
    dtype="fp32",
    compile=False,
    cpt_model=dict(preset="tiny", n_layer=2, n_head=4, n_kv_head=2, d_model=32, ffn_hidden=64, max_seq_len=32),
    cpt_seq=32,
    cpt_batch=4,
    cpt_steps=(4, 2, 3),
    en_vocab=600,
    zh_vocab=2500,
    zh_coverage=0.98,
    zh_docs=60,
)


def mfu_part(plan: dict, device: str) -> list[dict]:
    args = SimpleNamespace(
        device=device,
        dtype=plan["dtype"],
        compile=plan["compile"],
        batch=plan["batch"],
        seq=plan["seq"],
        steps=plan["steps"],
        warmup=plan["warmup"],
        vocab=32000,
        attn="sdpa",
    )
    rows = []
    for preset in plan["presets"]:
        rows += bench_one(preset, args)
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def mfu_table(rows: list[dict], plan: dict) -> str:
    lines = [
        f"batch {plan['batch']} x seq {plan['seq']}, vocab 32000, {plan['dtype']}, compile {plan['compile']}, "
        f"median of {plan['steps']} steps after {plan['warmup']}",
        "",
        "| model | preset | params | step ms (median) | tokens/s | MFU | vs HF | max logit diff |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        m = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(
            f"| {r['model']} | {r['preset']} | {r['params'] / 1e6:.1f}M | {r['step_ms']:.1f} | "
            f"{r['tokens_per_s']:,.0f} | {m} | {r['vs_hf']:.2f} | {r['max_logit_diff']:.1e} |"
        )
    return "\n".join(lines)


def english_documents() -> list[str]:
    texts = pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()
    return [t for t in texts if t and t.strip()]


def chinese_documents() -> list[str]:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["content"] for line in f]


def pretrain_section(plan: dict, device: str, steps: int, **kw) -> PretrainSection:
    return PretrainSection(
        max_steps=steps,
        checkpoint_every=steps,
        batch_size=plan["cpt_batch"],
        seq_len=plan["cpt_seq"],
        lr=1e-3,
        min_lr=1e-4,
        warmup=min(20, steps // 10),
        eval_every=0,
        eval_batches=4,
        log_every=max(1, steps // 5),
        device=device,
        dtype="bf16" if plan["dtype"] == "bf16" else "fp32",
        progress=False,
        **kw,
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def recipe_part(plan: dict, device: str, work: Path) -> dict:
    """The continued-pretraining recipe once, with what the README's commands do, in-process."""
    work.mkdir(parents=True, exist_ok=True)
    en, zh = english_documents(), chinese_documents()
    zh_heldout, zh_train = zh[::10][:30], [d for i, d in enumerate(zh) if i % 10][: plan["zh_docs"]]
    result: dict = {}

    en_tok = Tokenizer(train_sentencepiece(work / "en.model", en, vocab_size=plan["en_vocab"]))
    en_data = write_dataset(work / "articles_en", en_tok, en[len(en) // 10 :], en[: len(en) // 10])
    start_steps, stage1_steps, stage2_steps = plan["cpt_steps"]
    job = PretrainJob(
        work / "en_run",
        en_tok.path,
        [en_data],
        model=ModelSection(**plan["cpt_model"]),
        train=pretrain_section(plan, device, start_steps),
    )
    _, result["start_s"] = timed(lambda: pretrain(job))
    hf = export(load_model(work / "en_run"), work / "hf_en")
    try:  # a sharded Hugging Face folder, as large public checkpoints come
        import transformers

        sharded = work / "hf_en_sharded"
        transformers.LlamaForCausalLM.from_pretrained(hf).save_pretrained(sharded, max_shard_size="50MB")
        (sharded / "tokenizer.model").write_bytes((hf / "tokenizer.model").read_bytes())
        hf = sharded
        shards = len(list(sharded.glob("model-*.safetensors"))) or 1
        result["start_folder"] = f"re-saved by transformers in {shards} shard(s)"
    except ImportError:
        result["start_folder"] = "single file (transformers not installed)"

    zh_tok = train_sentencepiece(
        work / "zh.model", zh_train, vocab_size=plan["zh_vocab"], character_coverage=plan["zh_coverage"]
    )
    merge = merge_vocab(en_tok.path, zh_tok, work / "merged.model")
    merged = Tokenizer(work / "merged.model")
    zh_data = write_dataset(work / "books_zh", merged, zh_train[10:], zh_train[:10], lang="zh")
    heldout = work / "heldout_zh.jsonl"
    heldout.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in zh_heldout), "utf-8")
    rows = [r for r in compare([en_tok.path, merged.path], heldout) if r["lang"] == "zh"]
    result["tokenizers"] = {
        "base_vocab": merge["base_size"],
        "merged_vocab": merge["merged_size"],
        "base_tokens_per_char": 1 / rows[0]["chars_per_token"],
        "merged_tokens_per_char": 1 / rows[1]["chars_per_token"],
    }

    stage1 = PretrainJob(
        work / "stage1",
        merged.path,
        [zh_data],
        train=pretrain_section(plan, device, stage1_steps, init_from=str(hf), embedding_only_steps=stage1_steps),
        init_from=hf,
    )
    _, result["stage1_s"] = timed(lambda: pretrain(stage1))
    lora = LoraSection(enabled=True, train_embeddings=True)
    stage2 = PretrainJob(
        work / "stage2",
        None,
        [zh_data],
        train=pretrain_section(plan, device, stage2_steps, init_from=str(work / "stage1"), lora=lora),
        init_from=work / "stage1",
    )
    _, result["stage2_s"] = timed(lambda: pretrain(stage2))
    result["stage2_tokens_per_s"] = read_log(work / "stage2")[-1]["tokens_per_s"]
    final = export(load_model(work / "stage2"), work / "hf_zh")

    def bpb(source: Path) -> float:
        loaded = load_model(source)
        model = loaded.model.to(device).eval()
        with torch.no_grad():
            return text_loss(model, loaded.tokenizer, heldout, batch_size=16, seq_len=plan["cpt_seq"])["zh"]["bpb"]

    result["heldout_zh_bpb_before"] = bpb(hf)
    result["heldout_zh_bpb_after"] = bpb(final)
    return result


def recipe_table(r: dict, plan: dict) -> str:
    t = r["tokenizers"]
    s0, s1, s2 = plan["cpt_steps"]
    return "\n".join(
        [
            "| what | figure |",
            "| --- | ---: |",
            f"| start model ({plan['cpt_model']['preset']}, {s0} English steps; HF folder {r['start_folder']}) | "
            f"{r['start_s']:.0f} s |",
            f"| vocabulary: English base -> merged | {t['base_vocab']:,} -> {t['merged_vocab']:,} |",
            f"| held-out Chinese tokens per character: base -> merged | {t['base_tokens_per_char']:.2f} -> "
            f"{t['merged_tokens_per_char']:.2f} |",
            f"| stage 1, embeddings only ({s1} steps) | {r['stage1_s']:.0f} s |",
            f"| stage 2, LoRA + embeddings ({s2} steps) | {r['stage2_s']:.0f} s, "
            f"{r['stage2_tokens_per_s']:,.0f} tokens/s |",
            f"| held-out Chinese bits per byte: start -> after stage 2 | {r['heldout_zh_bpb_before']:.3f} -> "
            f"{r['heldout_zh_bpb_after']:.3f} |",
        ]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="CPU, tiny preset, a few steps: proves the script runs")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu", help="results folder")
    p.add_argument("--skip-mfu", action="store_true")
    p.add_argument("--skip-recipe", action="store_true")
    args = p.parse_args()
    plan = SMOKE if args.smoke else FULL
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device; run with --smoke on a CPU", file=sys.stderr)
        return 1
    import transformers

    name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or "CPU")
    head = f"device {device} ({name}), torch {torch.__version__}, transformers {transformers.__version__}"
    print(head, flush=True)
    result: dict = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__}
    if not args.skip_mfu:
        rows = mfu_part(plan, device)
        result["mfu"] = rows
        print("\n" + mfu_table(rows, plan), flush=True)
    if not args.skip_recipe:
        r = recipe_part(plan, device, args.out / "recipe")
        result["recipe"] = r
        print("\n" + recipe_table(r, plan), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_bench.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
