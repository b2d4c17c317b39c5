"""Writing token shards in Megatron-LM's indexed-dataset format (`MMIDIDX`), plus the `meta.json` beside them.

Byte layout, as megatron/core/datasets/indexed_dataset.py writes it (`_IndexWriter`, `IndexedDatasetBuilder`):

    .idx:  b"MMIDIDX\\x00\\x00"        9 bytes, header
           <Q 1                       version
           <B dtype code              Megatron's DType enum: uint8 1, int8 2, int16 3, int32 4, int64 5,
                                      float64 6, float32 7, uint16 8
           <Q sequence count
           <Q document count          = documents + 1 (document_indices starts with 0)
           int32[sequence count]      tokens per sequence
           int64[sequence count]      byte offset of each sequence in .bin
           int64[document count]      sequence index where each document ends, after a leading 0
    .bin:  the tokens of every sequence, back to back, in the dtype above

Each document is written as one sequence (Megatron's preprocess_data.py without sentence splitting). The token
dtype follows `DType.optimal_dtype`: uint16 when the vocabulary has fewer than 65,500 entries, else int32.
The tokenize stage appends the EOS id to each document before `add_document`; this writer stores what it is given.

NumPy only: stages/ never imports train/ or torch.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES: dict[type[np.number], int] = {
    np.uint8: 1,
    np.int8: 2,
    np.int16: 3,
    np.int32: 4,
    np.int64: 5,
    np.float64: 6,
    np.float32: 7,
    np.uint16: 8,
}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


def optimal_dtype(vocab_size: int) -> type[np.number]:
    """Megatron's rule: uint16 below 65,500 entries, int32 otherwise."""
    return np.uint16 if vocab_size < 65500 else np.int32


def shard_prefix(directory: str | Path, split: str, rank: int) -> Path:
    """`<directory>/<split>-<5-digit rank>`; `.bin` and `.idx` are added to it."""
    return Path(directory) / f"{split}-{rank:05d}"


def check_and_cast(tokens: Any, vocab_size: int, where: str = "the token shard") -> np.ndarray:
    """Token ids as a 1-D array of the shard dtype for `vocab_size`, after checking they are integers in
    [0, vocab_size)."""
    ids = np.asarray(tokens)
    if ids.ndim != 1:
        raise ValueError(f"a document is a 1-D sequence of token ids, got shape {ids.shape}")
    if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must be integers in [0, {vocab_size}) for {where}")
    return ids.astype(optimal_dtype(vocab_size), copy=False)


