"""Where a model comes from: a run folder (its latest checkpoint), a checkpoint file, or a Hugging Face Llama folder
written by `pipeline export`. `load_model` reads any of them into a `Loaded` (model, tokenizer, training length and
what the checkpoint says about itself); fine-tuning, continued pretraining, evaluation, generation and export all
start here. `grow_to_tokenizer` and `add_lora` prepare a start model the same way for SFT and continued pretraining.
Hugging Face folders load from `model.safetensors` or from the shards `model.safetensors.index.json` lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.config import ModelConfig, pad_vocab
from model.grow import check_extends, grow_vocab
from model.lora import LoraSpec, apply_lora, has_lora, merge_lora, trainable_parameters
from model.model import Transformer
from model.tokenizer import Tokenizer
from train.checkpoint import latest_checkpoint, load_checkpoint
from train.config import LoraSection
from train.export import load_safetensors


class SourceError(ValueError):
    """A model source (run folder, checkpoint, export) that cannot be loaded; the message names the path."""


@dataclass
class Loaded:
    """A model ready to use, its tokenizer, and what its checkpoint says about it."""

    model: Transformer
    tokenizer: Tokenizer
    seq_len: int
    info: dict[str, Any] = field(default_factory=dict)  # mode, step, checkpoint, data (token shard folders), template


def model_from_state(state: dict[str, Any], *, merge: bool) -> Transformer:
    """The Transformer of a checkpoint, LoRA adapters included (merged into the weights when `merge`)."""
    model = Transformer(ModelConfig.from_dict(state["model_config"]))
    if state.get("lora"):
        apply_lora(model, LoraSpec.from_dict(state["lora"]))
    model.load_state_dict(state["model"])
    if merge and has_lora(model):
        merge_lora(model)
    if merge:
        for p in model.parameters():
            p.requires_grad_(True)
    return model


def resolve_checkpoint(source: Path) -> Path:
    source = Path(source)
    if source.is_file():
        return source
    if not source.exists():
        raise SourceError(f"{source}: no such run folder, checkpoint or export")
    ckpt = latest_checkpoint(source)
    if ckpt is None:
        raise SourceError(f"{source}: no checkpoint (ckpt-*.pt) in this folder, and no config.json of an export")
    return ckpt


def load_model(source: str | Path, *, merge: bool = True) -> Loaded:
    """From a run folder (its latest checkpoint), a checkpoint file, or a folder written by `pipeline export`."""
    source = Path(source)
    if source.is_dir() and (source / "config.json").is_file():
        return load_export(source)
    ckpt = resolve_checkpoint(source)
    try:
        state = load_checkpoint(ckpt)
    except Exception as e:
        raise SourceError(f"{ckpt}: not a readable checkpoint ({e})") from None
    tok_info = state["tokenizer"]
    tok_path = Path(tok_info["path"])
    if not tok_path.is_file():
        raise SourceError(f"{ckpt}: its tokenizer {tok_path} is missing")
    tok = Tokenizer(tok_path)
    if tok.sha256 != tok_info["sha256"]:
        raise SourceError(f"{tok_path} changed since {ckpt} was written (sha256 differs)")
    info = {
        "checkpoint": str(ckpt),
        "step": int(state["step"]),
        "mode": state.get("mode", "pretrain"),
        "data": list(state.get("data", [])),
        "template": state.get("template"),
    }
    return Loaded(model_from_state(state, merge=merge), tok, int(state["seq_len"]), info)


def read_hf_weights(hf_dir: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a Hugging Face folder: `model.safetensors`, or the shards `model.safetensors.index.json` lists
    (what `save_pretrained` writes above `max_shard_size`); and a name for error messages."""
    single, index = hf_dir / "model.safetensors", hf_dir / "model.safetensors.index.json"
    if single.is_file():
        try:
            return load_safetensors(single), str(single)
        except ValueError as e:
            raise SourceError(str(e)) from None
    if not index.is_file():
        raise SourceError(f"{hf_dir}: neither model.safetensors nor model.safetensors.index.json (sharded) is there")
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SourceError(f"{index}: not a safetensors index (no weight_map: {e})") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        path = hf_dir / shard
        if not path.is_file():
            raise SourceError(f"{index}: lists shard {shard}, which is missing")
        try:
            part = load_safetensors(path)
        except ValueError as e:
            raise SourceError(str(e)) from None
        wrong = sorted(k for k in part if weight_map.get(k) != shard)
        if wrong:
            raise SourceError(f"{path}: holds {wrong[:3]}, which {index} puts elsewhere or does not list")
        tensors.update(part)
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise SourceError(f"{index}: lists {missing[:3]} but no shard holds them")
    return tensors, str(index)


