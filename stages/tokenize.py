"""Tokenize stage: encode every kept document of the final corpus stage into Megatron-LM token shards.

Output, per dataset (one per source, or per language):

    <workdir>/tokenize/<dataset>/train-<rank>.bin/.idx   Megatron MMIDIDX shards written by each task
    <workdir>/tokenize/<dataset>/valid-<rank>.bin/.idx   the held-out documents
    <workdir>/tokenize/<dataset>/meta.json                tokenizer path and sha256, vocab size, dtype, documents
                                                          and tokens per language and source, mixture weight

Each document gets EOS appended. Whether a document is held out is decided by a hash of its id and the run seed,
so the split is the same on every rerun and for any number of tasks.

Up-sampling by duplicate cluster (`tokens.upsample`, off by default): as FineWeb-2 re-weights documents by the size
of the near-duplicate cluster dedup kept them from, a training document whose `dup_cluster_size` falls in a row of
the table is written `repeat` times. The copies go right after the original, in the same shard: placement then
depends on nothing but the document (the same for any number of tasks and reruns), and the trainer shuffles
documents per epoch anyway (train/data.py `PackedSequences`), so adjacent copies do not end up in one batch.
Held-out documents are written once: validation loss stays a mean over distinct documents. meta.json counts the
documents and tokens as written (copies included, which is what the shards hold and what mixture weights act on)
and records the table and, per repeat factor, the originals and the copies written. The trainer refuses shards whose tokenizer
sha256 or vocabulary size differs from the model's (see train/data.py).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sentencepiece as spm
import xxhash
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from stages.base import Phase, StageContext
from stages.config.tokenize import TokensConfig
from stages.io import ShardReader, atomic_write_json, list_shards, shard_schema
from stages.megatron import (
    IndexedDatasetWriter,
    build_meta,
    check_and_cast,
    optimal_dtype,
    shard_prefix,
    write_meta,
)
from stages.tokenizer import tokenizer_path


def resolve_tokenizer(cfg) -> Path:
    return cfg.path(cfg.tokens.tokenizer) if cfg.tokens.tokenizer else tokenizer_path(cfg)


def is_valid(doc_id: str, seed: int, fraction: float) -> bool:
    return xxhash.xxh64_intdigest(f"valid:{seed}:{doc_id}") / 2**64 < fraction


@functools.lru_cache(maxsize=4096)
def dataset_name(value: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value) if value else "unknown"


# The input columns tokenize uses; the others (url, scores, ...) are not read at all.
METADATA_COLUMNS = ("source", "kind", "lang")
UPSAMPLE_COLUMN = "dup_cluster_size"


@dataclass
class DocumentBatch:
    """Consecutive documents of the input, column by column, in input order. `texts` are the documents' UTF-8
    bytes, which SentencePiece encodes to the same ids as the strings (it works on UTF-8) without a conversion
    to Python strings and back. A column the input lacks is all None."""

    ids: list[str]
    texts: list[bytes]
    columns: dict[str, list]


class TokenizeReader(ShardReader):
    """The previous stage's kept shards as `DocumentBatch`es of up to `batch_size` documents: only the columns
    tokenize uses are read, and no Document is made per row. Counts documents, characters and UTF-8 bytes per batch
    from the Arrow text column (the numbers ShardReader counts per document)."""

    def __init__(self, folder: Path | None, batch_size: int, upsampling: bool, progress: bool = False):
        super().__init__(folder, progress=progress, batch_size=batch_size)
        self.columns = ("id", "text", *METADATA_COLUMNS, *((UPSAMPLE_COLUMN,) if upsampling else ()))

    def read_batches(self, filepath: str) -> Iterator[DocumentBatch]:
        with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f) as pqf:
            present = [c for c in self.columns if c in pqf.schema_arrow.names]
            for batch in pqf.iter_batches(batch_size=self.batch_size, columns=present):
                text = batch.column("text")
                self.docs += batch.num_rows
                self.chars += pc.sum(pc.utf8_length(text)).as_py() or 0
                self.bytes += pc.sum(pc.binary_length(text)).as_py() or 0
                columns = {
                    c: batch.column(c).to_pylist() if c in present else [None] * batch.num_rows
                    for c in self.columns[2:]
                }
                yield DocumentBatch(batch.column("id").to_pylist(), text.cast(pa.binary()).to_pylist(), columns)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> Iterator[DocumentBatch]:
        if data:
            raise ValueError("the tokenize reader is the first step of its pipeline")
        self.docs = self.chars = self.bytes = 0
        if self.folder is None or not list_shards(self.folder):
            logger.warning(f"no input shards in {self.folder}: this stage's input is empty")
            return
        for filepath in self.data_folder.get_shard(rank, world_size, recursive=False, glob_pattern="*.parquet") or []:
            self.stat_update("input_files")
            docs_before = self.docs
            yield from self.read_batches(filepath)
            self.stat_update("documents", value=self.docs - docs_before, unit="input_file")


def segments_index(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Positions of the segments [start, start + size) one after another: the index that gathers them from the
    array they lie in."""
    offsets = np.cumsum(sizes) - sizes  # where each segment begins in the gathered array
    return np.repeat(starts - offsets, sizes) + np.arange(int(sizes.sum()), dtype=np.int64)


