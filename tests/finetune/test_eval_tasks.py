"""Evaluation users expect: any number of options in letter mode, k-shot prompts in the C-Eval / MMLU layout (from a
dev split or the first items, which are then not scored), per-subject and overall accuracy, generation tasks scored
with BLEU and ROUGE-L (Chinese by characters), bits per byte per language on held-out text, `eval.json` and its
table in the report; and fine-tuning data checked against the decontam stage's benchmark index."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from rouge_score import rouge_scorer

from pipeline.benchmark_check import finetune_benchmark_check
from pipeline.config import load_config
from pipeline.report import write_report
from tests.conftest import REPO
from tests.finetune.helpers import SAMPLE
from train.chat_data import BenchmarkFilter, ChatTemplate, load_examples
from train.cli import eval_command, train_command
from train.config import EvalSection, GenerateSection, GenTaskSection, McTaskSection, TrainSection
from train.dpo import load_pairs
from train.evaluate import (
    LETTERS,
    CharTokenizer,
    McItem,
    bleu_rouge,
    continuation_logps,
    load_gen,
    load_mc,
    mc_accuracy,
    mc_prompt,
    next_token_logps,
    split_few_shot,
)
from train.source import load_model

MMLU = SAMPLE / "benchmarks" / "mmlu.jsonl"
CHARM = SAMPLE / "benchmarks" / "charm_zh.csv"
EVAL = SAMPLE / "eval"


def eight_option_items(n: int) -> list[McItem]:
    """Real MMLU items with the next item's four options added as distractors: 8 options, answer unchanged."""
    items = load_mc(MMLU)
    return [
        McItem(it.question, it.options + items[k + 1].options, it.answer, it.subject) for k, it in enumerate(items[:n])
    ]


def test_eight_options_in_letter_mode(tmp_path, start_run):
    """8 options raised IndexError in letter mode (letters stopped at F); now every option gets a letter, from a
    file with columns A..H too."""
    items = eight_option_items(6)
    prompt, conts = mc_prompt(items[0], "en", "letter")
    assert conts == [" A", " B", " C", " D", " E", " F", " G", " H"]
    assert "\nG. " in prompt and "\nH. " in prompt and prompt.endswith("Answer:")
    zh_prompt, zh_conts = mc_prompt(items[0], "zh", "letter")
    assert zh_conts == list("ABCDEFGH") and zh_prompt.endswith("答案：")
    path = tmp_path / "eight.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            row = {"question": it.question, "answer": LETTERS[it.answer], "subject": it.subject}
            row.update({LETTERS[i]: o for i, o in enumerate(it.options)})
            f.write(json.dumps(row) + "\n")
    loaded_items = load_mc(path)
    assert [len(it.options) for it in loaded_items] == [8] * 6 and loaded_items == items
    loaded = load_model(start_run)
    r = mc_accuracy(loaded.model, loaded.tokenizer, loaded_items, mode="letter", lang="en")
    assert r["items"] == 6 and r["chance"] == pytest.approx(1 / 8) and 0 <= r["correct"] <= 6
    assert sum(s["items"] for s in r["subjects"].values()) == 6


def test_letters_scored_in_one_pass_as_per_option(start_run):
    """Letter mode scores all options of an item from one forward pass when each letter is one token: the same
    log-likelihoods as the per-option path, also for prompts longer than the context (cut from the left)."""
    loaded = load_model(start_run)
    tok, model = loaded.tokenizer, loaded.model.eval()
    items = load_mc(MMLU)
    few_shot, scored = split_few_shot(items, 3)
    prompts, pairs = [], []
    for item in scored[:6] + eight_option_items(2):
        for lang in ("en", "zh"):
            prompt, conts = mc_prompt(item, lang, "letter", few_shot.examples(item))
            ids = tok.encode(prompt)
            assert all(len(tok.encode(c)) == 1 for c in conts)
            prompts.append(ids)
            pairs += [(ids, tok.encode(c)) for c in conts]
    assert max(len(p) for p in prompts) > model.cfg.max_seq_len  # 3-shot prompts outgrow the tiny model's context
    per_option = continuation_logps(model, tok, pairs, 5)
    one_pass = next_token_logps(model, prompts, 3)
    flat = [float(one_pass[prompts.index(p)][c[0]]) for p, c in pairs]
    assert flat == pytest.approx(per_option, abs=1e-4)


