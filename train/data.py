"""Token shards in, training batches out.

- `IndexedDataset`: a memory-mapped Megatron `MMIDIDX` shard (the reader of stages/megatron.py's writer).
- `ShardMeta` / `read_meta`: the dataset folder's meta.json, validated; `check_datasets` refuses shards written with
  another tokenizer or holding ids the model has no row for.
- `PackedSequences`: one dataset split as samples of seq_len + 1 tokens. Per epoch, the documents are shuffled,
  concatenated and cut every seq_len tokens (consecutive samples share one token, as in Megatron's GPTDataset, so
  every token is a target once); the samples are then visited in a shuffled order. Both orders come from
  (seed, dataset name, epoch) alone.
- `Mixture`: which dataset the next global sample comes from, by Megatron's blending rule (the dataset furthest
  below its weight's share). Its state is the number of samples taken from each dataset, so a checkpoint holding
  those counts restores the data order exactly.
- `Loader`: per optimizer step, the global batch is the next batch_size * grad_accum * world_size samples; rank r
  reads its own contiguous block of them, so one process with a world-sized batch sees the same samples.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

INDEX_HEADER = b"MMIDIDX\x00\x00"
# Megatron's DType enum (megatron/core/datasets/indexed_dataset.py)
CODE_DTYPES: dict[int, type[np.number]] = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}


class ShardsError(ValueError):
    """Token shards that cannot be trained on (missing, malformed, or not matching the tokenizer)."""


class IndexedDataset:
    """A memory-mapped `<prefix>.idx` + `<prefix>.bin` pair; `ds[i]` is sequence i as a NumPy view."""

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        self.idx_path = self.prefix.with_name(self.prefix.name + ".idx")
        self.bin_path = self.prefix.with_name(self.prefix.name + ".bin")
        try:
            with open(self.idx_path, "rb") as f:
                head = f.read(34)
        except FileNotFoundError as e:
            raise ShardsError(f"index file not found: {self.idx_path}") from e
        if len(head) < 34 or head[:9] != INDEX_HEADER:
            raise ShardsError(f"{self.idx_path} is not a Megatron MMIDIDX index (bad header)")
        (version,) = struct.unpack("<Q", head[9:17])
        if version != 1:
            raise ShardsError(f"{self.idx_path}: index version {version}, expected 1")
        code = head[17]
        if code not in CODE_DTYPES:
            raise ShardsError(f"{self.idx_path}: unknown dtype code {code}")
        self.dtype_code = code
        self.dtype = np.dtype(CODE_DTYPES[code])
        self.sequence_count, self.document_count = struct.unpack("<QQ", head[18:34])
        n, d = self.sequence_count, self.document_count
        expected = 34 + 4 * n + 8 * n + 8 * d
        if self.idx_path.stat().st_size < expected:
            raise ShardsError(f"{self.idx_path} is truncated ({self.idx_path.stat().st_size} < {expected} bytes)")
        self.sequence_lengths = np.memmap(self.idx_path, dtype=np.int32, mode="r", offset=34, shape=(n,))
        self.sequence_pointers = np.memmap(self.idx_path, dtype=np.int64, mode="r", offset=34 + 4 * n, shape=(n,))
        self.document_indices = np.memmap(self.idx_path, dtype=np.int64, mode="r", offset=34 + 12 * n, shape=(d,))
        if not self.bin_path.is_file():
            raise ShardsError(f"data file not found: {self.bin_path}")
        n_tokens = int(np.sum(self.sequence_lengths, dtype=np.int64))
        if self.bin_path.stat().st_size != n_tokens * self.dtype.itemsize:
            raise ShardsError(
                f"{self.bin_path} holds {self.bin_path.stat().st_size} bytes but its index describes "
                f"{n_tokens} tokens of {self.dtype.itemsize} bytes"
            )
        if n_tokens:
            self.tokens = np.memmap(self.bin_path, dtype=self.dtype, mode="r", shape=(n_tokens,))
        else:
            self.tokens = np.zeros(0, dtype=self.dtype)
        self.num_tokens = n_tokens

    def __len__(self) -> int:
        return self.sequence_count

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.sequence_lengths[i])]

    def document_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(first token, token count) of every document, as int64 arrays."""
        cum = np.zeros(self.sequence_count + 1, dtype=np.int64)
        np.cumsum(self.sequence_lengths, out=cum[1:])
        if self.sequence_count and not np.array_equal(self.sequence_pointers, cum[:-1] * self.dtype.itemsize):
            raise ShardsError(f"{self.idx_path}: sequences are not stored back to back")
        di = np.asarray(self.document_indices)
        if len(di) == 0 or di[0] != 0 or di[-1] != self.sequence_count or np.any(np.diff(di) < 0):
            raise ShardsError(f"{self.idx_path}: malformed document indices")
        starts = cum[di[:-1]]
        return starts, cum[di[1:]] - starts


class SplitCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: NonNegativeInt = 0
    tokens: NonNegativeInt = 0


