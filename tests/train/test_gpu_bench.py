"""bench/gpu_bench.py runs as it is: its CPU smoke mode (tiny preset, a few steps) goes through both parts, the
MFU comparison with Hugging Face LlamaForCausalLM and the continued-pretraining recipe, and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_bench_smoke_runs_both_parts(tmp_path):
    pytest.importorskip("transformers")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_bench.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_bench.json").read_text())
    models = {r["model"] for r in result["mfu"]}
    assert models == {"ours (model/model.py)", "HF LlamaForCausalLM"}
    for r in result["mfu"]:
        assert r["tokens_per_s"] > 0 and r["max_logit_diff"] < 1e-4  # same weights, same logits
    recipe = result["recipe"]
    tok = recipe["tokenizers"]
    assert tok["merged_vocab"] > tok["base_vocab"]
    assert tok["merged_tokens_per_char"] < 0.7 * tok["base_tokens_per_char"]
    assert recipe["heldout_zh_bpb_after"] < recipe["heldout_zh_bpb_before"]
    assert "| held-out Chinese bits per byte" in proc.stdout and "| HF LlamaForCausalLM | tiny" in proc.stdout
