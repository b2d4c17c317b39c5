"""Entry points the `pipeline` command dispatches to (`pipeline train`, also under torchrun; eval, generate, export).

They need only these attributes of the loaded config: `cfg.run.workdir`, `cfg.model`, `cfg.train`, `cfg.eval` and
`cfg.path(p)` (a path resolved against the config file's folder).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from train.chat_data import DataError, data_files, read_records
from train.checkpoint import ResumeError, list_checkpoints
from train.data import PackedSequences, ShardsError, TokenDataset, check_datasets, validation_batches
from train.dpo import run_dpo
from train.evaluate import (
    generation_scores,
    generation_table,
    load_gen,
    load_mc,
    mc_accuracy,
    mc_table,
    split_few_shot,
    text_loss,
)
from train.export import export
from train.finetune import FinetuneJob
from train.generate import Generator, dpo_pairs_file, generate_file, generate_text
from train.loop import Runtime, TrainingDiverged, pick_device, pick_dtype
from train.pretrain import VALIDATION_SEED, PretrainJob, evaluate, main_guarded
from train.runlog import read_log
from train.sft import run_sft
from train.source import SourceError, load_model


def _workdir(cfg: Any) -> Path:
    return Path(cfg.path(cfg.run.workdir))


def _run_dir(cfg: Any, out: str | Path) -> Path:
    """A `train.<mode>.out` folder: relative paths live under run.workdir, with the corpus they were trained on."""
    return Path(out) if Path(out).is_absolute() else _workdir(cfg) / out


def resolve_data_dirs(cfg: Any, entries: list[str]) -> list[Path]:
    """Dataset folders: each entry is a name under <workdir>/tokenize/ or a path; none = all folders there."""
    tokenize_dir = _workdir(cfg) / "tokenize"
    if not entries:
        if not tokenize_dir.is_dir():
            return []
        return sorted(p for p in tokenize_dir.iterdir() if (p / "meta.json").is_file())
    out = []
    for e in entries:
        under = tokenize_dir / e
        out.append(under if under.is_dir() else Path(cfg.path(e)))
    return out


def pretrain_job(cfg: Any) -> PretrainJob:
    """The pretraining run the config describes. With init_from and no tokenizer, the start model's tokenizer."""
    t = cfg.train.pretrain
    if t.tokenizer:
        tokenizer = Path(cfg.path(t.tokenizer))
    else:
        tokenizer = None if t.init_from else _workdir(cfg) / "tokenizer" / "tokenizer.model"
    return PretrainJob(
        out_dir=_run_dir(cfg, t.out),
        tokenizer=tokenizer,
        data=resolve_data_dirs(cfg, t.data),
        model=cfg.model,
        train=t,
        init_from=Path(cfg.path(t.init_from)) if t.init_from else None,
    )


def _source(cfg: Any, run_dir: str | Path) -> Path:
    """A --from path: as typed when it exists, else relative to the config file's folder, else to run.workdir
    (where `train.<mode>.out` folders live)."""
    for candidate in (Path(run_dir), Path(cfg.path(run_dir)), _run_dir(cfg, run_dir)):
        if candidate.exists():
            return candidate
    return Path(cfg.path(run_dir))


def finetune_job(cfg: Any, mode: str, benchmark_check: Callable[[str], list[str]] | None = None):
    """The SFT or DPO run the config describes. SFT starts from train.pretrain.out, DPO from train.sft.out, unless
    init_from says otherwise. `benchmark_check` (text -> benchmarks it holds, from the pipeline layer's decontam
    index) drops contaminated examples unless train.<mode>.decontaminate is off."""

    t = getattr(cfg.train, mode)
    default = cfg.train.pretrain.out if mode == "sft" else cfg.train.sft.out
    tokenizer = getattr(t, "tokenizer", None)
    return FinetuneJob(
        mode=mode,
        out_dir=_run_dir(cfg, t.out),
        init_from=Path(cfg.path(t.init_from)) if t.init_from else _run_dir(cfg, default),
        data=[Path(cfg.path(d)) for d in t.data],
        train=t,
        tokenizer=Path(cfg.path(tokenizer)) if tokenizer else None,
        contamination=benchmark_check if t.decontaminate else None,
    )


