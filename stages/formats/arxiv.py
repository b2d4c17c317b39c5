"""arXiv-style LaTeX sources (a `.tar.gz`/`.tgz`/`.tar` per paper, a gzipped single `.tex`, or a folder) to text.

The cleaning follows RedPajama's arXiv cleaner (comments removed, everything before the body dropped, everything
from the bibliography on dropped, argument-less user macros expanded and their definitions dropped, math kept as
LaTeX) with two differences: the main file is found (the `.tex` file with `\\documentclass` and
`\\begin{document}`) and `\\input`/`\\include` are followed from it, instead of concatenating every `.tex` file in
whatever order the archive lists them; and the abstract is kept (RedPajama cuts at the first `\\section`).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import re
import tarfile
from pathlib import Path

from stages.formats import Extracted

_COMMENT = re.compile(r"(?<!\\)%.*")
_FULL_LINE_COMMENT = re.compile(r"^[ \t]*%.*\n", re.MULTILINE)
_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.DOTALL)
_IFFALSE = re.compile(r"\\iffalse\b.*?\\fi\b", re.DOTALL)
_INPUT = re.compile(r"\\(input|include|subfile)\s*\{\s*([^}]+?)\s*\}|\\input\s+([^\s{}\\]+)")
_BEGIN_DOCUMENT = re.compile(r"\\begin\s*\{document\}")
_END_DOCUMENT = re.compile(r"\\end\s*\{document\}")
_BODY_START = re.compile(r"\\begin\s*\{abstract\}|\\(?:part|chapter|section|subsection|paragraph)\*?\s*[\[{]")
_BIBLIOGRAPHY = re.compile(r"\\bibliography\s*\{|\\begin\s*\{thebibliography\}|\\printbibliography\b")
# \newcommand{\name}{value}, \renewcommand\name{value}, \def\name{value}: macros without arguments
_NEWCOMMAND = re.compile(r"\\(?:re)?newcommand\*?\s*\{?\s*(\\[A-Za-z@]+)\s*\}?\s*\{")
_DEF = re.compile(r"\\def\s*(\\[A-Za-z@]+)\s*\{")
_BIBLIOGRAPHYSTYLE = re.compile(r"\\bibliographystyle\s*\{[^}]*\}")
_VERBATIM = re.compile(r"\\begin\{(verbatim\*?|Verbatim|lstlisting|minted)\}.*?\\end\{\1\}", re.DOTALL)
_BLANK_LINES = re.compile(r"\n{3,}")
MAX_INPUT_DEPTH = 20


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group whose `{` is at `start`, and the index after its `}`; None if unbalanced."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def strip_comments(tex: str) -> str:
    """Whole-line comments removed with their line; trailing `% ...` removed (an escaped `\\%` is text)."""
    tex = _COMMENT_ENV.sub("", tex)
    tex = _FULL_LINE_COMMENT.sub("", tex)
    return _COMMENT.sub("", tex)


def macro_definitions(tex: str) -> tuple[dict[str, str], str]:
    """Argument-less macros defined with \\newcommand, \\renewcommand or \\def, and `tex` without every macro
    definition (with or without arguments: a definition is never running text)."""
    macros: dict[str, str] = {}
    spans: list[tuple[int, int]] = []
    for pattern in (_NEWCOMMAND, _DEF):
        for m in pattern.finditer(tex):
            name = m.group(1)
            brace = m.end() - 1
            # \newcommand{\f}[2]{...}: an argument count before the body means the macro takes arguments
            between = tex[m.end(1) : brace]
            group = _braced(tex, brace)
            if group is None:
                continue
            value, end = group
            spans.append((m.start(), end))
            if "[" not in between and "#" not in value:
                macros[name] = value
    for m in re.finditer(r"\\(?:re)?newcommand\*?\s*\{?\s*\\[A-Za-z@]+\s*\}?\s*\[\d\](?:\[[^\]]*\])?\s*\{", tex):
        group = _braced(tex, m.end() - 1)
        if group:
            spans.append((m.start(), group[1]))
    kept, last = [], 0
    for start, end in sorted(spans):
        if start >= last:
            kept.append(tex[last:start])
            last = end
    kept.append(tex[last:])
    return macros, "".join(kept)


def expand_macros(tex: str, macros: dict[str, str]) -> str:
    """Replace each argument-less user macro by its value (a value using another macro is expanded too, up to a
    small depth, so a self-referencing definition cannot loop)."""
    if not macros:
        return tex
    pattern = re.compile("|".join(re.escape(name) + r"(?![A-Za-z@])" for name in sorted(macros, key=len, reverse=True)))
    for _ in range(5):
        new = pattern.sub(lambda m: macros[m.group(0)].replace("\\", "\\\\").replace("\\\\", "\\"), tex)
        if new == tex:
            break
        tex = new
    return tex


def find_main(files: dict[str, str]) -> str | None:
    """The main `.tex` file: one with both \\documentclass and \\begin{document} (arXiv's own rule); among several,
    the one named ms/main/paper, else the longest."""
    candidates = [
        name
        for name, text in files.items()
        if name.lower().endswith(".tex") and "\\documentclass" in text and _BEGIN_DOCUMENT.search(text)
    ]
    if not candidates:
        return None
    preferred = [c for c in candidates if Path(c).stem.lower() in ("ms", "main", "paper", "article")]
    return sorted(preferred or candidates, key=lambda c: (-len(files[c]), c))[0]


def inline_inputs(files: dict[str, str], name: str, depth: int = 0, seen: tuple[str, ...] = ()) -> str:
    """`name`'s text with every \\input/\\include replaced by the included file (comments removed first, so a
    commented-out \\input is not followed). A missing file is left out; a cycle or a too-deep chain stops there."""
    text = strip_comments(files[name])
    if depth >= MAX_INPUT_DEPTH:
        return text
    base = posixpath.dirname(name)

    def include(m: re.Match) -> str:
        target = (m.group(2) or m.group(3) or "").strip()
        for candidate in (target, target + ".tex"):
            for path in (posixpath.normpath(posixpath.join(base, candidate)), posixpath.normpath(candidate)):
                if path in files and path not in seen and path != name:
                    return inline_inputs(files, path, depth + 1, seen + (name,))
        return ""

    return _INPUT.sub(include, text)


def _command_argument(tex: str, command: str) -> list[str]:
    values = []
    for m in re.finditer(r"\\" + command + r"\s*(?:\[[^\]]*\])?\s*\{", tex):
        group = _braced(tex, m.end() - 1)
        if group:
            values.append(" ".join(group[0].split()))
    return values


def clean_latex(tex: str) -> tuple[str, str | None, str | None]:
    """(body text, title, authors) of a full LaTeX document with its inputs inlined.

    Preamble dropped (after its argument-less macros are collected), front matter (\\title, \\author, affiliations)
    dropped up to the abstract or first section, bibliography and everything after it dropped, macros expanded,
    math left as LaTeX."""
    tex = strip_comments(tex)
    tex = _IFFALSE.sub("", tex)
    macros, tex = macro_definitions(tex)
    begin = _BEGIN_DOCUMENT.search(tex)
    body = tex[begin.end() :] if begin else tex
    if end := _END_DOCUMENT.search(body):
        body = body[: end.start()]
    front = tex[: begin.end()] if begin else ""
    if start := _BODY_START.search(body):
        front += body[: start.start()]
        body = body[start.start() :]
    # title and authors from the front matter only: the body may show \author in examples
    title = next(iter(_command_argument(front, "title")), None)
    authors = _command_argument(front, "author")
    body = _BIBLIOGRAPHYSTYLE.sub("", body)
    # a \bibliography shown inside a verbatim block (a template explaining itself) is not the bibliography
    verbatim = [m.span() for m in _VERBATIM.finditer(body)]
    for bib in _BIBLIOGRAPHY.finditer(body):
        if not any(start <= bib.start() < end for start, end in verbatim):
            body = body[: bib.start()]
            break
    body = expand_macros(body, macros)
    lines = [line.rstrip() for line in body.split("\n")]
    body = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    return body, (expand_macros(title, macros) if title else None), ("; ".join(authors) or None)


def decode_tex(data: bytes) -> str:
    """UTF-8, else Latin-1 (older arXiv sources), never failing."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".gz")


