"""The one training loop that pretraining, SFT and DPO plug into, and what every loop needs around it: device, dtype
and autocast, torchrun's process group, the optimizer and its LR schedule, the checkpoint (one format, built here,
saved atomically) and the run folder's log.

A mode hands `Trainer` a batch source (`next_step()`, `state_dict()`, `load_state_dict()`) and a `forward_backward`
function that runs the forward and backward passes of one optimizer step's micro-batches and returns a `StepOutput`
(the step's mean loss as a device tensor, the tokens it processed, extra metrics). The split follows torchtitan's
trainer: `train` (steps, logging, checkpoints) -> `train_step` (LR, forward/backward, clipping, update) ->
`forward_backward` (the mode's). The checkpoint gathers model, optimizer, schedule, data position, RNG and train
state by key in `Trainer.checkpoint_state`.

Host reads: per step, nothing is read back from the device except on log steps (loss, grad norm, metrics) and at
checkpoints (the divergence flag), as nanoGPT reads `loss.item()` only when it logs. See `Trainer.train_step` for
what the NaN/inf guard guarantees.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm import tqdm

from model.grow import embedding_parameters
from train.checkpoint import rng_state, save_checkpoint, set_rng_state
from train.runlog import append_row, log_path, plot_loss, truncate_log

# FSDP_ONLY: torch.distributed.fsdp and torch.distributed.checkpoint are imported where FSDP is used, not here:
# together they add about 1.6 s to every start (measured with `python -X importtime -c "import train.pretrain"` on
# the 2-core dev machine: 3.2 s with them at the top, 1.6 s without), and only an FSDP run needs them.


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm went NaN/inf; no checkpoint or log row was written from that step on."""


# ---------------------------------------------------------------------------------------------------------------
# device, dtype, processes


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; NCCL on GPUs, gloo on CPU."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), int(os.environ["WORLD_SIZE"]))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return d


def pick_device(kind: str, local_rank: int = 0) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device = 'cuda' but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def pick_dtype(kind: str, device: torch.device) -> torch.dtype:
    if kind == "bf16":
        return torch.bfloat16
    if kind == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast_for(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """Autocast to `dtype` for the forward passes; none in float32."""
    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()


@dataclass
class Runtime:
    """Where a run computes: device, autocast dtype and the process group (one process unless under torchrun)."""

    device: torch.device
    dtype: torch.dtype
    dist: Dist = field(default_factory=Dist)

    @property
    def autocast(self) -> AbstractContextManager:
        return autocast_for(self.device, self.dtype)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def say(self, *args: Any) -> None:
        """print on the first process only."""
        if self.dist.master:
            print(*args)

    def warn(self, message: str) -> None:
        """A warning on stderr, from the first process only."""
        if self.dist.master:
            print(message, file=sys.stderr)


def setup_runtime(device_kind: str, dtype_kind: str, *, distributed: bool) -> Runtime:
    """The device (torchrun: the process's LOCAL_RANK GPU), the process group when `distributed`, and the dtype."""
    device = pick_device(device_kind, int(os.environ.get("LOCAL_RANK", "0")) if distributed else 0)
    d = setup_distributed(device.type) if distributed else Dist()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, pick_dtype(dtype_kind, device), d)


def all_reduce_sum(x: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def micro_batch_sync(model, raw, rt: Runtime, sharded: bool, last: bool) -> AbstractContextManager:
    """Gradient accumulation over processes: DDP and FSDP all-reduce gradients on a step's last micro-batch only."""
    if not rt.dist.enabled:
        return nullcontext()
    if sharded:
        raw.set_requires_gradient_sync(last)
        return nullcontext()
    return nullcontext() if last else model.no_sync()


# ---------------------------------------------------------------------------------------------------------------
# optimizer and schedule


def lr_at(step: int, t) -> float:
    """Learning rate for optimizer step `step` (1-based): linear warmup, then cosine to min_lr at max_steps, or
    warmup-stable-decay with a linear decay over the last decay_fraction of the run."""
    if t.warmup and step <= t.warmup:
        return t.lr * step / t.warmup
    if t.schedule == "cosine":
        progress = (step - t.warmup) / max(1, t.max_steps - t.warmup)
        return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))
    decay_steps = max(1, round(t.decay_fraction * t.max_steps))
    decay_start = t.max_steps - decay_steps
    if step <= decay_start:
        return t.lr
    return t.lr - (t.lr - t.min_lr) * min(1.0, (step - decay_start) / decay_steps)


def build_optimizer(model: torch.nn.Module, t, fused: bool) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad, with weight decay on matrices (embeddings, linear weights)
    only, never on norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps, fused=fused)


