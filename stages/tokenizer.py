"""Tokenizer stage: train a SentencePiece BPE model on a sample of the final corpus.

The sample is drawn in configured proportions of characters per language (CT-LLM's pretraining mix was about
800:300:100 Chinese:English:code tokens) or per source (the `[[sources]]` weights). Each document is taken or not by
a hash of its id and the run seed, so the sample is the same on every rerun and is read in one streaming pass.

Options follow Baichuan 2, whose tokenizer CT-LLM used: BPE with byte fallback (no unknown characters), digits split
one by one, no normalization (identity rule, no whitespace folding, no dummy prefix) so that decode(encode(text))
gives back the text exactly, code indentation included; whitespace-only pieces allowed; control tokens reserved for
the chat roles that SFT uses. Ids 0-3 are <unk>, <s> (BOS), </s> (EOS), <pad>.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import sentencepiece as spm
import xxhash
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from stages.base import Phase, StageContext
from stages.config.tokenizer import TokenizerConfig
from stages.io import atomic_write_json, list_shards

SPECIAL_IDS = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": 3}


def tokenizer_path(cfg) -> Path:
    section = cfg.tokenizer
    return cfg.path(section.out) if section.out else cfg.workdir / "tokenizer" / "tokenizer.model"


def group_of(kind: str | None, lang: str | None, source: str | None, mix_by: str) -> str | None:
    if mix_by == "source":
        return source
    if kind == "code":
        return "code"
    return lang


def keep_probability(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the id and the seed."""
    return xxhash.xxh64_intdigest(f"{seed}:{doc_id}") / 2**64


def training_lines(text: str, max_chars: int):
    for line in text.split("\n"):
        if not line.strip():
            continue
        for i in range(0, len(line), max_chars):
            yield line[i : i + max_chars]


MIN_COVERAGE = 0.98  # SentencePiece refuses lower values


def chars_needed(freqs: list[int], coverage: float) -> int:
    """How many of the most frequent characters cover `coverage` of all character occurrences."""
    total, acc = sum(freqs), 0
    for i, f in enumerate(freqs, start=1):
        acc += f
        if acc >= coverage * total:
            return i
    return len(freqs)


