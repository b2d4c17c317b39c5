"""`pipeline ablate`: did a curation step help? FineWeb's test, in one command.

For each variant of the corpus (a stage's kept output, or the final corpus under a config override) the same model
preset is trained with the same seed on the same number of tokens, encoded with one shared tokenizer, and every model
is scored on the same held-out text (bits per byte, per file and language) and the eval tasks.

Layout, under `<workdir>/ablate/`:

    heldout/<stem>.jsonl            the held-out rows that overlap no variant (what every model is scored on)
    heldout.json                    rows read, dropped as overlapping (by id, by normalised text) per file
    <variant>/ablate.json           what the variant was made from (its fingerprint); a rerun under other settings
                                    is refused naming the keys (or redone with --force)
    <variant>/work/                 an override variant's own stage outputs (earlier stages: links to the main run's)
    <variant>/tokens/corpus/        the variant's documents as one Megatron token dataset (meta.json written last)
    <variant>/seed<S>/              the training run (checkpoints, log.jsonl with heldout_bpb rows), result.json
    results.json, results.md, heldout_bpb.png

Every step is resumable: finished stages, token datasets and runs (result.json) are not redone, a killed training
run resumes from its latest checkpoint (train/loop.py), and the results are assembled from the runs' files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import sentencepiece as spm
import xxhash

from model.vocab import guess_lang
from pipeline.ablate_results import results_table, verdicts
from pipeline.config import AblateVariantSection, Config, ConfigError, validate_data
from pipeline.runner import (
    CORPUS_STAGES,
    StageError,
    _diff,
    code_version,
    input_stage,
    run_stage,
    stage_dir,
    stage_fingerprint,
    stage_state,
)
from stages.io import atomic_write_json, list_shards
from stages.megatron import IndexedDatasetWriter, build_meta, check_and_cast, write_meta
from stages.nfkc import nfkc
from stages.tokenizer import tokenizer_path
from train.evaluate import load_mc, mc_accuracy
from train.pretrain import PretrainJob, pretrain
from train.runlog import read_log
from train.source import load_model

FINAL = "final"
DATASET = "corpus"  # the one dataset folder of a variant's token shards


def _log(msg: str) -> None:
    print(f"[ablate] {msg}", file=sys.stderr, flush=True)


@dataclass
class Variant:
    name: str
    cfg: Config  # the config whose stages make it (the main one, or an override's in its own workdir)
    stage: str  # the corpus stage whose kept output it is
    overrides: dict[str, Any]  # dotted key -> value; {} for a stage variant

    @property
    def kept(self) -> Path:
        return stage_dir(self.cfg, self.stage) / "kept"


# ---------------------------------------------------------------------------------------------------------------
# variants


def final_stage(cfg: Config) -> str:
    last = input_stage(cfg, "tokenize")
    if last is None:
        raise StageError("ablate: every corpus stage is disabled; there is no corpus to train on")
    return last


def flatten_set(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`set = {...}` as dotted keys: TOML's `{stages.dedup.enabled = false}` is nested, `{"stages.dedup.enabled" =
    false}` is not; both mean the same key."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and not (key == "sources" or key.startswith("sources.")):
            out.update(flatten_set(v, key))
        else:
            out[key] = v
    return out


def override_config(cfg: Config, name: str, overrides: dict[str, Any], workdir: Path) -> Config:
    """`cfg` with the variant's keys set and its own workdir, validated like a loaded file."""
    data = cfg.model_dump(mode="json")
    for key, value in overrides.items():
        if not (key.startswith("stages.") or key == "sources" or key.startswith("sources.")):
            raise ConfigError(
                f"{cfg.file}: ablate.variants {name!r}: set {key!r}: only corpus keys (stages.*, sources) can vary; "
                "the tokenizer, model and training are shared by every variant"
            )
        node: Any = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            node = node[int(part)] if isinstance(node, list) and part.isdigit() else node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise ConfigError(
                    f"{cfg.file}: ablate.variants {name!r}: set {key!r}: {'.'.join(parts[: i + 1])} "
                    "is a value, not a table"
                )
        if isinstance(node, list):
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value
    data["run"]["workdir"] = str(workdir)
    try:
        return validate_data(data, cfg.file)
    except ConfigError as e:
        raise ConfigError(f"ablate.variants {name!r}: {e}") from None