def run_finetune(cfg: Any, mode: str, say=print, benchmark_check: Callable[[str], list[str]] | None = None) -> dict:

    job = finetune_job(cfg, mode, benchmark_check)
    return (run_sft if mode == "sft" else run_dpo)(job, say=say)


def train_command(cfg: Any, mode: str, benchmark_check: Callable[[str], list[str]] | None = None) -> int:
    if mode == "pretrain":
        job = pretrain_job(cfg)
        if not job.data:
            print(
                f"error: no token datasets under {_workdir(cfg) / 'tokenize'}: run `pipeline run tokenize` first, "
                "or list dataset folders in train.pretrain.data",
                file=sys.stderr,
            )
            return 1
        return main_guarded(job)
    if mode in ("sft", "dpo"):
        try:
            run_finetune(cfg, mode, benchmark_check=benchmark_check)
        except SourceError as e:
            before = "pipeline train pretrain" if mode == "sft" else "pipeline train sft"
            print(f"error: {e} (train.{mode}.init_from; run `{before}` first)", file=sys.stderr)
            return 1
        except (DataError, TrainingDiverged, ResumeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    raise ValueError(f"unknown training mode {mode!r}: choose pretrain, sft or dpo")


def shard_validation(cfg: Any, loaded, data: list[Path], device: torch.device) -> dict:
    """Loss and bits per byte on the valid shards of token datasets (raises ShardsError when they do not fit)."""

    tok, model_cfg = loaded.tokenizer, loaded.model.cfg
    seq_len = min(cfg.eval.seq_len or loaded.seq_len, model_cfg.max_seq_len)
    valid = [ds for ds in (TokenDataset(p, "valid") for p in data) if ds.num_tokens > seq_len]
    if not valid:
        raise ShardsError(f"no validation shards with more than {seq_len} tokens in {[str(p) for p in data]}")
    check_datasets(valid, tokenizer_sha256=tok.sha256, vocab_size=tok.vocab_size, model_vocab=model_cfg.vocab_size)
    rt = Runtime(device, pick_dtype("auto", device))
    batches = validation_batches(
        [PackedSequences(ds, seq_len, VALIDATION_SEED) for ds in valid],
        [ds.meta.weight for ds in valid],
        batch_size=cfg.eval.batch_size,
        batches=cfg.eval.batches,
        rank=0,
        world_size=1,
    )
    piece_bytes = torch.zeros(model_cfg.vocab_size, dtype=torch.float64)
    piece_bytes[: tok.vocab_size] = torch.from_numpy(tok.piece_bytes).double()
    val_loss, val_bpb = evaluate(loaded.model, batches, piece_bytes.to(device), rt)
    return {
        "val_loss": val_loss,
        "val_ppl": math.exp(val_loss),
        "val_bpb": val_bpb,
        "tokens": sum(y.numel() for _, y in batches),
    }


def eval_command(cfg: Any, run_dir: str | Path) -> int:
    """Evaluate the latest checkpoint of a run folder, a checkpoint file or an exported folder: validation loss and
    bits per byte on token shards (eval.data, else the ones the model was pretrained on) and on held-out text
    (eval.text), and multiple-choice accuracy (eval.tasks). Prints a table per kind, then one JSON object."""

    source = _source(cfg, run_dir)
    try:
        loaded = load_model(source)
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    device = pick_device(cfg.eval.device, 0)
    model = loaded.model.to(device).eval()
    result: dict[str, Any] = {
        "checkpoint": loaded.info.get("export") or loaded.info.get("checkpoint"),
        "step": loaded.info.get("step"),
        "mode": loaded.info.get("mode"),
    }
    data = resolve_data_dirs(cfg, cfg.eval.data) if cfg.eval.data else [Path(p) for p in loaded.info.get("data", [])]
    if data:
        try:
            result.update(shard_validation(cfg, loaded, data, device))
        except ShardsError as e:
            if cfg.eval.data:
                print(f"error: {e}", file=sys.stderr)
                return 1
            result["val_error"] = str(e)
            print(f"note: no shard validation: {e}", file=sys.stderr)
    seq_len = min(cfg.eval.seq_len or loaded.seq_len, model.cfg.max_seq_len)
    if cfg.eval.text:
        result["text"] = {}
        for f in cfg.eval.text:
            path = Path(cfg.path(f))
            try:
                per_lang = text_loss(model, loaded.tokenizer, path, cfg.eval.batch_size, seq_len)
            except (ValueError, OSError) as e:
                print(f"error: eval.text {path}: {e}", file=sys.stderr)
                return 1
            result["text"][str(f)] = per_lang
            for lang, r in per_lang.items():
                print(
                    f"{f} [{lang}]: loss {r['loss']:.4f} nats/token, {r['bpb']:.4f} bits/byte over {r['tokens']:,} tokens"
                )
    if cfg.eval.tasks:
        result["tasks"] = {}
        for task in cfg.eval.tasks:
            try:
                items = load_mc(cfg.path(task.path))
                dev = load_mc(cfg.path(task.dev)) if task.dev else None
            except ValueError as e:
                print(f"error: eval.tasks {task.name}: {e}", file=sys.stderr)
                return 1
            few_shot, scored = split_few_shot(items, task.shots, dev, task.dev or "")
            if not scored:
                print(f"error: eval.tasks {task.name}: no item left to score after {task.shots} shots", file=sys.stderr)
                return 1
            used_as_shots = len(items) - len(scored)
            if cfg.eval.max_items:
                scored = scored[: cfg.eval.max_items]
            with torch.no_grad():
                r = mc_accuracy(
                    model, loaded.tokenizer, scored, mode=cfg.eval.mc_mode, lang=task.lang, few_shot=few_shot
                )
            r["items_in_file"] = len(items)
            r["items_used_as_shots"] = used_as_shots
            result["tasks"][task.name] = r
        print(mc_table(result["tasks"]))
    if cfg.eval.generation:
        result["generation"] = {}
        for task in cfg.eval.generation:
            try:
                items = load_gen(cfg.path(task.path))
            except (ValueError, OSError) as e:
                print(f"error: eval.generation {task.name}: {e}", file=sys.stderr)
                return 1
            if cfg.eval.max_items:
                items = items[: cfg.eval.max_items]
            # greedy, so the score is a property of the model, not of a sampling seed
            settings = cfg.eval.generate.model_copy(
                update={"temperature": 0.0, "max_new_tokens": task.max_new_tokens, "chat": task.chat}
            )
            gen = Generator(loaded, settings, device)
            result["generation"][task.name] = generation_scores(
                gen, items, cfg.eval.generate.batch_size, lang=task.lang
            )
        print(generation_table(result["generation"]))
    if not any(k in result for k in ("val_loss", "text", "tasks", "generation")):
        print(
            f"error: nothing to evaluate {source} on: no validation shards ({result.get('val_error', 'none known')}), "
            "and eval.text, eval.tasks and eval.generation are empty",
            file=sys.stderr,
        )
        return 1
    if "val_loss" in result:
        print(
            f"validation: loss {result['val_loss']:.4f}, {result['val_bpb']:.4f} bits/byte ({result['tokens']:,} tokens)"
        )
    out = write_eval_json(source, result)
    print(json.dumps(result, ensure_ascii=False))
    print(f"written to {out}", file=sys.stderr)
    return 0


def write_eval_json(source: Path, result: dict) -> Path:
    """`eval.json` in the run (or export) folder evaluated, or in the folder of a checkpoint file (its run folder);
    written atomically, replacing the previous evaluation."""
    folder = source if source.is_dir() else source.parent
    path = folder / "eval.json"
    tmp = path.with_name(f".eval.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"evaluated_at": time.time(), **result}, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def generate_command(
    cfg: Any,
    run_dir: str | Path,
    prompt: str | None = None,
    input_path: str | Path | None = None,
    output: str | Path | None = None,
    progress: bool = True,
) -> int:
    """Sample a continuation (or a chat answer, for SFT/DPO runs or eval.generate.chat = "on") of one prompt and
    print it; or, with input_path and output, answer every line of a JSONL file into another (resuming a partial
    output)."""

    if (prompt is None) == (input_path is None) or (input_path is None) != (output is None):
        raise ValueError("generate takes either a prompt, or an input file and an output file")
    try:
        loaded = load_model(_source(cfg, run_dir))
        device = pick_device(cfg.eval.device, 0)
        if prompt is not None:
            text, chat, n = generate_text(loaded, prompt, cfg.eval.generate, device)
        else:
            gen = Generator(loaded, cfg.eval.generate, device)
            t0 = time.time()
            done, total = generate_file(
                gen, Path(input_path), Path(output), batch_size=cfg.eval.generate.batch_size, progress=progress
            )
    except (SourceError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if prompt is None:
        resumed = f" (resumed after {done} done)" if done else ""
        print(
            f"{total - done} of {total} prompts answered in {time.time() - t0:.1f}s{resumed}: {output}", file=sys.stderr
        )
        return 0
    print(f"[{'chat' if chat else 'plain'}, {n} tokens]", file=sys.stderr)
    print(text)
    return 0


def dpo_pairs_command(
    cfg: Any,
    run_dir: str | Path,
    input_path: str | Path,
    output: str | Path,
    max_similarity: float = 0.9,
    progress: bool = True,
) -> int:
    """Preference pairs from SFT data: the reference answer chosen, the weak model's (run_dir) answer rejected;
    (near) equal pairs dropped. Sampling settings are eval.generate's; the chat template is always used."""

    if not 0 < max_similarity <= 1:
        print(f"error: --max-similarity {max_similarity}: expected a ratio in (0, 1]", file=sys.stderr)
        return 1
    try:
        loaded = load_model(_source(cfg, run_dir))
        gen = Generator(loaded, cfg.eval.generate, pick_device(cfg.eval.device, 0))
        counts = dpo_pairs_file(
            gen,
            Path(input_path),
            Path(output),
            batch_size=cfg.eval.generate.batch_size,
            max_similarity=max_similarity,
            progress=progress,
        )
    except (SourceError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"{counts['kept']} pairs of {counts['records']} records written to {output}; dropped: "
        f"{counts['dropped_similar']} with answers at similarity >= {max_similarity}, "
        f"{counts['dropped_empty']} with an empty weak answer",
        file=sys.stderr,
    )
    return 0


def export_command(cfg: Any, run_dir: str | Path, hf_dir: str | Path) -> int:
    """Write a Hugging Face LlamaForCausalLM folder (LoRA merged) from a run folder, checkpoint or export."""

    try:
        loaded = load_model(_source(cfg, run_dir))
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = export(loaded, Path(hf_dir))
    n = loaded.model.num_params()
    print(f"exported {loaded.info.get('export') or loaded.info.get('checkpoint')} ({n / 1e6:.2f}M parameters) to {out}")
    return 0


DEMO_PROMPT = "请介绍一下长城。"
# The demo's own DPO pairs (CT-LLM's way): this many SFT records per data file, answered by the earliest pretraining
# checkpoint with this many new tokens, all in one batch. Small, so `make demo` stays quick.
DEMO_PAIR_RECORDS_PER_FILE = 16
DEMO_PAIR_NEW_TOKENS = 24


def demo_dpo_pairs(cfg: Any) -> tuple[Path, dict, str]:
    """Preference pairs from the first records of each SFT data file, the reference answer chosen and the earliest
    checkpoint of the pretraining run (a weak model) answering rejected; returns (pairs file, counts, summary)."""
    t0 = time.time()
    pretrain_dir = _run_dir(cfg, cfg.train.pretrain.out)
    checkpoints = list_checkpoints(pretrain_dir)
    if not checkpoints:
        raise SourceError(f"{pretrain_dir}: no checkpoint to build DPO pairs with")
    weak = checkpoints[0]
    folder = _run_dir(cfg, cfg.train.dpo.out).parent / "dpo_pairs"
    folder.mkdir(parents=True, exist_ok=True)
    records = [
        rec
        for path in data_files([Path(cfg.path(d)) for d in cfg.train.sft.data])
        for _, rec in read_records(path)[:DEMO_PAIR_RECORDS_PER_FILE]
    ]
    prompts = folder / "sft_slice.jsonl"
    tmp = prompts.with_name(prompts.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, prompts)
    settings = cfg.eval.generate.model_copy(update={"max_new_tokens": DEMO_PAIR_NEW_TOKENS})
    gen = Generator(load_model(weak), settings, pick_device(cfg.eval.device, 0))
    out = folder / "pairs.jsonl"
    counts = dpo_pairs_file(gen, prompts, out, batch_size=len(records), progress=False)
    line = (
        f"dpo-pairs: {counts['kept']} pairs from {counts['records']} SFT records, rejected answers by {weak.name} "
        f"of {pretrain_dir.name} ({DEMO_PAIR_NEW_TOKENS} tokens) in {time.time() - t0:.0f}s: {out}"
    )
    return out, counts, line


def demo_after_pretrain(cfg: Any, benchmark_check: Callable[[str], list[str]] | None = None) -> list[str]:
    """`make demo` after pretraining: SFT from the pretraining run's latest checkpoint; DPO pairs built from SFT data
    and the earliest pretraining checkpoint (`demo_dpo_pairs`); DPO from the SFT run on those plus the configured
    pairs; and one chat generation. Returns summary lines."""

    lines = []
    for mode in ("sft", "dpo"):
        t0 = time.time()
        try:
            job = finetune_job(cfg, mode, benchmark_check)
            if mode == "dpo":
                pairs, counts, pairs_line = demo_dpo_pairs(cfg)
                lines.append(pairs_line)
                if counts["kept"]:
                    job.data = [*job.data, pairs]
            res = (run_sft if mode == "sft" else run_dpo)(job)
        except (SourceError, DataError, TrainingDiverged, ResumeError) as e:
            lines.append(f"{mode}: failed: {e}")
            return lines
        out = Path(res["out"])
        rows = read_log(out)
        run = json.loads((out / "run.json").read_text())
        line = f"{mode}: {rows[-1]['step']} steps in {time.time() - t0:.0f}s, loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}"
        if mode == "sft":
            sel = run["examples_selected"]
            r = run.get("realised_zh_en")
            line += f"; zh:en {run['zh_en_ratio']} -> {sel.get('zh', 0)} zh / {sel.get('en', 0)} en examples"
            line += f" (realised {r:.2f}:1)" if r else ""
        else:
            line += (
                f"; {sum(run['pairs_available'].values())} pairs from {len(job.data)} sources, beta {run['beta']}, "
                f"reward accuracy {rows[-1]['rewards/accuracies']:.2f}, margin {rows[-1]['rewards/margins']:.3f}"
            )
        check = run.get("benchmark_check")
        if check:
            line += f"; benchmark check dropped {check['dropped']} of {check['checked']}"
        lines.append(line + f"; run folder {out}")
    loaded = load_model(_run_dir(cfg, cfg.train.dpo.out))
    text, chat, n = generate_text(loaded, DEMO_PROMPT, cfg.eval.generate)
    shown = text.replace("\n", " ").strip()
    lines.append(f"generate ({'chat' if chat else 'plain'}, {n} tokens): {DEMO_PROMPT} -> {shown[:200]}")
    return lines