def test_k_shot_from_first_items_and_from_dev_split():
    items = load_mc(MMLU)
    subjects = Counter(it.subject for it in items)
    assert len(subjects) == 57 and set(subjects.values()) == {5}
    few_shot, scored = split_few_shot(items, 2)
    assert len(scored) == 285 - 2 * 57 and "not scored" in few_shot.source
    for item in scored:
        shots = few_shot.examples(item)
        assert len(shots) == 2 and all(s.subject == item.subject and s not in scored for s in shots)
    item = scored[0]
    shots = few_shot.examples(item)
    prompt, conts = mc_prompt(item, "en", "letter", shots)
    assert prompt.startswith(f"The following are multiple choice questions (with answers) about {item.subject}.\n\n")
    for s in shots:  # each example solved, in order, before the question
        assert f"{s.question}\n" in prompt and f"Answer: {LETTERS[s.answer]}\n\n" in prompt
    assert prompt.index(shots[1].question) < prompt.index(item.question) and prompt.endswith("Answer:")
    assert conts == [" A", " B", " C", " D"]

    zh = load_mc(CHARM)
    few_shot, scored = split_few_shot(zh, 1)
    zh_prompt, _ = mc_prompt(scored[0], "zh", "letter", few_shot.examples(scored[0]))
    subject = scored[0].subject.replace("_", " ")
    assert zh_prompt.startswith(f"以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n")
    assert zh_prompt.count("答案：") == 2 and zh_prompt.endswith("答案：")

    # a dev split: every item is scored, the examples are the dev items of the same subject
    dev = [replace(next(it for it in items if it.subject == s)) for s in subjects]  # as read from its own file
    few_shot, scored = split_few_shot(items, 1, dev, "dev.jsonl")
    assert scored == items and few_shot.source == "dev split dev.jsonl"
    assert all(few_shot.examples(it)[0].subject == it.subject for it in items)
    # zero-shot prompts are as before: no header naming the subject
    assert mc_prompt(items[0], "en", "letter")[0].startswith("The following is a multiple choice question.")


def test_bleu_and_rouge_l_score_chinese_by_characters():
    same = bleu_rouge(["长城是中国古代的军事防御工程。"], [["长城是中国古代的军事防御工程。"]], "zh")
    assert same["bleu"] == pytest.approx(100) and same["rouge_l"] == pytest.approx(100)
    assert "tok:zh" in same["bleu_signature"]
    # ROUGE-L over characters: LCS 长城很长 = 4; P = 4/4, R = 4/7, F = 8/11
    r = bleu_rouge(["长城很长"], [["长城是很长的墙"]], "zh")
    assert r["rouge_l"] == pytest.approx(100 * 8 / 11, abs=1e-4)
    # why the character tokenizer: rouge-score's default one keeps only [a-z0-9] and sees no Chinese at all
    assert rouge_scorer.RougeScorer(["rougeL"]).score("长城是很长的墙", "长城很长")["rougeL"].fmeasure == 0
    assert CharTokenizer().tokenize("长城 Great Wall，2024年") == ["长", "城", "great", "wall", "2024", "年"]
    en = bleu_rouge(["the cat sat on the mat"], [["the cat sat on the mat today", "a cat sat on the mat"]], "en")
    # the best reference counts: LCS 6 of 6 and 7 words, F = 12/13 (the other: 5 of 6 and 6, F = 5/6)
    assert (
        en["rouge_l"] == pytest.approx(100 * 12 / 13, abs=1e-4)
        and 0 < en["bleu"] <= 100
        and "nrefs:2" in en["bleu_signature"]
    )
    items = load_gen(EVAL / "gen_zh.jsonl")
    assert len(items) == 30 and {it.lang for it in items} == {"zh"} and items[0].messages[0]["role"] == "user"


def eval_config(tmp_path: Path, **eval_kw) -> SimpleNamespace:
    return SimpleNamespace(
        run=SimpleNamespace(workdir=tmp_path / "work", seed=1),
        train=TrainSection(),
        eval=EvalSection(device="cpu", batch_size=4, **eval_kw),
        path=lambda p: Path(p) if Path(p).is_absolute() else REPO / p,
    )