def resolve_variants(cfg: Config) -> list[Variant]:
    seen: set[str] = set()
    out = []
    for entry in cfg.ablate.variants:
        if isinstance(entry, AblateVariantSection):
            overrides = flatten_set(entry.set)
            vcfg = override_config(cfg, entry.name, overrides, ablate_dir(cfg) / entry.name / "work")
            v = Variant(entry.name, vcfg, final_stage(vcfg), overrides)
        elif entry == FINAL:
            v = Variant(FINAL, cfg, final_stage(cfg), {})
        elif entry in CORPUS_STAGES:
            if not cfg.stage_section(entry).enabled:
                raise ConfigError(f"{cfg.file}: ablate.variants: stage {entry!r} is disabled in this config")
            v = Variant(entry, cfg, entry, {})
        else:
            raise ConfigError(
                f"{cfg.file}: ablate.variants: {entry!r} is not a corpus stage ({', '.join(CORPUS_STAGES)}), "
                f"{FINAL!r}, or a {{ name, set }} table"
            )
        if v.name in seen:
            raise ConfigError(f"{cfg.file}: ablate.variants: {v.name!r} is listed twice")
        seen.add(v.name)
        out.append(v)
    if not out:
        raise ConfigError(f"{cfg.file}: ablate.variants is empty")
    return out


def ablate_dir(cfg: Config) -> Path:
    return cfg.workdir / "ablate"


def ensure_stage(cfg: Config, stage: str) -> None:
    """Run a stage unless it is finished under this config. A finished one is only read, not even locked, so an
    ablation can read the outputs of a run it does not own."""
    if stage_state(cfg, stage).state != "finished":
        run_stage(cfg, stage)


def run_main_stages(cfg: Config, upto: str) -> None:
    """The main run's enabled corpus stages up to `upto` (finished ones are not redone)."""
    for s in CORPUS_STAGES[: CORPUS_STAGES.index(upto) + 1]:
        if cfg.stage_section(s).enabled:
            ensure_stage(cfg, s)


def build_variant_corpus(main: Config, v: Variant) -> None:
    """Make the variant's kept output. An override variant reuses (links to) the main run's stages up to the first
    one whose fingerprint differs under the override, and runs that one and the later ones in its own workdir."""
    if not v.overrides:
        run_main_stages(main, v.stage)
        return
    v.cfg.workdir.mkdir(parents=True, exist_ok=True)
    reusing = True
    for s in CORPUS_STAGES:
        if not v.cfg.stage_section(s).enabled:
            continue
        same = main.stage_section(s).enabled and (
            stage_fingerprint(main, s)["hash"] == stage_fingerprint(v.cfg, s)["hash"]
        )
        reusing = reusing and same
        link = stage_dir(v.cfg, s)
        if reusing:
            ensure_stage(main, s)
            if link.is_symlink() and link.resolve() == stage_dir(main, s).resolve():
                continue
            if link.exists() or link.is_symlink():
                raise StageError(f"ablate variant {v.name!r}: {link} exists but should link to the main run's {s}")
            os.symlink(stage_dir(main, s).resolve(), link)
            continue
        if link.is_symlink():  # was reused before the override changed this stage: its own output from now on
            link.unlink()
        _log(f"{v.name}: running {s} under {', '.join(f'{k} = {val!r}' for k, val in v.overrides.items())}")
        ensure_stage(v.cfg, s)


def corpus_fingerprint(v: Variant) -> dict:
    state = stage_state(v.cfg, v.stage)
    return {
        "stage": v.stage,
        "overrides": v.overrides,
        "stage_hash": stage_fingerprint(v.cfg, v.stage)["hash"],
        "finished_at": (state.stats or {}).get("finished_at"),
    }


# ---------------------------------------------------------------------------------------------------------------
# held-out text


def normalised_hash(text: str) -> int:
    """The text with NFKC, case and whitespace runs folded, hashed: a copy re-spaced or re-cased still matches."""
    return xxhash.xxh64_intdigest(re.sub(r"\s+", " ", nfkc(text)).strip().lower())


