"""Sampling: temperature, top-k and top-p (nucleus) over the model's next-token distribution, from a plain prompt or
from a chat turn built with the SFT template. No KV cache (nanoGPT's `generate`): each new token reruns the context,
which is fine for the small models and short answers this is used with."""

from __future__ import annotations

import torch

from train.chat_data import ChatTemplate, DataError


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits (vocab,) with everything outside the top k and outside the top-p nucleus set to -inf. The most likely
    token always stays."""
    logits = logits.clone()
    if top_k and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability mass strictly above each token
        drop = before >= top_p
        drop[0] = False
        logits[order[drop]] = float("-inf")
    return logits


@torch.no_grad()
def sample(
    model,
    ids: list[int],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop_ids: set[int] | frozenset[int] = frozenset(),
    vocab_size: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """New token ids after `ids`, up to max_new_tokens or a stop id (not included). temperature 0 is greedy;
    vocab_size keeps padding rows of the embedding (ids the tokenizer does not have) from being sampled."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=device)
    out: list[int] = []
    for _ in range(max_new_tokens):
        logits, _ = model(x[:, -model.cfg.max_seq_len :])
        logits = logits[0, -1].float().cpu()
        if vocab_size is not None:
            logits[vocab_size:] = float("-inf")
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        if nxt in stop_ids:
            break
        out.append(nxt)
        x = torch.cat([x, torch.tensor([[nxt]], device=device)], dim=1)
    model.train(was_training)
    return out


def generate_text(loaded, prompt: str, settings, device: torch.device | None = None) -> tuple[str, bool, int]:
    """(completion, whether the chat template was used, tokens sampled) for a train.source.Loaded model and
    `[eval.generate]` settings."""
    tok = loaded.tokenizer
    model = loaded.model.to(device or torch.device("cpu"))
    mode = settings.chat
    chat = mode == "on" or (mode == "auto" and loaded.info.get("mode") in ("sft", "dpo"))
    stop = {tok.eos_id} if tok.eos_id is not None else set()
    if chat:
        template = ChatTemplate(tok, loaded.info.get("template") or "chat")
        ids = template.prompt_ids([{"role": "user", "content": prompt}])
        stop |= template.stop_ids
    else:
        ids = tok.encode(prompt)
        if not ids:
            raise DataError("the prompt is empty")
    g = torch.Generator().manual_seed(settings.seed)
    new = sample(
        model,
        ids,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_k=settings.top_k,
        top_p=settings.top_p,
        stop_ids=stop,
        vocab_size=tok.vocab_size,
        generator=g,
    )
    return tok.decode(new), chat, len(new)
