"""Packing, shuffling, mixing and per-rank splitting of the token shards (train/data.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.tokenizer import Tokenizer
from tests.train.helpers import token_ids, write_dataset
from train.data import Loader, Mixture, PackedSequences, ShardsError, TokenDataset, check_datasets


def _stream(ds: TokenDataset, order) -> np.ndarray:
    return np.concatenate([ds.document(int(d)) for d in order]).astype(np.int64)


def test_packing_cuts_the_document_stream_every_seq_len(docs_dataset):
    ds = TokenDataset(docs_dataset, "train")
    T = 32
    plain = PackedSequences(ds, T, seed=0, shuffle=False)
    stream = _stream(ds, range(ds.num_documents))
    assert plain.num_samples == (len(stream) - 1) // T
    for k in (0, 1, 57, plain.num_samples - 1):
        assert plain.sample(k).tolist() == stream[k * T : k * T + T + 1].tolist()

    shuffled = PackedSequences(ds, T, seed=3)
    first = [shuffled.sample(k) for k in range(shuffled.num_samples)]
    stream0 = _stream(ds, shuffled._doc_order)
    starts = sorted(k * T for k in shuffled._sample_order)
    assert starts == list(range(0, shuffled.num_samples * T, T))  # each window exactly once per epoch
    for k in (0, 5, 99):
        s = int(shuffled._sample_order[k]) * T
        assert first[k].tolist() == stream0[s : s + T + 1].tolist()
    second = shuffled.sample(shuffled.num_samples)  # epoch 1 reshuffles
    assert shuffled._epoch == 1 and not np.array_equal(second, first[0])


def test_order_is_a_function_of_the_seed(docs_dataset):
    ds = TokenDataset(docs_dataset, "train")

    def batches(seed, n=3):
        loader = Loader([PackedSequences(ds, 16, seed)], [1.0], batch_size=4, grad_accum=2)
        return [torch.cat([x for x, _ in loader.next_step()]) for _ in range(n)]

    a, b, c = batches(1), batches(1), batches(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    x, y = Loader([PackedSequences(ds, 16, 1)], [1.0], batch_size=4).next_step()[0]
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one


def test_loader_state_restores_the_exact_order(tmp_path, tokenizer_path, documents):
    ds = TokenDataset(write_dataset(tmp_path / "small", Tokenizer(tokenizer_path), documents[:6]), "train")

    def make():
        return Loader([PackedSequences(ds, 16, 5)], [1.0], batch_size=8)

    reference = make()
    stream = [reference.next_step()[0][0] for _ in range(40)]  # crosses an epoch boundary
    assert reference.state_dict()["epochs"][0] == 40 * 8 // reference.sources[0].num_samples >= 1
    first = make()
    for _ in range(25):
        first.next_step()
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert all(torch.equal(resumed.next_step()[0][0], stream[i]) for i in range(25, 40))


def test_mixture_weights_are_honoured(tmp_path, tokenizer_path):
    tok = Tokenizer(tokenizer_path)
    rng = np.random.default_rng(0)
    # two datasets with disjoint id ranges, so a row tells which dataset it came from
    a = write_dataset(tmp_path / "a", tok, token_ids(rng, 10, 200, 60), weight=3.0)
    b = write_dataset(tmp_path / "b", tok, token_ids(rng, 300, 500, 60), weight=1.0)
    sets = [TokenDataset(a, "train"), TokenDataset(b, "train")]
    weights = [s.meta.weight for s in sets]
    loader = Loader([PackedSequences(s, 8, 0) for s in sets], weights, batch_size=16)
    rows = torch.cat([loader.next_step()[0][0] for _ in range(25)])  # 400 rows, several epochs of each
    from_a = int((rows.max(dim=1).values < 200).sum())
    from_b = int((rows.min(dim=1).values >= 300).sum())
    assert (from_a, from_b) == (300, 100)
    m = Mixture([0.7, 0.2, 0.1])
    picks = m.take(1000)
    for i, share in enumerate([0.7, 0.2, 0.1]):
        assert abs(sum(1 for d, _ in picks if d == i) - share * 1000) <= 1
        assert [n for d, n in picks if d == i] == list(range(int(m.counts[i])))  # each dataset read in order
    with pytest.raises(ValueError):
        Mixture([0.0, 0.0])


def test_ranks_split_the_global_batch(docs_dataset):
    ds = TokenDataset(docs_dataset, "train")
    single = Loader([PackedSequences(ds, 16, 9)], [1.0], batch_size=8, grad_accum=2)
    ranks = [
        Loader([PackedSequences(ds, 16, 9)], [1.0], batch_size=2, grad_accum=2, rank=r, world_size=4) for r in range(4)
    ]
    for _ in range(3):
        whole = torch.cat([x for x, _ in single.next_step()])
        parts = [torch.cat([x for x, _ in rk.next_step()]) for rk in ranks]
        assert torch.equal(torch.cat(parts), whole)  # disjoint, and together the same samples
    assert all(rk.state_dict()["counts"] == single.state_dict()["counts"] for rk in ranks)


def test_check_refuses_foreign_shards(tmp_path, tokenizer_path):
    tok = Tokenizer(tokenizer_path)
    good = write_dataset(tmp_path / "good", tok, ["plain text"])
    other = write_dataset(tmp_path / "other", tok, ["plain text"], sha256="f" * 64)
    big = write_dataset(tmp_path / "big", tok, [[5, 6, tok.vocab_size + 3]], vocab_size=tok.vocab_size + 10)
    ok = {"tokenizer_sha256": tok.sha256, "vocab_size": tok.vocab_size, "model_vocab": tok.vocab_size}
    check_datasets([TokenDataset(good, "train")], **ok)
    with pytest.raises(ShardsError, match=r"other/meta.json.*sha256"):
        check_datasets([TokenDataset(other, "train")], **ok)
    with pytest.raises(ShardsError, match=rf"big/train-00000.bin: token id {tok.vocab_size + 3}"):
        check_datasets([TokenDataset(big, "train")], **ok)
    with pytest.raises(ShardsError, match="vocab_size"):
        check_datasets([TokenDataset(good, "train")], **{**ok, "vocab_size": tok.vocab_size + 1})
    with pytest.raises(ShardsError, match="fewer than one sample"):
        PackedSequences(TokenDataset(good, "train"), 64, 0)