class ShardMeta(BaseModel):
    """meta.json of a dataset folder (written by stages/megatron.py `build_meta`)."""

    model_config = ConfigDict(extra="allow")  # later stages may record more; these fields are the contract

    tokenizer: str
    tokenizer_sha256: str
    vocab_size: PositiveInt
    dtype: Literal["uint16", "int32"]
    eos_id: NonNegativeInt
    bos_id: NonNegativeInt | None = None
    weight: float = Field(default=1.0, ge=0)
    documents: dict[str, NonNegativeInt] = {}
    tokens: dict[str, NonNegativeInt] = {}
    splits: dict[str, SplitCounts] = {}

    @model_validator(mode="after")
    def _dtype_rule(self) -> ShardMeta:
        expected = "uint16" if self.vocab_size < 65500 else "int32"
        if self.dtype != expected:
            raise ValueError(f"dtype {self.dtype} breaks Megatron's rule for vocab {self.vocab_size} ({expected})")
        return self


def read_meta(directory: str | Path) -> ShardMeta:
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise ShardsError(f"{path} not found: not a token dataset folder (run the tokenize stage first)")
    try:
        return ShardMeta.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as e:
        raise ShardsError(f"{path} is invalid: {e}") from e


class TokenDataset:
    """One dataset folder, one split: its meta.json and every `<split>-NNNNN` shard, documents listed in order."""

    def __init__(self, directory: str | Path, split: str):
        self.dir = Path(directory)
        self.name = self.dir.name
        self.split = split
        self.meta = read_meta(self.dir)
        self.shards = [IndexedDataset(p.with_suffix("")) for p in sorted(self.dir.glob(f"{split}-*.idx"))]
        doc_shard, doc_start, doc_len = [], [], []
        for s, shard in enumerate(self.shards):
            if shard.dtype.name != self.meta.dtype:
                raise ShardsError(
                    f"{shard.idx_path} stores {shard.dtype.name} but {self.dir}/meta.json says {self.meta.dtype}"
                )
            starts, lengths = shard.document_spans()
            keep = lengths > 0
            doc_shard.append(np.full(int(keep.sum()), s, dtype=np.int32))
            doc_start.append(starts[keep])
            doc_len.append(lengths[keep])
        self.doc_shard = np.concatenate(doc_shard) if doc_shard else np.zeros(0, np.int32)
        self.doc_start = np.concatenate(doc_start) if doc_start else np.zeros(0, np.int64)
        self.doc_len = np.concatenate(doc_len) if doc_len else np.zeros(0, np.int64)
        self.num_tokens = int(self.doc_len.sum())

    @property
    def num_documents(self) -> int:
        return len(self.doc_len)

    def document(self, d: int) -> np.ndarray:
        shard = self.shards[self.doc_shard[d]]
        return shard.tokens[self.doc_start[d] : self.doc_start[d] + self.doc_len[d]]

    def max_token_id(self, chunk: int = 1 << 24) -> tuple[int, Path | None]:
        """Largest id in the split and the shard holding it (scanned in chunks: memory stays flat)."""
        best, where = -1, None
        for shard in self.shards:
            for i in range(0, shard.num_tokens, chunk):
                m = int(shard.tokens[i : i + chunk].max())
                if m > best:
                    best, where = m, shard.bin_path
        return best, where


def check_datasets(
    datasets: Sequence[TokenDataset],
    *,
    tokenizer_sha256: str,
    vocab_size: int,
    model_vocab: int,
    tokenizer_path: str | Path | None = None,
) -> None:
    """Refuse shards that do not belong to this tokenizer/model, naming the file at fault (and the tokenizer in use,
    `tokenizer_path`, when given)."""
    for ds in datasets:
        meta_path = ds.dir / "meta.json"
        if ds.meta.tokenizer_sha256 != tokenizer_sha256:
            used = f"{tokenizer_path}, " if tokenizer_path else ""
            raise ShardsError(
                f"{meta_path}: shards were written with tokenizer sha256 {ds.meta.tokenizer_sha256[:16]}... "
                f"({ds.meta.tokenizer}, {ds.meta.vocab_size} pieces) but training uses sha256 "
                f"{tokenizer_sha256[:16]}... ({used}{vocab_size} pieces); retokenize (tokens.tokenizer) or point "
                "train.pretrain.tokenizer at the tokenizer the shards were made with"
            )
        if ds.meta.vocab_size != vocab_size:
            raise ShardsError(f"{meta_path}: vocab_size {ds.meta.vocab_size} but the tokenizer has {vocab_size} pieces")
        top, where = ds.max_token_id()
        if top >= min(vocab_size, model_vocab):
            raise ShardsError(
                f"{where}: token id {top} is at or beyond the vocabulary ({vocab_size} pieces, model rows {model_vocab})"
            )


