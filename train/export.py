"""Hugging Face export: a `LlamaForCausalLM` folder that transformers and vLLM load as it is, and the way back.

Written: config.json, model.safetensors (float32; LoRA merged first), tokenizer.model (the SentencePiece file) with
tokenizer_config.json and special_tokens_map.json (the chat template as Jinja, control tokens as special tokens),
generation_config.json (stops at <|end|> and EOS), and mapcc.json (what this project needs to evaluate the export:
training length, token shard folders, template). Parameter names are ours with a `model.` prefix (lm_head as is):
the model already uses Hugging Face's names and rotate-half RoPE, so no tensor is permuted.

The safetensors format is written and read here by hand (8-byte little-endian header length, a JSON header of
dtype/shape/byte offsets, then the raw little-endian bytes), so the export needs no extra package.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import torch

from model.config import ModelConfig
from model.tokenizer import Tokenizer

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32"}
FROM_DTYPE = {v: k for k, v in DTYPES.items()}
CHAT_JINJA = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in DTYPES:
            raise ValueError(f"cannot write {name}: dtype {t.dtype}")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    tmp.replace(path)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    buf = Path(path).read_bytes()
    if len(buf) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", buf[:8])
    try:
        header = json.loads(buf[8 : 8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path}: not a safetensors file (bad header)") from None
    base = 8 + n
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if h["dtype"] not in FROM_DTYPE:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {h['dtype']}")
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(buf[base + a : base + b]), dtype=torch.uint8)
        out[name] = t.view(FROM_DTYPE[h["dtype"]]).reshape(h["shape"])
    return out


def hf_model_config(cfg: ModelConfig) -> dict[str, Any]:
    """Our model configuration as Hugging Face `LlamaConfig` fields (what `LlamaConfig(**...)` takes)."""
    return {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_base,  # transformers 4.x
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base},  # transformers 5.x
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
    }


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our weights under LlamaForCausalLM's names (a `model.` prefix, except lm_head; a tied lm_head is left out,
    since Hugging Face ties it to model.embed_tokens.weight)."""
    out = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            if not model.cfg.tie_embeddings:
                out[name] = t
        else:
            out["model." + name] = t
    return out


def hf_config(cfg: ModelConfig, tok: Tokenizer) -> dict[str, Any]:
    """config.json of an export: the architecture, plus the tokenizer's special ids."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **hf_model_config(cfg),
        "pretraining_tp": 1,
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.eos_id,
        "pad_token_id": tok.pad_id,
        "torch_dtype": "float32",
        "use_cache": True,
    }


def tokenizer_files(tok: Tokenizer, template: str | None, max_len: int) -> tuple[dict, dict]:
    sp = tok.sp

    def piece(i: int | None) -> str | None:
        return None if i is None else sp.id_to_piece(i)

    controls = [sp.id_to_piece(i) for i in range(tok.vocab_size) if sp.is_control(i)]
    specials = [p for p in controls if p not in {piece(tok.bos_id), piece(tok.eos_id), piece(tok.pad_id)}]
    special_map = {
        "bos_token": piece(tok.bos_id),
        "eos_token": piece(tok.eos_id),
        "unk_token": sp.id_to_piece(sp.unk_id()),
        "pad_token": piece(tok.pad_id),
        "additional_special_tokens": specials,
    }
    special_map = {k: v for k, v in special_map.items() if v is not None}
    config = {
        "tokenizer_class": "LlamaTokenizer",
        **special_map,
        "add_bos_token": False,  # training sequences start without BOS (token shards: EOS after each document)
        "add_eos_token": False,
        "add_prefix_space": False,  # the tokenizer stage trains without SentencePiece's dummy prefix
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "sp_model_kwargs": {},
    }
    if template == "chat" and "<|end|>" in specials:
        config["chat_template"] = CHAT_JINJA
    return config, special_map


def export(loaded, hf_dir: Path) -> Path:
    """Write `loaded` (a train.source.Loaded with adapters merged) as a Hugging Face folder."""
    model, tok = loaded.model, loaded.tokenizer
    hf_dir = Path(hf_dir)
    hf_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    tensors = {name: t.float() for name, t in hf_state_dict(model).items()}
    save_safetensors(tensors, hf_dir / "model.safetensors")
    (hf_dir / "config.json").write_text(json.dumps(hf_config(cfg, tok), indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(tok.path, hf_dir / "tokenizer.model")
    template = loaded.info.get("template")
    tok_cfg, special_map = tokenizer_files(tok, template, cfg.max_seq_len)
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n")
    (hf_dir / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, ensure_ascii=False) + "\n")
    stops = [i for i in (tok.sp.piece_to_id("<|end|>") if template == "chat" else None, tok.eos_id) if i is not None]
    gen = {"bos_token_id": tok.bos_id, "eos_token_id": stops or None, "pad_token_id": tok.pad_id}
    (hf_dir / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")
    info = {**loaded.info, "seq_len": loaded.seq_len, "tokenizer_sha256": tok.sha256}
    (hf_dir / "mapcc.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return hf_dir
