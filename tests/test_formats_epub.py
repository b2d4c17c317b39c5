"""format = "epub": the bundled real e-book (Debian's Live Systems Manual) and damaged copies of it."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from pipeline.verify import verify
from stages.formats.epub import html_to_text, read_epub
from tests.conftest import SAMPLE, write_config
from tests.test_ingest import kept, removed, run_ingest, source

BOOK = SAMPLE / "formats" / "books" / "live-manual.en.epub"


def without(src: Path, dest: Path, missing: str) -> Path:
    """A copy of the EPUB with one archive member left out."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename != missing:
                zout.writestr(info, zin.read(info.filename))
    return dest


def test_book_mode_one_document_with_metadata():
    with open(BOOK, "rb") as f:
        records = read_epub(f, "book")
    assert len(records) == 1
    book = records[0]
    assert book.error is None and book.title == "Live Systems Manual"
    assert book.author == "Live Systems Project <debian-live@lists.debian.org>"
    lines = book.text.split("\n")
    assert "1.1 For the impatient" in lines  # headings on their own line
    assert "<p" not in book.text and "xhtml" not in book.text


def test_chapter_mode_in_spine_order_each_file_once():
    with open(BOOK, "rb") as f:
        chapters = read_epub(f, "chapter")
    # the manifest lists 190 spine entries, most of them #anchors into 47 files: each file is one chapter
    assert len(chapters) == 47 and all(c.error is None for c in chapters)
    numbers = [c.record for c in chapters]
    assert numbers == sorted(numbers) and len(set(numbers)) == 47
    with open(BOOK, "rb") as f:
        (book,) = read_epub(f, "book")
    assert book.text == "\n\n".join(c.text for c in chapters if c.text.strip())


def test_missing_chapter_kept_as_removed_record_and_other_chapters_kept(tmp_path):
    damaged = without(BOOK, tmp_path / "damaged.epub", "OEBPS/bugs.xhtml")
    with open(damaged, "rb") as f:
        chapters = read_epub(f, "chapter")
    assert Counter(c.error for c in chapters) == {None: 46, "missing_chapter": 1}
    with open(BOOK, "rb") as f:
        full = read_epub(f, "chapter")
    missing = next(c for c in chapters if c.error)
    original = next(c for c in full if c.record == missing.record)
    assert "bug" in original.text.lower()  # the chapter that was removed is the bugs chapter
    assert [c.text for c in chapters if not c.error] == [c.text for c in full if c.record != missing.record]


def test_html_to_text_blocks():
    html = "<html><head><title>t</title><style>p{}</style></head><body><h1>Title</h1><p>One <b>bold</b>\nline.</p>"
    html += "<ul><li>a</li><li>b</li></ul><script>x()</script></body></html>"
    assert html_to_text(html) == "Title\nOne bold line.\na\nb"


def test_ingest_epubs(tmp_path):
    src = tmp_path / "books"
    src.mkdir()
    (src / "manual.epub").write_bytes(BOOK.read_bytes())
    without(BOOK, src / "no-bugs-chapter.epub", "OEBPS/bugs.xhtml")
    without(BOOK, src / "no-container.epub", "META-INF/container.xml")  # no structure at all: the file fails
    cfg, stats = run_ingest(write_config(tmp_path, source("b", str(src), "epub", text_mode="chapter")))
    assert [f["file"].rsplit("/", 1)[-1] for f in stats["failed_files"]] == ["no-container.epub"]
    assert "container.xml" in stats["failed_files"][0]["error"]
    df = kept(cfg)
    assert df.filter(pl.col("id").str.starts_with("b:manual.epub:")).height == 47
    assert df.filter(pl.col("id").str.starts_with("b:no-bugs-chapter.epub:")).height == 46
    assert set(df["title"]) == {"Live Systems Manual"}
    rm = removed(cfg)
    assert list(rm["reason"]) == ["missing_chapter"] and rm["id"][0].startswith("b:no-bugs-chapter.epub:")
    assert verify(cfg, quiet=True) == []


@pytest.mark.parametrize("mode", ["file", "chapter"])
def test_config_text_mode(tmp_path, mode):
    cfg, _ = run_ingest(write_config(tmp_path, source("b", str(BOOK), "epub", text_mode=mode)))
    assert kept(cfg).height == (1 if mode == "file" else 47)