@pytest.mark.slow
def test_eval_command_writes_eval_json_and_report_table(tmp_path, start_run, capsys):
    dev = tmp_path / "charm_dev.jsonl"  # one item per CHARM task as its dev split
    items, seen = load_mc(CHARM), set()
    with open(dev, "w", encoding="utf-8") as f:
        for it in items:
            if it.subject not in seen:
                seen.add(it.subject)
                row = {"question": it.question, "choices": it.options, "answer": it.answer, "subject": it.subject}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    cfg = eval_config(
        tmp_path,
        tasks=[
            McTaskSection(name="mmlu", path=str(MMLU), lang="en", shots=1),
            McTaskSection(name="charm_zh", path=str(CHARM), lang="zh", shots=1, dev=str(dev)),
        ],
        generation=[
            GenTaskSection(name="gen_zh", path=str(EVAL / "gen_zh.jsonl"), max_new_tokens=6),
            GenTaskSection(name="gen_en", path=str(EVAL / "gen_en.jsonl"), max_new_tokens=6),
        ],
        text=[str(EVAL / "heldout.jsonl")],
        max_items=8,
        generate=GenerateSection(batch_size=4),
    )
    assert eval_command(cfg, str(start_run)) == 0
    out = capsys.readouterr().out
    assert "| mmlu | 1 | 8 |" in out and "| charm_zh | 1 | 8 |" in out and "| gen_zh | zh | 8 |" in out
    r = json.loads((start_run / "eval.json").read_text(encoding="utf-8"))
    assert r == {**json.loads(out.strip().splitlines()[-1]), "evaluated_at": r["evaluated_at"]}
    mmlu, charm = r["tasks"]["mmlu"], r["tasks"]["charm_zh"]
    assert mmlu["items_used_as_shots"] == 57 and mmlu["items_in_file"] == 285 and "not scored" in mmlu["shots_from"]
    assert charm["items_used_as_shots"] == 0 and charm["shots_from"] == f"dev split {dev}"
    for t in (mmlu, charm):
        assert t["items"] == 8 and sum(s["items"] for s in t["subjects"].values()) == 8
        assert t["accuracy"] == pytest.approx(sum(s["correct"] for s in t["subjects"].values()) / 8)
    for name, lang in (("gen_zh", "zh"), ("gen_en", "en")):
        g = r["generation"][name]
        assert list(g["by_lang"]) == [lang] and g["items"] == 8 and 0 <= g["bleu"] <= 100 and 0 <= g["rouge_l"] <= 100
        assert f"tok:{'zh' if lang == 'zh' else '13a'}" in g["bleu_signature"] and not g["chat"]
    held = r["text"][str(EVAL / "heldout.jsonl")]
    assert set(held) == {"zh", "en"} and all(v["docs"] == 30 and v["bpb"] > 0 for v in held.values())

    # the report shows it for the run folder it belongs to
    config = load_config(
        REPO / "pipeline.toml", [f"run.workdir='{tmp_path / 'work'}'", f"train.pretrain.out='{start_run}'"]
    )
    report = write_report(config).read_text(encoding="utf-8")
    assert "## Evaluation: pretrain" in report and "| mmlu | 1 | 8 |" in report and "| gen_zh | zh | 8 |" in report
    assert f"| {EVAL / 'heldout.jsonl'} | zh |" in report


def planted_sft_file(tmp_path: Path) -> tuple[Path, list[str]]:
    """The bundled Chinese SFT sample with two benchmark items planted: a CHARM question with its options in one
    instruction, and an MMLU question alone (no options: per-field flagging) in an English answer."""
    charm = load_mc(CHARM)[20]
    mmlu = load_mc(MMLU)[100]
    rows = [json.loads(line) for line in open(SAMPLE / "sft" / "alpaca_zh.jsonl", encoding="utf-8")]
    rows += [json.loads(line) for line in open(SAMPLE / "sft" / "alpaca_en.jsonl", encoding="utf-8")]
    rows[3]["instruction"] += "\n" + charm.question + "\n" + "\n".join(charm.options)
    rows[250]["output"] = "Here is a practice question for you: " + mmlu.question + " " + rows[250]["output"]
    path = tmp_path / "sft_planted.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path, [f"{path}:4", f"{path}:251"]


