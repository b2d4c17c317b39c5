"""format = "pdf": the bundled real PDFs (xpinyin's Chinese manual, an image-only page) and damaged copies."""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest

from pipeline.verify import verify
from stages.formats.pdf import extract_pdf, join_lines
from tests.conftest import SAMPLE, write_config
from tests.test_ingest import kept, removed, run_ingest, source

PDFS = SAMPLE / "formats" / "pdf"
XPINYIN = PDFS / "xpinyin.pdf"


def broken_xref(data: bytes) -> bytes:
    """The file with its `startxref` pointing at the wrong offset (the cross-reference table cannot be found)."""
    m = list(re.finditer(rb"startxref\s+(\d+)", data))[-1]
    return data[: m.start(1)] + b"999" + data[m.end(1) :]


@pytest.fixture(scope="module")
def xpinyin():
    with open(XPINYIN, "rb") as f:
        return extract_pdf(f)


def test_chinese_pdf_text_and_metadata(xpinyin):
    assert xpinyin.error is None and not xpinyin.repaired
    assert xpinyin.title == "xpinyin 宏包" and xpinyin.author.startswith("李清")
    lines = xpinyin.text.split("\n")
    assert "xpinyin 是一个 LATEX 宏包，提供了为汉字自动注音的功能。" in lines
    # a paragraph wrapped over several lines in the PDF is one line, Chinese joined without spaces
    assert any(
        line.startswith("xpinyin 支持采用 GBK 和 UTF-8 编码的 TEX 源文件，建议总是使用 UTF-8。如果使用")
        for line in lines
    )
    assert "(cid:" not in xpinyin.text
    assert xpinyin.text.count("\n\n") >= 10  # pages separated by a blank line (19 pages)


def test_join_lines():
    assert join_lines(["汉字自动", "注音的功能。"]) == "汉字自动注音的功能。"
    assert join_lines(["a hyphen-", "ated word and", "Next"]) == "a hyphenated word and Next"
    assert join_lines(["UTF-8 编码", "the end"]) == "UTF-8 编码 the end"


def test_image_only_page_has_no_text_layer():
    with open(PDFS / "xiantu-ancient.pdf", "rb") as f:
        record = extract_pdf(f)
    assert record.error == "no_text_layer" and record.text == ""


@pytest.mark.slow
def test_broken_xref_is_repaired(xpinyin):
    record = extract_pdf(io.BytesIO(broken_xref(XPINYIN.read_bytes())))
    assert record.repaired and record.error is None
    assert record.title == xpinyin.title
    # the same characters; pdfminer may group a few ruby (pinyin) boxes differently in the rewritten file
    assert Counter(record.text.split()) == Counter(xpinyin.text.split()) or Counter(
        "".join(record.text.split())
    ) == Counter("".join(xpinyin.text.split()))


def test_unrepairable_pdf_raises_naming_both_readers():
    data = XPINYIN.read_bytes()
    offset = int(list(re.finditer(rb"startxref\s+(\d+)", data))[-1].group(1))
    garbled = data[:offset] + b"X" * 60 + data[offset + 60 :]  # the xref stream, which holds the trailer, destroyed
    with pytest.raises(ValueError, match="unreadable PDF: pdfminer: .*; pypdf repair: "):
        extract_pdf(io.BytesIO(garbled))


@pytest.mark.slow
def test_ingest_pdfs(tmp_path):
    src = tmp_path / "pdf"
    src.mkdir()
    data = XPINYIN.read_bytes()
    (src / "xpinyin.pdf").write_bytes(data)
    (src / "scan.pdf").write_bytes((PDFS / "xiantu-ancient.pdf").read_bytes())
    (src / "broken-xref.pdf").write_bytes(broken_xref(data))
    (src / "truncated.pdf").write_bytes(data[:5000])
    cfg, stats = run_ingest(write_config(tmp_path, source("d", str(src), "pdf")))
    assert [f["file"].rsplit("/", 1)[-1] for f in stats["failed_files"]] == ["truncated.pdf"]
    df = kept(cfg)
    assert sorted(df["id"]) == ["d:broken-xref.pdf", "d:xpinyin.pdf"]
    assert set(df["title"]) == {"xpinyin 宏包"}
    assert Counter(removed(cfg)["reason"]) == {"no_text_layer": 1}
    assert verify(cfg, quiet=True) == []
