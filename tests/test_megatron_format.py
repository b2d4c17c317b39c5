"""The token-shard writer (stages/megatron.py) against Megatron-LM's MMIDIDX layout, and the trainer's reader
(train/data.py) against the writer."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from stages.megatron import IndexedDatasetWriter, build_meta, optimal_dtype, shard_prefix, write_meta
from train.data import IndexedDataset, ShardsError, TokenDataset, read_meta

DOCS = [[5, 17, 900, 1], [3, 1], [], [42] * 7 + [1]]


def _write(prefix, docs, vocab):
    with IndexedDatasetWriter(prefix, vocab) as w:
        for d in docs:
            w.add_document(d)
    return w


def _parse_idx(path):
    """Decode an .idx by hand from Megatron's byte layout (independent of train/data.py)."""
    raw = path.read_bytes()
    header, version, code, n_seq, n_doc = raw[:9], *struct.unpack("<QBQQ", raw[9:34])
    off = 34
    lengths = np.frombuffer(raw, np.int32, n_seq, off)
    off += 4 * n_seq
    pointers = np.frombuffer(raw, np.int64, n_seq, off)
    off += 8 * n_seq
    doc_idx = np.frombuffer(raw, np.int64, n_doc, off)
    off += 8 * n_doc
    return header, version, code, lengths, pointers, doc_idx, len(raw) - off


def test_uint16_layout_follows_megatron(tmp_path):
    prefix = shard_prefix(tmp_path, "train", 3)
    assert prefix.name == "train-00003"
    _write(prefix, DOCS, vocab=1000)
    header, version, code, lengths, pointers, doc_idx, trailing = _parse_idx(tmp_path / "train-00003.idx")
    assert header == b"MMIDIDX\x00\x00" and version == 1
    assert code == 8  # DType.uint16 in Megatron's enum
    assert lengths.tolist() == [4, 2, 0, 8]
    assert pointers.tolist() == [0, 8, 12, 12]  # byte offsets: 2 bytes per uint16 token
    assert doc_idx.tolist() == [0, 1, 2, 3, 4]  # leading 0, then one sequence per document
    assert trailing == 0
    flat = [t for d in DOCS for t in d]
    assert (tmp_path / "train-00003.bin").read_bytes() == np.array(flat, dtype="<u2").tobytes()


@pytest.mark.parametrize(("vocab", "dtype", "code", "itemsize"), [(65499, np.uint16, 8, 2), (65500, np.int32, 4, 4)])
def test_dtype_rule_at_the_boundary(tmp_path, vocab, dtype, code, itemsize):
    assert optimal_dtype(vocab) is dtype
    _write(tmp_path / "s", [[vocab - 1, 0], [7]], vocab)
    _, _, got_code, _, pointers, _, _ = _parse_idx(tmp_path / "s.idx")
    assert got_code == code
    assert pointers.tolist() == [0, 2 * itemsize]
    ds = IndexedDataset(tmp_path / "s")
    assert ds.dtype == np.dtype(dtype)
    assert ds[0].tolist() == [vocab - 1, 0]  # the top id survives (no uint16 overflow above 65,535)


def test_reader_reads_back_what_was_written(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 120_000, size=int(rng.integers(0, 50))).tolist() for _ in range(200)]
    _write(tmp_path / "big", docs, 120_000)
    ds = IndexedDataset(tmp_path / "big")
    assert len(ds) == 200 and ds.document_count == 201
    assert [ds[i].tolist() for i in range(len(ds))] == docs
    starts, lengths = ds.document_spans()
    assert lengths.tolist() == [len(d) for d in docs]
    assert all(ds.tokens[s : s + n].tolist() == d for s, n, d in zip(starts, lengths, docs))


def test_batch_writes_the_same_files_as_one_document_at_a_time(tmp_path):
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, 30_000, size=int(rng.integers(0, 40))).tolist() for _ in range(300)]
    _write(tmp_path / "one", docs, 30_000)
    with IndexedDatasetWriter(tmp_path / "batched", 30_000) as w:
        for lo, hi in ((0, 1), (1, 120), (120, 120), (120, 300)):  # batches of one, many and no documents
            part = docs[lo:hi]
            ids = np.asarray([t for d in part for t in d], dtype=np.uint16)
            w.add_checked_batch(ids, np.asarray([len(d) for d in part]))
    assert w.documents == 300 and w.tokens == sum(map(len, docs))
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"batched{suffix}").read_bytes() == (tmp_path / f"one{suffix}").read_bytes()