class TokenizeShards(PipelineStep):
    """Encodes the documents of one task and writes its shard of every dataset, then its counts."""

    name = "tokenize"
    type = "🔢 - TOKENIZE"

    def __init__(self, stage_dir: Path, tokenizer: Path, cfg: TokensConfig, seed: int, reader: TokenizeReader):
        super().__init__()
        self.stage_dir, self.tokenizer, self.cfg, self.seed, self.reader = Path(stage_dir), tokenizer, cfg, seed, reader

    def dataset_names(self, batch: DocumentBatch) -> list[str]:
        if self.cfg.split_by == "source":
            return [dataset_name(s) for s in batch.columns["source"]]
        return [
            "code" if kind == "code" else dataset_name(lang)
            for kind, lang in zip(batch.columns["kind"], batch.columns["lang"], strict=True)
        ]

    def run(self, data: Iterable[DocumentBatch] = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        start = time.time()
        # an interrupted earlier attempt of this task may have left finished shards of datasets it will not
        # write again; remove them so the dataset folders hold exactly this run's output
        for old in self.stage_dir.glob(f"*/*-{rank:05d}.*"):
            old.unlink()
        sp = spm.SentencePieceProcessor(model_file=str(self.tokenizer))
        vocab, eos, bos = sp.get_piece_size(), sp.eos_id(), sp.bos_id()
        writers: dict[tuple[str, str], IndexedDatasetWriter] = {}
        counts: dict = {}
        upsampling = bool(self.cfg.upsample)
        upsampled: dict[str, dict[str, dict[str, int]]] = {}  # dataset -> repeat -> originals, tokens written

        def add(key: str, *path: str, docs: int, tokens: int) -> None:
            node = counts.setdefault(key, {})
            for p in path:
                node = node.setdefault(p, {})
            node["documents"] = node.get("documents", 0) + docs
            node["tokens"] = node.get("tokens", 0) + tokens

        def flush(batch: DocumentBatch) -> None:
            # One array for the whole batch: the documents' tokens back to back with BOS/EOS inserted, validated
            # and cast once; then each (dataset, split) writer gets its documents, copies included, in one write.
            # num_threads=1: a task is one worker process and the executor runs as many as there are cores, so
            # SentencePiece's own thread pool (one per call, all cores by default) would only add threads.
            encoded = sp.encode(batch.texts, out_type="numpy", num_threads=1)
            n = len(encoded)
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
            flat = np.concatenate(encoded) if n else np.zeros(0, dtype=np.int32)
            ends = np.cumsum(lengths)
            if self.cfg.add_bos:  # BOS at each start, EOS at each end; np.insert keeps the given order at ties
                where = np.stack([ends - lengths, ends], axis=1).ravel()
                tokens = np.insert(flat, where, np.tile([bos, eos], n))
            else:
                tokens = np.insert(flat, ends, eos)
            sizes = lengths + (2 if self.cfg.add_bos else 1)
            starts = np.cumsum(sizes) - sizes
            tokens = check_and_cast(tokens, vocab)

            names = self.dataset_names(batch)
            splits = ["valid" if is_valid(i, self.seed, self.cfg.valid_fraction) else "train" for i in batch.ids]
            sizes_list = sizes.tolist()
            repeats = [1] * n
            if upsampling:
                for i, (name, split, cluster) in enumerate(
                    zip(names, splits, batch.columns[UPSAMPLE_COLUMN], strict=True)
                ):
                    if split == "train":
                        repeats[i] = repeat = self.cfg.repeats(cluster or 1)
                        row = upsampled.setdefault(name, {}).setdefault(str(repeat), {"documents": 0, "tokens": 0})
                        row["documents"] += 1
                        row["tokens"] += sizes_list[i] * repeat

            members: dict[tuple[str, str], list[int]] = {}  # (dataset, split) -> its documents, in input order
            for i, key in enumerate(zip(names, splits)):
                members.setdefault(key, []).append(i)
            repeat_array = np.asarray(repeats, dtype=np.int64)
            for (name, split), docs in members.items():
                w = writers.get((name, split))
                if w is None:
                    w = writers[(name, split)] = IndexedDatasetWriter(
                        shard_prefix(self.stage_dir / name, split, rank), vocab
                    )
                # each document, then its copies, right after one another
                docs_array = np.repeat(np.asarray(docs, dtype=np.int64), repeat_array[docs])
                w.add_checked_batch(tokens[segments_index(starts[docs_array], sizes[docs_array])], sizes[docs_array])

            langs = [
                "code" if kind == "code" else (lang or "unknown")
                for kind, lang in zip(batch.columns["kind"], batch.columns["lang"], strict=True)
            ]
            sources = [s or "unknown" for s in batch.columns["source"]]
            totals: dict[tuple, list[int]] = {}  # (dataset, split, lang, source) -> [documents, tokens]
            for key, size, repeat in zip(zip(names, splits, langs, sources), sizes_list, repeats):
                total = totals.get(key)
                if total is None:
                    total = totals[key] = [0, 0]
                total[0] += repeat
                total[1] += size * repeat
            for (name, split, lang, source), (docs, tokens_n) in totals.items():  # in order of first appearance
                add("datasets", name, split, docs=docs, tokens=tokens_n)
                add("datasets", name, "by_lang", lang, docs=docs, tokens=tokens_n)
                add("datasets", name, "by_source", source, docs=docs, tokens=tokens_n)
                add("by_lang", lang, docs=docs, tokens=tokens_n)

        try:
            for batch in data or ():
                flush(batch)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for w in writers.values():
            w.finalize()
        # extra copies written by up-sampling: `kept` counts documents (each once), `tokens` what the shards hold
        copies = sum(r["documents"] * (int(k) - 1) for d in upsampled.values() for k, r in d.items())
        written = sum(v["documents"] for v in counts.get("by_lang", {}).values())
        stats = {
            "docs_in": self.reader.docs,
            "chars_in": self.reader.chars,
            "bytes_in": self.reader.bytes,
            "kept": written - copies,
            "removed": 0,
            "tokens": sum(v["tokens"] for v in counts.get("by_lang", {}).values()),
            "datasets": counts.get("datasets", {}),
            "by_lang": counts.get("by_lang", {}),
            "seconds": round(time.time() - start, 3),
        }
        if upsampling:  # absent when off, so the stats stay what they were without the table
            stats["upsampled"] = upsampled
            stats["upsample_copies"] = copies
        atomic_write_json(self.stage_dir / "tasks" / f"{rank:05d}.json", stats)
        return
        yield


def build(ctx: StageContext) -> list[Phase]:
    cfg = ctx.cfg
    tcfg: TokensConfig = cfg.tokens
    tok = resolve_tokenizer(cfg)
    if ctx.upstream_pending:  # Slurm chain: tokenizer and input are made by the jobs this one starts after
        reader = TokenizeReader(ctx.input_dir, tcfg.batch_size, bool(tcfg.upsample), progress=ctx.workers == 1)
        return [
            Phase(
                name="main",
                steps=[reader, TokenizeShards(ctx.stage_dir, tok, tcfg, cfg.run.seed, reader)],
                tasks=ctx.tasks,
            )
        ]
    if not tok.is_file():
        hint = "run `pipeline run tokenizer` first" if not tcfg.tokenizer else "check tokens.tokenizer"
        raise ValueError(f"tokenize: tokenizer file {tok} does not exist ({hint})")
    try:
        vocab = spm.SentencePieceProcessor(model_file=str(tok)).get_piece_size()
    except (RuntimeError, OSError) as e:
        raise ValueError(f"tokenize: {tok} is not a SentencePiece model: {e}") from None
    dtype = optimal_dtype(vocab)
    if vocab - 1 > np.iinfo(dtype).max:
        raise ValueError(f"tokenize: a vocabulary of {vocab} does not fit the token dtype {np.dtype(dtype).name}")
    if ctx.input_dir is None or not list_shards(ctx.input_dir):
        raise ValueError(f"tokenize: nothing to tokenize: {ctx.input_dir} holds no shards")
    if sum(pq.ParquetFile(p).metadata.num_rows for p in list_shards(ctx.input_dir)) == 0:
        raise ValueError(f"tokenize: nothing to tokenize: {ctx.input_dir} holds no documents")
    if tcfg.upsample and "dup_cluster_size" not in shard_schema(ctx.input_dir).names:
        raise ValueError(
            f"tokens.upsample: the input {ctx.input_dir} has no dup_cluster_size column "
            "(dedup writes it: enable stages.dedup, or set tokens.upsample = [])"
        )
    reader = TokenizeReader(ctx.input_dir, tcfg.batch_size, bool(tcfg.upsample), progress=ctx.workers == 1)
    step = TokenizeShards(ctx.stage_dir, tok, tcfg, cfg.run.seed, reader)
    return [Phase(name="main", steps=[reader, step], tasks=ctx.tasks)]


def finalize(cfg, stage_dir: Path, merged: dict) -> None:
    """Write each dataset's meta.json once every task has written its shards."""
    tok = resolve_tokenizer(cfg)
    sp = spm.SentencePieceProcessor(model_file=str(tok))
    source_weights = {s.name: s.weight for s in cfg.sources}
    lang_weights = cfg.tokenizer.lang_weights
    sha = hashlib.sha256(tok.read_bytes()).hexdigest()
    for name, d in merged.get("datasets", {}).items():
        weight = (source_weights if cfg.tokens.split_by == "source" else lang_weights).get(name, 1.0)
        meta = build_meta(
            tokenizer=tok,
            tokenizer_sha256=sha,
            vocab_size=sp.get_piece_size(),
            eos_id=sp.eos_id(),
            bos_id=sp.bos_id() if sp.bos_id() >= 0 else None,
            weight=weight,
            documents={k: v["documents"] for k, v in d.get("by_lang", {}).items()},
            tokens={k: v["tokens"] for k, v in d.get("by_lang", {}).items()},
            splits={s: d[s] for s in ("train", "valid") if s in d},
        )
        meta["by_source"] = d.get("by_source", {})
        meta["split_by"] = cfg.tokens.split_by
        if cfg.tokens.upsample:
            meta["upsample"] = {
                "table": [r.model_dump() for r in cfg.tokens.upsample],
                # repeat factor -> training documents written that many times, and the tokens of all their copies
                "by_repeat": dict(sorted(merged.get("upsampled", {}).get(name, {}).items(), key=lambda kv: int(kv[0]))),
            }
        write_meta(stage_dir / name, meta)