def read_heldout(path: Path) -> list[dict]:
    """Rows {id, text, lang} of a held-out file: .jsonl (`text`, optional `id`, `lang`), .parquet (same columns) or
    text (blank-line blocks). A row without text is an error naming the file and line."""
    if not path.is_file():
        raise ConfigError(f"ablate.heldout: {path} does not exist")
    if path.suffix == ".parquet":
        records = pq.read_table(path).to_pylist()
    elif path.suffix == ".jsonl":
        records = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ConfigError(f"ablate.heldout: {path}:{n}: not a JSON object ({e})") from None
    else:
        records = [{"text": b.strip("\n")} for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    rows = []
    for n, r in enumerate(records, 1):
        text = r.get("text") if isinstance(r, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"ablate.heldout: {path}: row {n} has no `text`")
        rows.append({"id": r.get("id"), "text": text, "lang": r.get("lang") or guess_lang(text)})
    if not rows:
        raise ConfigError(f"ablate.heldout: {path} holds no text")
    return rows


def variant_keys(kept: Path) -> tuple[set[str], set[int]]:
    """Ids and normalised-text hashes of every document of a kept output."""
    ids: set[str] = set()
    hashes: set[int] = set()
    for shard in list_shards(kept):
        for batch in pq.ParquetFile(shard).iter_batches(columns=["id", "text"], batch_size=1024):
            ids.update(batch.column("id").to_pylist())
            hashes.update(normalised_hash(t) for t in batch.column("text").to_pylist())
    return ids, hashes


def prepare_heldout(cfg: Config, variants: list[Variant]) -> tuple[dict[str, Path], dict]:
    """Write each held-out file less the rows found in any variant (by id or by normalised-text hash) under
    ablate/heldout/, and count what was dropped; with ablate.overlap = "error", refuse instead."""
    if not cfg.ablate.heldout:
        raise ConfigError(
            f"{cfg.file}: ablate.heldout is empty: name held-out text files (never part of any variant) to score "
            "every model on"
        )
    keys = {v.name: variant_keys(v.kept) for v in variants}
    files: dict[str, Path] = {}
    counts: dict[str, dict] = {}
    out_dir = ablate_dir(cfg) / "heldout"
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in cfg.ablate.heldout:
        path = cfg.path(f)
        stem = path.name.split(".")[0]
        if stem in files:
            raise ConfigError(f"{cfg.file}: ablate.heldout: two files are named {stem!r}; rename one")
        rows = read_heldout(path)
        kept, by_id, by_text = [], {}, {}
        for r in rows:
            hit_id = [n for n, (ids, _) in keys.items() if r["id"] is not None and r["id"] in ids]
            hit_text = [n for n, (_, hashes) in keys.items() if normalised_hash(r["text"]) in hashes]
            for n in hit_id:
                by_id[n] = by_id.get(n, 0) + 1
            for n in hit_text:
                by_text[n] = by_text.get(n, 0) + 1
            if not hit_id and not hit_text:
                kept.append(r)
        dropped = len(rows) - len(kept)
        if dropped and cfg.ablate.overlap == "error":
            raise ConfigError(
                f"ablate.heldout: {path}: {dropped} of {len(rows)} rows are also in a variant (by id: {by_id}; by "
                f'text: {by_text}); remove them, or set ablate.overlap = "drop"'
            )
        if not kept:
            raise ConfigError(f"ablate.heldout: {path}: all {len(rows)} rows are also in a variant; nothing held out")
        if dropped:
            _log(f"held-out {path.name}: dropped {dropped} of {len(rows)} rows found in a variant")
        target = out_dir / f"{stem}.jsonl"
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, target)
        files[stem] = target
        counts[stem] = {
            "file": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "rows": len(rows),
            "kept": len(kept),
            "dropped": dropped,
            "dropped_by_id": by_id,
            "dropped_by_text": by_text,
            "chars": sum(len(r["text"]) for r in kept),
        }
    atomic_write_json(ablate_dir(cfg) / "heldout.json", counts)
    return files, counts


# ---------------------------------------------------------------------------------------------------------------
# tokens


def shared_tokenizer(cfg: Config) -> Path:
    if cfg.ablate.tokenizer:
        tok = cfg.path(cfg.ablate.tokenizer)
        if not tok.is_file():
            raise ConfigError(f"{cfg.file}: ablate.tokenizer: {tok} does not exist")
        return tok
    if not cfg.tokenizer.enabled:
        raise ConfigError(f"{cfg.file}: the tokenizer stage is disabled: set ablate.tokenizer to a SentencePiece model")
    run_main_stages(cfg, final_stage(cfg))
    ensure_stage(cfg, "tokenizer")
    return tokenizer_path(cfg)


