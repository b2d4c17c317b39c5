"""A LLaMA-style decoder as CT-LLM uses it, in one file, in nanoGPT's spirit.

RMSNorm pre-norm, rotary position embeddings, SwiGLU MLP, multi-head attention with optional grouped-query heads,
no biases, tied or untied embeddings. Parameter names follow Hugging Face's LlamaForCausalLM (minus the `model.`
prefix) so export is a rename, and RoPE uses the same rotate-half layout as Hugging Face, so no permutation of
the q/k weights is needed either way.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from model.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # computed in float32 whatever the activation dtype, as LLaMA does, then cast back
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def rope_tables(head_dim: int, max_seq_len: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of m * base^(-2i/head_dim) for positions m < max_seq_len and i < head_dim/2, in float32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[i], x[i + head_dim/2]) of x (B, heads, T, head_dim) by the angle of their position."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return out.to(x.dtype)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, for generation: each new token then costs one
    forward step over itself instead of a rerun of the whole context. Preallocated to `max_len` positions.

    `segments` (B, max_len) keeps each cached token's segment id, so left-padded prompts (padding = segment 0, text
    = segment 1) keep padding out of attention in later steps too."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype):
        shape = (batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.segments = torch.zeros(batch, max_len, dtype=torch.long, device=device)
        self.max_len = max_len
        self.length = 0  # positions filled; advanced by Transformer.forward after all layers have written

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v (B, kv_heads, T, head_dim) of one layer; return all keys and values so far."""
        end = self.length + k.shape[2]
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_head * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # attend over the cached keys too (the mask then always comes from the caller)
            k, v = cache.update(layer, k, v)
        gqa = self.n_kv_head != self.n_head
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:  # packed sequences: causal within each example only
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)  # derived from the config, not saved
        self.register_buffer("rope_sin", sin, persistent=False)
        self.activation_checkpointing = False  # recompute each block in backward: memory for compute
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) everywhere; the projections that write into the residual stream get
        0.02 / sqrt(2 * n_layer) (GPT-2), so the residual's variance does not grow with depth."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * self.cfg.n_layer))
            else:
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, vocab) and, given targets (B, T), the mean cross-entropy
        (positions labelled -100 are left out).

        For several examples packed into one row: position_ids (B, T) restart RoPE at 0 for each example, and
        segment_ids (B, T) keep attention inside each example (a token sees earlier tokens of its own segment
        only), so a packed example gets the logits it would get alone.

        With a KVCache (generation), idx holds only the tokens after the cached ones: their positions start at the
        cache's length unless position_ids say otherwise (left padding), and they attend to the cached tokens of
        their own segment as well."""
        T = idx.shape[1]
        past = cache.length if cache is not None else 0
        if past + T > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {past + T} tokens is longer than max_seq_len {self.cfg.max_seq_len}")
        if cache is not None and past + T > cache.max_len:
            raise ValueError(f"{past + T} tokens do not fit the KV cache of {cache.max_len}")
        if position_ids is None:
            cos, sin = self.rope_cos[past : past + T], self.rope_sin[past : past + T]
        else:  # (B, 1, T, head_dim / 2): one table row per token, broadcast over heads
            cos, sin = self.rope_cos[position_ids].unsqueeze(1), self.rope_sin[position_ids].unsqueeze(1)
        mask = None
        if cache is not None:  # (B, 1, T, past + T): query i sees keys up to past + i of its own segment
            segments = segment_ids if segment_ids is not None else torch.ones_like(idx)
            cache.segments[:, past : past + T] = segments
            causal = torch.ones(T, past + T, dtype=torch.bool, device=idx.device).tril(diagonal=past)
            mask = ((segments[:, :, None] == cache.segments[:, None, : past + T]) & causal).unsqueeze(1)
        elif segment_ids is not None:
            causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
            mask = (segment_ids[:, :, None] == segment_ids[:, None, :]) & causal  # (B, T, T)
            mask = mask.unsqueeze(1)  # broadcast over heads
        x = self.embed_tokens(idx)
        for i, block in enumerate(self.layers):
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask, cache, i)
        if cache is not None:
            cache.length += T
        logits = self.lm_head(self.norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    def num_params(self) -> int:
        """Distinct parameters (a tied table counted once)."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())