def _name_salt(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class PackedSequences:
    """Samples of seq_len + 1 tokens cut from a dataset split, in a per-epoch shuffled order."""

    def __init__(self, dataset: TokenDataset, seq_len: int, seed: int, shuffle: bool = True):
        self.dataset, self.seq_len, self.seed, self.shuffle = dataset, seq_len, seed, shuffle
        self.num_samples = max(0, (dataset.num_tokens - 1) // seq_len)
        if self.num_samples == 0:
            raise ShardsError(
                f"{dataset.dir}: the {dataset.split} split has {dataset.num_tokens} tokens, fewer than one sample "
                f"of {seq_len + 1}"
            )
        self._epoch: int | None = None

    def _prepare(self, epoch: int) -> None:
        if self._epoch == epoch:
            return
        n_docs = self.dataset.num_documents
        if self.shuffle:
            rng = np.random.default_rng([self.seed, _name_salt(self.dataset.name), epoch])
            self._doc_order = rng.permutation(n_docs)
            self._sample_order = rng.permutation(self.num_samples)
        else:
            self._doc_order = np.arange(n_docs)
            self._sample_order = np.arange(self.num_samples)
        self._doc_end = np.cumsum(self.dataset.doc_len[self._doc_order])  # stream offset where each doc ends
        self._epoch = epoch

    def sample(self, n: int) -> np.ndarray:
        """The n-th sample this dataset hands out (n counts over epochs), as int64."""
        epoch, k = divmod(n, self.num_samples)
        self._prepare(epoch)
        start = int(self._sample_order[k]) * self.seq_len
        need = self.seq_len + 1
        out = np.empty(need, dtype=np.int64)
        i = int(np.searchsorted(self._doc_end, start, side="right"))
        filled = 0
        while filled < need:
            d = int(self._doc_order[i])
            doc_begin = int(self._doc_end[i]) - int(self.dataset.doc_len[d])
            lo = start + filled - doc_begin
            piece = self.dataset.document(d)[lo : lo + need - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
            i += 1
        return out


class Mixture:
    """Deterministic blending: the next sample comes from the dataset furthest below its share
    (Megatron's build_blending_indices), so after n samples each dataset has its share to within one sample."""

    def __init__(self, weights: Sequence[float]):
        w = np.asarray(weights, dtype=np.float64)
        if len(w) == 0 or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"mixture weights must be non-negative with a positive sum, got {list(weights)}")
        self.weights = w / w.sum()
        self.counts = np.zeros(len(w), dtype=np.int64)

    @property
    def consumed(self) -> int:
        return int(self.counts.sum())

    def take(self, n: int) -> list[tuple[int, int]]:
        """The next n samples as (dataset, that dataset's sample number)."""
        picks = []
        for _ in range(n):
            i = int(np.argmax(self.weights * (self.consumed + 1) - self.counts))
            picks.append((i, int(self.counts[i])))
            self.counts[i] += 1
        return picks


class Loader:
    """Training batches for one process: each `next_step()` returns grad_accum (x, y) micro-batches."""

    def __init__(
        self,
        sources: Sequence[PackedSequences],
        weights: Sequence[float],
        *,
        batch_size: int,
        grad_accum: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.sources = list(sources)
        self.mixture = Mixture(weights)
        self.batch_size, self.grad_accum, self.rank, self.world_size = batch_size, grad_accum, rank, world_size

    def _rows(self, picks: list[tuple[int, int]]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.sources[i].sample(n) for i, n in picks]))

    def next_step(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        per_rank = self.batch_size * self.grad_accum
        picks = self.mixture.take(per_rank * self.world_size)[self.rank * per_rank : (self.rank + 1) * per_rank]
        out = []
        for m in range(self.grad_accum):
            rows = self._rows(picks[m * self.batch_size : (m + 1) * self.batch_size])
            out.append((rows[:, :-1], rows[:, 1:]))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "datasets": [s.dataset.name for s in self.sources],
            "counts": [int(c) for c in self.mixture.counts],
            "epochs": [int(c) // s.num_samples for c, s in zip(self.mixture.counts, self.sources)],
            "seed": int(self.sources[0].seed),
            "seq_len": int(self.sources[0].seq_len),
            "samples": self.mixture.consumed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [s.dataset.name for s in self.sources]
        if state["datasets"] != names or state["seq_len"] != self.sources[0].seq_len:
            raise ShardsError(
                f"checkpoint's data ({state['datasets']}, seq_len {state['seq_len']}) differs from this run's "
                f"({names}, seq_len {self.sources[0].seq_len}); start a new run folder to change the data"
            )
        self.mixture.counts = np.asarray(state["counts"], dtype=np.int64)


def validation_batches(
    sources: Sequence[PackedSequences],
    weights: Sequence[float],
    *,
    batch_size: int,
    batches: int,
    rank: int,
    world_size: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This process's part of a fixed validation set of batches * batch_size * world_size sequences: `batches`
    micro-batches per process, so runs with the same global batch evaluate on the same sequences."""
    loader = Loader(sources, weights, batch_size=batch_size, grad_accum=batches, rank=rank, world_size=world_size)
    return loader.next_step()
