"""`pipeline ablate` on real sample text: equal token budgets, a held-out set that overlaps no variant (by id and by
normalised text), the same results for the same seed, and a killed ablation that resumes to those same results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from pipeline.ablate import normalised_hash
from tests.conftest import REPO, SAMPLE, write_config

# The module's first test runs the whole ablation (stages, tokenizer, three variants, training, scoring): on the
# shared 2-core machine under a load average near 20 that took over 600 s, pytest's default limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

HELDOUT = SAMPLE / "heldout"
CONFIG = f"""
[[sources]]
name = "notes_zh"
path = "{SAMPLE / "notes_zh.txt"}"
format = "text"
text_mode = "blocks"

[[sources]]
name = "code"
path = "{SAMPLE / "code" / "c"}"
format = "text"
kind = "code"

[tokenizer]
vocab_size = 4200

[train.pretrain]
seq_len = 64
batch_size = 4
lr = 3e-3
min_lr = 3e-4
warmup = 2
log_every = 4
progress = false

[[eval.tasks]]
name = "charm_zh"
path = "{SAMPLE / "benchmarks" / "charm_zh.csv"}"
lang = "zh"

[ablate]
variants = ["ingest", "final", {{ name = "nodedup", set = {{ "stages.dedup.enabled" = false }} }}]
tokens = 3000
heldout = ["heldout_zh.jsonl", "heldout_en.jsonl"]
seeds = [3]
eval_points = 2
max_items = 4
"""


# One torch thread: on the shared 2-core test machine two threads of each of several busy processes spin against each
# other (measured there: a tiny-model step 20x slower with 2 threads than with 1 under a load average of 16).
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def pipeline(cfg, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
    )


def heldout_with_copies(folder) -> None:
    """Part of the sample's held-out rows (a few, so that scoring them at each evaluation is quick), and in the
    Chinese file two rows that are in the corpus: a note block re-spaced and upper-cased (same normalised text) and
    a row carrying a corpus document's id."""
    en = json.loads((HELDOUT / "heldout_en.jsonl").read_text(encoding="utf-8").splitlines()[0])
    (folder / "heldout_en.jsonl").write_text(json.dumps({**en, "text": en["text"][:4000]}) + "\n")
    rows = [json.loads(line) for line in (HELDOUT / "heldout_zh.jsonl").read_text(encoding="utf-8").splitlines()][:6]
    block = (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n")[5].strip()
    rows.append({"id": "copied-text", "text": "  " + block.replace(" ", "   ").upper() + "\n", "lang": "zh"})
    rows.append({"id": "notes_zh:notes_zh.txt:1", "text": "一段不在语料里的文字，但它的编号在。" * 3, "lang": "zh"})
    (folder / "heldout_zh.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablate")
    heldout_with_copies(folder)
    cfg = write_config(folder, CONFIG)
    r = pipeline(cfg, "ablate")
    assert r.returncode == 0, r.stderr[-4000:]
    return folder, cfg, r


def test_equal_token_budgets_and_outputs(ablation):
    folder, _, r = ablation
    out = folder / "out" / "ablate"
    result = json.loads((out / "results.json").read_text())
    rows = {row["name"]: row for row in result["variants"]}
    assert list(rows) == ["ingest", "final", "nodedup"]
    steps = -(-3000 // (4 * 64))  # ceil(budget / tokens per step)
    for row in rows.values():
        assert row["tokens"] == steps * 4 * 64  # the same tokens seen by every variant
        assert not row["capped"]
        assert row["epochs"] == pytest.approx(row["tokens"] / row["corpus_tokens"])
        assert set(row["heldout_bpb"]) == {"heldout_zh", "heldout_en"}
        assert all(0 < v < 20 for v in row["heldout_bpb"].values())
        assert set(row["tasks"]) == {"charm_zh"} and row["tasks"]["charm_zh"]["items"] == 4
    # the raw corpus holds what the later stages removed; the variant without dedup holds at least the final's docs
    assert rows["ingest"]["documents"] > rows["final"]["documents"]
    assert rows["nodedup"]["documents"] >= rows["final"]["documents"]
    # the override variant reran from the first stage it changes (pii: dedup off changes pii's input) in its own
    # workdir, and linked the ones before
    work = out / "nodedup" / "work"
    assert (work / "filter").is_symlink() and not (work / "pii").is_symlink()
    assert not (work / "dedup").exists()
    log = [json.loads(line) for line in (out / "final" / "seed3" / "log.jsonl").read_text().splitlines()]
    curve = [row for row in log if "heldout_bpb/heldout_zh" in row]
    assert len(curve) >= 2 and curve[-1]["tokens"] == rows["final"]["tokens"]
    assert (out / "heldout_bpb.png").stat().st_size > 0
    assert "| final |" in (out / "results.md").read_text()
    assert "one seed: no spread measured" in r.stdout


def test_heldout_never_overlaps_a_variant(ablation):
    folder, cfg, _ = ablation
    out = folder / "out" / "ablate"
    counts = json.loads((out / "heldout.json").read_text())
    # the copied note block is dropped by text for every variant, the borrowed id for the variants holding it
    zh = counts["heldout_zh"]
    assert zh["dropped"] == 2 and zh["kept"] == zh["rows"] - 2
    assert zh["dropped_by_text"] == {"ingest": 1, "final": 1, "nodedup": 1}
    assert zh["dropped_by_id"] == {"ingest": 1, "final": 1, "nodedup": 1}
    heldout = [json.loads(line) for line in (out / "heldout" / "heldout_zh.jsonl").read_text().splitlines()]
    heldout += [json.loads(line) for line in (out / "heldout" / "heldout_en.jsonl").read_text().splitlines()]
    for base, stage in ((folder / "out", "ingest"), (folder / "out", "pii"), (out / "nodedup" / "work", "pii")):
        docs = pl.read_parquet(base / stage / "kept" / "*.parquet", columns=["id", "text"])
        assert not {r["id"] for r in heldout} & set(docs["id"])
        assert not {normalised_hash(r["text"]) for r in heldout} & {normalised_hash(t) for t in docs["text"]}
    # refusing instead of dropping names the file and the count
    r = pipeline(cfg, "ablate", "--set", 'ablate.overlap="error"')
    assert r.returncode == 2
    assert "heldout_zh.jsonl: 2 of" in r.stderr and "also in a variant" in r.stderr


def test_same_seed_same_results_and_resume_after_kill(ablation, tmp_path):
    """A second ablation of the same corpus in another workdir, killed in its first training run and run again,
    ends with exactly the first one's figures."""
    folder, cfg, _ = ablation
    work = tmp_path / "out"
    shutil.copytree(folder / "out", work, ignore=shutil.ignore_patterns("ablate"), symlinks=True)
    args = [sys.executable, "-m", "pipeline", "ablate", "--config", str(cfg), "--set", f"run.workdir={work}"]
    proc = subprocess.Popen(
        args, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    first_run = work / "ablate" / "ingest" / "seed3"
    deadline = time.time() + 600
    while not list(first_run.glob("ckpt-*.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the ablation ended before its first checkpoint: nothing to kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (first_run / "result.json").exists()
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "resuming from" in r.stdout
    a = json.loads((folder / "out" / "ablate" / "results.json").read_text())
    b = json.loads((work / "ablate" / "results.json").read_text())
    for ra, rb in zip(a["variants"], b["variants"], strict=True):
        assert (ra["name"], ra["documents"], ra["tokens"]) == (rb["name"], rb["documents"], rb["tokens"])
        assert ra["heldout_bpb"] == rb["heldout_bpb"]
        assert ra["tasks"] == rb["tasks"]


def test_changed_settings_are_refused_naming_the_key(ablation):
    folder, cfg, _ = ablation
    r = pipeline(cfg, "ablate", "--set", "ablate.tokens=7000")
    assert r.returncode == 2
    assert "ablate variant 'ingest' was run with other settings" in r.stderr
    assert "settings.ablate.tokens: 3000 -> 7000" in r.stderr


def test_report_has_the_ablation_section(ablation):
    folder, cfg, _ = ablation
    r = pipeline(cfg, "report")
    assert r.returncode == 0, r.stderr[-2000:]
    report = (folder / "out" / "report" / "report.md").read_text()
    assert "## Ablation: the same model trained on each variant of the corpus" in report
    assert "| nodedup |" in report and "../ablate/heldout_bpb.png" in report
