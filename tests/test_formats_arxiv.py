"""format = "arxiv": LaTeX sources, on the bundled real ones (thuthesis's example as an arXiv-style tarball with an
\\input chain, quantumarticle's template as a folder) and damaged copies."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections import Counter

import polars as pl
import pytest

from pipeline.verify import verify
from stages.formats.arxiv import archive_files, clean_latex, extract_paper, find_main, macro_definitions, paper_units
from tests.conftest import SAMPLE, write_config
from tests.test_ingest import kept, removed, run_ingest, source

PAPERS = SAMPLE / "formats" / "papers"
TARBALL = PAPERS / "thuthesis-example.tar.gz"


@pytest.fixture(scope="module")
def thesis():
    files = archive_files(TARBALL.read_bytes())
    return files, extract_paper(files)


def test_main_file_found_and_inputs_followed(thesis):
    files, paper = thesis
    assert find_main(files) == "thuthesis-example.tex"
    assert paper.error is None
    text = paper.text
    # \input{data/chap01} ... \input{data/chap04} are inlined, in order
    chap1 = text.index("\\chapter{论文主要部分的写法}")
    assert chap1 < text.index("学位论文的研究主题切忌过大") < text.index("\\REQUIRE $n \\geq 0$")  # chap01, chap02
    # commented-out inputs are not followed: appendix-survey.tex is only named in a comment
    assert "Title of the Survey" not in text
    # comments, preamble and bibliography are gone; math stays LaTeX
    assert not any(line.lstrip().startswith("%") for line in text.split("\n"))
    for gone in ("\\documentclass", "\\usepackage", "!TeX root", "\\bibliography{", "\\begin{document}"):
        assert gone not in text, gone
    assert "$y = x^n$" in text


def test_front_matter_gives_title_and_authors_and_verbatim_does_not_cut():
    files = {"quantum-template.tex": (PAPERS / "quantum-template" / "quantum-template.tex").read_text()}
    paper = extract_paper(files)
    assert paper.title == "Template demonstrating the quantumarticle document class"
    # the six authors of the front matter, not the \author lines shown in the body's verbatim examples
    assert paper.author.split("; ") == [
        "Lídia del Rio",
        "Christian Gogolin",
        "Marcus Huber",
        "Cassandra Granade",
        "Johannes Jakob Meyer",
        "Victor V. Albert",
    ]
    text = paper.text
    assert text.startswith("\\begin{abstract}")  # the abstract is kept (RedPajama cuts at the first section)
    # a \bibliography inside a verbatim block does not end the paper; the real bibliography does
    assert "\\bibliography{mybibliography}" in text and "\\section{LyX layout}" in text
    assert "StackExchange discussion on" not in text  # the text of the real \bibitem entries
    assert "\\begin{thebibliography}" not in text
    assert "ETH Zurich" not in text and "0000-0002-2445-2701" not in text  # affiliations and ORCIDs of the front matter


def test_macros_expanded_and_definitions_dropped():
    tex = (
        "\\documentclass{article}\n\\newcommand{\\R}{\\mathbb{R}}\n\\def\\eps{\\varepsilon}\n"
        "\\newcommand{\\norm}[1]{\\lVert #1\\rVert}\n\\begin{document}\n\\section{Intro}\n"
        "Let $x\\in\\R^n$, $\\eps>0$ and $\\norm{x}\\le 1$ % a comment\n\\bibliography{refs}\n\\end{document}\n"
    )
    macros, rest = macro_definitions(tex)
    assert macros == {"\\R": "\\mathbb{R}", "\\eps": "\\varepsilon"} and "\\newcommand" not in rest
    body, _, _ = clean_latex(tex)
    assert body == "\\section{Intro}\nLet $x\\in\\mathbb{R}^n$, $\\varepsilon>0$ and $\\norm{x}\\le 1$"


def test_paper_units_group_folders():
    files = ["a.tar.gz", "b/main.tex", "b/sections/intro.tex", "b/fig.pdf", "c.tgz", "notes.txt"]
    assert paper_units(files) == ["a.tar.gz", "b", "c.tgz"]
    assert paper_units(["main.tex", "intro.tex"]) == ["."]
    assert paper_units(["b/main.tex", "b/refs.bib.gz", "d.gz"]) == ["b", "d.gz"]  # a paper's own .gz is not a paper


def test_ingest_real_papers_and_damaged_ones(tmp_path):
    src = tmp_path / "papers"
    src.mkdir()
    data = TARBALL.read_bytes()
    (src / "thesis.tar.gz").write_bytes(data)
    (src / "truncated.tar.gz").write_bytes(data[: len(data) // 2])  # a download cut in the middle
    # an archive with only the chapters, no file with \documentclass: kept in removed/ as no_main_tex
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar, tarfile.open(TARBALL) as full:
        for member in full:
            if member.name.startswith("data/chap"):
                tar.addfile(member, full.extractfile(member))
    (src / "chapters-only.tar.gz").write_bytes(gzip.compress(raw.getvalue()))
    quantum = src / "quantum"
    quantum.mkdir()
    (quantum / "quantum-template.tex").write_bytes((PAPERS / "quantum-template" / "quantum-template.tex").read_bytes())
    cfg, stats = run_ingest(write_config(tmp_path, source("p", str(src), "arxiv")))
    assert [f["file"].rsplit("/", 1)[-1] for f in stats["failed_files"]] == ["truncated.tar.gz"]
    df = kept(cfg)
    assert sorted(df["id"]) == ["p:quantum", "p:thesis.tar.gz"]
    assert df.filter(pl.col("id") == "p:quantum")["title"][0].startswith("Template demonstrating")
    rm = removed(cfg)
    assert Counter(zip(rm["id"], rm["reason"])) == {("p:chapters-only.tar.gz", "no_main_tex"): 1}
    assert "学位论文的研究主题切忌过大" in rm["text"][0]  # the chapters' text is kept in removed/
    assert verify(cfg, quiet=True) == []


def test_path_naming_one_paper_folder(tmp_path):
    cfg, _ = run_ingest(write_config(tmp_path, source("p", str(PAPERS / "quantum-template"), "arxiv")))
    df = kept(cfg)
    assert list(df["id"]) == ["p:quantum-template"] and df["author"][0].startswith("Lídia del Rio")
