"""Tokenizer training, vocabulary merge and compare, and the tokenize stage's Megatron shards, on real text."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from pipeline import runner
from pipeline.config import load_config
from pipeline.verify import verify
from stages.io import ShardReader
from stages.megatron import IndexedDatasetWriter
from stages.tokenize import TokenizeReader, dataset_name, is_valid
from stages.tokenizer import train_sentencepiece
from tests.conftest import SAMPLE, write_config
from train.data import IndexedDataset

SOURCES = f"""
[[sources]]
name = "zh"
path = "zh.jsonl"
format = "jsonl"
weight = 3.0

[[sources]]
name = "en"
path = "en.parquet"
format = "parquet"
weight = 1.0

[[sources]]
name = "code"
path = "{SAMPLE / "code"}"
format = "text"
kind = "code"
glob = "**/*.py"
weight = 1.0

[tokenizer]
vocab_size = 3000
sample_chars = 300000
mix_by = "source"
threads = 1

[tokens]
valid_fraction = 0.1

[stages.langid]
enabled = false

[stages.filter]
enabled = false

[stages.dedup]
enabled = false

[stages.pii]
enabled = false

[stages.decontam]
enabled = false
"""


def make_corpus(folder: Path) -> None:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        zh = [json.loads(line)["content"] for line in f][:400]
    (folder / "zh.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in zh))
    articles = pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()[:25]
    en = [p for a in articles for p in a.split("\n\n") if len(p) > 200]  # paragraphs: enough documents to sample
    pq.write_table(pa.table({"text": en}), folder / "en.parquet")


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    make_corpus(folder)
    cfg = load_config(write_config(folder, SOURCES, tasks=2, workers=1))
    results = runner.run_all(cfg)
    return cfg, dict(zip(runner.enabled_stages(cfg), results, strict=True))


@pytest.fixture(scope="module")
def sp(tokenized):
    cfg, _ = tokenized
    return spm.SentencePieceProcessor(model_file=str(cfg.workdir / "tokenizer" / "tokenizer.model"))


ROUND_TRIP = [
    "中华人民共和国成立于1949年。《论语》：“学而时习之，不亦说乎？”",
    "Debian's package manager resolves dependencies; run `apt-get install -y python3`.",
    "def f(x):\n\tif x  >  1:\n        return {'a': [1, 2]}  # trailing spaces   \n\n\n    return None\n",
    "emoji 👍🏽 👨\u200d👩\u200d👧 🇨🇳 and rare characters 𠀀𪚥 ㊣ ༄༅། ꙮ \u3000全角空格",
    "  leading spaces, double  spaces and a trailing newline\n",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_exact(sp, text):
    assert sp.decode(sp.encode(text)) == text


def test_tokenizer_options(sp, tokenized):
    cfg, results = tokenized
    assert sp.get_piece_size() == 3000
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, 3)
    # digits are split one by one
    assert [sp.id_to_piece(i) for i in sp.encode("2026")] == ["2", "0", "2", "6"]
    # chat-role tokens are reserved control symbols: they have ids, and raw text cannot produce them
    for tok in cfg.tokenizer.special_tokens:
        tid = sp.piece_to_id(tok)
        assert tid > 3 and sp.is_control(tid)
        assert tid not in sp.encode(f"hello {tok} world")
    # no unknown pieces: byte fallback covers everything
    assert 0 not in sp.encode(ROUND_TRIP[3])


def test_sample_follows_source_weights(tokenized):
    _, results = tokenized
    sampled = results["tokenizer"]["sampled_chars"]
    corpus = results["tokenizer"]["corpus_chars"]
    assert sum(sampled.values()) < sum(corpus.values())  # a real sample, not everything
    # zh:en:code weights 3:1:1 over 300k characters; sampling is per document, so allow for document granularity
    total = sum(sampled.values())
    for source, weight in (("zh", 0.6), ("en", 0.2)):
        if corpus[source] > weight * 300000:
            assert abs(sampled[source] / total - weight) < 0.12, sampled


def test_mix_by_lang_needs_langid(tokenized, tmp_path):
    cfg, _ = tokenized
    cfg2 = load_config(
        cfg.file, ["tokenizer.mix_by=lang", f"run.workdir={cfg.workdir}", "tokenizer.out=" + str(tmp_path / "t.model")]
    )
    # rebuild only the tokenizer stage, reading the same ingest output
    import shutil

    shutil.rmtree(cfg.workdir / "tokenizer.bak", ignore_errors=True)
    shutil.copytree(cfg.workdir / "tokenizer", cfg.workdir / "tokenizer.bak")
    try:
        with pytest.raises(Exception, match="some documents have no language yet"):
            runner.run_stage(cfg2, "tokenizer", force=True)
    finally:
        shutil.rmtree(cfg.workdir / "tokenizer", ignore_errors=True)
        shutil.move(cfg.workdir / "tokenizer.bak", cfg.workdir / "tokenizer")


def test_shards_read_back_exactly(tokenized, sp):
    cfg, results = tokenized
    kept = pl.read_parquet(cfg.workdir / "ingest" / "kept" / "*.parquet")
    stats = results["tokenize"]
    assert stats["docs_in"] == stats["kept"] == len(kept)
    tok_dir = cfg.workdir / "tokenize"
    decoded: list[str] = []
    for idx in sorted(tok_dir.glob("*/*.idx")):
        ds = IndexedDataset(str(idx.with_suffix("")))
        for i in range(len(ds)):
            ids = np.asarray(ds[i])
            assert ids[-1] == sp.eos_id()
            decoded.append(sp.decode(ids[:-1].tolist()))
    assert sorted(decoded) == sorted(kept["text"].to_list())
    # per-dataset meta.json: tokenizer identity and counts
    model = cfg.workdir / "tokenizer" / "tokenizer.model"
    import hashlib

    for name in ("zh", "en", "code"):
        meta = json.loads((tok_dir / name / "meta.json").read_text())
        assert meta["tokenizer_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert meta["vocab_size"] == 3000 and meta["dtype"] == "uint16" and meta["eos_id"] == 2
        n = len(kept.filter(pl.col("source") == name))
        assert meta["splits"]["train"]["documents"] + meta["splits"].get("valid", {}).get("documents", 0) == n
        assert meta["weight"] == {"zh": 3.0, "en": 1.0, "code": 1.0}[name]
    assert verify(cfg, quiet=True) == []
    # a lost shard is caught
    victim = sorted(tok_dir.glob("en/train-*.idx"))[0]
    saved = victim.read_bytes()
    victim.unlink()
    try:
        assert any("the shards hold" in p for p in verify(cfg, quiet=True))
    finally:
        victim.write_bytes(saved)


def test_each_shard_holds_its_documents_in_input_order(tokenized, sp):
    """Per task, dataset and split, the shard decodes to exactly the documents that the per-document reader
    (ShardReader) yields for that task and that the dataset and split take, in its order; and the batch reader counts
    what ShardReader counts."""
    cfg, _ = tokenized
    kept, tok_dir, tasks = cfg.workdir / "ingest" / "kept", cfg.workdir / "tokenize", 2
    checked = 0
    for rank in range(tasks):
        documents = ShardReader(kept)
        expected: dict[str, list[str]] = {}
        in_order = []
        for doc in documents.run(rank=rank, world_size=tasks):
            in_order.append((doc.id, doc.text, doc.metadata["source"], doc.metadata["kind"]))
            split = "valid" if is_valid(doc.id, cfg.run.seed, cfg.tokens.valid_fraction) else "train"
            expected.setdefault(f"{dataset_name(doc.metadata['source'])}/{split}-{rank:05d}", []).append(doc.text)
        batches = TokenizeReader(kept, batch_size=7, upsampling=False)
        read = [
            (i, t.decode(), source, kind)
            for b in batches.run(rank=rank, world_size=tasks)
            for i, t, source, kind in zip(b.ids, b.texts, b.columns["source"], b.columns["kind"], strict=True)
        ]
        assert read == in_order
        assert (batches.docs, batches.chars, batches.bytes) == (documents.docs, documents.chars, documents.bytes)
        assert documents.docs > 0
        written = {str(p.relative_to(tok_dir).with_suffix("")) for p in tok_dir.glob(f"*/*-{rank:05d}.idx")}
        assert written == set(expected)
        for name, docs in expected.items():
            ds = IndexedDataset(str(tok_dir / name))
            assert [sp.decode(np.asarray(ds[i])[:-1].tolist()) for i in range(len(ds))] == docs
            checked += len(docs)
    assert checked == pq.ParquetDataset(kept).read(columns=["id"]).num_rows


def test_megatron_index_header_on_real_shard(tokenized):
    cfg, _ = tokenized
    idx = sorted((cfg.workdir / "tokenize" / "zh").glob("train-*.idx"))[0]
    raw = idx.read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, dtype_code, n_seq, n_doc = struct.unpack("<QBQQ", raw[9:34])
    assert (version, dtype_code) == (1, 8)  # Megatron's DType.uint16
    assert n_doc == n_seq + 1
    lengths = np.frombuffer(raw, dtype=np.int32, count=n_seq, offset=34)
    pointers = np.frombuffer(raw, dtype=np.int64, count=n_seq, offset=34 + 4 * n_seq)
    assert pointers[0] == 0 and np.array_equal(np.diff(pointers), lengths[:-1].astype(np.int64) * 2)
    assert idx.with_suffix(".bin").stat().st_size == 2 * int(lengths.sum())


def test_valid_split_is_deterministic_by_id(tokenized):
    cfg, _ = tokenized
    kept = pl.read_parquet(cfg.workdir / "ingest" / "kept" / "*.parquet")
    expected = sum(is_valid(i, cfg.run.seed, 0.1) for i in kept["id"])
    got = sum(
        json.loads(m.read_text())["splits"].get("valid", {}).get("documents", 0)
        for m in (cfg.workdir / "tokenize").glob("*/meta.json")
    )
    assert got == expected and 0 < got < len(kept) * 0.25


def test_tokenize_refusals(tokenized, tmp_path):
    cfg, _ = tokenized
    other = tmp_path / "w"
    base = [f"run.workdir={other}"]
    # unknown tokenizer file
    bad = load_config(cfg.file, [*base, "tokens.tokenizer=/nonexistent/tok.model"])
    import shutil

    shutil.copytree(cfg.workdir / "ingest", other / "ingest")
    with pytest.raises(runner.StageError, match="tok.model does not exist"):
        runner.run_stage(bad, "tokenize")
    # a file that is not a SentencePiece model
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(runner.StageError, match="is not a SentencePiece model"):
        runner.run_stage(load_config(cfg.file, [*base, f"tokens.tokenizer={tmp_path / 'junk.model'}"]), "tokenize")
    # an empty input
    model = cfg.workdir / "tokenizer" / "tokenizer.model"
    for shard in (other / "ingest" / "kept").glob("*.parquet"):
        pq.write_table(pq.read_table(shard).slice(0, 0), shard)
    with pytest.raises(runner.StageError, match="nothing to tokenize"):
        runner.run_stage(load_config(cfg.file, [*base, f"tokens.tokenizer={model}"]), "tokenize")
    # token ids beyond the vocabulary never reach a shard
    w = IndexedDatasetWriter(tmp_path / "x" / "train-00000", vocab_size=3000)
    with pytest.raises(ValueError, match=r"\[0, 3000\)"):
        w.add_document([5, 3000])
    w.abort()


@pytest.mark.slow
def test_vocab_merge_keeps_ids_and_shortens_chinese(tokenized, tmp_path):
    cfg, _ = tokenized
    kept = pl.read_parquet(cfg.workdir / "ingest" / "kept" / "*.parquet")
    for name, sources, vocab in (("en", ["en", "code"], 1500), ("zh", ["zh"], 6000)):
        lines = [ln for t in kept.filter(pl.col("source").is_in(sources))["text"] for ln in t.split("\n") if ln.strip()]
        (tmp_path / f"{name}.txt").write_text("\n".join(lines))
        train_sentencepiece(tmp_path / f"{name}.txt", tmp_path / f"{name}.model", vocab, character_coverage=0.98)
    out = tmp_path / "merged.model"
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokenizer", "merge", "--base", str(tmp_path / "en.model"), "--add",
         str(tmp_path / "zh.model"), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    base = spm.SentencePieceProcessor(model_file=str(tmp_path / "en.model"))
    add = spm.SentencePieceProcessor(model_file=str(tmp_path / "zh.model"))
    merged = spm.SentencePieceProcessor(model_file=str(out))
    assert all(base.id_to_piece(i) == merged.id_to_piece(i) for i in range(base.get_piece_size()))
    base_pieces = {base.id_to_piece(i) for i in range(base.get_piece_size())}
    missing = {add.id_to_piece(i) for i in range(add.get_piece_size()) if add.id_to_piece(i) not in base_pieces}
    missing -= {"<unk>", "<s>", "</s>"}
    mapping = json.loads(out.with_suffix(".mapping.json").read_text())
    assert {a["piece"] for a in mapping["appended"]} == missing
    assert mapping["merged_size"] == merged.get_piece_size() == base.get_piece_size() + len(missing)
    assert all(merged.piece_to_id(a["piece"]) == a["id"] for a in mapping["appended"])
    zh_text = "\n".join(ROUND_TRIP[:1] + kept.filter(pl.col("source") == "zh")["text"].to_list()[:20])
    assert merged.decode(merged.encode(zh_text)) == zh_text
    assert len(merged.encode(zh_text)) < 0.7 * len(base.encode(zh_text))

    # compare reports per-language characters and bytes per token for each model
    sample = tmp_path / "heldout.jsonl"
    sample.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in [zh_text, ROUND_TRIP[1]]))
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokenizer", "compare", str(tmp_path / "en.model"), str(out), "--text", str(sample)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| /")]
    assert len(rows) == 4 and any("| zh |" in row for row in rows) and "chars/token" in r.stdout


@pytest.mark.slow
def test_merge_refuses_bad_inputs(tokenized, tmp_path):
    cfg, _ = tokenized
    model = cfg.workdir / "tokenizer" / "tokenizer.model"
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokenizer", "merge", "--base", str(model), "--add", "/nope.model", "--out",
         str(tmp_path / "m.model")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "/nope.model: no such tokenizer file" in r.stderr


@pytest.mark.slow
def test_merge_and_compare_refuse_files_that_are_not_tokenizers(tokenized, tmp_path):
    cfg, _ = tokenized
    model = cfg.workdir / "tokenizer" / "tokenizer.model"
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x00not a sentencepiece proto\xff" * 10)
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokenizer", "merge", "--base", str(model), "--add", str(junk), "--out",
         str(tmp_path / "m.model")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "junk.model: not a SentencePiece model" in r.stderr
    assert not (tmp_path / "m.model").exists()
    text = tmp_path / "heldout.txt"
    text.write_text(ROUND_TRIP[0])
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokenizer", "compare", str(model), "/nope.model", "--text", str(text)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "/nope.model: no such tokenizer file" in r.stderr
    (tmp_path / "empty.txt").write_text("\n\n")
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokenizer", "compare", str(model), "--text", str(tmp_path / "empty.txt")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "empty.txt: no text to compare on" in r.stderr


def test_vocabulary_too_small_for_the_corpus_is_a_clear_error():
    from collections import Counter

    from stages.tokenizer import fit_coverage

    # 5,000 distinct characters seen equally often: even 98% coverage needs 4,900 pieces
    counts = Counter({chr(0x4E00 + i): 3 for i in range(5000)})
    with pytest.raises(ValueError, match=r"tokenizer.vocab_size = 3000 is too small .* at least 10,060"):
        fit_coverage(counts, vocab_size=3000, reserved=260, coverage=0.9995)
    # a skewed distribution fits by lowering coverage (not below 0.98), leaving room for merges
    skewed = Counter({chr(0x4E00 + i): (10_000 if i < 500 else 1) for i in range(5000)})
    fitted = fit_coverage(skewed, vocab_size=3000, reserved=260, coverage=0.9995)
    assert 0.98 <= fitted < 0.9995
