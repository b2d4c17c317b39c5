"""Continued pretraining (Chinese-LLaMA-Alpaca's recipe): start from an exported Hugging Face model, grow it to a
merged Chinese tokenizer, train the embeddings alone, then LoRA with the embeddings in full; resume and start
semantics; the shard/tokenizer guard; Hugging Face folders with sharded safetensors.

The start model is a tiny model pretrained here on English text (standard-library docstrings, tests/train/helpers.py)
with an English tokenizer; the Chinese text is the bundled classical Chinese books (data/sample/books_zh.jsonl.gz)."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from model.tokenizer import Tokenizer
from model.vocab import compare, merge_vocab
from tests.train.helpers import ddp_worker, make_job, read_log, train_sentencepiece, write_dataset
from train.checkpoint import ResumeError, load_checkpoint
from train.config import LoraSection, PretrainSection
from train.data import ShardsError
from train.evaluate import text_loss
from train.export import export, load_safetensors
from train.pretrain import PretrainJob, pretrain, start_model
from train.source import load_export, load_model

REPO = Path(__file__).resolve().parents[2]
BOOKS_ZH = REPO / "data" / "sample" / "books_zh.jsonl.gz"
SEQ = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on the shared 2-core machine, two threads of a tiny model's small matmuls wait on each
    other (a training step measured 0.05 s with one thread, 0.5-3 s with two under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def chinese_documents() -> list[str]:
    with gzip.open(BOOKS_ZH, "rt", encoding="utf-8") as f:
        return [json.loads(line)["content"] for line in f]


@pytest.fixture(scope="module")
def english_start(tmp_path_factory, tokenizer_path, docs_dataset) -> Path:
    """A tiny model pretrained on the English docstrings, exported as a Hugging Face folder."""
    root = tmp_path_factory.mktemp("english")
    job = make_job(root / "run", tokenizer_path, [docs_dataset], max_steps=60, checkpoint_every=60, eval_every=0)
    job.train.log_every = 20
    pretrain(job)
    return export(load_model(root / "run"), root / "hf")


@pytest.fixture(scope="module")
def chinese(tmp_path_factory, tokenizer_path) -> dict:
    """A Chinese tokenizer merged onto the English one, Chinese token shards written with it, and held-out Chinese
    documents (never seen by either tokenizer or by training)."""
    root = tmp_path_factory.mktemp("chinese")
    docs = chinese_documents()
    held_out, train_docs = docs[::10][:20], [d for i, d in enumerate(docs) if i % 10][:150]
    zh_model = train_sentencepiece(root / "zh.model", train_docs, vocab_size=3000, character_coverage=0.98)
    mapping = merge_vocab(tokenizer_path, zh_model, root / "merged.model")
    merged = Tokenizer(root / "merged.model")
    shards = write_dataset(root / "books_zh", merged, train_docs[10:], train_docs[:10], lang="zh")
    heldout_path = root / "heldout_zh.jsonl"
    heldout_path.write_text(
        "".join(json.dumps({"text": d, "lang": "zh"}, ensure_ascii=False) + "\n" for d in held_out), encoding="utf-8"
    )
    return {
        "merged": merged.path,
        "mapping": mapping,
        "shards": shards,
        "heldout": heldout_path,
        "train_docs": train_docs[10:],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpt_job(out: Path, init_from: Path, data: list[Path], tokenizer: Path | None, **train) -> PretrainJob:
    settings = dict(
        max_steps=6,
        checkpoint_every=100,
        batch_size=8,
        seq_len=SEQ,
        lr=1e-2,
        min_lr=1e-3,
        warmup=0,
        eval_every=0,
        eval_batches=2,
        log_every=1,
        device="cpu",
        progress=False,
        seed=3,
        init_from=str(init_from),
    )
    settings.update(train)
    return PretrainJob(out, tokenizer, list(data), train=PretrainSection(**settings), init_from=init_from)


def zh_bpb(source: Path, heldout: Path) -> float:
    loaded = load_model(source)
    with torch.no_grad():
        return text_loss(loaded.model.eval(), loaded.tokenizer, heldout, batch_size=16, seq_len=SEQ)["zh"]["bpb"]


@pytest.mark.slow
def test_recipe_lowers_chinese_bits_per_byte_and_tokens_per_character(tmp_path, english_start, chinese):
    """Export -> merge -> Chinese shards -> stage 1 (embeddings only) -> stage 2 (LoRA + embeddings) -> export."""
    base_tok, merged_tok = Tokenizer(english_start / "tokenizer.model"), Tokenizer(chinese["merged"])

    # the merge's prediction, measured on held-out text: Chinese tokens per character fall to this share ...
    rows = {r["model"]: r for r in compare([base_tok.path, merged_tok.path], chinese["heldout"]) if r["lang"] == "zh"}
    predicted = rows[str(merged_tok.path)]["tokens_vs_first"]
    assert predicted < 0.6, rows  # the English tokenizer writes most Han characters as 3 UTF-8 byte pieces
    # ... and what the training shards realise: their tokens against the same documents written with the base
    chars = sum(len(d) for d in chinese["train_docs"])
    base_tokens = sum(len(ids) for ids in base_tok.sp.encode(chinese["train_docs"]))
    meta = json.loads((chinese["shards"] / "meta.json").read_text())
    merged_tokens = meta["splits"]["train"]["tokens"] - len(chinese["train_docs"])  # less one EOS per document
    realised = merged_tokens / base_tokens
    assert realised == pytest.approx(predicted, rel=0.1), (realised, predicted)
    assert merged_tokens / chars < 0.6 * base_tokens / chars

    stage1 = cpt_job(
        tmp_path / "stage1",
        english_start,
        [chinese["shards"]],
        chinese["merged"],
        max_steps=30,
        embedding_only_steps=30,
    )
    pretrain(stage1)
    start = load_export(english_start).model.state_dict()
    after1 = load_checkpoint(tmp_path / "stage1" / "ckpt-0000030.pt")
    assert after1["model_config"]["vocab_size"] == merged_tok.vocab_size
    for name, w in start.items():  # stage 1 moved the embeddings and output layer only
        moved = not torch.equal(after1["model"][name][: w.shape[0]], w)
        assert moved == (name in ("embed_tokens.weight", "lm_head.weight")), name

    lora = LoraSection(enabled=True, rank=8, alpha=32, dropout=0.05, train_embeddings=True)
    stage2 = cpt_job(tmp_path / "stage2", tmp_path / "stage1", [chinese["shards"]], None, max_steps=60, lora=lora)
    pretrain(stage2)
    ckpt = load_checkpoint(tmp_path / "stage2" / "ckpt-0000060.pt")
    assert ckpt["lora"]["rank"] == 8 and ckpt["origin"]["init_from"] == str(tmp_path / "stage1")
    assert any("lora_A" in k for k in ckpt["model"])
    log = read_log(tmp_path / "stage2")
    assert log[0]["step"] == 1 and log[-1]["step"] == 60  # a new run with init_from starts at step 0

    # export merges the adapters: plain Llama weights, same logits as the checkpoint with its adapters
    hf = export(load_model(tmp_path / "stage2"), tmp_path / "hf_zh")
    assert not any("lora" in k for k in load_safetensors(hf / "model.safetensors"))
    ids = torch.tensor([merged_tok.encode(chinese_documents()[0][:200])[:SEQ]])
    with torch.no_grad():
        adapted = load_model(tmp_path / "stage2", merge=False).model.eval()(ids)[0]
        torch.testing.assert_close(load_export(hf).model.eval()(ids)[0], adapted, rtol=1e-4, atol=1e-4)

    before, after = zh_bpb(english_start, chinese["heldout"]), zh_bpb(hf, chinese["heldout"])
    print(f"tokens vs base: predicted {predicted:.3f}, realised {realised:.3f}; zh bpb {before:.3f} -> {after:.3f}")
    assert after < 0.8 * before, (before, after)


@pytest.mark.slow
def test_resumed_run_resumes_and_new_run_starts_from_the_weights(tmp_path, english_start, chinese, capsys):
    lora = LoraSection(enabled=True, rank=4, alpha=8, dropout=0.1, train_embeddings=True)
    data, merged = [chinese["shards"]], chinese["merged"]
    kw = dict(max_steps=5, embedding_only_steps=3, lora=lora, checkpoint_every=2)
    whole = cpt_job(tmp_path / "whole", english_start, data, merged, **kw)
    pretrain(whole)
    parts = cpt_job(tmp_path / "parts", english_start, data, merged, **kw)
    assert pretrain(parts, stop_after_step=2)["step"] == 2  # preempted inside the embeddings-only phase
    capsys.readouterr()
    pretrain(parts)
    assert "train.pretrain.init_from" in capsys.readouterr().out  # said: the checkpoint wins over init_from
    a, b = read_log(tmp_path / "whole"), read_log(tmp_path / "parts")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    sa = load_checkpoint(tmp_path / "whole" / "ckpt-0000005.pt")["model"]
    sb = load_checkpoint(tmp_path / "parts" / "ckpt-0000005.pt")["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)

    # a new run starts from the start model's weights (old rows as exported, new rows their mean) at step 0
    start = start_model(cpt_job(tmp_path / "new", english_start, data, merged, **kw), None, None, lambda _: None)
    exported = load_export(english_start).model.state_dict()
    n_old = exported["embed_tokens.weight"].shape[0]
    for name, w in start.model.state_dict().items():
        if "lora_" in name:
            continue
        if name in ("embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(w[:n_old], exported[name])
            torch.testing.assert_close(w[n_old:], exported[name].mean(0).expand(w.shape[0] - n_old, -1))
        else:
            assert torch.equal(w, exported[name]), name

    # other adapters on resume are refused, naming the checkpoint
    other = cpt_job(
        tmp_path / "parts", english_start, data, merged, **{**kw, "lora": lora.model_copy(update={"rank": 8})}
    )
    other.train.max_steps = 7
    with pytest.raises(ResumeError, match="ckpt-0000005.pt was trained with LoRA"):
        pretrain(other)


def test_shards_of_another_tokenizer_are_refused(tmp_path, english_start, chinese, docs_dataset):
    # grown to the merged tokenizer, but the shards were written with the English one: both are named
    job = cpt_job(tmp_path / "run", english_start, [docs_dataset], chinese["merged"])
    with pytest.raises(ShardsError, match=r"docs/meta.json: shards were written with tokenizer .*merged.model"):
        pretrain(job)
    # not grown (the start's tokenizer) but the shards are the merged tokenizer's
    job = cpt_job(tmp_path / "run2", english_start, [chinese["shards"]], None)
    with pytest.raises(ShardsError, match=r"books_zh/meta.json: .*merged.model.*hf/tokenizer.model"):
        pretrain(job)
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").glob("ckpt-*"))


def test_continued_pretraining_settings_need_init_from():
    with pytest.raises(ValueError, match="need init_from"):
        PretrainSection(embedding_only_steps=5)
    with pytest.raises(ValueError, match="need init_from"):
        PretrainSection(lora=LoraSection(enabled=True))
    with pytest.raises(ValueError, match="fsdp"):
        PretrainSection(init_from="x", fsdp=True, lora=LoraSection(enabled=True))


@pytest.mark.slow
def test_sharded_hugging_face_folder_loads(tmp_path, english_start):
    """A folder that transformers' save_pretrained wrote in shards (model.safetensors.index.json) loads with the
    same logits as the single-file export it came from."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaForCausalLM.from_pretrained(english_start)
    sharded = tmp_path / "sharded"
    hf.save_pretrained(sharded, max_shard_size="20KB", safe_serialization=True)
    (sharded / "tokenizer.model").write_bytes((english_start / "tokenizer.model").read_bytes())
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (sharded / "model.safetensors").exists()
    single, split = load_export(english_start), load_export(sharded)
    ids = torch.tensor([single.tokenizer.encode("Return a new list containing all items from the iterable.")])
    with torch.no_grad():
        torch.testing.assert_close(split.model.eval()(ids)[0], single.model.eval()(ids)[0], rtol=0, atol=0)
    # a shard missing from the folder is named
    next(iter(sharded.glob("model-00002-*.safetensors"))).unlink()
    with pytest.raises(ValueError, match="model-00002-.*missing"):
        load_export(sharded)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="gloo backend not built")