def test_finetune_data_goes_through_the_benchmark_index(tmp_path):
    cfg = load_config(REPO / "pipeline.toml", [f"run.workdir='{tmp_path / 'work'}'"])
    check = finetune_benchmark_check(cfg)
    assert (tmp_path / "work" / "decontam" / "index" / "meta.json").is_file()  # the corpus stage's index, reused
    path, planted = planted_sft_file(tmp_path)
    bundled = BenchmarkFilter(check)
    assert len(load_examples([SAMPLE / "sft"], benchmarks=bundled)) == 400 and bundled.dropped == 0
    flagged = BenchmarkFilter(check)
    kept = load_examples([path], benchmarks=flagged)
    assert len(kept) == 398 and flagged.dropped_where == planted
    assert flagged.summary()["by_benchmark"] == {"charm_zh": 1, "mmlu": 1}
    # DPO pairs: prompt, chosen and rejected are all checked
    mmlu = load_mc(MMLU)[7]
    pairs = [json.loads(line) for line in open(SAMPLE / "dpo" / "dpo_en.jsonl", encoding="utf-8")]
    pairs[5]["rejected"] = mmlu.question + " " + " ".join(mmlu.options)
    dpo = tmp_path / "dpo_planted.jsonl"
    dpo.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    assert check("\n\n".join([mmlu.question, *mmlu.options])) == ["mmlu"]
    assert check(pairs[4]["chosen"]) == []


@pytest.mark.slow
def test_sft_and_dpo_runs_drop_and_count_contaminated_examples(tmp_path, start_run, chat_tokenizer_path):
    path, planted = planted_sft_file(tmp_path)
    small = [
        "max_steps=1",
        "checkpoint_every=1",
        "warmup=0",
        "batch_size=2",
        "seq_len=48",
        "progress=false",
        "device='cpu'",
    ]
    overrides = [
        f"run.workdir='{tmp_path / 'work'}'",
        f"train.sft.init_from='{start_run}'",
        f"train.sft.data=['{path}']",
    ]
    overrides += [f"train.sft.{s}" for s in small] + [f"train.dpo.{s}" for s in small]
    cfg = load_config(REPO / "pipeline.toml", overrides)
    assert train_command(cfg, "sft", benchmark_check=finetune_benchmark_check(cfg)) == 0
    run = json.loads((tmp_path / "work" / "train" / "sft" / "run.json").read_text())
    assert run["benchmark_check"]["checked"] == 400 and run["benchmark_check"]["dropped"] == 2
    assert run["benchmark_check"]["dropped_examples"] == planted
    assert sum(run["examples_available"].values()) == 398

    mmlu = load_mc(MMLU)[7]
    pairs = [json.loads(line) for line in open(SAMPLE / "dpo" / "dpo_en.jsonl", encoding="utf-8")]
    pairs[5]["rejected"] = mmlu.question + "\n" + "\n".join(mmlu.options)
    dpo = tmp_path / "dpo_planted.jsonl"
    dpo.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    cfg = load_config(REPO / "pipeline.toml", [*overrides, f"train.dpo.data=['{dpo}']"])
    assert train_command(cfg, "dpo", benchmark_check=finetune_benchmark_check(cfg)) == 0
    run = json.loads((tmp_path / "work" / "train" / "dpo" / "run.json").read_text())
    assert run["benchmark_check"] == {
        "checked": 48,
        "dropped": 1,
        "by_benchmark": {"mmlu": 1},
        "dropped_examples": [f"{dpo}:6"],
    }
    # switched off per run: nothing checked, nothing dropped
    tpl = ChatTemplate(load_model(start_run).tokenizer)
    all_pairs, _ = load_pairs([dpo], tpl, 48, None, "lang", None)
    assert len(all_pairs) == 48
    cfg = load_config(REPO / "pipeline.toml", [*overrides, "train.sft.decontaminate=false", "train.sft.max_steps=2"])
    cfg.train.sft.out = "train/sft_unchecked"
    assert train_command(cfg, "sft", benchmark_check=finetune_benchmark_check(cfg)) == 0
    run = json.loads((tmp_path / "work" / "train" / "sft_unchecked" / "run.json").read_text())
    assert run["benchmark_check"] is None and sum(run["examples_available"].values()) == 400
