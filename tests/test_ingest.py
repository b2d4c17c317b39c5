"""The ingest stage through the runner: each reader, each bad-input case, stable ids, kill and resume, verify."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline import runner
from pipeline.config import load_config
from pipeline.verify import verify
from stages.ingest import decode_html, normalize_text
from tests.conftest import SAMPLE, write_config


def source(name: str, path: str, fmt: str, **kw) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in kw.items())
    return f'[[sources]]\nname = "{name}"\npath = "{path}"\nformat = "{fmt}"\n{extra}\n'


def run_ingest(cfg_path: Path, *overrides: str):
    cfg = load_config(cfg_path, list(overrides))
    stats = runner.run_stage(cfg, "ingest")
    return cfg, stats


def kept(cfg) -> pl.DataFrame:
    return pl.read_parquet(cfg.workdir / "ingest" / "kept" / "*.parquet")


def removed(cfg) -> pl.DataFrame:
    files = list((cfg.workdir / "ingest" / "removed").glob("*.parquet"))
    return pl.read_parquet(files) if files else pl.DataFrame()


def write_jsonl(path: Path, records: list, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")


# --- normalization -------------------------------------------------------------------------------------------


def test_normalize_text_removes_controls_and_unifies_lines():
    raw = "\ufeff第一行\r\n第二行\r第三\x00行\x07\x1b[1;31m红色\x1b[0m 文字\x1b]0;title\x07"
    assert normalize_text(raw) == "第一行\n第二行\n第三行红色 文字"


def test_normalize_text_nfc_and_surrogates_but_no_lossy_rewrite():
    assert normalize_text("Cafe\u0301") == "Café"
    assert normalize_text("bad \ud800 surrogate") == "bad \ufffd surrogate"
    # full-width punctuation and letters, tabs and case are training text: untouched
    s = "全角，标点！ＡＢＣ１２３\tTab and CASE"
    assert normalize_text(s) == s
    assert normalize_text("e\u0301", unicode_form="none") == "e\u0301"


def test_decode_html_charsets(zh_docs):
    text = zh_docs[0][:200]
    page = f'<html><head><meta charset="gbk"></head><body><p>{text}</p></body></html>'
    # header says gb2312 (as many Chinese sites do), bytes are GB18030: decoded with the superset
    assert text in decode_html(page.encode("gb18030"), "text/html; charset=gb2312")
    # no header: the <meta> charset is used
    assert text in decode_html(page.encode("gb18030"), None)
    assert text in decode_html(page.encode("utf-8"), "text/html")


# --- readers ---------------------------------------------------------------------------------------------------


def test_jsonl_plain_gz_zst_read_identically(tmp_path, zh_docs):
    records = [{"content": t, "doc_id": f"d{i}", "link": f"https://example.org/{i}"} for i, t in enumerate(zh_docs[:6])]
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "a.jsonl", records[:2])
    write_jsonl(src / "b.jsonl.gz", records[2:4], opener=gzip.open)
    with open(src / "c.jsonl.zst", "wb") as raw, zstandard.ZstdCompressor().stream_writer(raw) as zf:
        zf.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[4:]).encode())
    cfg_path = write_config(
        tmp_path, source("zh", "src", "jsonl", text_field="content", id_field="doc_id", url_field="link")
    )
    cfg, stats = run_ingest(cfg_path)
    df = kept(cfg).sort("id")
    assert stats["docs_in"] == 6 and stats["kept"] == 6
    assert df["id"].to_list() == [f"zh:d{i}" for i in range(6)]
    assert df["text"].to_list() == [normalize_text(t) for t in zh_docs[:6]]
    assert df["url"].to_list() == [f"https://example.org/{i}" for i in range(6)]
    assert set(df["source"]) == {"zh"} and set(df["kind"]) == {"text"}
    assert df["lang"].null_count() == 6  # set later by langid


def test_parquet_reader(tmp_path, en_docs):
    pq.write_table(
        pa.table({"body": en_docs[:5], "u": [None, "https://a.org", None, None, "x"]}), tmp_path / "e.parquet"
    )
    cfg, stats = run_ingest(
        write_config(tmp_path, source("en", "e.parquet", "parquet", text_field="body", url_field="u"))
    )
    df = kept(cfg).sort("id")
    assert stats["kept"] == 5
    assert df["id"].to_list() == [f"en:e.parquet:{i}" for i in range(1, 6)]
    assert df.filter(pl.col("id") == "en:e.parquet:2")["url"][0] == "https://a.org"
    assert sorted(df["text"].to_list()) == sorted(normalize_text(t) for t in en_docs[:5])


def test_text_reader_file_and_blocks(tmp_path, zh_docs):
    (tmp_path / "code").mkdir()
    code = Path(runner.__file__).read_text()
    (tmp_path / "code" / "runner.py").write_text(code)
    a, b, c = (" ".join(d.split())[:n] for d, n in zip(zh_docs[:3], (80, 60, 30)))  # one line each
    (tmp_path / "notes.txt").write_text(f"{a}\n\n\n{b}\n{c}\n\n")
    body = source("code", "code", "text", kind="code") + source("notes", "notes.txt", "text", text_mode="blocks")
    cfg, stats = run_ingest(write_config(tmp_path, body))
    df = kept(cfg)
    code_doc = df.filter(pl.col("source") == "code")
    assert code_doc["id"].to_list() == ["code:runner.py"] and code_doc["kind"][0] == "code"
    assert code_doc["text"][0] == code  # code survives byte for byte
    notes = df.filter(pl.col("source") == "notes").sort("id")
    assert notes["id"].to_list() == ["notes:notes.txt:1", "notes:notes.txt:4"]
    assert notes["text"].to_list() == [a, f"{b}\n{c}"]


@pytest.mark.slow
def test_warc_reader_on_sample(tmp_path):
    cfg, stats = run_ingest(write_config(tmp_path, source("web", str(SAMPLE / "web.warc.gz"), "warc")))
    df = kept(cfg)
    assert stats["docs_in"] == stats["kept"] + stats["removed"] and stats["kept"] > 10
    assert df["url"].null_count() == 0
    zh = df.filter(pl.col("text").str.count_matches(r"\p{Han}") > 50)
    assert len(zh) > 5
    joined = "".join(df["text"].to_list())
    # Decoding a GBK page as UTF-8 fills it with U+FFFD (the handbook quotes a few on purpose, in its convmv
    # example); the reverse mistake leaves the classic 锟斤拷.
    for text in df["text"]:
        assert text.count("\ufffd") <= 0.01 * len(text)
    assert "锟斤拷" not in joined
    assert "<div" not in joined and "</p>" not in joined


def test_warc_gbk_page_comes_out_right(tmp_path, zh_docs):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    text = " ".join(zh_docs[3].split())[:400]  # HTML collapses newlines inside <p>
    html = f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk"><title>t</title></head><body><nav>首页 | 关于</nav><article><p>{text}</p></article></body></html>'
    with open(tmp_path / "x.warc.gz", "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, (payload, ctype) in enumerate(
            [(html.encode("gb18030"), "text/html; charset=GBK"), (b"\x89PNG\r\n", "image/png")]
        ):
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            rec = w.create_warc_record(
                f"https://example.cn/{i}", "response", payload=__import__("io").BytesIO(payload), http_headers=headers
            )
            w.write_record(rec)
    cfg, stats = run_ingest(write_config(tmp_path, source("web", "x.warc.gz", "warc")))
    df = kept(cfg)
    assert len(df) == 1 and normalize_text(text)[:100] in df["text"][0]
    rm = removed(cfg)
    assert rm["reason"].to_list() == ["not_html"] and rm["url"].to_list() == ["https://example.cn/1"]


# --- bad input -------------------------------------------------------------------------------------------------


def test_bad_records_go_to_removed_with_reason_file_and_line(tmp_path, zh_docs):
    lines = [
        {"text": zh_docs[0]},
        '{"text": "unterminated',
        {"body": zh_docs[1]},
        {"text": 42},
        {"text": " \n\t "},
        "",  # blank line: not a record
        '["a", "list"]',
        {"text": zh_docs[2]},
    ]
    write_jsonl(tmp_path / "in.jsonl", lines)
    cfg, stats = run_ingest(write_config(tmp_path, source("s", "in.jsonl", "jsonl")))
    assert stats["docs_in"] == 7 and stats["kept"] == 2 and stats["removed"] == 5
    rm = removed(cfg).sort("source_line")
    assert rm.select("reason", "source_line").rows() == [
        ("invalid_json", 2),
        ("missing_text_field", 3),
        ("non_string_text", 4),
        ("empty_text", 5),
        ("not_an_object", 7),
    ]
    assert set(rm["stage"]) == {"ingest"} and set(rm["source_file"]) == {str(tmp_path / "in.jsonl")}
    # nothing is lost: the raw record is the removed document's text
    assert rm.filter(pl.col("reason") == "invalid_json")["text"][0] == '{"text": "unterminated'
    assert json.loads(rm.filter(pl.col("reason") == "missing_text_field")["text"][0]) == {"body": zh_docs[1]}
    assert verify(cfg, quiet=True) == []


@pytest.mark.slow
def test_unreadable_files_are_reported_and_others_kept(tmp_path, zh_docs):
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "good.jsonl", [{"text": t} for t in zh_docs[:5]])
    # a gzip cut in the middle: the records before the cut are kept, the file is reported
    payload = gzip.compress("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in zh_docs[5:25]).encode())
    (src / "truncated.jsonl.gz").write_bytes(payload[: len(payload) // 2])
    body = source("s", "src", "jsonl")
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"text": zh_docs[25:30]}), tmp_path / "pq" / "ok.parquet")
    (tmp_path / "pq" / "corrupt.parquet").write_bytes(b"PAR1" + os.urandom(300))
    body += source("p", "pq", "parquet")
    cfg_path = write_config(tmp_path, body)
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1, r.stderr
    assert "truncated.jsonl.gz" in r.stderr and "corrupt.parquet" in r.stderr and "could not be read" in r.stderr
    cfg = load_config(cfg_path)
    stats = json.loads((cfg.workdir / "ingest" / "stats.json").read_text())
    assert sorted(Path(f["file"]).name for f in stats["failed_files"]) == ["corrupt.parquet", "truncated.jsonl.gz"]
    df = kept(cfg)
    assert len(df.filter(pl.col("id").str.starts_with("s:good.jsonl"))) == 5
    assert len(df.filter(pl.col("source") == "p")) == 5
    partial = df.filter(pl.col("id").str.starts_with("s:truncated"))
    assert 0 < len(partial) < 20  # what could be read before the cut is kept
    assert verify(cfg, quiet=True) == []


# --- ids, tasks, resume, verify ----------------------------------------------------------------------------------


def many_files(folder: Path, docs: list[str], n_files: int = 7) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        write_jsonl(folder / f"part-{i:02d}.jsonl", [{"text": f"{t}\n{i}-{j}"} for j, t in enumerate(docs)])


def test_ids_stable_across_task_counts_and_reruns(tmp_path, zh_docs):
    many_files(tmp_path / "src", zh_docs[:10])
    results = []
    for tasks in (1, 3):
        d = tmp_path / f"t{tasks}"
        d.mkdir()
        cfg_path = write_config(d, source("s", str(tmp_path / "src"), "jsonl"), tasks=tasks)
        cfg, _ = run_ingest(cfg_path)
        results.append(kept(cfg).sort("id").select("id", "text"))
        assert len(list((cfg.workdir / "ingest" / "kept").glob("*.parquet"))) == min(tasks, 7)
    assert results[0].equals(results[1])
    assert results[0]["id"].n_unique() == 70
    # a rerun of a finished stage does nothing; --force redoes it with the same ids
    cfg = load_config(tmp_path / "t3" / "pipeline.toml")
    before = (cfg.workdir / "ingest" / "stats.json").read_text()
    runner.run_stage(cfg, "ingest")
    assert (cfg.workdir / "ingest" / "stats.json").read_text() == before
    runner.run_stage(cfg, "ingest", force=True)
    assert kept(cfg).sort("id").select("id", "text").equals(results[0])


@pytest.mark.slow
def test_resume_after_kill_gives_same_kept_ids(tmp_path, zh_docs):
    """Kill the local executor while a task is mid-stage, rerun, and get exactly the clean run's documents."""
    src = tmp_path / "src"
    many_files(src, zh_docs[:20], n_files=6)
    # Tasks run one after another (workers=1); task 2 reads part-02 then blocks on a FIFO in place of part-05.
    os.remove(src / "part-05.jsonl")
    os.mkfifo(src / "part-05.jsonl")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg_path = write_config(run_dir, source("s", str(src), "jsonl"), tasks=3, workers=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    completions = run_dir / "out" / "ingest" / "logs" / "main" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(completions.glob("*"))) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # task 2 is now blocked inside the FIFO after reading part-02
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ingest = run_dir / "out" / "ingest"
    assert not (ingest / "stats.json").exists()
    # nothing half-written looks complete: every shard in place is a readable Parquet file
    for shard in (ingest / "kept").glob("*.parquet"):
        pq.ParquetFile(shard)
    cfg = load_config(cfg_path)
    assert runner.stage_state(cfg, "ingest").state == "incomplete"
    # a rerun with another task count is refused instead of mixing two layouts
    with pytest.raises(runner.StageError, match="started with 3 tasks"):
        runner.run_stage(load_config(cfg_path, ["executor.tasks=2"]), "ingest")

    os.remove(src / "part-05.jsonl")
    write_jsonl(src / "part-05.jsonl", [{"text": f"{t}\n5-{j}"} for j, t in enumerate(zh_docs[:20])])
    stats = runner.run_stage(cfg, "ingest")
    resumed = kept(cfg)
    assert stats["docs_in"] == 120 and stats["kept"] == 120
    assert resumed["id"].n_unique() == len(resumed) == 120

    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean_cfg, _ = run_ingest(write_config(clean_dir, source("s", str(src), "jsonl"), tasks=3))
    assert kept(clean_cfg).sort("id").equals(resumed.sort("id"))
    assert verify(cfg, quiet=True) == []


