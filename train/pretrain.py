"""Pretraining: the token shards, the model (DDP, or FSDP2 with `fsdp = true`, under torchrun), validation and
the run folder, plugged into the shared loop (train/loop.py) as a batch source and a forward/backward step.

The model is new (from `[model]`), resumed from the run folder's latest checkpoint, or, for continued pretraining
(`init_from`, Chinese-LLaMA-Alpaca's recipe), loaded from a run folder, checkpoint or Hugging Face folder, grown to a
merged tokenizer and given LoRA adapters by the same helpers fine-tuning uses (train/source.py)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from model.config import ModelConfig, flops_per_token, from_preset, num_params, pad_vocab
from model.lora import trainable_parameters
from model.model import Transformer
from model.tokenizer import Tokenizer
from train.checkpoint import ResumeError, load_latest_readable
from train.config import ModelSection, PretrainSection
from train.data import Loader, PackedSequences, ShardsError, TokenDataset, check_datasets, validation_batches
from train.evaluate import text_loss
from train.loop import (
    Runtime,
    StepOutput,
    Trainer,
    TrainingDiverged,
    all_reduce_sum,
    build_optimizer,
    embedding_only_phase,
    micro_batch_sync,
    setup_runtime,
)
from train.source import SourceError, add_lora, grow_to_tokenizer, load_model, lora_spec, model_from_state
from train.speed import mfu, peak_flops

VALIDATION_SEED = 0  # the validation set is the same sample whatever the training seed


@dataclass
class PretrainJob:
    """A pretraining run with every path resolved: what `train_command` builds from the config, and what tests and
    spawned processes receive (it pickles)."""

    out_dir: Path
    tokenizer: Path | None  # None: the init_from model's own tokenizer (a new model needs one)
    data: list[Path]
    model: ModelSection = field(default_factory=ModelSection)
    train: PretrainSection = field(default_factory=PretrainSection)
    init_from: Path | None = None  # continued pretraining: the start model (see PretrainSection.init_from)
    heldout: dict[str, Path] = field(default_factory=dict)
    """Held-out text files by name, evaluated at every validation step (log rows `heldout_bpb/<name>` and
    `heldout_bpb/<name>/<lang>`): what `pipeline ablate` plots against training tokens."""


# ---------------------------------------------------------------------------------------------------------------
# small pieces


def dataset_weights(datasets: list[TokenDataset], overrides: dict[str, float]) -> list[float]:
    unknown = set(overrides) - {ds.name for ds in datasets}
    if unknown:
        raise ShardsError(f"train.pretrain.weights names datasets that are not in the run: {sorted(unknown)}")
    return [overrides.get(ds.name, ds.meta.weight) for ds in datasets]


def unigram_loss(datasets: list[TokenDataset], vocab_size: int, max_tokens: int = 10_000_000) -> float:
    """Cross-entropy (nats/token) of the best context-free model: the entropy of the training unigram counts.
    The bar a model must clear to have learned anything from context."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    budget = max_tokens
    for ds in datasets:
        for shard in ds.shards:
            take = shard.tokens[: max(0, budget)]
            if len(take):
                counts += torch.bincount(torch.from_numpy(take.astype("int64")), minlength=vocab_size).double()
            budget -= len(take)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


@torch.no_grad()
def evaluate(model, batches, piece_bytes: torch.Tensor, rt: Runtime) -> tuple[float, float]:
    """Mean validation loss (nats/token) and bits per UTF-8 byte of the target text, over all processes."""
    device = rt.device
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # summed nll, tokens, bytes
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with rt.autocast:
            _, loss = model(x, y)
        totals[0] += loss.double() * y.numel()
        totals[1] += y.numel()
        totals[2] += piece_bytes[y].sum()
    all_reduce_sum(totals, rt.dist)
    model.train()
    nll, tokens, nbytes = totals.tolist()
    return nll / tokens, nll / (math.log(2) * nbytes) if nbytes else float("nan")


