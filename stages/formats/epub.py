"""E-books (EPUB 2 and 3, with ebooklib) to text: one document per book or one per chapter.

Chapters are the spine's documents in reading order (the navigation document and the cover page are not text).
Each chapter's XHTML becomes text with lxml: block elements (paragraphs, headings, list items, table rows, ...)
start a new line, `<script>`/`<style>` are dropped. Title and author come from the package's Dublin Core metadata.

ebooklib refuses a whole book when one file the manifest lists is missing from the archive; the reader here
records the missing file instead and gives it as a `missing_chapter` record, so the other chapters are kept.
Manifest items that point at an anchor inside a file (`part.xhtml#o12`, as sisu writes them) are read as that file,
once.
"""

from __future__ import annotations

import re
from typing import IO

import lxml.etree
import lxml.html
from ebooklib import ITEM_DOCUMENT, epub

from stages.formats import Extracted

BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "aside",
    "blockquote",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "dt",
    "dd",
    "tr",
    "table",
    "ul",
    "ol",
    "dl",
    "figcaption",
    "header",
    "footer",
    "hr",
    "br",
}
_SPACES = re.compile(r"[ \t\r\f\v]+")
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(content: bytes | str) -> str:
    """The visible text of an XHTML chapter, each block element on its own line."""
    if not content or not content.strip():
        return ""
    if isinstance(content, str):
        content = content.encode("utf-8")
    root = lxml.html.document_fromstring(content)
    for bad in root.xpath("//script|//style|//head"):
        bad.drop_tree()
    parts: list[str] = []

    def flow(text: str, pre: bool) -> str:
        # a line break in HTML source is a space, except inside <pre>
        return text if pre else _WHITESPACE.sub(" ", text)

    def walk(el, pre: bool) -> None:
        tag = el.tag.rsplit("}", 1)[-1].lower() if isinstance(el.tag, str) else ""
        pre = pre or tag == "pre"
        block = tag in BLOCK_TAGS
        if block:
            parts.append("\n")
        if isinstance(el.tag, str) and el.text:
            parts.append(flow(el.text, pre))
        for child in el:
            walk(child, pre)
            if child.tail:
                parts.append(flow(child.tail, pre))
        if block:
            parts.append("\n")

    walk(root, False)
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(parts).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(line for line in lines if line)).strip()


class _TolerantReader(epub.EpubReader):
    """ebooklib's reader, recording a manifest file missing from the archive instead of failing the whole book."""

    def __init__(self, epub_file, options=None):
        super().__init__(epub_file, options)
        self.missing: set[str] = set()

    def read_file(self, name):
        # Some generators (sisu) list one manifest item per anchor, "chapter.xhtml#o12": the file is the part
        # before "#" (read_epub reads each file once).
        name = name.split("#", 1)[0]
        try:
            return super().read_file(name)
        except KeyError:
            if name.rsplit(".", 1)[-1].lower() in ("opf", "xml") and name.endswith(("container.xml", ".opf")):
                raise  # without its container or package document the book has no structure at all
            self.missing.add(epub.zip_path.normpath(name))
            return b""


def _metadata(book: epub.EpubBook, field: str) -> str | None:
    values = [value for value, _attrs in book.get_metadata("DC", field) if value and value.strip()]
    return "; ".join(v.strip() for v in values) or None


def read_epub(stream: IO[bytes] | str, text_mode: str = "book") -> list[Extracted]:
    """The book as one record (`text_mode="book"`, chapters separated by a blank line) or one record per chapter
    (`"chapter"`, numbered from 1 in spine order). A chapter missing from the archive is a `missing_chapter`
    record in both modes; the rest of the book is kept."""
    reader = _TolerantReader(stream, {"ignore_ncx": True})
    book = reader.load()
    title, author = _metadata(book, "title"), _metadata(book, "creator")
    chapters: list[Extracted] = []
    seen: set[str] = set()
    for number, (idref, _linear) in enumerate(book.spine, start=1):
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        name = epub.zip_path.normpath(epub.zip_path.join(reader.opf_dir, item.get_name().split("#", 1)[0]))
        if name in seen:  # another anchor of a file already read
            continue
        seen.add(name)
        if name in reader.missing:
            chapters.append(Extracted(record=number, text="", error="missing_chapter", title=title, author=author))
            continue
        chapters.append(Extracted(record=number, text=html_to_text(item.get_content()), title=title, author=author))
    if text_mode == "chapter":
        return chapters
    present = [c.text for c in chapters if c.error is None and c.text.strip()]
    records = [c for c in chapters if c.error]
    records.insert(0, Extracted(record=0, text="\n\n".join(present), title=title, author=author))
    return records