def load_export(hf_dir: Path):
    """A Llama folder (ours, or any LlamaForCausalLM export, single-file or sharded safetensors, with a SentencePiece
    tokenizer.model)."""
    hf_dir = Path(hf_dir)
    cfg_path = hf_dir / "config.json"
    c = json.loads(cfg_path.read_text(encoding="utf-8"))
    if c.get("model_type") != "llama":
        raise SourceError(f"{cfg_path}: model_type {c.get('model_type')!r}, only llama folders load here")
    if c.get("attention_bias") or c.get("mlp_bias") or c.get("rope_scaling"):
        raise SourceError(f"{cfg_path}: biases or RoPE scaling are not supported by model/model.py")
    rope = (c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta", 10000.0))
    cfg = ModelConfig(
        vocab_size=c["vocab_size"],
        n_layer=c["num_hidden_layers"],
        n_head=c["num_attention_heads"],
        n_kv_head=c.get("num_key_value_heads") or c["num_attention_heads"],
        d_model=c["hidden_size"],
        ffn_hidden=c["intermediate_size"],
        max_seq_len=c["max_position_embeddings"],
        rope_base=float(rope),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        norm_eps=c.get("rms_norm_eps", 1e-5),
    )
    tensors, weights = read_hf_weights(hf_dir)
    # rotary_emb.inv_freq: a buffer older transformers versions saved; ours is computed from rope_base
    sd = {k.removeprefix("model."): v.float() for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}
    if cfg.tie_embeddings:
        sd["lm_head.weight"] = sd["embed_tokens.weight"]
    model = Transformer(cfg)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise SourceError(f"{weights}: does not match {cfg_path} ({str(e).splitlines()[0]})") from None
    tok_path = hf_dir / "tokenizer.model"
    if not tok_path.is_file():
        raise SourceError(f"{tok_path}: missing (a SentencePiece tokenizer.model is needed)")
    tok = Tokenizer(tok_path)
    info_path = hf_dir / "mapcc.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    info = {**info, "export": str(hf_dir)}
    return Loaded(model, tok, int(info.get("seq_len") or cfg.max_seq_len), info)


def grow_to_tokenizer(
    model: Transformer, tok: Tokenizer, new_tok: Tokenizer, say: Callable[[str], None]
) -> tuple[Transformer, Tokenizer]:
    """The model with its embedding and output rows grown to `new_tok`, which must extend `tok` (its pieces first,
    same ids): old rows untouched, new rows the mean of the old ones."""
    old_pieces = [tok.sp.id_to_piece(i) for i in range(tok.vocab_size)]
    new_pieces = [new_tok.sp.id_to_piece(i) for i in range(new_tok.vocab_size)]
    try:
        check_extends(old_pieces, new_pieces, str(tok.path), str(new_tok.path))
    except ValueError as e:
        raise SourceError(str(e)) from None
    multiple = 1
    if model.cfg.vocab_size != tok.vocab_size:  # padded rows: pad the grown table to a like multiple
        multiple = max(m for m in (1, 8, 16, 32, 64, 128) if model.cfg.vocab_size % m == 0)
    rows = max(pad_vocab(new_tok.vocab_size, multiple), model.cfg.vocab_size)
    # also when the new pieces fit in the old padding rows: those rows are re-initialised to the mean
    model = grow_vocab(model, rows, old_tokens=tok.vocab_size)
    say(f"vocabulary grown from {tok.vocab_size:,} to {new_tok.vocab_size:,} pieces ({rows:,} rows)")
    return model, new_tok


def lora_spec(section: LoraSection) -> LoraSpec:
    return LoraSpec(section.rank, section.alpha, section.dropout, tuple(section.targets), section.train_embeddings)


def add_lora(model: Transformer, section: LoraSection, say: Callable[[str], None]) -> LoraSpec:
    """LoRA adapters on the model as `[train.<mode>.lora]` says (the rest frozen)."""
    spec = lora_spec(section)
    apply_lora(model, spec)
    say(
        f"LoRA r={spec.rank} alpha={spec.alpha:g} on {', '.join(spec.targets)}: "
        f"{trainable_parameters(model):,} trainable parameters"
    )
    return spec