@pytest.mark.slow
def test_verify_catches_planted_loss(tmp_path, zh_docs):
    many_files(tmp_path / "src", zh_docs[:10], n_files=2)
    cfg, _ = run_ingest(write_config(tmp_path, source("s", "src", "jsonl")))
    assert verify(cfg, quiet=True) == []
    shard = sorted((cfg.workdir / "ingest" / "kept").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)  # one document silently dropped
    problems = verify(cfg, quiet=True)
    assert len(problems) == 1 and "ingest: kept/ holds 19 documents but the stage kept 20" in problems[0]
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), shard)  # one document duplicated
    problems = verify(cfg, quiet=True)
    assert any("kept/ holds 21" in p for p in problems)
    shard.write_bytes(shard.read_bytes()[:100])  # a truncated shard
    assert any("is not readable" in p for p in verify(cfg, quiet=True))
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "verify", "--config", str(cfg.file)], capture_output=True, text=True
    )
    assert r.returncode == 1 and "FAIL" in r.stdout


def test_verify_catches_duplicate_ids(tmp_path, zh_docs):
    write_jsonl(tmp_path / "a.jsonl", [{"text": t, "id": f"x{i}"} for i, t in enumerate(zh_docs[:2])])
    cfg, _ = run_ingest(write_config(tmp_path, source("s", "a.jsonl", "jsonl", id_field="id")))
    assert verify(cfg, quiet=True) == []
    # ingest makes ids unique (tests/test_ingest_reliability.py); plant a repeat in kept/ with the counts unchanged
    shard = sorted((cfg.workdir / "ingest" / "kept").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    ids = table.column("id").to_pylist()
    table = table.set_column(table.schema.get_field_index("id"), "id", pa.array([ids[0]] * len(ids)))
    pq.write_table(table, shard)
    problems = verify(cfg, quiet=True)
    assert len(problems) == 1 and "appear more than once" in problems[0] and "s:x0" in problems[0]


def test_run_stage_refuses_disabled_stage(tmp_path, zh_docs):
    write_jsonl(tmp_path / "a.jsonl", [{"text": zh_docs[0]}])
    cfg = load_config(write_config(tmp_path, source("s", "a.jsonl", "jsonl")))
    # a disabled stage cannot be run on its own
    with pytest.raises(runner.StageError, match="'langid' is disabled"):
        runner.run_stage(load_config(cfg.file, ["stages.langid.enabled=false"]), "langid")