def tokenize_variant(v: Variant, tokenizer: Path, out: Path, batch_docs: int = 256) -> dict:
    """Every document of the variant, EOS after each, as one token dataset (`train` split) at `out`. Written in a
    temporary folder renamed at the end, so a killed run leaves no dataset that looks whole."""
    if (out / "meta.json").is_file():
        return json.loads((out / "meta.json").read_text(encoding="utf-8"))
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    vocab, eos = sp.get_piece_size(), sp.eos_id()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    docs: dict[str, int] = {}
    toks: dict[str, int] = {}
    with IndexedDatasetWriter(tmp / "train-00000", vocab) as w:
        for shard in list_shards(v.kept):
            for batch in pq.ParquetFile(shard).iter_batches(columns=["text", "lang", "kind"], batch_size=batch_docs):
                texts = batch.column("text").to_pylist()
                langs = [
                    "code" if k == "code" else (lang or "unknown")
                    for lang, k in zip(batch.column("lang").to_pylist(), batch.column("kind").to_pylist())
                ]
                for ids, lang in zip(sp.encode(texts, out_type=int), langs):
                    w.add_checked(check_and_cast(np.asarray([*ids, eos], dtype=np.int64), vocab))
                    docs[lang] = docs.get(lang, 0) + 1
                    toks[lang] = toks.get(lang, 0) + len(ids) + 1
    meta = build_meta(
        tokenizer=tokenizer,
        tokenizer_sha256=hashlib.sha256(tokenizer.read_bytes()).hexdigest(),
        vocab_size=vocab,
        eos_id=eos,
        bos_id=sp.bos_id() if sp.bos_id() >= 0 else None,
        documents=docs,
        tokens=toks,
        splits={"train": {"documents": sum(docs.values()), "tokens": sum(toks.values())}},
    )
    write_meta(tmp, meta)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return meta


# ---------------------------------------------------------------------------------------------------------------
# training and scoring


