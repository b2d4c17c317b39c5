"""Generation speed with and without the KV cache (train/generate.py, model.model.KVCache).

The tiny preset with random weights (speed does not depend on what the weights say), greedy, a fixed number of new
tokens with no stop token, so both runs do the same work; max_seq_len is raised to fit prompt + new tokens (it sizes
only the RoPE table, not the parameters). The two variants alternate round by round, so load from other work on the
machine hits both alike; the figure is the median over rounds. Before timing, both must produce the same tokens.

    .venv/bin/python bench/bench_generate.py                       # CPU: 256 new tokens, batch 1, 5 rounds
    .venv/bin/python bench/bench_generate.py --batch 8 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.config import from_preset  # noqa: E402
from model.model import Transformer  # noqa: E402
from train.generate import generate_ids  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    vocab = 8000  # pipeline.toml's tokenizer.vocab_size for the sample corpus
    cfg = from_preset(args.preset, vocab_size=vocab, max_seq_len=args.prompt_tokens + args.new_tokens)
    torch.manual_seed(0)
    model = Transformer(cfg).to(args.device).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(4, vocab, (args.prompt_tokens,), generator=g).tolist() for _ in range(args.batch)]

    def run(use_cache: bool) -> tuple[float, list[list[int]]]:
        t0 = time.perf_counter()
        out = generate_ids(model, prompts, max_new_tokens=args.new_tokens, temperature=0, use_cache=use_cache)
        return time.perf_counter() - t0, [o.ids for o in out]

    _, a = run(True)  # warmup, and the check that both give the same tokens
    _, b = run(False)
    if a != b:
        raise SystemExit("cached and uncached greedy outputs differ")
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for use_cache in (True, False):
            times[use_cache].append(run(use_cache)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    new = args.new_tokens * args.batch
    print(
        f"{args.preset} ({cfg.n_layer} layers, d_model {cfg.d_model}), {args.device}, torch threads "
        f"{torch.get_num_threads()}, nproc {os.cpu_count()}, {cpu_model()}"
    )
    print(
        f"prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens x batch {args.batch}, {args.rounds} rounds"
    )
    for use_cache, label in ((True, "KV cache"), (False, "no cache")):
        runs = ", ".join(f"{t:.2f}" for t in times[use_cache])
        print(f"{label:9s} median {med[use_cache]:.3f} s ({new / med[use_cache]:.0f} tokens/s); rounds: {runs}")
    print(f"speed-up (no cache / cache): {med[False] / med[True]:.2f}x; outputs identical: {a == b}")


if __name__ == "__main__":
    main()