def heldout_row(name: str, per_lang: dict[str, dict]) -> dict[str, float]:
    """Log-row fields of one held-out file from `text_loss`'s per-language results: bits per byte over the whole
    file (every language's bytes together) and per language."""
    nll = sum(r["loss"] * r["tokens"] for r in per_lang.values())
    nbytes = sum(r["loss"] * r["tokens"] / (math.log(2) * r["bpb"]) for r in per_lang.values() if r["bpb"] > 0)
    row = {f"heldout_bpb/{name}": nll / (math.log(2) * nbytes) if nbytes else float("nan")}
    row.update({f"heldout_bpb/{name}/{lang}": r["bpb"] for lang, r in per_lang.items()})
    return row


# ---------------------------------------------------------------------------------------------------------------
# the run


def build_model_config(section: ModelSection, vocab_size: int) -> ModelConfig:
    return from_preset(section.preset, pad_vocab(vocab_size, section.vocab_multiple), **section.overrides())


@dataclass
class ModelStart:
    """The model a pretraining run trains (on the CPU, unsharded), before the optimizer is built."""

    model: Transformer
    tokenizer: Tokenizer
    seq_len: int
    origin: dict[str, Any] | None = None  # continued pretraining: where it started (kept in every checkpoint)
    lora: dict[str, Any] | None = None  # LoraSpec.to_dict() when the model carries adapters


def _checked_tokenizer(path: Path | str, sha256: str, ckpt: Path) -> Tokenizer:
    if not Path(path).is_file():
        raise ResumeError(f"{ckpt}: its tokenizer {path} is missing")
    tok = Tokenizer(path)
    if tok.sha256 != sha256:
        raise ResumeError(f"{path} changed since {ckpt} was written (sha256 differs)")
    return tok


def _refuse_other_tokenizer(ckpt: Path, made_with: dict[str, Any], job_tokenizer: Path, sha256: str) -> None:
    # the vocabulary size alone would let a retrained tokenizer of the same size through: the ids would mean other
    # pieces and the resumed model would silently learn a new mapping on top of the old one
    if made_with["sha256"] != sha256:
        raise ResumeError(
            f"{ckpt} was made with tokenizer {made_with['path']} (sha256 {made_with['sha256'][:16]}...), "
            f"but this run uses {job_tokenizer} (sha256 {sha256[:16]}...); use a new run folder, or the "
            "tokenizer the run started with"
        )


def start_model(
    job: PretrainJob, ckpt: Path | None, state: dict[str, Any] | None, say: Callable[[str], None]
) -> ModelStart:
    """Resume the run folder's checkpoint (`ckpt`, `state`) if there is one; else load and prepare `init_from`;
    else build a new model from [model] with the seed."""
    t = job.train
    if state is not None and job.init_from is not None:
        say(f"{job.out_dir} holds {ckpt}: resuming it; train.pretrain.init_from ({job.init_from}) is not used")
    if state is not None and state.get("origin") is not None:  # a continued-pretraining run resumes
        tok = _checked_tokenizer(state["tokenizer"]["path"], state["tokenizer"]["sha256"], ckpt)
        if job.tokenizer is not None:
            _refuse_other_tokenizer(ckpt, state["tokenizer"], job.tokenizer, Tokenizer(job.tokenizer).sha256)
        wanted = lora_spec(t.lora).to_dict() if t.lora.enabled else None
        if (state.get("lora") or None) != wanted:
            raise ResumeError(
                f"{ckpt} was trained with LoRA {state.get('lora')}, but train.pretrain.lora now asks for {wanted}; "
                "use a new run folder (with init_from set to this one) to change the adapters"
            )
        model = model_from_state(state, merge=False)
        return ModelStart(model, tok, t.seq_len or int(state["seq_len"]), state["origin"], state.get("lora"))
    if state is None and job.init_from is not None:
        loaded = load_model(job.init_from, merge=True)
        model, tok = loaded.model, loaded.tokenizer
        origin = {
            "init_from": str(job.init_from),
            "checkpoint": loaded.info.get("export") or loaded.info.get("checkpoint"),
            "step": loaded.info.get("step"),
            "mode": loaded.info.get("mode"),
            "tokenizer": str(tok.path),
            "vocab_size": tok.vocab_size,
        }
        say(f"continued pretraining from {origin['checkpoint']} ({model.num_params() / 1e6:.2f}M parameters)")
        if job.tokenizer is not None and Tokenizer(job.tokenizer).sha256 != tok.sha256:
            origin["grown_from"] = {"tokenizer": str(tok.path), "vocab_size": tok.vocab_size}
            model, tok = grow_to_tokenizer(model, tok, Tokenizer(job.tokenizer), say)
        torch.manual_seed(t.seed)  # the adapters' initial A matrices
        spec = add_lora(model, t.lora, say) if t.lora.enabled else None
        return ModelStart(model, tok, t.seq_len or loaded.seq_len, origin, spec.to_dict() if spec else None)
    if job.tokenizer is None:
        raise ShardsError("train.pretrain.tokenizer is needed for a new model (or set train.pretrain.init_from)")
    tok = Tokenizer(job.tokenizer)
    model_cfg = build_model_config(job.model, tok.vocab_size)
    torch.manual_seed(t.seed)
    model = Transformer(model_cfg)
    if state is not None:
        if state["model_config"] != model_cfg.to_dict():
            raise ResumeError(f"{ckpt} holds a different model ({state['model_config']}); use a new run folder")
        _refuse_other_tokenizer(ckpt, state["tokenizer"], job.tokenizer, tok.sha256)
        model.load_state_dict(state["model"])
    return ModelStart(model, tok, t.seq_len or model_cfg.max_seq_len)


