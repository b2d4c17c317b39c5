"""LoRA: starts as the base model, merges into plain weights with the same logits, trains only adapters.
Vocabulary growth: a model grown to a merged tokenizer keeps the old logits of old tokens; the embeddings-only phase
moves nothing else."""

from __future__ import annotations

import json

import pytest
import torch

from model.grow import check_extends, grow_vocab
from model.lora import LoRALinear, LoraSpec, apply_lora, has_lora, lora_disabled, merge_lora, trainable_parameters
from model.model import Transformer
from model.tokenizer import Tokenizer
from model.vocab import merge_vocab
from tests.finetune.helpers import SAMPLE, tiny_config, train_chat_tokenizer
from train.config import SftSection
from train.finetune import FinetuneJob
from train.sft import run_sft
from train.source import load_model


@pytest.mark.parametrize("tied", [False, True])
def test_lora_merge_is_equivalent(tied):
    torch.manual_seed(0)
    base = Transformer(tiny_config(101, tie_embeddings=tied)).eval()
    idx = torch.randint(0, 101, (2, 12))
    with torch.no_grad():
        want = base(idx)[0]
    names = set(base.state_dict())
    model = apply_lora(base, LoraSpec(rank=4, alpha=16, dropout=0.05))
    assert {k for k in model.state_dict() if "lora_" not in k} == names  # base weights keep their names
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 7 * 2
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())
    adapters = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert trainable_parameters(model) == sum(4 * (m.in_features + m.out_features) for m in adapters)
    assert not any(m.training for m in adapters)  # the wrapped model stays in eval mode
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], want)  # B = 0: the base model exactly
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.05)
        adapted = model(idx)[0]
        with lora_disabled(model):
            torch.testing.assert_close(model(idx)[0], want)
    assert not torch.allclose(adapted, want, atol=1e-4)
    merge_lora(model)
    assert not has_lora(model) and set(model.state_dict()) == names
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], adapted, rtol=1e-5, atol=1e-5)


def test_lora_spec_checks():
    with pytest.raises(ValueError, match="unknown LoRA target"):
        LoraSpec(targets=("q", "qkv"))
    spec = LoraSpec(rank=8, alpha=32, targets=("q", "v"))
    assert LoraSpec.from_dict(spec.to_dict()) == spec and spec.module_names == {"q_proj", "v_proj"}


@pytest.fixture(scope="module")
def merged_tokenizer(tmp_path_factory, chat_tokenizer_path) -> tuple[Tokenizer, Tokenizer]:
    """The chat tokenizer grown with pieces learned from classical Chinese poems (notes_zh.txt)."""
    folder = tmp_path_factory.mktemp("merge")
    poems = [ln for ln in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    add = train_chat_tokenizer(folder / "poems.model", vocab_size=3000, lines=poems[:3000])
    mapping = merge_vocab(chat_tokenizer_path, add, folder / "merged.model")
    assert mapping["merged_size"] > mapping["base_size"]
    return Tokenizer(chat_tokenizer_path), Tokenizer(folder / "merged.model")


def test_grown_model_keeps_old_logits(merged_tokenizer):
    old_tok, new_tok = merged_tokenizer
    pieces = [new_tok.sp.id_to_piece(i) for i in range(new_tok.vocab_size)]
    check_extends([old_tok.sp.id_to_piece(i) for i in range(old_tok.vocab_size)], pieces)
    with pytest.raises(ValueError, match="does not extend"):
        check_extends(["<unk>", "a"], ["<unk>", "b", "c"])
    torch.manual_seed(0)
    old = Transformer(tiny_config(old_tok.vocab_size)).eval()
    grown = grow_vocab(old, new_tok.vocab_size).eval()
    assert grown.cfg.vocab_size == new_tok.vocab_size
    text = "床前明月光，疑是地上霜。The moon is bright."
    ids = torch.tensor([old_tok.encode(text)])
    with torch.no_grad():
        before, after = old(ids)[0], grown(ids)[0]
    torch.testing.assert_close(after[..., : old_tok.vocab_size], before, rtol=0, atol=0)
    mean_row = old.embed_tokens.weight.mean(0)
    torch.testing.assert_close(
        grown.embed_tokens.weight[old_tok.vocab_size :], mean_row.expand(new_tok.vocab_size - old_tok.vocab_size, -1)
    )
    # the merged tokenizer writes the poem with fewer tokens, and the grown model reads its new ids
    assert len(new_tok.encode(text)) < len(old_tok.encode(text))
    with torch.no_grad():
        assert torch.isfinite(grown(torch.tensor([new_tok.encode(text)]))[0]).all()


def test_sft_grows_the_vocabulary_and_trains_embeddings_first(tmp_path, start_run, merged_tokenizer):
    _, new_tok = merged_tokenizer
    t = SftSection(
        max_steps=2,
        checkpoint_every=2,
        batch_size=2,
        lr=1e-2,
        log_every=1,
        device="cpu",
        progress=False,
        seq_len=48,
        embedding_only_steps=2,
    )
    start = load_model(start_run).model
    res = run_sft(
        FinetuneJob("sft", tmp_path / "sft", start_run, [SAMPLE / "sft"], t, new_tok.path), say=lambda *a: None
    )
    loaded = load_model(res["checkpoint"])
    assert loaded.tokenizer.sha256 == new_tok.sha256 and loaded.model.cfg.vocab_size == new_tok.vocab_size
    after = loaded.model.state_dict()
    for name, w in start.state_dict().items():
        if name in ("embed_tokens.weight", "lm_head.weight"):
            assert not torch.equal(after[name][: w.shape[0]], w)  # embeddings moved
        else:
            assert torch.equal(after[name], w), name  # blocks frozen in the embeddings-only phase
    run = json.loads((tmp_path / "sft" / "run.json").read_text())
    assert run["origin"]["grown_from"]["vocab_size"] < new_tok.vocab_size
