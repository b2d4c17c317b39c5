"""Text of a PDF, one document per file, with pdfminer.six's layout analysis.

pdfminer groups characters into lines and lines into text boxes and orders the boxes by columns (`boxes_flow`), so a
two-column paper reads column by column instead of line across line. Pages are interpreted one at a time. Inside a
box, lines are joined back into paragraphs: Chinese lines without a space (a line break in Chinese is not a word
break), other lines with a space, and a word hyphenated at the line end is rejoined.

A PDF whose pages have no text layer (a scan) gives `no_text_layer`; characters pdfminer cannot map to Unicode come
out as `(cid:N)` and are dropped. pdfminer rebuilds a broken cross-reference table by scanning the file for objects
(its fallback parser); when that fails too (objects inside object streams, which its fallback does not index),
pypdf's non-strict reader rebuilds the file and pdfminer reads the rebuilt copy (`repaired`). A file neither can
parse raises, and ingest names it in `failed_files`.
"""

from __future__ import annotations

import io
import re
from typing import IO

from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LAParams, LTTextBox, LTTextLine
from pdfminer.pdfdocument import PDFDocument
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.psexceptions import PSException
from pdfminer.utils import decode_text
from pypdf import PdfReader, PdfWriter

from stages.formats import Extracted

_CID = re.compile(r"\(cid:\d+\)")
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_END = re.compile(f"[{_CJK}]$")
_CJK_START = re.compile(f"^[{_CJK}]")
_PAGE_NUMBER = re.compile(r"^\s*(?:[-–—]\s*)?\d{1,4}(?:\s*[-–—])?\s*$")
_HYPHEN_END = re.compile(r"[A-Za-z]-$")


def join_lines(lines: list[str]) -> str:
    """One paragraph from a text box's lines: CJK to CJK without a space, a trailing hyphen before a lowercase
    letter removed, otherwise a space."""
    out = ""
    for line in (line.strip() for line in lines):
        if not line:
            continue
        if not out:
            out = line
        elif _CJK_END.search(out) and _CJK_START.search(line):
            out += line
        elif _HYPHEN_END.search(out) and line[:1].islower():
            out = out[:-1] + line
        else:
            out += " " + line
    return out


def page_paragraphs(layout) -> list[str]:
    """The paragraphs of one analysed page in reading order; lone page numbers left out."""
    paragraphs = []
    for element in layout:
        if not isinstance(element, LTTextBox):
            continue
        lines = [_CID.sub("", line.get_text()) for line in element if isinstance(line, LTTextLine)]
        paragraph = join_lines(lines)
        if paragraph and not _PAGE_NUMBER.match(paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def _info(document: PDFDocument, key: str) -> str | None:
    for info in document.info:
        value = info.get(key)
        if hasattr(value, "resolve"):
            value = value.resolve()
        if isinstance(value, bytes):
            value = decode_text(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def extract_pdf(stream: IO[bytes]) -> Extracted:
    """The text of a whole PDF (paragraphs on their own lines, pages separated by a blank line), with its Title
    and Author from the document information. Raises on a file pdfminer cannot parse at all (not a PDF,
    encrypted with a password)."""
    try:
        document = PDFDocument(PDFParser(stream))
        repaired = False
    except PSException as first:
        # pdfminer's own fallback rebuilds a table of plain objects but not of objects inside object streams
        # (PDF 1.5+, what XeTeX and most current tools write); pypdf's non-strict reader rebuilds both, and
        # the copy it writes has a valid cross-reference table.
        stream.seek(0)
        try:
            fixed = io.BytesIO()
            PdfWriter(clone_from=PdfReader(stream, strict=False)).write(fixed)
        except Exception as second:
            raise ValueError(f"unreadable PDF: pdfminer: {first}; pypdf repair: {second}") from second
        fixed.seek(0)
        document = PDFDocument(PDFParser(fixed))
        repaired = True
    manager = PDFResourceManager(caching=True)
    device = PDFPageAggregator(manager, laparams=LAParams())
    interpreter = PDFPageInterpreter(manager, device)
    pages = []
    for page in PDFPage.create_pages(document):
        interpreter.process_page(page)
        paragraphs = page_paragraphs(device.get_result())
        if paragraphs:
            pages.append("\n".join(paragraphs))
    text = "\n\n".join(pages)
    record = Extracted(record=0, text=text, title=_info(document, "Title"), author=_info(document, "Author"))
    record.repaired = repaired
    if not text.strip():
        record.error = "no_text_layer"
    return record
