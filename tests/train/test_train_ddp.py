"""Two CPU processes (gloo) with batch b each train like one process with batch 2b: same samples, same losses,
with DDP and with FSDP2 (whose checkpoint is gathered into one full state dict and resumes)."""

from __future__ import annotations

import copy
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.train.helpers import ddp_worker, make_job, read_log
from train.checkpoint import load_checkpoint
from train.pretrain import pretrain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="gloo backend not built")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tokenizer_path, docs_dataset, capfd):
    settings = dict(max_steps=4, checkpoint_every=4, grad_accum=2, eval_every=2, eval_batches=4)
    one = make_job(tmp_path / "one", tokenizer_path, [docs_dataset], batch_size=4, **settings)
    two = make_job(tmp_path / "two", tokenizer_path, [docs_dataset], batch_size=2, **settings)
    fsdp = make_job(tmp_path / "fsdp", tokenizer_path, [docs_dataset], batch_size=2, fsdp=True, **settings)
    fsdp_first_half = copy.deepcopy(fsdp)
    fsdp_first_half.train.max_steps = 2  # warmup is 2 steps, so steps 1-2 have the same LR in both schedules
    pretrain(one)
    mp.spawn(ddp_worker, args=(2, _free_port(), [two, fsdp_first_half, fsdp]), nprocs=2, join=True)
    assert f"resuming from {tmp_path / 'fsdp' / 'ckpt-0000002.pt'} (step 2)" in capfd.readouterr().out

    a = read_log(tmp_path / "one")
    sa = load_checkpoint(tmp_path / "one" / "ckpt-0000004.pt")
    for run in ("two", "fsdp"):
        b = read_log(tmp_path / run)
        assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
        for key in ("loss", "grad_norm", "val_loss", "val_bpb"):
            x = [r.get(key) for r in a if r.get(key) is not None]
            y = [r.get(key) for r in b if r.get(key) is not None]
            assert len(x) == len(y) > 0
            assert x == pytest.approx(y, rel=1e-5, abs=1e-6), (run, key)  # only the summation order differs
        sb = load_checkpoint(tmp_path / run / "ckpt-0000004.pt")
        assert sa["loader"]["counts"] == sb["loader"]["counts"] == [4 * 2 * 4]
        assert sa["model"].keys() == sb["model"].keys()
        for k in sa["model"]:
            torch.testing.assert_close(sa["model"][k], sb["model"][k], rtol=1e-4, atol=1e-6)