def embedding_only_phase(model: torch.nn.Module, steps: int) -> tuple[list[torch.nn.Parameter], Callable[[int], None]]:
    """The optimizer's parameters (those that require grad now, plus the embeddings and output layer when `steps`),
    and the `before_step` hook that trains only the embeddings and output layer for the first `steps` steps
    (Chinese-LLaMA's first stage after vocabulary growth). Parameters outside both are frozen."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    embeds = embedding_parameters(model)
    optim_params = list({id(p): p for p in trainable + (embeds if steps else [])}.values())
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in optim_params))

    def set_phase(step: int) -> None:
        embed_phase = step <= steps
        for p in optim_params:
            p.requires_grad_(any(p is e for e in embeds) if embed_phase else any(p is q for q in trainable))

    return optim_params, set_phase


# ---------------------------------------------------------------------------------------------------------------
# run folder


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    """run.json: what the run is (model, data, device); rewritten on every start, atomically."""
    path = Path(run_dir) / "run.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def divergence_check_every_step(device: torch.device) -> bool:
    """Whether the NaN/inf flag is read after every step. Reading a CPU tensor waits for nothing, so on CPU the
    check runs before every update; on a GPU it would stall the launch queue every step, so it runs on log steps
    and before checkpoints only."""
    return device.type != "cuda"


# ---------------------------------------------------------------------------------------------------------------
# the loop


class BatchSource(Protocol):
    def next_step(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class StepOutput:
    """What a mode's forward_backward returns for one optimizer step."""

    loss: torch.Tensor  # 0-d, on the device: the step's mean loss (what is logged and checked for NaN)
    tokens: int  # tokens processed in this step on this process (for tokens/s)
    metrics: dict[str, Any] = field(default_factory=dict)  # more columns for the log row: tensors or numbers


ForwardBackward = Callable[[Any], StepOutput]