def fit_coverage(char_counts: dict[str, int], vocab_size: int, reserved: int, coverage: float) -> float:
    """The character coverage to train with: the configured one, lowered (not below 0.98) when the characters it
    needs would leave less than half of the vocabulary for merges. Characters left out decode through byte
    fallback. Raises ValueError when even 0.98 needs more characters than the vocabulary holds."""
    freqs = sorted(char_counts.values(), reverse=True)
    total = sum(freqs)
    room = vocab_size - reserved
    if total == 0 or chars_needed(freqs, coverage) <= room // 2:
        return coverage
    half = max(1, room // 2)
    fitted = max(MIN_COVERAGE, min(coverage, sum(freqs[: half - 1]) / total))
    if chars_needed(freqs, fitted) > room:
        need = chars_needed(freqs, MIN_COVERAGE)
        raise ValueError(
            f"tokenizer.vocab_size = {vocab_size} is too small for this corpus: covering {MIN_COVERAGE:.0%} of its "
            f"characters takes {need:,} pieces; use a vocab_size of at least {2 * need + reserved:,}"
        )
    return fitted


def train_sentencepiece(
    input_file: str | Path,
    out: str | Path,
    vocab_size: int,
    *,
    character_coverage: float = 0.9995,
    special_tokens: Sequence[str] = (),
    model_type: str = "bpe",
    byte_fallback: bool = True,
    split_digits: bool = True,
    max_line_chars: int = 4096,
    threads: int = 1,
    seed: int | None = None,
) -> Path:
    """Train SentencePiece on a file of lines with this project's options (Baichuan 2's, see the module docstring)
    and write `out` and `out.vocab` atomically. Ids 0-3 are <unk>, <s>, </s>, <pad>; `special_tokens` become
    control symbols."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_prefix = out.parent / f".{out.stem}.tmp"
    if seed is not None:
        spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=str(input_file),
        model_prefix=str(tmp_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        byte_fallback=byte_fallback,
        split_digits=split_digits,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=True,
        max_sentence_length=max_line_chars * 4,
        input_sentence_size=10_000_000,
        shuffle_input_sentence=True,
        control_symbols=list(special_tokens),
        hard_vocab_limit=False,
        num_threads=threads,
        minloglevel=1,
        **SPECIAL_IDS,
    )
    os.replace(f"{tmp_prefix}.vocab", out.with_suffix(".vocab"))
    os.replace(f"{tmp_prefix}.model", out)
    return out


class TrainTokenizer(PipelineStep):
    """One task: sample the corpus, write the sample, train SentencePiece, move the model into place."""

    name = "train tokenizer"
    type = "🔤 - TOKENIZER"

    def __init__(
        self, stage_dir: Path, kept_dir: Path, out: Path, cfg: TokenizerConfig, weights: dict, seed: int, threads: int
    ):
        super().__init__()
        self.stage_dir, self.kept_dir, self.out = Path(stage_dir), Path(kept_dir), Path(out)
        self.cfg, self.weights, self.seed, self.threads = cfg, weights, seed, threads

    def group_totals(self, shards: list[Path]) -> dict[str, int]:
        # Imported here: polars takes 0.1-0.4 s to import (python -X importtime, this 2-core machine) and only this
        # count needs it, while every `pipeline` command imports this module for TokenizerConfig.
        import polars as pl

        group = (
            pl.col("source")
            if self.cfg.mix_by == "source"
            else pl.when(pl.col("kind") == "code").then(pl.lit("code")).otherwise(pl.col("lang"))
        )
        df = (
            pl.scan_parquet([str(p) for p in shards])
            .select(group.alias("group"), pl.col("text").str.len_chars().alias("chars"))
            .group_by("group")
            .agg(pl.col("chars").sum())
            .collect()
        )
        return {g: int(c) for g, c in df.iter_rows()}

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        start = time.time()
        shards = list_shards(self.kept_dir)
        if not shards:
            raise ValueError(f"tokenizer: no documents to train on in {self.kept_dir}")
        totals = self.group_totals(shards)
        if self.cfg.mix_by == "lang" and None in totals:
            raise ValueError(
                "tokenizer.mix_by = 'lang' but some documents have no language yet (the langid stage has not run): "
                "enable stages.langid or set tokenizer.mix_by = 'source'"
            )
        totals.pop(None, None)
        weights = {g: self.weights.get(g, 0.0) for g in totals}
        total_w = sum(weights.values())
        if total_w <= 0:
            raise ValueError(f"tokenizer: no weight for any group present in the corpus ({sorted(totals)})")
        targets = {g: self.cfg.sample_chars * w / total_w for g, w in weights.items()}
        probability = {g: min(1.0, targets[g] / totals[g]) if totals[g] else 0.0 for g in totals}
        logger.info(f"tokenizer: sampling probabilities per group: {probability}")

        self.out.parent.mkdir(parents=True, exist_ok=True)
        sample_path = self.stage_dir / "sample.txt"
        sampled_docs: dict[str, int] = {}
        sampled_chars: dict[str, int] = {}
        lines = 0
        char_counts: Counter = Counter()
        with open(sample_path, "w", encoding="utf-8") as f:
            for shard in shards:
                cols = ["id", "text", "source", "kind", "lang"]
                for batch in pq.ParquetFile(shard).iter_batches(batch_size=2000, columns=cols):
                    for row in batch.to_pylist():
                        g = group_of(row["kind"], row["lang"], row["source"], self.cfg.mix_by)
                        if g is None or keep_probability(row["id"], self.seed) >= probability.get(g, 0.0):
                            continue
                        sampled_docs[g] = sampled_docs.get(g, 0) + 1
                        sampled_chars[g] = sampled_chars.get(g, 0) + len(row["text"])
                        char_counts.update(row["text"])
                        for line in training_lines(row["text"], self.cfg.max_line_chars):
                            f.write(line.replace("\r", " ") + "\n")
                            lines += 1
        if not lines:
            raise ValueError("tokenizer: the sample is empty (check tokenizer.sample_chars and the weights)")

        reserved = len(SPECIAL_IDS) + len(self.cfg.special_tokens) + (256 if self.cfg.byte_fallback else 0)
        coverage = fit_coverage(char_counts, self.cfg.vocab_size, reserved, self.cfg.character_coverage)
        if coverage < self.cfg.character_coverage:
            logger.warning(
                f"tokenizer: character_coverage lowered from {self.cfg.character_coverage} to {coverage:.5f}: the sample "
                f"has {len(char_counts):,} distinct characters and a vocabulary of {self.cfg.vocab_size:,} must keep "
                "room for merges; the rarest characters decode through byte fallback"
            )
        train_sentencepiece(
            sample_path,
            self.out,
            self.cfg.vocab_size,
            character_coverage=coverage,
            special_tokens=self.cfg.special_tokens,
            model_type=self.cfg.model_type,
            byte_fallback=self.cfg.byte_fallback,
            split_digits=self.cfg.split_digits,
            max_line_chars=self.cfg.max_line_chars,
            threads=self.threads,
            seed=self.seed,
        )
        sp = spm.SentencePieceProcessor(model_file=str(self.out))
        stats = {
            "docs_in": sum(sampled_docs.values()),
            "chars_in": sum(sampled_chars.values()),
            "sampled_docs": sampled_docs,
            "sampled_chars": sampled_chars,
            "corpus_chars": totals,
            "training_lines": lines,
            "distinct_chars": len(char_counts),
            "character_coverage": coverage,
            "vocab_size": sp.get_piece_size(),
            "tokenizer": str(self.out),
            "seconds": round(time.time() - start, 3),
        }
        atomic_write_json(self.stage_dir / "tasks" / f"{rank:05d}.json", stats)
        logger.info(f"tokenizer: {sp.get_piece_size()} pieces written to {self.out}")
        return
        yield


def build(ctx: StageContext) -> list[Phase]:
    cfg = ctx.cfg
    tcfg: TokenizerConfig = cfg.tokenizer
    if ctx.input_dir is None:
        raise ValueError("tokenizer: no corpus stage is enabled to read from")
    if tcfg.mix_by == "source":
        weights = {s.name: s.weight for s in cfg.sources}
    else:
        weights = dict(tcfg.lang_weights)
    step = TrainTokenizer(
        ctx.stage_dir,
        ctx.input_dir,
        tokenizer_path(cfg),
        tcfg,
        weights,
        cfg.run.seed,
        tcfg.threads or cfg.executor.workers,
    )
    return [Phase(name="main", steps=[step], tasks=1)]
