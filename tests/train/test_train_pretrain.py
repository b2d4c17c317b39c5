"""The pretraining loop: exact resume, run folder contents, the guards, the LR schedules, and the entry points."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model.config import ModelConfig
from model.model import Transformer
from model.tokenizer import Tokenizer
from tests.train.helpers import make_job, read_log, train_sentencepiece, write_dataset
from train import loop
from train.checkpoint import ResumeError, list_checkpoints, load_checkpoint
from train.config import EvalSection, ModelSection, PretrainSection, TrainSection
from train.data import ShardsError
from train.loop import TrainingDiverged, lr_at
from train.pretrain import main_guarded, pretrain
from train.runlog import LogError


@pytest.mark.slow
def test_interrupted_run_resumes_exactly(tmp_path, tokenizer_path, docs_dataset):
    whole = make_job(tmp_path / "whole", tokenizer_path, [docs_dataset], grad_accum=2)
    pretrain(whole)
    parts = make_job(tmp_path / "parts", tokenizer_path, [docs_dataset], grad_accum=2)
    first = pretrain(parts, stop_after_step=4)  # as if preempted after step 4
    assert first["step"] == 4 and Path(first["checkpoint"]).name == "ckpt-0000004.pt"
    pretrain(parts)  # same run folder: resumes from ckpt-0000004.pt

    a, b = read_log(tmp_path / "whole"), read_log(tmp_path / "parts")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "lr", "grad_norm", "val_loss", "val_bpb"):
        assert [r.get(key) for r in a] == [r.get(key) for r in b], key  # bit-identical on CPU
    sa = load_checkpoint(tmp_path / "whole" / "ckpt-0000006.pt")
    sb = load_checkpoint(tmp_path / "parts" / "ckpt-0000006.pt")
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert sa["loader"] == sb["loader"] and sa["loader"]["samples"] == 6 * 2 * 4

    # the run folder
    row = a[-1]
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu", "val_loss", "val_bpb"} <= row.keys()
    assert row["mfu"] is None and row["tokens_per_s"] > 0 and row["val_bpb"] > 0
    assert row["lr"] == pytest.approx(whole.train.min_lr)
    assert [p.name for p in list_checkpoints(tmp_path / "whole")] == ["ckpt-0000003.pt", "ckpt-0000006.pt"]
    assert (tmp_path / "whole" / "loss.png").stat().st_size > 0
    run = json.loads((tmp_path / "whole" / "run.json").read_text())
    assert run["unigram_loss"] > 0 and run["seq_len"] == 32
    assert set(sa) >= {"model", "optimizer", "scheduler", "rng", "loader", "model_config", "step"}
    Transformer(ModelConfig.from_dict(sa["model_config"])).load_state_dict(sa["model"])  # self-describing

    # a finished run started again does nothing more
    assert pretrain(parts)["step"] == 6 and len(read_log(tmp_path / "parts")) == 6


@pytest.mark.slow
def test_learning_beats_the_unigram_baseline(tmp_path, tokenizer_path, documents):
    """The loop can fit a small corpus: the loss must fall well below the best context-free (unigram) loss, which
    only a model that uses the preceding tokens (causal attention over packed, correctly shifted data) can do."""
    few = documents[:8]
    data = write_dataset(tmp_path / "few", Tokenizer(tokenizer_path), few, few)
    model = dict(preset="tiny", n_layer=2, n_head=4, n_kv_head=4, d_model=64, ffn_hidden=128, max_seq_len=32)
    job = make_job(
        tmp_path / "run", tokenizer_path, [data], model, max_steps=40, lr=1e-2, min_lr=1e-3, warmup=5, batch_size=8
    )
    job.train.eval_every, job.train.log_every, job.train.checkpoint_every, job.train.eval_batches = 0, 10, 1000, 4
    pretrain(job)
    rows = read_log(tmp_path / "run")
    unigram = json.loads((tmp_path / "run" / "run.json").read_text())["unigram_loss"]
    assert rows[0]["loss"] > unigram + 0.5  # starts near log(vocab)
    assert rows[-1]["val_loss"] < unigram - 0.5, (rows[-1], unigram)


def test_guards_stop_before_step_one(tmp_path, tokenizer_path, documents):
    tok = Tokenizer(tokenizer_path)
    foreign = write_dataset(tmp_path / "foreign", tok, documents[:20], sha256="0" * 64)
    with pytest.raises(ShardsError, match=r"foreign/meta.json: shards were written with tokenizer sha256 0000"):
        pretrain(make_job(tmp_path / "r1", tokenizer_path, [foreign]))
    bad_ids = [tok.encode(d, eos=True) for d in documents[:20]]
    bad_ids[7][3] = tok.vocab_size  # one id past the vocabulary
    bad = write_dataset(tmp_path / "bad", tok, bad_ids, vocab_size=tok.vocab_size + 1)
    with pytest.raises(ShardsError, match=rf"bad/train-0000\d.bin: token id {tok.vocab_size} is at or beyond"):
        pretrain(make_job(tmp_path / "r2", tokenizer_path, [bad]))
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()  # nothing ran, nothing written


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_last_checkpoint(tmp_path, tokenizer_path, docs_dataset, monkeypatch):
    calls = {"n": 0}
    original = Transformer.forward

    def poisoned(self, idx, targets=None):
        logits, loss = original(self, idx, targets)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 5:  # the 5th training forward: step 5
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(Transformer, "forward", poisoned)
    job = make_job(tmp_path / "run", tokenizer_path, [docs_dataset], checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match=r"at step 5.*Last good checkpoint: .*ckpt-0000004\.pt"):
        pretrain(job)
    assert [p.name for p in list_checkpoints(tmp_path / "run")][-1] == "ckpt-0000004.pt"
    assert read_log(tmp_path / "run")[-1]["step"] == 4


def test_nan_found_on_a_log_step_when_not_checked_every_step(tmp_path, tokenizer_path, docs_dataset, monkeypatch):
    """The GPU policy (no host read per step), run on CPU: a NaN at step 5 is found at the next log or checkpoint
    step, and nothing is logged or saved from step 5 on."""
    calls = {"n": 0}
    original = Transformer.forward

    def poisoned(self, idx, targets=None):
        logits, loss = original(self, idx, targets)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 5:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(Transformer, "forward", poisoned)
    monkeypatch.setattr(loop, "divergence_check_every_step", lambda device: False)
    job = make_job(tmp_path / "run", tokenizer_path, [docs_dataset], checkpoint_every=2, log_every=3)
    with pytest.raises(TrainingDiverged, match=r"at step 5 \(found at step 6;.*Last good checkpoint: .*ckpt-0000004"):
        pretrain(job)
    assert [p.name for p in list_checkpoints(tmp_path / "run")][-1] == "ckpt-0000004.pt"
    assert [r["step"] for r in read_log(tmp_path / "run")] == [1, 3]
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path / "run"))


@pytest.mark.slow
def test_resume_after_a_run_killed_while_writing_the_log(tmp_path, tokenizer_path, docs_dataset):
    """A kill in the middle of a log write leaves a partial last line: it is read as absent, and the resumed run
    logs the same rows as an uninterrupted one."""
    whole = make_job(tmp_path / "whole", tokenizer_path, [docs_dataset], eval_every=0)
    pretrain(whole)
    parts = make_job(tmp_path / "parts", tokenizer_path, [docs_dataset], eval_every=0)
    pretrain(parts, stop_after_step=3)
    log = tmp_path / "parts" / "log.jsonl"
    full_row = (tmp_path / "whole" / "log.jsonl").read_text().splitlines()[3]  # step 4, as the killed run wrote it
    with open(log, "a") as f:
        f.write(full_row[: len(full_row) // 2])
    assert [r["step"] for r in read_log(tmp_path / "parts")] == [1, 2, 3]
    pretrain(parts)
    a, b = read_log(tmp_path / "whole"), read_log(tmp_path / "parts")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    log.write_text(log.read_text().replace('{"step": 2', '{"step": 2,,', 1))  # damage inside the file is an error
    with pytest.raises(LogError, match=r"parts/log.jsonl:2: not a JSON object"):
        read_log(tmp_path / "parts")


def test_resume_refuses_a_checkpoint_made_with_another_tokenizer(tmp_path, tokenizer_path, docs_dataset, documents):
    """A tokenizer retrained to the same vocabulary size maps ids to other pieces: the sha256 decides, not the size."""
    pretrain(make_job(tmp_path / "run", tokenizer_path, [docs_dataset], max_steps=2, eval_every=0))
    other = train_sentencepiece(tmp_path / "other.model", documents[::2])  # same size, other text: other pieces
    other_tok = Tokenizer(other)
    assert other_tok.vocab_size == Tokenizer(tokenizer_path).vocab_size and other_tok.sha256 != sha_of(tokenizer_path)
    other_data = write_dataset(tmp_path / "other_data", other_tok, documents[1::10], documents[::10])
    job = make_job(tmp_path / "run", other, [other_data], max_steps=4, eval_every=0)
    with pytest.raises(
        ResumeError, match=r"ckpt-0000002.pt was made with tokenizer .*tokenizer.model .*this run uses .*other.model"
    ):
        pretrain(job)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["ckpt-0000002.pt"]  # nothing was trained
    assert main_guarded(job) == 1  # the command prints the message, not a traceback


@pytest.mark.slow
def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, tokenizer_path, docs_dataset, capsys):
    """A cut-short newest checkpoint is named in a warning and the run resumes from the one before it, ending with
    the same weights as an uninterrupted run."""
    whole = make_job(tmp_path / "whole", tokenizer_path, [docs_dataset], eval_every=0)
    pretrain(whole)
    parts = make_job(tmp_path / "parts", tokenizer_path, [docs_dataset], eval_every=0)
    pretrain(parts, stop_after_step=5)
    latest = tmp_path / "parts" / "ckpt-0000005.pt"
    assert [p.name for p in list_checkpoints(tmp_path / "parts")] == ["ckpt-0000003.pt", latest.name]
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    pretrain(parts)
    captured = capsys.readouterr()
    assert f"warning: {latest} is not a readable checkpoint" in captured.err
    assert "resuming from" in captured.out and "ckpt-0000003.pt (step 3)" in captured.out
    assert [r["step"] for r in read_log(tmp_path / "parts")] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in read_log(tmp_path / "parts")] == [r["loss"] for r in read_log(tmp_path / "whole")]
    sa = load_checkpoint(tmp_path / "whole" / "ckpt-0000006.pt")
    sb = load_checkpoint(tmp_path / "parts" / "ckpt-0000006.pt")
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])

    # every checkpoint unreadable: refused (starting over would silently throw the run away)
    for path in list_checkpoints(tmp_path / "parts"):
        path.write_bytes(b"")
    with pytest.raises(ResumeError, match=r"no readable checkpoint in .*parts: .*ckpt-0000005.pt"):
        pretrain(parts)


def sha_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_lr_schedules():
    cos = PretrainSection(max_steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(1, cos) == pytest.approx(1e-4) and lr_at(10, cos) == pytest.approx(1e-3)
    assert lr_at(55, cos) == pytest.approx((1e-3 + 1e-4) / 2)
    assert lr_at(100, cos) == pytest.approx(1e-4)
    assert all(lr_at(s, cos) >= lr_at(s + 1, cos) for s in range(10, 100))
    wsd = PretrainSection(max_steps=100, warmup=10, lr=1e-3, min_lr=0.0, schedule="wsd", decay_fraction=0.2)
    assert lr_at(50, wsd) == lr_at(80, wsd) == 1e-3
    assert lr_at(90, wsd) == pytest.approx(5e-4) and lr_at(100, wsd) == 0.0
    with pytest.raises(ValueError):
        PretrainSection(lr=0)
    with pytest.raises(ValueError):
        PretrainSection(max_steps=-5)
    with pytest.raises(ValueError, match="min_lr"):
        PretrainSection(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError):
        PretrainSection(unknown_key=1)
    with pytest.raises(ValueError, match="unknown preset"):
        ModelSection(preset="13b")


@pytest.mark.slow
def test_entry_points_with_a_config_object(tmp_path, tokenizer_path, docs_dataset, capsys):
    from train.cli import eval_command, train_command

    workdir = tmp_path / "work"
    (workdir / "tokenize").mkdir(parents=True)
    (workdir / "tokenize" / "docs").symlink_to(docs_dataset)
    (workdir / "tokenizer").mkdir()
    (workdir / "tokenizer" / "tokenizer.model").symlink_to(tokenizer_path)
    job = make_job(tmp_path / "unused", tokenizer_path, [], max_steps=3, checkpoint_every=3)
    cfg = SimpleNamespace(
        run=SimpleNamespace(workdir=workdir, seed=1),
        model=job.model,
        train=TrainSection(pretrain=job.train.model_copy(update={"out": "runs/pre"})),
        eval=EvalSection(batches=2, batch_size=2, device="cpu"),
        path=lambda p: Path(p) if Path(p).is_absolute() else tmp_path / p,
    )
    assert train_command(cfg, "pretrain") == 0
    # relative run folders live under run.workdir
    assert [r["step"] for r in read_log(workdir / "runs" / "pre")] == [1, 2, 3]
    capsys.readouterr()
    assert eval_command(cfg, "runs/pre") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 3 and math.isfinite(result["val_loss"]) and result["val_bpb"] > 0
    assert train_command(cfg, "sft") == 1  # the config's SFT data (data/sample/sft beside it) is not there
    cfg.train.pretrain.data = ["missing-dataset"]
    assert train_command(cfg, "pretrain") == 1


def test_python_m_pipeline_train_reads_pipeline_toml(tmp_path, tokenizer_path, docs_dataset):
    """`python -m pipeline train pretrain --config ... --set ...` (what torchrun runs) through the real config
    loader."""
    from pipeline.cli import main

    (tmp_path / "work" / "tokenize").mkdir(parents=True)
    (tmp_path / "work" / "tokenize" / "docs").symlink_to(docs_dataset)
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f"""
[run]
workdir = "work"

[model]
preset = "tiny"
n_layer = 1
d_model = 32
ffn_hidden = 64
max_seq_len = 32

[train.pretrain]
out = "runs/pretrain"
tokenizer = "{tokenizer_path}"
max_steps = 5
checkpoint_every = 5
batch_size = 2
warmup = 1
eval_every = 0
eval_batches = 1
device = "cpu"
progress = false
""",
        encoding="utf-8",
    )
    assert main(["train", "pretrain", "--config", str(config), "--set", "train.pretrain.max_steps=2"]) == 0
    rows = read_log(tmp_path / "work" / "runs" / "pretrain")
    assert [r["step"] for r in rows] == [1, 2] and "val_loss" in rows[-1]
    assert (tmp_path / "work" / "runs" / "pretrain" / "ckpt-0000002.pt").is_file()
    assert (
        main(["train", "pretrain", "--config", str(config), "--set", "train.pretrain.lr=-1"]) == 2
    )  # invalid: refused