def paper_units(files: list[str]) -> list[str]:
    """The papers among a source's files: each archive is one; loose files form one paper per first-level
    folder, or one for the folder itself when they lie directly in it (a `path` naming one paper's folder)."""

    def folder_of(rel: str) -> str:
        parts = Path(rel).parts
        return parts[0] if len(parts) > 1 else "."

    folders = {folder_of(rel) for rel in files if rel.lower().endswith(".tex")}
    units = set(folders)
    for rel in files:
        # an archive is a paper unless it lies in a paper's folder (a gzipped file of that paper)
        if rel.lower().endswith(ARCHIVE_SUFFIXES) and folder_of(rel) not in folders:
            units.add(rel)
    return sorted(units)


def archive_files(data: bytes) -> dict[str, str]:
    """The `.tex` files of a paper archive (tar, tar.gz) or of a gzipped single `.tex` file, by relative path."""
    raw = data
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if not _is_tar(raw):
        return {"main.tex": decode_tex(raw)}
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for member in tar:
            if member.isfile() and member.name.lower().endswith(".tex"):
                name = posixpath.normpath(member.name.lstrip("/"))
                files[name] = decode_tex(tar.extractfile(member).read())
    return files


def _is_tar(raw: bytes) -> bool:
    return len(raw) >= 262 and raw[257:262] == b"ustar"


def extract_paper(files: dict[str, str]) -> Extracted:
    """One paper's text from its `.tex` files; `no_main_tex` when no file has \\documentclass and
    \\begin{document} (the files' text, concatenated, is kept in removed/)."""
    main = find_main(files)
    if main is None:
        return Extracted(record=0, text="\n\n".join(files[k] for k in sorted(files)), error="no_main_tex")
    body, title, authors = clean_latex(inline_inputs(files, main))
    return Extracted(record=0, text=body, title=title, author=authors)
