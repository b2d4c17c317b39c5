"""Issue 18: hostile input, faults and bad config. Each case once lost data without a word, crashed, or wrote where
it should not; each test reproduces it on real text from the sample corpus and checks the fixed behaviour."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import zstandard
from datatrove.data import Document
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline import runner
from pipeline.config import ConfigError, load_config
from pipeline.status import status_rows
from pipeline.verify import verify
from stages.ingest import writable
from tests.conftest import SAMPLE, write_config
from tests.test_ingest import kept, removed, run_ingest, source, write_jsonl


def stats_of(cfg) -> dict:
    return json.loads((cfg.workdir / "ingest" / "stats.json").read_text())


def unprivileged(cmd: list[str]) -> list[str]:
    """`cmd` run without root's power to ignore file permissions (the tests run as root in CI containers)."""
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]


def pipeline_cli(*args: str, as_user: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(unprivileged(cmd) if as_user else cmd, capture_output=True, text=True)


# --- item 2: lone surrogates outside `text` -----------------------------------------------------------------------


def test_lone_surrogates_in_any_field_are_normalized_and_the_file_goes_on(tmp_path, zh_docs):
    lines = [
        # JSON escapes of lone surrogates in the id and the url: these once crashed the Parquet writer on every run
        '{"id": "a\\ud800", "url": "http://example.com/\\udc00", "text": ' + json.dumps(zh_docs[0]) + "}",
        # in a field that is not read, in a record without text: its raw record is the removed text
        '{"id": "b", "meta": "\\ud83d", "body": ' + json.dumps(zh_docs[1]) + "}",
        '{"id": "c", "text": [' + json.dumps(zh_docs[2]) + ', "\\udfff"]}',
        {"id": "d", "text": zh_docs[3]},  # after them: once lost with the rest of the file
    ]
    write_jsonl(tmp_path / "in.jsonl", lines)
    cfg, stats = run_ingest(write_config(tmp_path, source("s", "in.jsonl", "jsonl", id_field="id", url_field="url")))
    assert stats["failed_files"] == [] and stats["docs_in"] == 4
    df = kept(cfg).sort("id")
    assert df["id"].to_list() == ["s:a\ufffd", "s:d"]
    assert df["url"].to_list() == ["http://example.com/\ufffd", None]
    rm = removed(cfg).sort("source_line")
    assert rm["reason"].to_list() == ["missing_text_field", "non_string_text"]
    assert json.loads(rm["text"][0])["meta"] == "\ufffd" and "\ufffd" in rm["text"][1]
    assert verify(cfg, quiet=True) == []
    # a rerun from scratch gives the same corpus (the crash repeated on every rerun)
    runner.run_stage(cfg, "ingest", force=True)
    assert kept(cfg).sort("id").equals(df)


def test_undecodable_file_name_is_normalized_in_ids_and_source_file(tmp_path, zh_docs):
    folder = tmp_path / "src"
    folder.mkdir()
    name = os.fsdecode(b"part-\xff.jsonl")  # a name that is not UTF-8: the OS gives it back with a surrogate
    write_jsonl(folder / name, [{"text": zh_docs[0]}, {"text": ""}])
    cfg, stats = run_ingest(write_config(tmp_path, source("s", "src", "jsonl")))
    assert stats["failed_files"] == [] and stats["kept"] == 1 and stats["removed"] == 1
    assert kept(cfg)["id"].to_list() == ["s:part-\ufffd.jsonl:1"]
    assert removed(cfg)["source_file"][0].endswith("part-\ufffd.jsonl")
    assert verify(cfg, quiet=True) == []


def test_a_record_that_still_cannot_be_encoded_goes_to_removed():
    doc = Document(text="ok \ud800", id="s:x", metadata={"source": "s", "url": "u\udc00"})
    writable(doc)
    assert doc.metadata["filter_reason"] == "unwritable_record"
    assert doc.text == "ok \\ud800" and doc.metadata["url"] == "u\\udc00"
    clean = Document(text="好", id="s:y", metadata={"source": "s"})
    assert writable(clean) == 3 and "filter_reason" not in clean.metadata


# --- item 3: truncated .zst and .warc(.gz) --------------------------------------------------------------------------


@pytest.mark.slow
def test_truncated_zst_and_warc_end_in_failed_files_with_exit_1(tmp_path, zh_docs):
    src = tmp_path / "src"
    src.mkdir()
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in zh_docs[:20]).encode()
    (src / "good.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    frame = zstandard.ZstdCompressor().compress(body)
    (src / "cut.jsonl.zst").write_bytes(frame[: len(frame) // 2])  # once read as a shorter file, exit 0
    web = tmp_path / "web"
    web.mkdir()
    gz = (SAMPLE / "web.warc.gz").read_bytes()
    plain = gzip.decompress(gz)
    (web / "cut.warc.gz").write_bytes(gz[: len(gz) // 8])
    (web / "cut.warc").write_bytes(plain[: len(plain) // 10])
    at = plain.index(b"Content-Length: ") + len(b"Content-Length: ")
    end = plain.index(b"\r\n", at)
    lie = plain[:at] + str(int(plain[at:end]) - 40).encode() + plain[end : len(plain) // 10]
    (web / "lying.warc").write_bytes(lie)
    (web / "not_a.warc").write_bytes("这不是 WARC 文件\n".encode() * 50)
    cfg_path = write_config(tmp_path, source("j", "src", "jsonl") + source("w", "web", "warc"), tasks=2, workers=2)
    r = pipeline_cli("run", "ingest", "--config", str(cfg_path))
    assert r.returncode == 1, r.stderr
    cfg = load_config(cfg_path)
    failed = {Path(f["file"]).name: f["error"] for f in stats_of(cfg)["failed_files"]}
    assert set(failed) == {"cut.jsonl.zst", "cut.warc.gz", "cut.warc", "lying.warc", "not_a.warc"}, failed
    assert "truncated" in failed["cut.jsonl.zst"] and "truncated" in failed["cut.warc.gz"]
    df = kept(cfg)
    assert len(df.filter(pl.col("id").str.starts_with("j:good.jsonl.zst"))) == 20
    assert len(df.filter(pl.col("id").str.starts_with("w:cut.warc.gz"))) > 0  # records before the cut are kept
    assert verify(cfg, quiet=True) == []


# --- item 4: duplicate ids -----------------------------------------------------------------------------------------


def test_repeated_ids_go_to_removed_and_the_first_copy_is_kept_for_any_task_count(tmp_path, zh_docs):
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(
        src / "a.jsonl", [{"id": f"k{i}", "text": zh_docs[i]} for i in range(10)] + [{"id": "k20", "text": " "}]
    )
    write_jsonl(
        src / "b.jsonl",
        [{"id": f"k{i}", "text": zh_docs[10 + i]} for i in range(5, 15)]
        + [{"id": "k14", "text": zh_docs[30]}, {"id": "k20", "text": zh_docs[31]}],
    )
    # ids made from positions cannot repeat, but a positional id and an id_field value can meet
    write_jsonl(src / "c.jsonl", [{"text": zh_docs[32]}, {"id": "c.jsonl:1", "text": zh_docs[33]}])
    results = []
    for tasks, buckets in ((1, 1), (3, 8)):
        d = tmp_path / f"t{tasks}"
        d.mkdir()
        cfg_path = write_config(d, source("s", str(src), "jsonl", id_field="id"), tasks=tasks)
        cfg, stats = run_ingest(cfg_path, f"stages.ingest.id_buckets={buckets}")
        assert stats["removed_by_reason"] == {"duplicate_id": 7, "empty_text": 1}
        # one task: the read, the repeats and the reading again run as one phase
        phases = json.loads((cfg.workdir / "ingest" / "run.json").read_text())["phases"]
        assert phases == (["main+repeats+duplicates"] if tasks == 1 else ["main", "repeats", "duplicates"])
        assert kept(cfg)["id"].is_unique().all()
        assert verify(cfg, quiet=True) == []
        results.append((kept(cfg).sort("id").select("id", "text"), removed(cfg).sort("id", "source_line")))
    assert results[0][0].equals(results[1][0]) and results[0][1].select("id", "text").equals(
        results[1][1].select("id", "text")
    )
    df, rm = results[0]
    text = dict(zip(df["id"], df["text"]))
    assert text["s:k5"] == zh_docs[5]  # a.jsonl comes first in file order: its copy keeps the id
    assert text["s:k14"] == zh_docs[24]  # inside one file, the earlier line
    assert text["s:k20"] == zh_docs[31]  # the first copy was empty (removed): the next good one keeps the id
    dup = rm.filter(pl.col("reason") == "duplicate_id")
    assert sorted(Path(f).name for f in dup["source_file"]) == ["b.jsonl"] * 6 + ["c.jsonl"]
    assert len(df) == 10 + 5 + 1 + 1  # a's 10; b's k10-k14 and k20; c's first line


# --- item 5: WARC decompression bombs and slow pages ----------------------------------------------------------------


def write_warc(path: Path, pages: list[tuple[str, bytes, dict]]) -> None:
    """A WARC of HTML responses; `headers` adds HTTP headers (a Content-Encoding: the payload is sent encoded)."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, payload, headers in pages:
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8"), *headers.items()], "HTTP/1.1"
            )
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=http)
            )


def html_page(paragraphs: list[str]) -> bytes:
    return ("<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>").encode()


def test_warc_bomb_and_oversized_page_go_to_removed_as_too_large(tmp_path, zh_docs):
    bomb = gzip.compress(html_page(zh_docs[:1]) + b" " * (30 * 2**20))  # 30 MB of HTML in about 30 KB
    assert len(bomb) < 100_000
    big = html_page(zh_docs[:40] * 3)
    write_warc(
        tmp_path / "pages.warc.gz",
        [
            ("http://a.example/bomb", bomb, {"Content-Encoding": "gzip"}),
            ("http://a.example/big", big, {}),
            ("http://a.example/ok", html_page(zh_docs[1:3]), {}),
        ],
    )
    html_mb = round(len(big) / 2**20 * 0.9, 3)
    cfg, stats = run_ingest(
        write_config(tmp_path, source("w", "pages.warc.gz", "warc")),
        "stages.ingest.max_payload_mb=10",
        f"stages.ingest.max_html_mb={html_mb}",
    )
    rm = removed(cfg).sort("url")
    assert rm.select("url", "reason").rows() == [
        ("http://a.example/big", "too_large"),
        ("http://a.example/bomb", "too_large"),
    ]
    assert all(len(t.encode()) <= 64 * 1024 for t in rm["text"])  # a sample of the start, not the whole thing
    assert kept(cfg)["url"].to_list() == ["http://a.example/ok"] and stats["failed_files"] == []
    assert verify(cfg, quiet=True) == []


def test_page_extraction_is_bounded_in_time(tmp_path, zh_docs):
    write_warc(tmp_path / "p.warc.gz", [("http://a.example/slow", html_page(zh_docs[:40]), {})])
    cfg, stats = run_ingest(
        write_config(tmp_path, source("w", "p.warc.gz", "warc"), tasks=1), "stages.ingest.extract_timeout_s=0.0001"
    )
    assert stats["removed_by_reason"] == {"extraction_timeout": 1}
    assert zh_docs[0][:50] in removed(cfg)["text"][0]  # the page itself is kept in removed/
    stats = runner.run_stage(load_config(cfg.file, ["stages.ingest.extract_timeout_s=30"]), "ingest", force=True)
    assert stats["kept"] == 1 and zh_docs[0].split("\n")[0] in kept(cfg)["text"][0]


# --- item 6: unreadable subfolders ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_unreadable_subfolder_is_named_in_failed_files(tmp_path, zh_docs):
    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    write_jsonl(src / "ok.jsonl", [{"text": t} for t in zh_docs[:3]])
    write_jsonl(src / "locked" / "hidden.jsonl", [{"text": t} for t in zh_docs[3:6]])
    cfg_path = write_config(tmp_path, source("s", "src", "jsonl"))
    (src / "locked").chmod(0)
    try:
        r = pipeline_cli("run", "ingest", "--config", str(cfg_path), as_user=True)
    finally:
        (src / "locked").chmod(0o755)
    assert r.returncode == 1, r.stderr
    assert str(src / "locked") in r.stderr
    cfg = load_config(cfg_path)
    assert [f["file"] for f in stats_of(cfg)["failed_files"]] == [str(src / "locked")]
    assert len(kept(cfg)) == 3


# --- item 9: BOM, encodings, names, strict config, workdir, LSH size ------------------------------------------------


def test_utf8_bom_on_line_1_is_not_invalid_json(tmp_path, zh_docs):
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in zh_docs[:3])
    (tmp_path / "bom.jsonl").write_bytes(codecs.BOM_UTF8 + body.encode())
    cfg, stats = run_ingest(write_config(tmp_path, source("s", "bom.jsonl", "jsonl")))
    assert stats["kept"] == 3 and stats["removed"] == 0
    assert kept(cfg).sort("id")["text"][0] == zh_docs[0]


def test_non_utf8_input_is_removed_as_not_utf8_or_decoded_by_the_encoding_option(tmp_path, zh_docs):
    body = (
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in zh_docs[:4]) + '{"text": "plain ASCII"}\n'
    )
    (tmp_path / "gbk.jsonl").write_bytes(body.encode("gb18030"))
    (tmp_path / "gbk.txt").write_bytes(zh_docs[4].encode("gb18030"))
    sources = source("j", "gbk.jsonl", "jsonl") + source("t", "gbk.txt", "text")
    cfg, stats = run_ingest(write_config(tmp_path, sources))
    assert stats["removed_by_reason"] == {"not_utf8": 5} and stats["kept"] == 1  # the ASCII line is valid UTF-8
    assert kept(cfg)["text"].to_list() == ["plain ASCII"]
    decoded = tmp_path / "decoded"
    decoded.mkdir()
    for f in ("gbk.jsonl", "gbk.txt"):
        shutil.copy(tmp_path / f, decoded / f)
    sources = source("j", "gbk.jsonl", "jsonl", encoding="gb18030") + source("t", "gbk.txt", "text", encoding="gbk")
    cfg, stats = run_ingest(write_config(decoded, sources))
    assert stats["kept"] == 6 and stats["removed"] == 0
    assert set(kept(cfg)["text"]) == {*zh_docs[:5], "plain ASCII"}


def config_error(tmp_path: Path, body: str, *overrides: str) -> str:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, body), list(overrides))
    return str(e.value)


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_source_names_that_are_folder_steps_are_refused(tmp_path, name):
    assert "sources.0.name" in config_error(tmp_path, source(name, "a.jsonl", "jsonl"))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ('executor.tasks="9"', "executor.tasks"),
        ('stages.langid.enabled="no"', "stages.langid.enabled"),
        ("stages.dedup.bands=1.5", "stages.dedup.bands"),
        ('train.pretrain.lr="0.1"', "train.pretrain.lr"),
        ("model.n_layer=true", "model.n_layer"),
    ],
)
def test_config_types_are_strict(tmp_path, override, key):
    assert f"  {key}: " in config_error(tmp_path, source("s", "a.jsonl", "jsonl"), override)


def test_strict_types_still_take_an_int_for_a_float_and_int_table_keys(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    cfg = load_config(
        write_config(tmp_path, source("s", "a.jsonl", "jsonl")),
        ["train.pretrain.lr=1", "stages.filter.zh.max_top_ngram={ 2 = 0.3 }"],
    )
    assert cfg.train.pretrain.lr == 1.0 and cfg.stages.filter.zh.max_top_ngram == {2: 0.3}


def test_empty_workdir_is_refused(tmp_path):
    assert "run.workdir" in config_error(tmp_path, source("s", "a.jsonl", "jsonl"), 'run.workdir=""')
    assert "run.workdir" in config_error(tmp_path, source("s", "a.jsonl", "jsonl"), 'run.workdir="  "')


def test_lsh_size_is_bounded(tmp_path):
    err = config_error(tmp_path, source("s", "a.jsonl", "jsonl"), "stages.dedup.rows=100000")
    assert "stages.dedup" in err and "at most 1024" in err
    (tmp_path / "b").mkdir()
    cfg = load_config(write_config(tmp_path / "b", ""), ["stages.dedup.bands=32", "stages.dedup.rows=32"])
    assert cfg.stages.dedup.bands * cfg.stages.dedup.rows == 1024


@pytest.mark.slow
def test_unwritable_workdir_stops_with_a_message_not_a_traceback(tmp_path, zh_docs):
    write_jsonl(tmp_path / "a.jsonl", [{"text": zh_docs[0]}])
    cfg_path = write_config(tmp_path, source("s", "a.jsonl", "jsonl"))
    r = pipeline_cli("run", "ingest", "--config", str(cfg_path), "--set", 'run.workdir="a.jsonl/out"')
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "run.workdir: cannot write to" in r.stderr and "a.jsonl/out" in r.stderr
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        r = pipeline_cli("run", "ingest", "--config", str(cfg_path), "--set", 'run.workdir="ro/out"', as_user=True)
    finally:
        readonly.chmod(0o755)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "run.workdir: cannot write to" in r.stderr and "Permission denied" in r.stderr


@pytest.mark.slow
def test_resume_after_kill_during_the_id_check_gives_the_clean_run(tmp_path, zh_docs):
    """Kill ingest while its main phase, which also records the ids, is mid-way (a task blocked on a FIFO), rerun:
    the main, repeats and duplicates phases finish and give exactly the corpus of an uninterrupted run."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):  # every file repeats the ids of the one before it
        write_jsonl(src / f"part-{i}.jsonl", [{"id": f"k{i + j}", "text": f"{zh_docs[j]}\n{i}"} for j in range(10)])
    os.remove(src / "part-3.jsonl")
    os.mkfifo(src / "part-3.jsonl")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg_path = write_config(run_dir, source("s", str(src), "jsonl", id_field="id"), tasks=2, workers=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_main_task_0(run_dir)
    time.sleep(0.5)  # task 1 of the main phase is now blocked inside the FIFO after reading part-1
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cfg = load_config(cfg_path)
    assert runner.stage_state(cfg, "ingest").state == "incomplete"
    os.remove(src / "part-3.jsonl")
    write_jsonl(src / "part-3.jsonl", [{"id": f"k{3 + j}", "text": f"{zh_docs[j]}\n3"} for j in range(10)])
    stats = runner.run_stage(cfg, "ingest")
    assert stats["kept"] == 13 and stats["removed_by_reason"] == {"duplicate_id": 27}
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean_cfg, _ = run_ingest(write_config(clean_dir, source("s", str(src), "jsonl", id_field="id"), tasks=2))
    assert kept(clean_cfg).sort("id").equals(kept(cfg).sort("id"))
    assert verify(cfg, quiet=True) == []


def start_ingest_blocked_on_a_fifo(tmp_path, zh_docs, workers: int = 1, stderr=subprocess.DEVNULL):
    """`pipeline run ingest` (2 tasks, `workers` at a time) in its own process session over two files: part-0 with 10
    documents, and part-1, a FIFO nobody writes to, so task 1 blocks in it until the process is killed. Returns the
    source folder, the run folder, the config path and the process."""
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "part-0.jsonl", [{"text": d} for d in zh_docs[:10]])
    os.mkfifo(src / "part-1.jsonl")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg_path = write_config(run_dir, source("s", str(src), "jsonl"), tasks=2, workers=workers)
    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    return src, run_dir, cfg_path, first


def wait_for_main_task_0(run_dir: Path) -> None:
    """Until ingest's main phase has a completed task (task 0; task 1 is then the one blocked), at most 120 s."""
    completions = run_dir / "out" / "ingest" / "logs" / "main" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and not list(completions.glob("*")):
        time.sleep(0.05)


def unblock(src, zh_docs):
    """Replace the FIFO of `start_ingest_blocked_on_a_fifo` by a real file of 10 more documents."""
    os.remove(src / "part-1.jsonl")
    write_jsonl(src / "part-1.jsonl", [{"text": d} for d in zh_docs[10:20]])


def killed_after_its_first_task(tmp_path, zh_docs):
    """`start_ingest_blocked_on_a_fifo`, killed (its whole process group, SIGKILL) once task 0 has finished, then the
    FIFO replaced by real documents. Returns the run folder, the config path, the dead process and the tasks folder."""
    src, run_dir, cfg_path, first = start_ingest_blocked_on_a_fifo(tmp_path, zh_docs)
    tasks = run_dir / "out" / "ingest" / "tasks"
    deadline = time.time() + 120
    while time.time() < deadline and not list(tasks.glob("*.json")):
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    unblock(src, zh_docs)
    return run_dir, cfg_path, first, tasks


# --- issue 18 item 8: two runs of one stage at once ------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_of_a_running_stage_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path, zh_docs):
    """While `pipeline run ingest` works (a task blocked on a FIFO), a second one exits 2 naming the first's host and
    pid instead of racing it; once the first is killed, its lock is taken over and the rerun finishes the stage."""
    src, run_dir, cfg_path, first = start_ingest_blocked_on_a_fifo(tmp_path, zh_docs)
    lock = run_dir / "out" / "ingest" / runner.LOCK_NAME
    wait_for_main_task_0(run_dir)
    try:
        assert first.poll() is None, "the first run finished before the second could start"
        second = pipeline_cli("run", "ingest", "--config", str(cfg_path))
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
        assert f"stage 'ingest' is already being run by another command (host {socket.gethostname()} " in second.stderr
        assert f"pid {first.pid} since" in second.stderr and str(lock) in second.stderr
        assert first.poll() is None  # the first run was not disturbed
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert f"pid {first.pid} " in lock.read_text()  # the dead run's lock file is still there
    unblock(src, zh_docs)
    cfg = load_config(cfg_path)
    stats = runner.run_stage(cfg, "ingest")
    assert stats["kept"] == 20
    assert f"pid {os.getpid()} " in lock.read_text()
    assert verify(cfg, quiet=True) == []


def session_processes(sid: int) -> dict[int, str]:
    """{pid: command line} of the live (not zombie) processes of process session `sid`, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            if entry.name.isdigit() and fields[0] != "Z" and int(fields[3]) == sid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_rerun_right_after_the_runner_alone_is_killed_while_its_workers_run_resumes(tmp_path, zh_docs, sig):
    """`kill -9` (or `kill`, SIGTERM) of the runner's pid alone, not its process group, while a worker process
    (workers = 2, forkserver) is inside a task: nothing of the killed run lives on (the worker, datatrove's Manager,
    the forkserver), and a rerun started at once resumes to the uninterrupted run's corpus. Before, the Manager kept
    the run lock for ever and every rerun was refused naming the dead pid."""
    err = tmp_path / "first.err"
    with err.open("w") as err_file:
        src, run_dir, cfg_path, first = start_ingest_blocked_on_a_fifo(tmp_path, zh_docs, workers=2, stderr=err_file)
    lock = run_dir / "out" / "ingest" / runner.LOCK_NAME
    wait_for_main_task_0(run_dir)
    try:
        assert first.poll() is None, "the run finished before it could be killed"
        workers = [p for p, cmd in session_processes(first.pid).items() if "forkserver" in cmd and p != first.pid]
        assert workers, session_processes(first.pid)
        os.kill(first.pid, sig)
        first.wait()
        unblock(src, zh_docs)
        cfg = load_config(cfg_path)
        stats = runner.run_stage(cfg, "ingest")  # at once: no wait here, the runner waits for what must end first
    finally:
        for pid in session_processes(first.pid):  # whatever a failure left, not to outlive the test
            os.kill(pid, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert first.returncode == 128 + signal.SIGTERM
        assert "ingest: SIGTERM: stopping its tasks; `pipeline run ingest` again resumes" in err.read_text()
    else:
        assert first.returncode == -signal.SIGKILL
    assert stats["kept"] == 20 and f"pid {os.getpid()} " in lock.read_text()
    deadline = time.time() + 60  # the forkserver and resource tracker leave once the workers are gone
    while session_processes(first.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert session_processes(first.pid) == {}
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean_cfg, _ = run_ingest(write_config(clean_dir, source("s", str(src), "jsonl"), tasks=2))
    assert kept(clean_cfg).sort("id").equals(kept(cfg).sort("id"))
    assert verify(cfg, quiet=True) == []


def hold_the_tasks_lock(lock: Path) -> subprocess.Popen:
    """A process that holds the tasks byte of `lock` as a worker of a killed run does (pipeline.runlock.TaskLock)
    and keeps it until killed; returns once it holds it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys; from pipeline import runlock; fd = os.open(sys.argv[1], os.O_RDWR); "
            "assert runlock.try_lock(fd, runlock.TASKS_BYTE, exclusive=False); print('held', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.slow
def test_a_live_task_process_of_a_dead_run_is_waited_for_then_named(tmp_path, zh_docs, monkeypatch):
    """A task process of a killed run still holding the lock: the rerun waits for it (and says so); if it exits the
    rerun resumes; if it is still alive after LEFTOVER_WAIT_SECONDS the rerun is refused, naming its pid and command
    and saying to kill it, and has written nothing."""
    run_dir, cfg_path, first, tasks = killed_after_its_first_task(tmp_path, zh_docs)
    lock = run_dir / "out" / "ingest" / runner.LOCK_NAME
    cfg = load_config(cfg_path)

    holders = [hold_the_tasks_lock(lock), hold_the_tasks_lock(lock)]
    monkeypatch.setattr(runner, "LEFTOVER_WAIT_SECONDS", 1.0)
    try:
        with pytest.raises(runner.StageError) as refused:
            runner.run_stage(cfg, "ingest")
        assert [h.poll() for h in holders] == [None, None]
    finally:
        for h in holders:
            h.kill()
            h.wait()
    message = str(refused.value)
    assert f"the run that held {lock} (host {socket.gethostname()} pid {first.pid} since" in message
    assert "still alive after 1s and may still be writing the stage's files: pid " in message
    assert all(f"pid {h.pid} (" in message for h in holders), message  # both named, not just the one F_GETLK gives
    pids = sorted(h.pid for h in holders)
    assert message.endswith("and run again") and "`kill " in message
    assert sorted(int(p) for p in message.split("`kill ")[1].split("`")[0].split()) == pids
    assert len(list(tasks.glob("*.json"))) == 1  # nothing ran beside it

    holder = hold_the_tasks_lock(lock)
    monkeypatch.setattr(runner, "LEFTOVER_WAIT_SECONDS", 120.0)
    said = []

    def log(msg: str) -> None:  # the process the rerun waits for exits while it waits (as a killed worker does)
        said.append(msg)
        if "waiting up to" in msg:
            holder.kill()

    monkeypatch.setattr(runner, "_log", log)
    try:
        stats = runner.run_stage(cfg, "ingest")
    finally:
        holder.kill()
        holder.wait()
    assert said[0].startswith(f"ingest: the run that held {lock} (host {socket.gethostname()} pid {first.pid} since")
    assert f"waiting up to 120s for its task process pid {holder.pid} (" in said[0]
    assert stats["kept"] == 20
    assert verify(cfg, quiet=True) == []


# --- issue 18 item 1: a config change between a run and its rerun ---------------------------------------------------


@pytest.mark.slow
def test_a_setting_changed_after_a_killed_run_is_refused_naming_the_key(tmp_path, zh_docs):
    """Kill ingest mid-way, change a setting that decides its output: the rerun refuses (exit 2) naming the key and
    both values instead of finishing the other tasks under the new setting; status says so; the old setting (or a
    changed non-output setting) resumes; --force redoes the stage under the new one."""
    run_dir, cfg_path, first, tasks = killed_after_its_first_task(tmp_path, zh_docs)

    changed = ("--set", "stages.ingest.unicode_form=none")
    r = pipeline_cli("run", "ingest", "--config", str(cfg_path), *changed)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "stage 'ingest' was run with other settings" in r.stderr
    assert 'stages.ingest.unicode_form: "NFC" -> "none"' in r.stderr and "--force" in r.stderr
    assert len(list(tasks.glob("*.json"))) == 1  # nothing ran under the new setting
    status = pipeline_cli("status", "--config", str(cfg_path), *changed)
    assert "config changed: stages.ingest.unicode_form" in status.stdout, status.stdout

    # a setting that does not change outputs (workers, the executor) resumes the run
    cfg = load_config(cfg_path, ["executor.workers=2"])
    assert runner.stage_state(cfg, "ingest").changes == []
    assert runner.run_stage(cfg, "ingest")["kept"] == 20
    assert verify(cfg, quiet=True) == []

    # --force redoes it under the new setting, and the new fingerprint is the one recorded
    new_cfg = load_config(cfg_path, ["stages.ingest.unicode_form=none"])
    assert runner.stage_state(new_cfg, "ingest").state == "stale"
    assert runner.run_stage(new_cfg, "ingest", force=True)["kept"] == 20
    assert runner.stage_state(new_cfg, "ingest").state == "finished"
    assert runner.stage_state(cfg, "ingest").state == "stale"


@pytest.mark.slow
def test_a_changed_or_disabled_upstream_stage_makes_the_stages_after_it_stale(tmp_path, zh_docs):
    """filter's zh.min_length changed after ingest -> langid -> filter -> dedup ran: filter refuses naming the key,
    dedup is stale through its input; redoing filter with --force leaves dedup stale; disabling filter after the run
    makes dedup stale too (it would now read langid's output)."""
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "docs.jsonl", [{"text": d} for d in zh_docs[:20]])
    cfg_path = write_config(tmp_path, source("s", str(src), "jsonl"), tasks=1, workers=1)
    cfg = load_config(cfg_path)
    for stage in ("ingest", "langid", "filter", "dedup"):
        runner.run_stage(cfg, stage)
    lengths = sorted(len(d) for d in zh_docs[:20])
    cut = lengths[10]  # half the documents are shorter
    longer = load_config(cfg_path, [f"stages.filter.zh.min_length={cut}"])
    assert runner.stage_state(longer, "ingest").state == runner.stage_state(longer, "langid").state == "finished"
    filt, dedup = runner.stage_state(longer, "filter"), runner.stage_state(longer, "dedup")
    assert filt.state == dedup.state == "stale"
    assert filt.changes == [f"stages.filter.zh.min_length: 50 -> {cut}"]
    assert dedup.changes == [f"input stage 'filter' changed (stages.filter.zh.min_length: 50 -> {cut})"]
    with pytest.raises(runner.StageError, match=rf"stages.filter.zh.min_length: 50 -> {cut}\b"):
        runner.run_stage(longer, "filter")
    with pytest.raises(runner.StageError, match=r"stage 'dedup' .*input stage 'filter' changed"):
        runner.run_stage(longer, "dedup")
    assert runner.run_stage(longer, "filter", force=True)["removed_by_reason"]["zh_length"] >= 10
    assert runner.stage_state(longer, "filter").state == "finished"
    assert runner.stage_state(longer, "dedup").changes == ["input stage 'filter' was redone with other settings since"]
    assert runner.run_stage(longer, "dedup", force=True)["docs_in"] <= 10
    assert runner.stage_state(longer, "dedup").state == "finished"

    no_filter = load_config(cfg_path, [f"stages.filter.zh.min_length={cut}", "stages.filter.enabled=false"])
    assert runner.stage_state(no_filter, "dedup").changes == [
        "input stage filter -> langid (a stage was enabled or disabled)"
    ]
    assert "config changed: input stage filter -> langid" in "".join(
        r["state"] for r in status_rows(no_filter) if r["stage"] == "dedup"
    )
