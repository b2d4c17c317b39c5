"""What SFT and DPO share: starting or resuming a fine-tuning run from a model source (vocabulary growth, LoRA), the
row order, and the shared loop (train/loop.py) set up for one process: each mode passes a forward_backward that runs
one optimizer step's micro-batches and returns its loss and metrics.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.lora import trainable_parameters
from model.model import Transformer
from model.tokenizer import Tokenizer
from train.checkpoint import load_latest_readable
from train.loop import ForwardBackward, Runtime, Trainer, build_optimizer, embedding_only_phase, setup_runtime
from train.source import SourceError, add_lora, grow_to_tokenizer, load_model, model_from_state

# ---------------------------------------------------------------------------------------------------------------
# a fine-tuning run


@dataclass
class FinetuneJob:
    """A fine-tuning run with every path resolved (what train/cli.py builds from the config)."""

    mode: str  # "sft" or "dpo"
    out_dir: Path
    init_from: Path
    data: list[Path]
    train: Any  # SftSection or DpoSection
    tokenizer: Path | None = None  # SFT: a merged tokenizer to grow the model to
    # text -> benchmarks whose items it holds (the decontam stage's check); None = no check
    contamination: Callable[[str], list[str]] | None = None


class RowLoader:
    """Indices into a fixed list of rows: each epoch a fresh shuffle from (seed, epoch); the state is (epoch,
    position), so a resumed run continues with the same order."""

    def __init__(self, n: int, per_step: int, seed: int):
        if n <= 0:
            raise ValueError("no training rows")
        self.n, self.per_step, self.seed = n, per_step, seed
        self.epoch, self.pos = 0, 0
        self._order = self._shuffle(0)

    def _shuffle(self, epoch: int) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_step(self) -> list[int]:
        out = []
        while len(out) < self.per_step:
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffle(self.epoch)
            out.append(self._order[self.pos])
            self.pos += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s: dict[str, int]) -> None:
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])
        self._order = self._shuffle(self.epoch)


@dataclass
class Start:
    """The model a run trains, and what a checkpoint must record to rebuild it."""

    model: Transformer
    tokenizer: Tokenizer
    seq_len: int
    origin: dict[str, Any]  # the checkpoint it started from, its step and mode, the pretraining data, growth
    resume: dict[str, Any] | None = None  # the run's own latest checkpoint state, when resuming
    lora: dict[str, Any] | None = None  # LoraSpec.to_dict() when the model carries adapters
    resumed_from: Path | None = None  # the checkpoint file `resume` came from (not always the newest: see below)


def start_or_resume(job: FinetuneJob, say: Callable[[str], None]) -> Start:
    """Resume from the run folder's latest checkpoint, or load `init_from`, grow the vocabulary to `job.tokenizer`
    if given, and put LoRA adapters on."""
    t = job.train
    ckpt, state = load_latest_readable(job.out_dir, say)
    if state is not None:
        if state.get("mode") != job.mode:
            raise SourceError(f"{ckpt} is a {state.get('mode')} checkpoint, not {job.mode}: use another run folder")
        tok = Tokenizer(state["tokenizer"]["path"])
        if tok.sha256 != state["tokenizer"]["sha256"]:
            raise SourceError(f"{tok.path} changed since {ckpt} was written (sha256 differs)")
        if job.tokenizer is not None and Tokenizer(job.tokenizer).sha256 != tok.sha256:
            raise SourceError(
                f"{ckpt} was made with tokenizer {tok.path} (sha256 {tok.sha256[:16]}...), but this run asks for "
                f"{job.tokenizer}, another tokenizer: use a new run folder"
            )
        model = model_from_state(state, merge=False)
        say(f"resuming from {ckpt} (step {state['step']})")
        return Start(model, tok, int(state["seq_len"]), state["origin"], state, state.get("lora"), resumed_from=ckpt)

    loaded = load_model(job.init_from, merge=True)
    model, tok = loaded.model, loaded.tokenizer
    origin = {
        "init_from": str(job.init_from),
        "checkpoint": loaded.info.get("checkpoint"),
        "step": loaded.info.get("step"),
        "mode": loaded.info.get("mode"),
        "data": loaded.info.get("data", []),
    }
    if job.tokenizer is not None and Path(job.tokenizer).resolve() != tok.path.resolve():
        origin["grown_from"] = {"tokenizer": str(tok.path), "vocab_size": tok.vocab_size}
        model, tok = grow_to_tokenizer(model, tok, Tokenizer(job.tokenizer), say)
    spec = add_lora(model, t.lora, say) if t.lora.enabled else None
    seq_len = t.seq_len or loaded.seq_len
    if seq_len > model.cfg.max_seq_len:
        raise SourceError(
            f"train.{job.mode}.seq_len {seq_len} is above the model's max_seq_len {model.cfg.max_seq_len}"
        )
    return Start(model, tok, seq_len, origin, lora=spec.to_dict() if spec else None)


def finetune_runtime(job: FinetuneJob) -> Runtime:
    """SFT and DPO run in one process, on train.<mode>.device with train.<mode>.dtype."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError(f"`train {job.mode}` runs in one process; start it without torchrun")
    return setup_runtime(job.train.device, job.train.dtype, distributed=False)


def finetune(
    job: FinetuneJob,
    start: Start,
    rt: Runtime,
    loader: RowLoader,
    forward_backward: ForwardBackward,
    *,
    run_info: dict[str, Any],
    template: str,
    extra_state: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The shared loop (train/loop.py) from the start (or resumed) step to max_steps, on `start.model` with the
    mode's forward_backward (row indices -> StepOutput); returns {"step", "out", "checkpoint"}. With
    embedding_only_steps (after vocabulary growth), the first steps train the embeddings alone."""
    t = job.train
    model = start.model.to(rt.device)
    optim_params, set_phase = embedding_only_phase(model, getattr(t, "embedding_only_steps", 0))
    optimizer = build_optimizer(model, t, fused=rt.device.type == "cuda")
    out = Path(job.out_dir)
    trainer = Trainer(
        mode=job.mode,
        run_dir=out,
        rt=rt,
        t=t,
        model=model,
        raw=model,
        optimizer=optimizer,
        clip_params=optim_params,
        batches=loader,
        forward_backward=forward_backward,
        describe={
            "model_config": model.cfg.to_dict(),
            "lora": start.lora,
            "seq_len": start.seq_len,
            "tokenizer": {
                "path": str(start.tokenizer.path),
                "sha256": start.tokenizer.sha256,
                "vocab_size": start.tokenizer.vocab_size,
            },
            "data": list(start.origin.get("data", [])),  # the token shards, so `pipeline eval` finds valid data
            "template": template,
            "origin": start.origin,
        },
        extra_state=extra_state,
        before_step=set_phase,
        last_checkpoint=start.resumed_from,  # the newest file may be a truncated one that resume passed over
    )
    if start.resume is not None:
        trainer.restore(start.resume)
    torch.manual_seed(t.seed + trainer.start_step)  # LoRA dropout: the same draws whether resumed or not
    trainer.start_run_folder(
        {
            "mode": job.mode,
            "model": model.cfg.to_dict(),
            "trainable_parameters": trainable_parameters(model),
            "seq_len": start.seq_len,
            "device": str(rt.device),
            "dtype": rt.dtype_name,
            "origin": start.origin,
            "template": template,
            "lora": start.lora,
            **run_info,
        }
    )
    return trainer.train()