def test_two_processes_match_one_through_both_stages(tmp_path, english_start, chinese):
    """DDP through the embeddings-only phase (the blocks get no gradient: DDP must not wait for them) into LoRA +
    embeddings: two processes with batch b train like one with batch 2b."""
    lora = LoraSection(enabled=True, rank=4, alpha=8, dropout=0.0, train_embeddings=True)
    kw = dict(max_steps=4, embedding_only_steps=2, lora=lora, checkpoint_every=4)
    one = cpt_job(tmp_path / "one", english_start, [chinese["shards"]], chinese["merged"], batch_size=8, **kw)
    two = cpt_job(tmp_path / "two", english_start, [chinese["shards"]], chinese["merged"], batch_size=4, **kw)
    pretrain(one)
    mp.spawn(ddp_worker, args=(2, _free_port(), [two]), nprocs=2, join=True)
    a, b = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5)
    sa = load_checkpoint(tmp_path / "one" / "ckpt-0000004.pt")["model"]
    sb = load_checkpoint(tmp_path / "two" / "ckpt-0000004.pt")["model"]
    for k in sa:
        # Adam divides by sqrt(v): in embedding rows of tokens seen once or twice, whose gradients are tiny, the
        # summation order of two processes moves a few weights by ~1e-5 (measured 5 of 106,624 elements)
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=5e-5)
