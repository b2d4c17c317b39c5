"""SFT: loss masks from per-segment encodings (Chinese and English, including boundaries where a joint encoding
merges tokens), language-ratio mixing, packing without attention across examples, and a short run that resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.model import Transformer
from model.tokenizer import Tokenizer
from tests.finetune.helpers import SAMPLE, tiny_config, train_chat_tokenizer
from train.chat_data import (
    ALPACA_PROMPT,
    IGNORE,
    ChatTemplate,
    DataError,
    encode_segments,
    load_examples,
    mix_by_ratio,
    to_example,
)
from train.config import SftSection
from train.finetune import FinetuneJob
from train.sft import (
    Encoded,
    collate,
    encode_example,
    pack,
    run_sft,
)
from train.source import load_model

ZH_CHAT = [
    {"role": "system", "content": "你是一个乐于助人的助手。"},
    {"role": "user", "content": "长城有多长？"},
    {"role": "assistant", "content": "明长城全长约八千八百五十公里。"},
    {"role": "user", "content": "它是什么时候修建的？"},
    {"role": "assistant", "content": "现存的长城大多修建于明朝。"},
]
EN_CHAT = [
    {"role": "user", "content": "Name a prime number."},
    {"role": "assistant", "content": "Seven is a prime number."},
    {"role": "user", "content": "And an even one?"},
    {"role": "assistant", "content": "Two is the only even prime."},
]


def trained_spans(ids: list[int], labels: list[int]) -> list[list[int]]:
    """Maximal runs of positions with a label."""
    spans, cur = [], []
    for i, label in zip(ids, labels):
        if label == IGNORE:
            if cur:
                spans.append(cur)
            cur = []
        else:
            assert label == i
            cur.append(i)
    return spans + ([cur] if cur else [])


@pytest.mark.parametrize("messages", [ZH_CHAT, EN_CHAT], ids=["zh", "en"])
def test_chat_mask_covers_exactly_the_assistant_turns(chat_tokenizer_path, messages):
    tok = Tokenizer(chat_tokenizer_path)
    tpl = ChatTemplate(tok, "chat")
    ids, labels = tpl.encode(messages)
    assert len(ids) == len(labels)
    end = tok.sp.piece_to_id("<|end|>")
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    spans = trained_spans(ids, labels)
    assert len(spans) == len(answers)
    for span, answer in zip(spans, answers):
        assert span[-1] == end  # the model learns to close its turn
        assert tok.decode(span[:-1]) == answer
    # everything else (system, user turns, role markers) is context only
    untrained = [i for i, label in zip(ids, labels) if label == IGNORE]
    assert tok.sp.piece_to_id("<|assistant|>") in untrained and tok.sp.piece_to_id("<|user|>") in untrained
    assert tok.decode([i for i in untrained if not tok.sp.is_control(i)]) == "".join(
        m["content"] for m in messages if m["role"] != "assistant"
    )
    # the generation prompt is the training sequence up to the first answer
    first = labels.index(next(v for v in labels if v != IGNORE))
    first_answer = next(k for k, m in enumerate(messages) if m["role"] == "assistant")
    assert tpl.prompt_ids(messages[:first_answer]) == ids[:first]


def test_chinese_boundary_that_merges_when_encoded_jointly(chat_tokenizer_path):
    """一|个 becomes the single piece 一个 when prompt and answer are encoded together: searching the joined stream
    for the answer's tokens would not find them, while the per-segment mask is exact."""
    tok = Tokenizer(chat_tokenizer_path)
    assert tok.sp.piece_to_id("一个") != tok.sp.unk_id()
    prompt, answer = "请续写：春天来了，我们一", "个个都很开心。"
    joint = tok.encode(prompt + answer)
    assert joint != tok.encode(prompt) + tok.encode(answer)
    assert not any(joint[i : i + len(tok.encode(answer))] == tok.encode(answer) for i in range(len(joint)))
    ids, labels = encode_segments(tok, [(prompt, False), (answer, True)])
    assert tok.decode(ids) == prompt + answer
    assert trained_spans(ids, labels) == [tok.encode(answer)]
    assert tok.decode([v for v in labels if v != IGNORE]) == answer