@dataclass
class Trainer:
    """Optimizer steps with logging, validation, checkpoints and the NaN/inf guard, for any mode.

    `model` is what forward_backward calls (maybe DDP-wrapped or compiled), `raw` the module whose state is
    saved; `clip_params` are the parameters whose gradient norm is clipped (the optimizer's). `describe` holds the
    checkpoint entries fixed for the run (model_config, seq_len, tokenizer, data, ...), `extra_state` entries that
    change (a mode's own counters)."""

    mode: str
    run_dir: Path
    rt: Runtime
    t: Any  # the mode's config section (max_steps, log_every, checkpoint_every, keep_last, grad_clip, progress)
    model: torch.nn.Module
    raw: torch.nn.Module
    optimizer: torch.optim.Optimizer
    clip_params: list[torch.nn.Parameter]
    batches: BatchSource
    forward_backward: ForwardBackward
    describe: dict[str, Any]
    extra_state: Callable[[], dict[str, Any]] | None = None
    sharded: bool = False  # FSDP: model and optimizer state are gathered from every process
    before_step: Callable[[int], None] | None = None  # e.g. switch the trained parameters at a phase boundary
    validate: Callable[[], dict[str, float]] | None = None  # columns added on validation steps
    eval_every: int = 0  # steps between validations (and at max_steps), when `validate` is given
    row_extra: Callable[[int, float], dict[str, Any]] | None = None  # (step, tokens/s) -> more log columns
    baseline: float | None = None  # drawn on loss.png
    start_step: int = 0
    last_checkpoint: Path | None = None

    def __post_init__(self) -> None:
        self.log_path = log_path(self.run_dir)
        self._check_every_step = divergence_check_every_step(self.rt.device)
        # first step whose loss or gradient norm was not finite (0: none), kept on the device
        self._first_bad_step = torch.zeros((), dtype=torch.long, device=self.rt.device)

    # --- state

    def restore(self, state: dict[str, Any]) -> int:
        """Optimizer, data position and RNG from a checkpoint of this run (the model is loaded by the caller, before
        it is sharded or wrapped); returns the step to continue after."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict  # FSDP_ONLY

            set_optimizer_state_dict(
                self.raw, self.optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True)
            )
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(state["loader"])
        set_rng_state(state["rng"])
        self.start_step = int(state["step"])
        return self.start_step

    def checkpoint_state(self, step: int) -> dict[str, Any]:
        """The one checkpoint format. Under FSDP every process must call it (the full state is gathered)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict  # FSDP_ONLY

            model_sd, optim_sd = get_state_dict(
                self.raw, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
            )
        else:
            model_sd, optim_sd = self.raw.state_dict(), self.optimizer.state_dict()
        return {
            "step": step,
            "mode": self.mode,
            "model": model_sd,
            "optimizer": optim_sd,
            "scheduler": {"schedule": self.t.schedule, "step": step, "lr": lr_at(step, self.t)},
            "rng": rng_state(),
            "loader": self.batches.state_dict(),
            "train_config": self.t.model_dump(mode="json"),
            **self.describe,
            **(self.extra_state() if self.extra_state else {}),
        }

    def save(self, step: int) -> None:
        self._raise_if_diverged(step)  # never write a checkpoint from a diverged state
        state = self.checkpoint_state(step)
        if self.rt.dist.master:
            self.last_checkpoint = save_checkpoint(self.run_dir, step, state, self.t.keep_last)
        if self.rt.dist.enabled:
            dist.barrier()

    def _raise_if_diverged(self, step: int, stats: torch.Tensor | None = None) -> None:
        bad = int(self._first_bad_step)  # the host read (a device sync on a GPU)
        if not bad:
            return
        where = str(self.last_checkpoint) if self.last_checkpoint else "none (no checkpoint was written yet)"
        if bad == step and stats is not None:  # checked every step: this step's values, its update not applied
            loss_val, gn_val = stats.tolist()
            raise TrainingDiverged(
                f"loss {loss_val} / grad norm {gn_val} at step {step}: stopped before applying the update. "
                f"Last good checkpoint: {where}"
            )
        raise TrainingDiverged(
            f"loss or grad norm not finite at step {bad} (found at step {step}; nothing logged or saved after step "
            f"{bad - 1}). Last good checkpoint: {where}"
        )

    # --- steps

    def train_step(self, step: int) -> tuple[float, torch.Tensor, StepOutput]:
        """One optimizer step: LR, the mode's forward and backward passes, clipping, the update. Returns the LR, the
        [loss, grad norm] averaged over processes (on the device, not read) and the mode's output.

        The NaN/inf guard: the finite check of [loss, grad norm] is recorded on the device. Where the check runs
        every step (CPU: `divergence_check_every_step`), a non-finite step raises TrainingDiverged before its update.
        Elsewhere the flag is read on log steps and before every checkpoint: the run raises there, naming the first
        non-finite step; the updates from that step on stay in memory only, as no log row and no checkpoint is
        written after it. Either way the last checkpoint is from before the divergence."""
        lr = lr_at(step, self.t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.before_step is not None:
            self.before_step(step)
        out = self.forward_backward(self.batches.next_step())
        clip = self.t.grad_clip if self.t.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.clip_params, clip)
        if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor
            grad_norm = grad_norm.full_tensor()
        stats = torch.stack([out.loss.detach(), grad_norm.to(out.loss.dtype)])
        if self.rt.dist.enabled:
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
            stats[0] /= self.rt.dist.world_size
            stats[1] /= self.rt.dist.world_size
        finite = torch.isfinite(stats).all()
        self._first_bad_step = torch.where(~finite & (self._first_bad_step == 0), step, self._first_bad_step)
        if self._check_every_step:
            self._raise_if_diverged(step, stats)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return lr, stats, out

    def train(self, stop_after_step: int | None = None) -> dict[str, Any]:
        """Steps from start_step + 1 to max_steps (or stop_after_step, saving a checkpoint there as a preempted job
        would); returns {"step", "out", "checkpoint"}."""
        t, rt = self.t, self.rt
        self.model.train()
        bar = tqdm(
            total=t.max_steps, initial=self.start_step, disable=not (rt.dist.master and t.progress), desc=self.mode
        )
        t_last, tokens_since, step = time.perf_counter(), 0, self.start_step
        stop_at = t.max_steps if stop_after_step is None else min(t.max_steps, stop_after_step)
        try:
            for step in range(self.start_step + 1, stop_at + 1):
                lr, stats, out = self.train_step(step)
                tokens_since += out.tokens
                bar.update(1)
                validate_now = self.validate is not None and (
                    step == t.max_steps or bool(self.eval_every and step % self.eval_every == 0)
                )
                if step % t.log_every == 0 or step in (self.start_step + 1, t.max_steps) or validate_now:
                    self._raise_if_diverged(step, stats)
                    if rt.device.type == "cuda":
                        torch.cuda.synchronize()
                    tokens_per_s = tokens_since / (time.perf_counter() - t_last)
                    row = self._log_row(step, lr, stats, out, tokens_per_s)
                    if validate_now:
                        row.update(self.validate())
                    if rt.dist.master:
                        append_row(self.log_path, row)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}")
                    t_last, tokens_since = time.perf_counter(), 0
                if step % t.checkpoint_every == 0 or step == stop_at:
                    t_save = time.perf_counter()
                    self.save(step)
                    t_last += time.perf_counter() - t_save  # checkpoint time does not count against tokens/s
        finally:
            bar.close()
        if rt.dist.master and step == t.max_steps and self.log_path.exists():
            plot_loss(self.log_path, self.run_dir / "loss.png", self.baseline)
        if rt.dist.enabled:
            dist.barrier()
        return {
            "step": step,
            "out": str(self.run_dir),
            "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
        }

    def _log_row(self, step: int, lr: float, stats: torch.Tensor, out: StepOutput, tokens_per_s: float) -> dict:
        loss_val, gn_val = stats.tolist()
        row: dict[str, Any] = {"step": step, "loss": loss_val, "lr": lr, "grad_norm": gn_val}
        if self.row_extra is not None:
            row.update(self.row_extra(step, tokens_per_s))
        row["tokens_per_s"] = tokens_per_s
        for k, v in out.metrics.items():
            row[k] = v.item() if isinstance(v, torch.Tensor) else v
        return row

    def start_run_folder(self, run_info: dict[str, Any]) -> None:
        """The run folder on the first process: the log cut back to the start step (rows after the checkpoint are
        produced again), and run.json."""
        if self.rt.dist.master:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            truncate_log(self.log_path, self.start_step)
            write_run_info(self.run_dir, run_info)
