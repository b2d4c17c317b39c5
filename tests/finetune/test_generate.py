"""Generation: the KV cache gives the tokens a full rerun gives, left-padded batches give what each prompt gets
alone, stop strings, the repetition penalty, and `pipeline generate --input/--output` (one line per prompt,
resumable after a kill). The model is the finetune tests' tiny shape, trained briefly on the bundled sample so that
its greedy output is text-like rather than uniform noise."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model.model import KVCache, Transformer
from model.tokenizer import Tokenizer
from tests.finetune.helpers import SAMPLE, tiny_config, training_lines
from train.chat_data import ChatTemplate, DataError
from train.checkpoint import save_checkpoint
from train.cli import dpo_pairs_command, generate_command
from train.config import EvalSection, GenerateSection, TrainSection
from train.dpo import load_pairs
from train.generate import Generator, apply_repetition_penalty, generate_ids, read_prompts, similarity
from train.source import load_model

PROMPTS = ["长城", "The Great Wall was", "中国古代的军事防御工程，", "Many centuries ago, people in"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, chat_tokenizer_path) -> Path:
    """A run folder with a tiny model trained 150 AdamW steps on sample text (128-token windows, batch 8)."""
    tok = Tokenizer(chat_tokenizer_path)
    ids = torch.tensor([t for line in training_lines()[:3000] for t in tok.encode(line) + [tok.eos_id]])
    torch.manual_seed(0)
    model = Transformer(tiny_config(tok.vocab_size))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        starts = torch.randint(0, len(ids) - 129, (8,), generator=g)
        batch = torch.stack([ids[s : s + 129] for s in starts])
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 6.0  # it learnt something (ln(2000) = 7.6 at the start)
    run = tmp_path_factory.mktemp("gen") / "pretrain"
    state = {
        "step": 150,
        "model": model.state_dict(),
        "model_config": model.cfg.to_dict(),
        "seq_len": 128,
        "tokenizer": {"path": str(tok.path), "sha256": tok.sha256, "vocab_size": tok.vocab_size},
        "data": [],
    }
    save_checkpoint(run, 150, state, keep_last=1)
    return run


@pytest.fixture(scope="module")
def loaded(trained_run):
    return load_model(trained_run)


def encode(loaded, prompts=PROMPTS) -> list[list[int]]:
    return [loaded.tokenizer.encode(p) for p in prompts]


def greedy(loaded, prompts, **kw):
    kw.setdefault("max_new_tokens", 40)
    return [
        g.ids for g in generate_ids(loaded.model, prompts, temperature=0, vocab_size=loaded.tokenizer.vocab_size, **kw)
    ]


def test_cached_logits_equal_full_forward(loaded):
    model = loaded.model.eval()
    ids = torch.tensor([loaded.tokenizer.encode("长城是中国古代的军事防御工程。The Great Wall")])
    full, _ = model(ids)
    cache = KVCache(model.cfg, 1, ids.shape[1], torch.device("cpu"), torch.float32)
    with torch.no_grad():
        first, _ = model(ids[:, :5], cache=cache)
        steps = [model(ids[:, t : t + 1], cache=cache)[0] for t in range(5, ids.shape[1])]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == ids.shape[1]


def test_greedy_same_with_and_without_cache(loaded):
    prompts = encode(loaded)
    # 150 new tokens run past max_seq_len (128): the cached run then continues on the sliding window as well
    with_cache = greedy(loaded, prompts, max_new_tokens=150, use_cache=True)
    without = greedy(loaded, prompts, max_new_tokens=150, use_cache=False)
    assert with_cache == without
    assert all(len(g) > 20 for g in with_cache)


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_batch_equals_one_by_one(loaded, use_cache):
    prompts = encode(loaded)
    assert len({len(p) for p in prompts}) > 1  # really padded
    alone = [greedy(loaded, [p], use_cache=use_cache)[0] for p in prompts]
    assert greedy(loaded, prompts, use_cache=use_cache) == alone

    # sampling too: each prompt has its own generator
    def sampled(ps, seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        out = generate_ids(loaded.model, ps, max_new_tokens=20, temperature=1.0, top_k=50, generators=gens)
        return [g.ids for g in out]

    assert sampled(prompts, [1, 2, 3, 4]) == [sampled([p], [s])[0] for p, s in zip(prompts, [1, 2, 3, 4])]


def test_stop_strings_end_and_cut_the_answer(loaded):
    settings = GenerateSection(max_new_tokens=40, temperature=0, chat="off")
    gen = Generator(loaded, settings)
    ids, chat = gen.prompt_ids("长城")
    [(full, g_full)] = gen.answer([ids], [chat], [0])
    assert g_full.finish == "length" and len(full) > 10
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    gen.settings = GenerateSection(max_new_tokens=40, temperature=0, chat="off", stop=[stop])
    [(cut, g_cut)] = gen.answer([ids], [chat], [0])
    assert cut == full[: full.find(stop)]
    assert g_cut.finish == "stop" and len(g_cut.ids) < len(g_full.ids)


def test_repetition_penalty_direction(loaded):
    logits = torch.tensor([[2.0, -1.0, 3.0]])
    seen = torch.tensor([[True, True, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -2.0, 3.0]]
    assert apply_repetition_penalty(logits, seen, 0.5).tolist() == [[4.0, -0.5, 3.0]]
    prompts = encode(loaded)

    def repeats(outs):  # generated tokens that were already in the prompt or the answer so far
        return sum(sum(t in set(p + o[:i]) for i, t in enumerate(o)) for p, o in zip(prompts, outs))

    plain = greedy(loaded, prompts, max_new_tokens=60)
    penalised = greedy(loaded, prompts, max_new_tokens=60, repetition_penalty=1.5)
    encouraged = greedy(loaded, prompts, max_new_tokens=60, repetition_penalty=0.7)
    assert repeats(penalised) < repeats(plain) < repeats(encouraged)


def config(tmp_path: Path, **gen_kw) -> SimpleNamespace:
    return SimpleNamespace(
        run=SimpleNamespace(workdir=tmp_path / "work", seed=1),
        train=TrainSection(),
        eval=EvalSection(device="cpu", generate=GenerateSection(**gen_kw)),
        path=lambda p: Path(p) if Path(p).is_absolute() else tmp_path / p,
    )


def write_prompts(path: Path) -> Path:
    rows = [{"prompt": p, "id": f"p{i}"} for i, p in enumerate(PROMPTS)]
    rows.append({"messages": [{"role": "user", "content": "请介绍一下长城。"}], "id": "chat"})
    rows += [{"prompt": p + "，", "id": f"q{i}"} for i, p in enumerate(PROMPTS)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_generate_file_one_line_per_prompt_and_resume(tmp_path, trained_run, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    cfg = config(tmp_path, max_new_tokens=12, temperature=0.8, batch_size=3)
    out = tmp_path / "out.jsonl"
    assert generate_command(cfg, str(trained_run), input_path=prompts, output=out, progress=False) == 0
    assert "9 of 9 prompts answered" in capsys.readouterr().err
    first = out.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in first.splitlines()]
    inputs = read_prompts(prompts)
    assert [r["index"] for r in rows] == list(range(9))
    assert [r["id"] for r in rows] == [r["id"] for r in inputs]
    assert all(r["completion"] and r["finish"] in ("stop", "length") and r["tokens"] <= 12 for r in rows)
    # a run killed mid-write: three complete lines and half of the fourth; the rerun redoes the rest, the same way
    lines = first.splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:20], encoding="utf-8")
    assert generate_command(cfg, str(trained_run), input_path=prompts, output=out, progress=False) == 0
    err = capsys.readouterr().err
    assert "6 of 9 prompts answered" in err and "resumed after 3 done" in err
    assert out.read_text(encoding="utf-8") == first
    # batching does not change the answers (each line samples with seed + its index)
    one_by_one = tmp_path / "one.jsonl"
    cfg1 = config(tmp_path, max_new_tokens=12, temperature=0.8, batch_size=1)
    assert generate_command(cfg1, str(trained_run), input_path=prompts, output=one_by_one, progress=False) == 0
    assert one_by_one.read_text(encoding="utf-8") == first
    # a finished output is left as it is
    assert generate_command(cfg, str(trained_run), input_path=prompts, output=out, progress=False) == 0
    assert "0 of 9 prompts answered" in capsys.readouterr().err


def test_generate_file_errors_name_the_line(tmp_path, trained_run, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    with open(prompts, "a", encoding="utf-8") as f:
        f.write('{"text": "no prompt here"}\n')
    cfg = config(tmp_path, max_new_tokens=4)
    assert generate_command(cfg, str(trained_run), input_path=prompts, output=tmp_path / "o.jsonl") == 1
    assert f"{prompts}:10: needs `prompt`" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"bad.jsonl:1: not JSON"):
        (tmp_path / "bad.jsonl").write_text("{oops\n")
        read_prompts(tmp_path / "bad.jsonl")
    # an output from other inputs is not silently extended
    good = write_prompts(tmp_path / "good.jsonl")
    out = tmp_path / "o2.jsonl"
    assert generate_command(cfg, str(trained_run), input_path=good, output=out, progress=False) == 0
    good.write_text(good.read_text(encoding="utf-8").replace("长城", "黄河", 1), encoding="utf-8")
    assert generate_command(cfg, str(trained_run), input_path=good, output=out, progress=False) == 1
    assert "o2.jsonl:1 is not the answer to input line 1" in capsys.readouterr().err


def test_dpo_pairs_reference_chosen_weak_rejected(tmp_path, trained_run, loaded, chat_tokenizer_path, capsys):
    sft = [json.loads(line) for line in (SAMPLE / "sft" / "alpaca_zh.jsonl").read_text(encoding="utf-8").splitlines()]
    records = sft[:4] + [json.loads(line) for line in (SAMPLE / "sft" / "alpaca_en.jsonl").open(encoding="utf-8")][:2]
    # a record whose reference answer is what the weak model itself answers (greedy): the pair must be dropped
    settings = GenerateSection(max_new_tokens=16, temperature=0, chat="on")
    gen = Generator(loaded, settings)
    messages = [{"role": "user", "content": "请介绍一下长城。"}]
    [(weak, _)] = gen.answer([gen.template.prompt_ids(messages)], [True], [0])
    records.append({"messages": [*messages, {"role": "assistant", "content": weak}]})
    src = tmp_path / "sft.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    cfg = config(tmp_path, max_new_tokens=16, temperature=0, batch_size=4)
    out = tmp_path / "pairs.jsonl"
    assert dpo_pairs_command(cfg, str(trained_run), src, out, progress=False) == 0
    err = capsys.readouterr().err
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(pairs) == 6 and "6 pairs of 7 records" in err and "1 with answers at similarity >= 0.9" in err
    assert all(set(p) == {"prompt", "chosen", "rejected", "lang"} for p in pairs)
    assert [p["chosen"] for p in pairs] == [r["output"] for r in records[:6]]
    assert [p["lang"] for p in pairs] == ["zh"] * 4 + ["en"] * 2
    assert pairs[0]["prompt"] == records[0]["instruction"] + ("\n" + records[0]["input"] if records[0]["input"] else "")
    assert all(p["rejected"] and similarity(p["rejected"], p["chosen"]) < 0.9 for p in pairs)
    # the DPO trainer reads the file as it is
    loaded_pairs, dropped = load_pairs([out], ChatTemplate(loaded.tokenizer), 128, None, "lang", None)
    assert len(loaded_pairs) == 6 and dropped == 0
    assert dpo_pairs_command(cfg, str(trained_run), src, out, max_similarity=1.5) == 1