def pretrain(job: PretrainJob, *, stop_after_step: int | None = None) -> dict[str, Any]:
    """Run (or resume) pretraining. `stop_after_step` saves a checkpoint after that step and returns, as a preempted
    job would; the next call resumes from it."""
    t = job.train
    rt = setup_runtime(t.device, t.dtype, distributed=True)
    d, device = rt.dist, rt.device
    out = Path(job.out_dir)

    # --- the model (new, resumed or continued) and its tokenizer, then the shards: every guard runs before step 1
    ckpt_path, state = load_latest_readable(out, rt.warn)
    start = start_model(job, ckpt_path, state, rt.say)
    raw, tok, seq_len = start.model, start.tokenizer, start.seq_len
    model_cfg = raw.cfg
    if seq_len > model_cfg.max_seq_len:
        raise ValueError(f"train.pretrain.seq_len {seq_len} is above the model's max_seq_len {model_cfg.max_seq_len}")
    if not job.data:
        raise ShardsError("no token datasets given (run the tokenize stage, or set train.pretrain.data)")
    train_sets = [TokenDataset(p, "train") for p in job.data]
    valid_sets = [ds for ds in (TokenDataset(p, "valid") for p in job.data) if ds.num_tokens > seq_len]
    check_datasets(
        train_sets + valid_sets,
        tokenizer_sha256=tok.sha256,
        vocab_size=tok.vocab_size,
        model_vocab=model_cfg.vocab_size,
        tokenizer_path=tok.path,
    )
    weights = dataset_weights(train_sets, t.weights)
    sources = [PackedSequences(ds, seq_len, t.seed) for ds in train_sets]
    loader = Loader(
        sources, weights, batch_size=t.batch_size, grad_accum=t.grad_accum, rank=d.rank, world_size=d.world_size
    )
    val_batches = []
    if valid_sets and t.eval_batches:
        val_weights = [w for ds, w in zip(train_sets, weights) if ds.name in {v.name for v in valid_sets}]
        val_batches = validation_batches(
            [PackedSequences(ds, seq_len, VALIDATION_SEED) for ds in valid_sets],
            val_weights,
            batch_size=t.batch_size,
            batches=t.eval_batches,
            rank=d.rank,
            world_size=d.world_size,
        )
    piece_bytes = torch.zeros(model_cfg.vocab_size, dtype=torch.float64)
    piece_bytes[: tok.vocab_size] = torch.from_numpy(tok.piece_bytes).double()
    piece_bytes = piece_bytes.to(device)

    # --- optimizer and wrapping (the weights are loaded above, before sharding)
    raw.activation_checkpointing = t.activation_checkpointing
    optim_params, set_phase = embedding_only_phase(raw, t.embedding_only_steps)
    raw.to(device)
    sharded = t.fsdp and d.enabled
    if sharded and job.heldout:  # the held-out text is scored by the first process alone, on whole weights
        raise ValueError("held-out text evaluation during training does not work with fsdp = true")
    if sharded:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # FSDP_ONLY (see train/loop.py)

        mp = MixedPrecisionPolicy(param_dtype=rt.dtype, reduce_dtype=torch.float32)
        for block in raw.layers:
            fully_shard(block, mp_policy=mp)
        fully_shard(raw, mp_policy=mp)
    optimizer = build_optimizer(raw, t, fused=device.type == "cuda")
    model = raw
    if d.enabled and not sharded:
        # in the embeddings-only phase the blocks get no gradient: DDP must not wait for them
        model = DDP(
            raw,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=t.embedding_only_steps > 0,
        )
    if t.compile:
        model = torch.compile(model)

    fpt = flops_per_token(model_cfg, seq_len)
    peak = peak_flops(device, rt.dtype)
    tokens_per_step = t.batch_size * t.grad_accum * d.world_size * seq_len

    def forward_backward(micro: list[tuple[torch.Tensor, torch.Tensor]]) -> StepOutput:
        loss_sum = torch.zeros((), device=device)
        for m, (x, y) in enumerate(micro):
            with micro_batch_sync(model, raw, rt, sharded, last=m == len(micro) - 1):
                with rt.autocast:
                    _, loss = model(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
                (loss / len(micro)).backward()
            loss_sum += loss.detach()
        return StepOutput(loss_sum / len(micro), tokens_per_step)

    def validate() -> dict[str, float]:
        row = dict(zip(("val_loss", "val_bpb"), evaluate(model, val_batches, piece_bytes, rt))) if val_batches else {}
        if job.heldout and d.master:  # held-out text is scored on the first process only, as it logs the rows
            raw.eval()
            for name, path in job.heldout.items():
                with rt.autocast:
                    per_lang = text_loss(raw, tok, path, t.batch_size, seq_len)
                row.update(heldout_row(name, per_lang))
            raw.train()
        return row

    trainer = Trainer(
        mode="pretrain",
        run_dir=out,
        rt=rt,
        t=t,
        model=model,
        raw=raw,
        optimizer=optimizer,
        # after fully_shard the parameters are new (DTensor) objects: read them from the wrapped module
        clip_params=optim_params if t.embedding_only_steps else [p for p in raw.parameters() if p.requires_grad],
        batches=loader,
        forward_backward=forward_backward,
        describe={
            "model_config": model_cfg.to_dict(),
            "seq_len": seq_len,
            "tokenizer": {"path": str(tok.path), "sha256": tok.sha256, "vocab_size": tok.vocab_size},
            "data": [str(p) for p in job.data],
            **({"origin": start.origin, "lora": start.lora} if start.origin is not None else {}),
        },
        before_step=set_phase if t.embedding_only_steps else None,
        sharded=sharded,
        validate=validate if val_batches or job.heldout else None,
        eval_every=t.eval_every,
        row_extra=lambda step, tps: {"tokens": step * tokens_per_step, "mfu": mfu(fpt, tps, peak, d.world_size)},
        baseline=unigram_loss(train_sets, tok.vocab_size),
        last_checkpoint=ckpt_path,
    )
    if state is not None:
        trainer.restore(state)
        rt.say(f"resuming from {ckpt_path} (step {trainer.start_step})")
    trainer.start_run_folder(
        {
            "model": model_cfg.to_dict(),
            "parameters": num_params(model_cfg),
            "flops_per_token": fpt,
            "seq_len": seq_len,
            "tokens_per_step": tokens_per_step,
            "world_size": d.world_size,
            "device": str(device),
            "dtype": rt.dtype_name,
            "unigram_loss": trainer.baseline,
            "tokenizer": str(tok.path),
            "origin": start.origin,
            "lora": start.lora,
            "trainable_parameters": trainable_parameters(raw),
            "embedding_only_steps": t.embedding_only_steps,
            "data": {ds.name: {"weight": w, "train_tokens": ds.num_tokens} for ds, w in zip(train_sets, weights)},
        }
    )
    rt.say(
        f"pretraining {num_params(model_cfg) / 1e6:.2f}M parameters on {device} ({rt.dtype_name}), "
        f"{d.world_size} process(es), {tokens_per_step} tokens/step, "
        f"unigram baseline {trainer.baseline:.3f} nats/token"
    )
    return trainer.train(stop_after_step)


def main_guarded(job: PretrainJob) -> int:
    """Run, turning the expected failures into a message and exit code 1."""
    try:
        pretrain(job)
    except (ShardsError, TrainingDiverged, ResumeError, SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
