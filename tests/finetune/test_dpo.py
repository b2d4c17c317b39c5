"""DPO: the sigmoid loss and rewards against hand-computed values, log-probs over answer tokens only, and short runs
with a precomputed reference and with the LoRA base as reference."""

from __future__ import annotations

import json
import math

import pytest
import torch

from model.tokenizer import Tokenizer
from tests.finetune.helpers import SAMPLE, tiny_config
from train.chat_data import IGNORE, ChatTemplate, DataError
from train.config import DpoSection, LoraSection
from train.dpo import Pair, dpo_loss, load_pairs, pair_batch, run_dpo, sequence_logps
from train.finetune import FinetuneJob
from train.source import load_model


def test_dpo_loss_against_hand_computed_values():
    pc, pr = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -1.0])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-1.5, -2.0])
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # pair 0: 0.5 * ((-1 - -2) - (-1.5 - -1.5)) = 0.5 -> log(1 + e^-0.5); pair 1: 0.5 * (-2 - 0) = -1 -> log(1 + e)
    assert losses.tolist() == pytest.approx([math.log1p(math.exp(-0.5)), math.log1p(math.e)], rel=1e-6)
    assert losses[0].item() == pytest.approx(0.474077, abs=1e-6)
    assert chosen.tolist() == pytest.approx([0.25, -0.5]) and rejected.tolist() == pytest.approx([-0.25, 0.5])
    # TRL's default beta 0.1 on the same pair 0: log(1 + e^-0.1)
    assert dpo_loss(pc[:1], pr[:1], rc[:1], rr[:1], beta=0.1)[0].item() == pytest.approx(0.644397, abs=1e-6)
    # policy == reference: loss ln 2, zero rewards
    same, c, r = dpo_loss(pc, pr, pc, pr, beta=0.5)
    assert same.tolist() == pytest.approx([math.log(2)] * 2) and c.abs().sum() == 0 and r.abs().sum() == 0


def test_log_probs_are_summed_over_answer_tokens_only():
    torch.manual_seed(0)
    pairs = [Pair([5, 6, 7], [8, 9], [10], "zh"), Pair([5], [11, 12, 13], [14, 15], "en")]
    x, y = pair_batch(pairs, pad_id=0)
    assert x.tolist() == [[5, 6, 7, 8], [5, 11, 12, 0], [5, 6, 7, 0], [5, 14, 0, 0]]  # chosen rows, then rejected
    I = IGNORE  # noqa: E741
    assert y.tolist() == [[I, I, 8, 9], [11, 12, 13, I], [I, I, 10, I], [14, 15, I, I]]
    logits = torch.randn(4, 4, 20)
    lp, n = sequence_logps(logits, y)
    logp = logits.log_softmax(-1)
    assert n.tolist() == [2, 3, 1, 2]
    assert lp[0].item() == pytest.approx((logp[0, 2, 8] + logp[0, 3, 9]).item(), rel=1e-6)
    assert lp[2].item() == pytest.approx(logp[2, 2, 10].item(), rel=1e-6)


def test_pairs_from_the_bundled_sample(chat_tokenizer_path, tmp_path):
    tpl = ChatTemplate(Tokenizer(chat_tokenizer_path), "chat")
    pairs, dropped = load_pairs([SAMPLE / "dpo"], tpl, 64, None, "lang", None)
    assert dropped == 0 and len(pairs) == 147 and {p.lang for p in pairs} == {"zh", "en"}
    for p in pairs:
        assert len(p.prompt) <= 32 and len(p.prompt) + len(p.chosen) <= 65 and len(p.prompt) + len(p.rejected) <= 65
        assert p.prompt[-1] == tpl.control["assistant"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "chosen": "y"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: expected an object with prompt, chosen and rejected"):
        load_pairs([bad], tpl, 64, None, "lang", None)


def dpo_job(tmp_path, start, **kw) -> FinetuneJob:
    settings = dict(
        max_steps=3,
        checkpoint_every=3,
        batch_size=2,
        lr=1e-3,
        log_every=1,
        device="cpu",
        progress=False,
        seed=1,
        seq_len=48,
        beta=0.5,
        zh_en_ratio="1:1",
    )
    settings.update(kw)
    return FinetuneJob("dpo", tmp_path / "dpo", start, [SAMPLE / "dpo"], DpoSection(**settings))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["precomputed", "lora-base"])
def test_dpo_run_logs_rewards(tmp_path, start_run, variant):
    kw = {} if variant == "precomputed" else {"precompute_reference": False, "lora": LoraSection(enabled=True)}
    res = run_dpo(dpo_job(tmp_path, start_run, **kw), say=lambda *a: None)
    assert res["step"] == 3
    run = json.loads((tmp_path / "dpo" / "run.json").read_text())
    assert run["reference"] == variant and run["pairs_selected"] == {"zh": 48, "en": 48}
    rows = [json.loads(x) for x in (tmp_path / "dpo" / "log.jsonl").read_text().splitlines()]
    keys = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "dpo_loss", "sft_loss"}
    assert all(keys <= r.keys() for r in rows)
    # step 1: the policy is the reference
    assert rows[0]["dpo_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert rows[0]["rewards/chosen"] == pytest.approx(0, abs=1e-5)
    assert any(abs(r["rewards/margins"]) > 1e-4 for r in rows[1:])
    loaded = load_model(tmp_path / "dpo")  # LoRA merged on load
    assert loaded.info["mode"] == "dpo" and all(p.requires_grad for p in loaded.model.parameters())
    assert loaded.model.cfg == tiny_config(loaded.tokenizer.vocab_size)