def training_plan(cfg: Config, corpus_tokens: int) -> dict:
    """Steps for the token budget (the same for every variant), unless the variant would need more than
    ablate.max_epochs passes: then max_epochs passes, and `capped`."""
    t = cfg.train.pretrain
    seq_len = t.seq_len or 0
    tokens_per_step = t.batch_size * t.grad_accum * seq_len
    steps = math.ceil(cfg.ablate.tokens / tokens_per_step)
    capped = steps * tokens_per_step > cfg.ablate.max_epochs * corpus_tokens
    if capped:
        steps = max(1, int(cfg.ablate.max_epochs * corpus_tokens // tokens_per_step))
    return {
        "steps": steps,
        "tokens_per_step": tokens_per_step,
        "tokens": steps * tokens_per_step,
        "epochs": steps * tokens_per_step / corpus_tokens,
        "capped": capped,
    }


def run_settings(cfg: Config) -> dict:
    """What, besides the corpus, decides a variant's results: compared on rerun (ablate.json)."""
    t = cfg.train.pretrain.model_dump(mode="json")
    for k in ("out", "data", "weights", "tokenizer", "max_steps", "seed", "checkpoint_every", "keep_last", "progress"):
        t.pop(k, None)
    a = cfg.ablate.model_dump(mode="json")
    a.pop("variants")
    a.pop("seeds")  # each seed is its own run: adding one adds a run, it does not invalidate the others
    return {
        "ablate": a,
        "model": cfg.model.model_dump(mode="json"),
        "train.pretrain": t,
        "eval.tasks": [task.model_dump(mode="json") for task in cfg.eval.tasks],
        "eval.mc_mode": cfg.eval.mc_mode,
        "code": code_version(),
    }


def check_fingerprint(cfg: Config, v: Variant, fingerprint: dict, force: bool) -> None:
    """Refuse to mix a variant's outputs made under two configurations; --force removes the old ones."""
    vdir = ablate_dir(cfg) / v.name
    old = json.loads((vdir / "ablate.json").read_text(encoding="utf-8")) if (vdir / "ablate.json").is_file() else None
    if old is not None and old != fingerprint:
        changes = _diff(old, fingerprint, "")
        if not force:
            raise StageError(
                f"ablate variant {v.name!r} was run with other settings than {cfg.file} gives now: "
                f"{'; '.join(changes)}. Restore them, or redo the ablation with `pipeline ablate --force`"
            )
        _log(f"{v.name}: --force: settings changed ({'; '.join(changes)}); removing its tokens and runs")
    if old is not None and (old != fingerprint or force):
        for sub in vdir.iterdir():
            if sub.name not in ("work",):
                shutil.rmtree(sub) if sub.is_dir() and not sub.is_symlink() else sub.unlink()
    atomic_write_json(vdir / "ablate.json", fingerprint)


def train_and_score(
    cfg: Config, v: Variant, seed: int, tokenizer: Path, data: Path, heldout: dict[str, Path], plan: dict
) -> dict:
    """One training run (resumed if it was killed), then its scores; cached in result.json."""
    run_dir = ablate_dir(cfg) / v.name / f"seed{seed}"
    done = run_dir / "result.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    t0 = time.time()
    eval_every = max(1, plan["steps"] // cfg.ablate.eval_points)
    base = cfg.train.pretrain
    train = base.model_copy(
        update={
            "out": str(run_dir),
            "max_steps": plan["steps"],
            "seed": seed,
            "eval_every": eval_every,
            "checkpoint_every": eval_every,  # a killed run loses at most one evaluation interval
            "keep_last": 1,
            "warmup": min(base.warmup, plan["steps"] // 5),
            "eval_batches": 0,  # the variant's own text is no held-out set: the held-out files are
        }
    )
    model = cfg.model.model_copy(update={"preset": cfg.ablate.preset})
    job = PretrainJob(out_dir=run_dir, tokenizer=tokenizer, data=[data], model=model, train=train, heldout=heldout)
    _log(
        f"{v.name} seed {seed}: training {plan['steps']} steps ({plan['tokens']:,} tokens, {plan['epochs']:.2f} epochs)"
    )
    pretrain(job)
    rows = [r for r in read_log(run_dir) if any(k.startswith("heldout_bpb/") for k in r)]
    last = rows[-1]
    loaded = load_model(run_dir)
    scored = loaded.model.eval()
    tasks = {}
    limit = cfg.ablate.max_items or cfg.eval.max_items
    for task in cfg.eval.tasks:
        items = load_mc(cfg.path(task.path))
        items = items[:limit] if limit else items
        r = mc_accuracy(scored, loaded.tokenizer, items, mode=cfg.eval.mc_mode, lang=task.lang)
        tasks[task.name] = {"accuracy": r["accuracy"], "chance": r["chance"], "items": r["items"]}
    result = {
        "seed": seed,
        "steps": last["step"],
        "tokens": last["tokens"],
        "heldout_bpb": {k.split("/")[1]: v_ for k, v_ in last.items() if k.count("/") == 1 and k.startswith("heldout")},
        "heldout_bpb_by_lang": {},
        "curve": [{"tokens": r["tokens"], **{k: r[k] for k in r if k.startswith("heldout_bpb/")}} for r in rows],
        "tasks": tasks,
        "train_loss": last["loss"],
        "seconds": round(time.time() - t0, 1),
    }
    for k, val in last.items():
        if k.startswith("heldout_bpb/") and k.count("/") == 2:
            _, stem, lang = k.split("/")
            result["heldout_bpb_by_lang"].setdefault(stem, {})[lang] = val
    atomic_write_json(done, result)
    return result


# ---------------------------------------------------------------------------------------------------------------
# results


def _mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (max(values) - min(values)) if len(values) > 1 else 0.0


def summarise(name: str, meta: dict, plan: dict, runs: list[dict]) -> dict:
    """One variant's row: the mean over seeds, and with several seeds the spread (max - min) of each figure."""
    row: dict[str, Any] = {
        "name": name,
        "documents": sum(meta["documents"].values()),
        "corpus_tokens": sum(meta["tokens"].values()),
        "tokens": statistics.fmean(r["tokens"] for r in runs),
        "epochs": plan["epochs"],
        "capped": plan["capped"],
        "seeds": [r["seed"] for r in runs],
        "heldout_bpb": {},
        "heldout_bpb_by_lang": {},
        "tasks": {},
        "seconds": round(sum(r["seconds"] for r in runs), 1),
    }
    spread: dict[str, Any] = {"heldout_bpb": {}, "tasks": {}}
    for stem in runs[0]["heldout_bpb"]:
        row["heldout_bpb"][stem], spread["heldout_bpb"][stem] = _mean_spread([r["heldout_bpb"][stem] for r in runs])
        row["heldout_bpb_by_lang"][stem] = {
            lang: statistics.fmean(r["heldout_bpb_by_lang"][stem][lang] for r in runs)
            for lang in runs[0]["heldout_bpb_by_lang"].get(stem, {})
        }
    for task, r0 in runs[0]["tasks"].items():
        acc, spr = _mean_spread([r["tasks"][task]["accuracy"] for r in runs])
        row["tasks"][task] = {"accuracy": acc, "chance": r0["chance"], "items": r0["items"]}
        spread["tasks"][task] = spr
    if len(runs) > 1:
        row["spread"] = spread
    return row


def plot_curves(rows: list[dict], runs: dict[str, list[dict]], png: Path) -> None:
    """Held-out bits per byte against training tokens, one panel per held-out file, one line per variant (mean over
    seeds; the band is the seeds' min to max)."""
    import matplotlib.pyplot as plt  # train.runlog has set the Agg backend

    stems = list(rows[0]["heldout_bpb"])
    fig, axes = plt.subplots(1, len(stems), figsize=(6 * len(stems), 4), squeeze=False)
    for ax, stem in zip(axes[0], stems):
        for row in rows:
            curves = [r["curve"] for r in runs[row["name"]]]
            n = min(len(c) for c in curves)
            x = [curves[0][i]["tokens"] for i in range(n)]
            ys = np.array([[c[i][f"heldout_bpb/{stem}"] for i in range(n)] for c in curves])
            (line,) = ax.plot(x, ys.mean(axis=0), "o-", label=row["name"])
            if len(curves) > 1:
                ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.2)
        ax.set_title(f"held-out {stem}")
        ax.set_xlabel("training tokens")
        ax.set_ylabel("bits per byte")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = png.with_name(png.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)


def ablate(cfg: Config, force: bool = False) -> dict:
    """Run (or resume) the ablation the [ablate] section describes; returns results.json's content."""
    t_start = time.time()
    if not cfg.train.pretrain.seq_len:
        raise ConfigError(f"{cfg.file}: train.pretrain.seq_len must be set for an ablation (it sizes the budget)")
    for i, f in enumerate(cfg.ablate.heldout):  # before any stage runs: a typo should not cost an hour of work
        if not cfg.path(f).is_file():
            raise ConfigError(f"{cfg.file}: ablate.heldout.{i}: {cfg.path(f)} does not exist")
    variants = resolve_variants(cfg)
    for v in variants:
        build_variant_corpus(cfg, v)
    tokenizer = shared_tokenizer(cfg)
    heldout, heldout_counts = prepare_heldout(cfg, variants)
    tok_sha = hashlib.sha256(tokenizer.read_bytes()).hexdigest()
    settings = run_settings(cfg)
    rows, runs = [], {}
    for v in variants:
        fingerprint = {"corpus": corpus_fingerprint(v), "tokenizer_sha256": tok_sha, "settings": settings}
        fingerprint["heldout"] = {s: {k: c[k] for k in ("sha256", "kept")} for s, c in heldout_counts.items()}
        check_fingerprint(cfg, v, fingerprint, force)
        vdir = ablate_dir(cfg) / v.name
        data = vdir / "tokens" / DATASET
        meta = tokenize_variant(v, tokenizer, data)
        corpus_tokens = sum(meta["tokens"].values())
        plan = training_plan(cfg, corpus_tokens)
        if plan["capped"]:
            _log(
                f"{v.name}: {corpus_tokens:,} tokens is under ablate.tokens / max_epochs: trained "
                f"{plan['epochs']:.2f} epochs ({plan['tokens']:,} tokens), fewer than the budget"
            )
        runs[v.name] = [train_and_score(cfg, v, s, tokenizer, data, heldout, plan) for s in cfg.ablate.seeds]
        rows.append(summarise(v.name, meta, plan, runs[v.name]))
    out = ablate_dir(cfg)
    result = {
        "variants": rows,
        "verdicts": verdicts(rows),
        "heldout": heldout_counts,
        "tokenizer": str(tokenizer),
        "preset": cfg.ablate.preset,
        "budget_tokens": cfg.ablate.tokens,
        "seeds": cfg.ablate.seeds,
        "seconds": round(time.time() - t_start, 1),
    }
    atomic_write_json(out / "results.json", result)
    table = results_table(rows)
    md = out / "results.md"
    tmp = md.with_name(md.name + ".tmp")
    tmp.write_text(
        f"# Ablation\n\n{table}\n\n"
        + "".join(f"- {line}\n" for line in result["verdicts"])
        + "\n![](heldout_bpb.png)\n",
        encoding="utf-8",
    )
    os.replace(tmp, md)
    plot_curves(rows, runs, out / "heldout_bpb.png")
    return result


def print_results(result: dict, out: Path) -> None:
    print(results_table(result["variants"]))
    for line in result["verdicts"]:
        print(f"- {line}")
    dropped = {s: c["dropped"] for s, c in result["heldout"].items() if c["dropped"]}
    if dropped:
        print(f"held-out rows dropped as also in a variant: {dropped}")
    print(f"results: {out / 'results.json'}, {out / 'results.md'}, plot {out / 'heldout_bpb.png'}")