def test_batch_sizes_must_cover_the_ids(tmp_path):
    w = IndexedDatasetWriter(tmp_path / "a", 100)
    ids = np.asarray([1, 2, 3], dtype=np.uint16)
    for sizes in ([1, 1], [2, 2], [4, -1]):
        with pytest.raises(ValueError, match="sizes must be"):
            w.add_checked_batch(ids, np.asarray(sizes))
    with pytest.raises(ValueError, match="uint16"):
        w.add_checked_batch(ids.astype(np.int64), np.asarray([3]))
    w.abort()


def test_writer_is_atomic_and_checks_ids(tmp_path):
    w = IndexedDatasetWriter(tmp_path / "a", 100)
    w.add_document([1, 2, 3])
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.idx").exists()
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        w.add_document([5, 100])
    with pytest.raises(ValueError):
        w.add_document([-1])
    w.finalize()
    assert IndexedDataset(tmp_path / "a")[0].tolist() == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.idx"]

    with pytest.raises(RuntimeError, match="boom"), IndexedDatasetWriter(tmp_path / "b", 100) as w2:
        w2.add_document([1])
        raise RuntimeError("boom")
    assert not any(p.name.startswith("b.") for p in tmp_path.iterdir())  # nothing half-written is left


def test_reader_rejects_damaged_files(tmp_path):
    _write(tmp_path / "x", DOCS, 1000)
    idx = (tmp_path / "x.idx").read_bytes()
    (tmp_path / "y.idx").write_bytes(b"NOTMEGA\x00\x00" + idx[9:])
    (tmp_path / "y.bin").write_bytes((tmp_path / "x.bin").read_bytes())
    with pytest.raises(ShardsError, match="bad header"):
        IndexedDataset(tmp_path / "y")
    (tmp_path / "z.idx").write_bytes(idx)
    (tmp_path / "z.bin").write_bytes((tmp_path / "x.bin").read_bytes()[:-2])
    with pytest.raises(ShardsError, match="z.bin"):
        IndexedDataset(tmp_path / "z")


def test_meta_round_trip_and_validation(tmp_path):
    meta = build_meta(
        tokenizer="tok.model",
        tokenizer_sha256="ab" * 32,
        vocab_size=70000,
        eos_id=2,
        bos_id=None,
        weight=0.5,
        documents={"zh": 3},
        tokens={"zh": 30},
        splits={"train": {"documents": 3, "tokens": 30}},
    )
    assert meta["dtype"] == "int32"
    write_meta(tmp_path, meta)
    m = read_meta(tmp_path)
    assert (m.vocab_size, m.dtype, m.weight, m.splits["train"].tokens) == (70000, "int32", 0.5, 30)

    bad = dict(meta, dtype="uint16")  # would overflow: ids above 65,535
    (tmp_path / "meta.json").write_text(json.dumps(bad))
    with pytest.raises(ShardsError, match="meta.json"):
        read_meta(tmp_path)
    with pytest.raises(ShardsError, match="not found"):
        read_meta(tmp_path / "nowhere")


def test_dataset_folder_lists_documents_across_shards(tmp_path):
    for r, docs in enumerate([[[1, 2], [3]], [[4, 5, 6]]]):
        _write(shard_prefix(tmp_path, "train", r), docs, 50)
    _write(shard_prefix(tmp_path, "valid", 0), [[9, 9]], 50)
    write_meta(tmp_path, build_meta(tokenizer="t", tokenizer_sha256="0" * 64, vocab_size=50, eos_id=1, bos_id=None))
    train = TokenDataset(tmp_path, "train")
    assert [train.document(i).tolist() for i in range(train.num_documents)] == [[1, 2], [3], [4, 5, 6]]
    assert train.num_tokens == 6 and train.max_token_id() == (6, tmp_path / "train-00001.bin")
    assert TokenDataset(tmp_path, "valid").num_tokens == 2