def test_alpaca_template_boundary_merge_in_english(chat_tokenizer_path):
    """Chinese-LLaMA-Alpaca's prompt ends with "### Response: "; a joint encoding glues that space to the answer's
    first word (▁The), the per-segment one keeps the answer's own tokens, closed by EOS."""
    tok = Tokenizer(chat_tokenizer_path)
    tpl = ChatTemplate(tok, "alpaca")
    answer = "The capital of France is Paris."
    ex = to_example("t", {"instruction": "What is the capital of France?", "input": "", "output": answer})
    ids, labels = tpl.encode(ex.messages)
    prompt = ALPACA_PROMPT.format(instruction="What is the capital of France?")
    assert tok.encode(prompt + answer) != tok.encode(prompt) + tok.encode(answer)
    assert trained_spans(ids, labels) == [tok.encode(answer) + [tok.eos_id]]
    assert tok.decode(ids[: len(tok.encode(prompt))]) == prompt


def test_records_in_every_form(chat_tokenizer_path, tmp_path):
    chat = to_example("a", {"messages": ZH_CHAT})
    sharegpt = to_example("b", {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]})
    alpaca = to_example("c", {"instruction": "翻译", "input": "good", "output": "好", "lang": "zh-CN"})
    assert chat.lang == "zh" and sharegpt.lang == "en" and alpaca.lang == "zh"
    assert alpaca.messages[0]["content"] == "翻译\ngood"
    with_system = to_example("d", {"messages": EN_CHAT}, system="Be brief.")
    assert with_system.messages[0] == {"role": "system", "content": "Be brief."}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
        load_examples([bad])
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: expected `messages`"):
        load_examples([bad])
    bad.write_text('{"messages": [{"role": "user", "content": "x"}]}\n')
    with pytest.raises(DataError, match="last message must be the assistant"):
        load_examples([bad])
    with pytest.raises(DataError, match="no such file"):
        load_examples([tmp_path / "missing.jsonl"])
    # the bundled sample: real Chinese and English Alpaca rows
    examples = load_examples([SAMPLE / "sft"])
    assert {e.lang for e in examples} == {"zh", "en"} and len(examples) == 400


def test_tokenizer_without_control_tokens_is_refused(tmp_path):
    lines = [m["content"] for m in ZH_CHAT + EN_CHAT] * 3
    path = train_chat_tokenizer(tmp_path / "plain.model", vocab_size=400, lines=lines, specials=[])
    with pytest.raises(DataError, match=r"no control token <\|system\|>"):
        ChatTemplate(Tokenizer(path), "chat")
    ChatTemplate(Tokenizer(path), "alpaca")  # the plain-text template needs only EOS


@pytest.mark.parametrize(
    "ratio, zh, en",
    [("1:1", 60, 60), ("2:1", 100, 50), ("4:1", 100, 25), ("8:1", 100, 12), ("zh", 100, 0), ("en", 0, 60)],
)
def test_ratio_mixing(ratio, zh, en):
    langs = ["zh"] * 100 + ["en"] * 60 + ["ja"] * 5
    items = list(range(len(langs)))
    picked, report = mix_by_ratio(items, langs, ratio, seed=3)
    assert report.selected.get("zh", 0) == zh and report.selected.get("en", 0) == en
    assert "ja" not in report.selected
    assert len(set(picked)) == len(picked) == zh + en
    assert picked == mix_by_ratio(items, langs, ratio, seed=3)[0]  # deterministic
    if zh and en:
        assert report.realised == pytest.approx(zh / en)
    everything, rep = mix_by_ratio(items, langs, "all", seed=3)
    assert len(everything) == 165 and rep.selected["ja"] == 5


def test_ratio_keeps_english_whole_when_it_is_short():
    langs = ["zh"] * 10 + ["en"] * 8
    _, report = mix_by_ratio(list(range(18)), langs, "1:2", seed=0)  # wants twice as much English as Chinese
    assert report.selected == {"zh": 4, "en": 8}
    with pytest.raises(ValueError, match="zh_en_ratio"):
        SftSection(zh_en_ratio="two to one")