class IndexedDatasetWriter:
    """Appends documents to `<prefix>.bin` and writes `<prefix>.idx` on `finalize()`.

    Both files are written under temporary names and moved into place at the end, so a reader never sees a half
    shard and a killed task leaves no file that looks finished.
    """

    def __init__(self, prefix: str | Path, vocab_size: int):
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.prefix = Path(prefix)
        self.vocab_size = vocab_size
        self.dtype = optimal_dtype(vocab_size)
        self.bin_path = self.prefix.with_name(self.prefix.name + ".bin")
        self.idx_path = self.prefix.with_name(self.prefix.name + ".idx")
        self._bin_tmp = self.bin_path.with_name(self.bin_path.name + ".tmp")
        self._idx_tmp = self.idx_path.with_name(self.idx_path.name + ".tmp")
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._bin = open(self._bin_tmp, "wb")
        self.sequence_lengths: list[int] = []
        self.document_indices: list[int] = [0]
        self.tokens = 0

    def add_document(self, tokens: Any) -> None:
        """Append one document (a sequence of token ids, EOS included if wanted) as one sequence."""
        if self._bin is None:
            raise RuntimeError("writer already finalized")
        self.add_checked(check_and_cast(tokens, self.vocab_size, str(self.prefix)))

    def add_checked(self, ids: np.ndarray) -> None:
        """`add_document` for ids that `check_and_cast` has already checked against this vocabulary and cast."""
        self.add_checked_batch(ids, np.asarray([ids.size]))

    def add_checked_batch(self, ids: np.ndarray, sizes: np.ndarray) -> None:
        """Many documents at once, as the tokenize stage writes them (it checks and casts a whole batch, then
        hands each writer its documents): `ids` holds them back to back, `sizes` their lengths; one write."""
        if self._bin is None:
            raise RuntimeError("writer already finalized")
        if ids.dtype != self.dtype:
            raise ValueError(
                f"add_checked_batch takes {np.dtype(self.dtype).name} ids, got {ids.dtype} for {self.prefix}"
            )
        sizes = np.asarray(sizes, dtype=np.int64)
        if sizes.ndim != 1 or (sizes.size and sizes.min() < 0) or int(sizes.sum()) != ids.size:
            raise ValueError(f"sizes must be 1-D lengths adding up to the {ids.size} ids, for {self.prefix}")
        self._bin.write(ids.tobytes(order="C"))
        first = len(self.sequence_lengths) + 1
        self.sequence_lengths.extend(sizes.tolist())
        self.document_indices.extend(range(first, len(self.sequence_lengths) + 1))
        self.tokens += int(ids.size)

    @property
    def documents(self) -> int:
        return len(self.document_indices) - 1

    def finalize(self) -> None:
        if self._bin is None:
            return
        self._bin.close()
        self._bin = None
        itemsize = np.dtype(self.dtype).itemsize
        lengths = np.asarray(self.sequence_lengths, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            pointers[1:] = np.cumsum(lengths[:-1], dtype=np.int64) * itemsize
        with open(self._idx_tmp, "wb") as f:
            f.write(INDEX_HEADER)
            f.write(struct.pack("<Q", INDEX_VERSION))
            f.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            f.write(struct.pack("<Q", len(lengths)))
            f.write(struct.pack("<Q", len(self.document_indices)))
            f.write(lengths.tobytes(order="C"))
            f.write(pointers.tobytes(order="C"))
            f.write(np.asarray(self.document_indices, dtype=np.int64).tobytes(order="C"))
        os.replace(self._bin_tmp, self.bin_path)
        os.replace(self._idx_tmp, self.idx_path)

    def abort(self) -> None:
        """Drop the temporary files (after an error)."""
        if self._bin is not None:
            self._bin.close()
            self._bin = None
        for p in (self._bin_tmp, self._idx_tmp):
            p.unlink(missing_ok=True)

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()


def read_index_header(path: str | Path) -> tuple[type[np.number], int, int]:
    """(token dtype, sequences, documents) from an .idx file's header; ValueError if it is not an MMIDIDX index."""
    size = len(INDEX_HEADER) + struct.calcsize("<QBQQ")
    with open(path, "rb") as f:
        head = f.read(size)
    if len(head) < size or not head.startswith(INDEX_HEADER):
        raise ValueError(f"{path} is not a Megatron MMIDIDX index")
    version, code, sequences, doc_indices = struct.unpack("<QBQQ", head[len(INDEX_HEADER) :])
    if version != INDEX_VERSION or code not in CODE_DTYPES:
        raise ValueError(f"{path}: unsupported index version {version} or dtype code {code}")
    return CODE_DTYPES[code], sequences, doc_indices - 1  # document_indices starts with a 0


def build_meta(
    *,
    tokenizer: str | Path,
    tokenizer_sha256: str,
    vocab_size: int,
    eos_id: int,
    bos_id: int | None,
    weight: float = 1.0,
    documents: dict[str, int] | None = None,
    tokens: dict[str, int] | None = None,
    splits: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """The `meta.json` object of one dataset folder (see train/data.py `ShardMeta` for the reader's checks)."""
    return {
        "tokenizer": str(tokenizer),
        "tokenizer_sha256": tokenizer_sha256,
        "vocab_size": int(vocab_size),
        "dtype": np.dtype(optimal_dtype(vocab_size)).name,
        "eos_id": int(eos_id),
        "bos_id": None if bos_id is None else int(bos_id),
        "weight": float(weight),
        "documents": dict(documents or {}),
        "tokens": dict(tokens or {}),
        "splits": {k: dict(v) for k, v in (splits or {}).items()},
    }


def write_meta(directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write `<directory>/meta.json` atomically."""
    path = Path(directory) / "meta.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
