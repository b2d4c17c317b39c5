"""Hugging Face export (LoRA merged; same logits, token ids and chat prompt in transformers), the hand-written
safetensors, `pipeline eval` on checkpoints and exports (multiple choice, held-out text), sampling, and the demo's
SFT -> DPO -> generate sequence."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model.lora import LoRALinear, LoraSpec, apply_lora
from model.model import Transformer
from model.tokenizer import Tokenizer
from tests.finetune.helpers import SAMPLE, tiny_config
from train.chat_data import ChatTemplate
from train.checkpoint import save_checkpoint
from train.cli import demo_after_pretrain, eval_command, export_command, generate_command
from train.config import (
    DpoSection,
    EvalSection,
    GenerateSection,
    McTaskSection,
    PretrainSection,
    SftSection,
    TrainSection,
)
from train.evaluate import McItem, load_mc, mc_accuracy
from train.export import load_safetensors, save_safetensors
from train.generate import filter_logits, sample
from train.source import load_model

TEXT = "长城是中国古代的军事防御工程。The Great Wall was built over many centuries."


def lora_checkpoint(run_dir: Path, tokenizer: Path, **model_kw) -> Path:
    """An SFT-style checkpoint of a tiny model with non-zero LoRA adapters, GQA and a non-default RoPE base."""
    tok = Tokenizer(tokenizer)
    torch.manual_seed(1)
    model = Transformer(tiny_config(tok.vocab_size, rope_base=500.0, **model_kw))
    spec = LoraSpec(rank=4, alpha=8, dropout=0.0)
    apply_lora(model, spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.05)
    state = {
        "step": 7,
        "mode": "sft",
        "model": model.state_dict(),
        "model_config": model.cfg.to_dict(),
        "lora": spec.to_dict(),
        "seq_len": 64,
        "tokenizer": {"path": str(tok.path), "sha256": tok.sha256, "vocab_size": tok.vocab_size},
        "data": [],
        "template": "chat",
    }
    return save_checkpoint(run_dir, 7, state, keep_last=1)


def config(tmp_path: Path, **eval_kw) -> SimpleNamespace:
    return SimpleNamespace(
        run=SimpleNamespace(workdir=tmp_path / "work", seed=1),
        train=TrainSection(),
        eval=EvalSection(device="cpu", batch_size=4, **eval_kw),
        path=lambda p: Path(p) if Path(p).is_absolute() else tmp_path / p,
    )


def test_safetensors_written_by_hand(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2, 2).to(torch.bfloat16)}
    save_safetensors(tensors, tmp_path / "t.safetensors")
    back = load_safetensors(tmp_path / "t.safetensors")
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    st = pytest.importorskip("safetensors.torch")
    other = st.load_file(tmp_path / "t.safetensors")
    assert all(torch.equal(other[k], v) for k, v in tensors.items())


@pytest.mark.slow
@pytest.mark.parametrize("tied", [False, True])
def test_export_matches_transformers(tmp_path, chat_tokenizer_path, capsys, tied):
    transformers = pytest.importorskip("transformers")
    ckpt = lora_checkpoint(tmp_path / "sft", chat_tokenizer_path, tie_embeddings=tied)
    hf_dir = tmp_path / "hf"
    assert export_command(config(tmp_path), str(ckpt), str(hf_dir)) == 0
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"} <= {
        p.name for p in hf_dir.iterdir()
    }
    ours = load_model(ckpt)  # adapters merged
    tok = ours.tokenizer
    ids = torch.tensor([tok.encode(TEXT)])
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        want = ours.model.eval()(ids)[0]
        torch.testing.assert_close(hf(ids).logits, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(load_model(hf_dir).model.eval()(ids)[0], want, rtol=0, atol=0)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    assert hf_tok(TEXT, add_special_tokens=True)["input_ids"] == tok.encode(TEXT)
    chat = [{"role": "user", "content": "你好，请介绍一下长城。"}]
    prompt = hf_tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    prompt = prompt["input_ids"] if isinstance(prompt, dict) or hasattr(prompt, "keys") else prompt
    assert list(prompt) == ChatTemplate(tok, "chat").prompt_ids(chat)
    assert export_command(config(tmp_path), str(tmp_path / "missing"), str(tmp_path / "x")) == 1
    assert "missing: no such run folder" in capsys.readouterr().err


def test_multiple_choice_scoring_follows_the_model(chat_tokenizer_path):
    """A stand-in model that always prefers the token ' B' answers B everywhere: accuracy = share of B answers."""
    tok = Tokenizer(chat_tokenizer_path)
    favoured = tok.encode(" B")

    class AlwaysB(torch.nn.Module):
        cfg = tiny_config(tok.vocab_size)

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            logits = torch.zeros(*x.shape, tok.vocab_size)
            logits[..., favoured] = 10.0
            return logits, None

    items = load_mc(SAMPLE / "benchmarks" / "mmlu.jsonl")[:40]
    r = mc_accuracy(AlwaysB(), tok, items, mode="letter", lang="en")
    assert r["items"] == 40 and r["accuracy"] == pytest.approx(sum(i.answer == 1 for i in items) / 40)
    assert r["chance"] == pytest.approx(0.25)
    zh = load_mc(SAMPLE / "benchmarks" / "charm_zh.csv")
    assert len(zh) == 42 and all(2 <= len(i.options) <= 6 for i in zh)
    assert mc_accuracy(AlwaysB(), tok, [McItem("1+1=?", ["1", "2"], 1)], mode="content", lang="en")["items"] == 1


def test_eval_on_checkpoint_and_export_agree(tmp_path, chat_tokenizer_path, capsys):
    ckpt = lora_checkpoint(tmp_path / "sft", chat_tokenizer_path)
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("长城是中国古代的军事防御工程。\n\nThe Great Wall of China is a series of fortifications.\n")
    tasks = [
        McTaskSection(name="mmlu", path=str(SAMPLE / "benchmarks" / "mmlu.jsonl"), lang="en"),
        McTaskSection(name="charm_zh", path=str(SAMPLE / "benchmarks" / "charm_zh.csv")),
    ]
    cfg = config(tmp_path, tasks=tasks, text=[str(held_out)], max_items=12)
    results = []
    for source in (ckpt, tmp_path / "hf"):
        if source.name == "hf":
            assert export_command(cfg, str(ckpt), str(source)) == 0
        capsys.readouterr()
        assert eval_command(cfg, str(source)) == 0
        out = capsys.readouterr().out
        assert "| mmlu | 0 | 12 |" in out and "| charm_zh | 0 | 12 |" in out
        results.append(json.loads(out.strip().splitlines()[-1]))
    for r in results:
        assert set(r["text"][str(held_out)]) == {"zh", "en"} and r["text"][str(held_out)]["zh"]["bpb"] > 0
    assert results[0]["tasks"] == results[1]["tasks"]
    for lang in ("zh", "en"):
        a, b = (r["text"][str(held_out)][lang] for r in results)
        assert a["tokens"] == b["tokens"] and a["bpb"] == pytest.approx(b["bpb"], rel=1e-5)
    bad = config(tmp_path, tasks=[McTaskSection(name="x", path=str(held_out))])
    assert eval_command(bad, str(ckpt)) == 1
    assert "eval.tasks x" in capsys.readouterr().err


def test_sampling_filters_and_greedy(start_run):
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    probs = logits.softmax(-1)
    kept = filter_logits(logits, top_k=0, top_p=float(probs[0] + 0.01))
    assert torch.isfinite(kept).tolist() == [True, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_k=1, top_p=1.0)).tolist() == [True, False, False, False]
    assert torch.isfinite(filter_logits(logits, top_k=0, top_p=0.01)).sum() == 1
    loaded = load_model(start_run)
    ids = loaded.tokenizer.encode("长城")
    greedy = sample(loaded.model, ids, max_new_tokens=6, temperature=0)
    assert sample(loaded.model, ids, max_new_tokens=6, temperature=1.0, top_k=1) == greedy
    g = torch.Generator().manual_seed(3)
    a = sample(loaded.model, ids, max_new_tokens=6, temperature=1.0, generator=g)
    g.manual_seed(3)
    assert sample(loaded.model, ids, max_new_tokens=6, temperature=1.0, generator=g) == a


def test_generate_command_plain_and_chat(tmp_path, start_run, chat_tokenizer_path, capsys):
    cfg = config(tmp_path, generate=GenerateSection(max_new_tokens=5, temperature=0))
    assert generate_command(cfg, str(start_run), "长城") == 0
    captured = capsys.readouterr()
    assert "[plain," in captured.err
    ckpt = lora_checkpoint(tmp_path / "sft", chat_tokenizer_path)
    assert generate_command(cfg, str(ckpt), "你好") == 0
    assert "[chat," in capsys.readouterr().err


@pytest.mark.slow
def test_demo_after_pretrain(tmp_path, start_run):
    small = dict(max_steps=2, checkpoint_every=2, batch_size=2, log_every=1, device="cpu", progress=False, seq_len=48)
    cfg = SimpleNamespace(
        run=SimpleNamespace(workdir=tmp_path / "work", seed=1),
        train=TrainSection(
            pretrain=PretrainSection(out=str(start_run)),
            sft=SftSection(out="runs/sft", data=[str(SAMPLE / "sft")], lr=1e-3, **small),
            dpo=DpoSection(out="runs/dpo", data=[str(SAMPLE / "dpo")], lr=1e-3, beta=0.5, **small),
        ),
        eval=EvalSection(device="cpu", generate=GenerateSection(max_new_tokens=4)),
        path=lambda p: Path(p) if Path(p).is_absolute() else tmp_path / p,
    )
    lines = demo_after_pretrain(cfg)
    assert len(lines) == 4
    assert lines[0].startswith("sft: 2 steps") and "realised 2.00:1" in lines[0]
    # DPO pairs from the first 16 records of each SFT file, answered by the earliest pretraining checkpoint
    assert lines[1].startswith("dpo-pairs: ") and "from 32 SFT records" in lines[1] and "ckpt-0000010.pt" in lines[1]
    pairs_file = tmp_path / "work" / "runs" / "dpo_pairs" / "pairs.jsonl"
    pairs = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines()]
    assert 0 < len(pairs) <= 32 and all(p["chosen"] != p["rejected"] for p in pairs)
    # DPO trains on them and on the bundled pairs (147)
    assert lines[2].startswith("dpo: 2 steps") and "reward accuracy" in lines[2]
    assert f"{147 + len(pairs)} pairs from 2 sources" in lines[2]
    assert lines[3].startswith("generate (chat,")
    # relative run folders live under run.workdir, beside the corpus they were trained on
    assert (tmp_path / "work" / "runs" / "dpo" / "ckpt-0000002.pt").is_file()
    assert not (tmp_path / "runs").exists()