def test_packing_keeps_examples_apart():
    torch.manual_seed(0)
    model = Transformer(tiny_config(97, max_seq_len=64)).eval()
    a = Encoded(list(range(10, 30)), [IGNORE] * 10 + list(range(20, 30)), "zh")
    b = Encoded(list(range(40, 55)), [IGNORE] * 5 + list(range(45, 55)), "en")
    rows = pack([a, b], seq_len=64, packing=True)
    assert len(rows) == 1 and rows[0].pos == list(range(20)) + list(range(15)) and rows[0].langs == ["zh", "en"]
    assert len(pack([a, b], seq_len=64, packing=False)) == 2
    assert len(pack([a, b], seq_len=30, packing=True)) == 2  # b does not fit after a

    def packed_logits(first: Encoded) -> torch.Tensor:
        batch = collate(pack([first, b], 64, True), pad_id=0, packed=True)
        with torch.no_grad():
            return model(batch["x"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"])[0][0]

    with torch.no_grad():
        alone = model(torch.tensor([b.x]))[0][0]
    got = packed_logits(a)
    torch.testing.assert_close(got[20:35], alone, rtol=1e-5, atol=1e-5)
    changed = Encoded([(t * 7) % 97 for t in a.x], a.y, "zh")
    torch.testing.assert_close(packed_logits(changed)[20:35], got[20:35], rtol=0, atol=0)
    assert not torch.allclose(packed_logits(changed)[:20], got[:20])
    # without the segment mask the second example would see the first
    batch = collate(pack([changed, b], 64, True), pad_id=0, packed=True)
    with torch.no_grad():
        leaky = model(batch["x"], position_ids=batch["position_ids"])[0][0]
    assert not torch.allclose(leaky[20:35], alone, atol=1e-4)


def test_truncation_keeps_only_examples_with_an_answer(chat_tokenizer_path):
    tpl = ChatTemplate(Tokenizer(chat_tokenizer_path), "chat")
    ex = to_example("x", {"messages": [{"role": "user", "content": "长" * 50}, {"role": "assistant", "content": "好"}]})
    assert encode_example(tpl, ex, max_tokens=8) is None
    e = encode_example(tpl, ex, max_tokens=200)
    assert len(e.x) == len(e.y) and e.y[-1] == tpl.control["end"]


def sft_job(tmp_path: Path, start: Path, **kw) -> FinetuneJob:
    settings = dict(
        max_steps=2,
        checkpoint_every=2,
        batch_size=2,
        lr=3e-3,
        warmup=0,
        log_every=1,
        device="cpu",
        progress=False,
        seed=5,
        seq_len=64,
    )
    settings.update(kw)
    return FinetuneJob("sft", tmp_path / "sft", start, [SAMPLE / "sft"], SftSection(**settings))


def test_sft_run_logs_ratio_and_resumes(tmp_path, start_run):
    res = run_sft(sft_job(tmp_path, start_run, max_steps=2), say=lambda *a: None)
    assert res["step"] == 2
    run = json.loads((tmp_path / "sft" / "run.json").read_text())
    assert run["examples_selected"] == {"zh": 200, "en": 100} and run["realised_zh_en"] == 2.0
    rows = [json.loads(x) for x in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["target_tokens"] > 0 and r["loss"] > 0 and "realised_zh_en" in r for r in rows)
    # a rerun with a longer schedule picks up at step 2
    res = run_sft(sft_job(tmp_path, start_run, max_steps=3), say=lambda *a: None)
    rows = [json.loads(x) for x in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[2]["seen_zh"] + rows[2]["seen_en"] > rows[1]["seen_zh"] + rows[1]["seen_en"]
    loaded = load_model(tmp_path / "sft")
    assert loaded.info["mode"] == "sft" and loaded.info["template"] == "chat" and loaded.info["step"] == 3
