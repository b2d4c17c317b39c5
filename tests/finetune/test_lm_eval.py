"""The exported Hugging Face folder runs under lm-evaluation-harness (`lm_eval --model hf`) on the repository's own
task definition (data/sample/eval/lm_eval/), which reads the bundled MMLU sample.

lm_eval is the `lm_eval` extra, which `make install` installs; in a venv without it the test is skipped, but a CI run
(CI=true) with the Makefile installing it fails instead of skipping, so the check cannot silently go away."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import REPO
from tests.finetune.helpers import SAMPLE
from train.cli import export_command
from train.config import EvalSection, TrainSection

TASKS = SAMPLE / "eval" / "lm_eval"


def lm_eval_or_skip():
    if importlib.util.find_spec("lm_eval") is None:
        if os.environ.get("CI") == "true" and "lm_eval" in (REPO / "Makefile").read_text():
            pytest.fail("the Makefile installs lm_eval but it is not importable")
        pytest.skip("lm_eval is not installed (pip install -e '.[lm_eval]')")
    import lm_eval  # optional extra (see the module docstring), so not at module top

    return lm_eval


@pytest.mark.slow
def test_exported_model_runs_under_lm_eval_harness(tmp_path, start_run, monkeypatch):
    lm_eval = lm_eval_or_skip()
    from lm_eval.tasks import TaskManager  # the optional extra: imported only once it is known to be there

    cfg = SimpleNamespace(
        run=SimpleNamespace(workdir=tmp_path, seed=1),
        train=TrainSection(),
        eval=EvalSection(device="cpu"),
        path=lambda p: Path(p),
    )
    hf = tmp_path / "hf"
    assert export_command(cfg, str(start_run), str(hf)) == 0
    monkeypatch.chdir(REPO)  # the task's data_files path is relative to the repository root
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={hf},dtype=float32",
        tasks=["mapcc_mmlu_sample"],
        task_manager=TaskManager(include_path=str(TASKS)),
        device="cpu",
        batch_size=8,
        limit=8,
        log_samples=True,
    )
    samples = out["samples"]["mapcc_mmlu_sample"]
    assert len(samples) == 8
    # each item was scored on its four letters, and the reported accuracy is the share whose best letter is right
    assert all(len(s["resps"]) == 4 for s in samples)
    picked = [max(range(4), key=lambda i: s["resps"][i][0][0]) for s in samples]
    acc = sum(p == s["target"] for p, s in zip(picked, samples)) / 8
    assert out["results"]["mapcc_mmlu_sample"]["acc,none"] == pytest.approx(acc)
