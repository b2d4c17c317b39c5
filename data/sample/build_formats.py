"""Rebuild data/sample/formats/: one small real file (or two) per document format of ingest.

Run from the repository root (needs the Debian archive and PyPI; `apt-get update` once first):

    .venv/bin/python data/sample/build_formats.py [--workdir /tmp/formats-src]

What it writes (see SOURCES.md for licences):

    formats/wiki/enwiki-sample-multistream.xml.bz2   MediaWiki XML export: pages of gensim's test dump
    formats/papers/thuthesis-example.tar.gz          LaTeX source as an arXiv-style tarball (\\input chain)
    formats/papers/quantum-template/                 LaTeX source as a folder
    formats/pdf/xpinyin.pdf                          a Chinese PDF (XeLaTeX output with a text layer)
    formats/pdf/xiantu-ancient.pdf                   a PDF page that is only a scanned image (no text layer)
    formats/books/live-manual.en.epub                an EPUB book

Deterministic: pinned versions, sorted members, tar/gzip times set to 0, a fixed page selection.
"""

from __future__ import annotations

import argparse
import bz2
import glob
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

DEBS = {
    "texlive-publishers-doc": "2022.20230122-4",
    "texlive-lang-chinese": "2022.20230122-1",
    "live-manual-epub": "2:20151217.2",
}
GENSIM = "gensim==4.4.0"
WIKI_IN_WHEEL = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TEXDOC = "usr/share/doc/texlive-doc/latex"
SCAN_PDF = "usr/share/doc/texlive-doc/support/asymptote-by-example-zh-cn/src/xiantu-ancient.pdf"
PAGES_PER_STREAM = 10  # Wikimedia's multistream dumps put 100 pages in each bz2 stream; fewer here, same form
MAX_ARTICLE_CHARS = 12_000  # small articles only, to keep the file small
ARTICLES = 16
REDIRECTS = 6
DISAMBIGUATIONS = 2


def run(cmd, cwd=None):
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch(work: str) -> dict[str, str]:
    got = {}
    for pkg, ver in DEBS.items():
        found = glob.glob(os.path.join(work, f"{pkg}_*.deb"))
        if not found:
            run(["apt-get", "download", f"{pkg}={ver}"], cwd=work)
            found = glob.glob(os.path.join(work, f"{pkg}_*.deb"))
        tree = os.path.join(work, pkg)
        if not os.path.isdir(tree):
            run(["dpkg", "-x", found[0], tree])
        got[pkg] = tree
    wheels = glob.glob(os.path.join(work, "gensim-4.4.0-*.whl"))
    if not wheels:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--only-binary", ":all:", "-d", work, GENSIM])
        wheels = glob.glob(os.path.join(work, "gensim-4.4.0-*.whl"))
    got["gensim"] = wheels[0]
    return got


def wiki_sample(wheel: str, out: str) -> None:
    """Header and <siteinfo> as they are, then a fixed selection of whole <page> elements (byte for byte) in dump
    order: the first small articles, redirects and disambiguation pages, and every non-article page."""
    with zipfile.ZipFile(wheel) as z:
        xml = bz2.decompress(z.read(WIKI_IN_WHEEL)).decode("utf-8")
    head_end = xml.index("  <page>")
    pages = re.findall(r"  <page>\n.*?\n  </page>\n", xml, re.DOTALL)
    chosen = []
    counts = {"article": 0, "redirect": 0, "disambiguation": 0}
    for page in pages:
        ns = re.search(r"<ns>(\d+)</ns>", page).group(1)
        if ns != "0":
            chosen.append(page)
        elif "<redirect" in page:
            if counts["redirect"] < REDIRECTS:
                counts["redirect"] += 1
                chosen.append(page)
        elif re.search(r"\{\{\s*disambiguation", page, re.IGNORECASE):
            if counts["disambiguation"] < DISAMBIGUATIONS:
                counts["disambiguation"] += 1
                chosen.append(page)
        elif len(page) <= MAX_ARTICLE_CHARS and counts["article"] < ARTICLES:
            counts["article"] += 1
            chosen.append(page)
    # multistream: the header in its own stream, then PAGES_PER_STREAM pages per stream, then the footer
    streams = [xml[:head_end]]
    streams += ["".join(chosen[i : i + PAGES_PER_STREAM]) for i in range(0, len(chosen), PAGES_PER_STREAM)]
    streams.append("</mediawiki>\n")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        for part in streams:
            f.write(bz2.compress(part.encode("utf-8"), 9))
    print(f"{out}: {len(chosen)} pages {counts}, {os.path.getsize(out):,} bytes")


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _read_maybe_gz(path: str) -> bytes:
    """Debian gzips some documentation files (chap01.tex.gz); the package's own file is the decompressed one."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with gzip.open(path + ".gz") as f:
        return f.read()


def papers(texdoc: str, out_dir: str) -> None:
    thu = os.path.join(texdoc, "thuthesis")
    names = ["thuthesis-example.tex", "thusetup.tex"]
    names += sorted(
        "data/" + n.removesuffix(".gz") for n in os.listdir(os.path.join(thu, "data")) if n.endswith((".tex", ".gz"))
    )
    names += sorted("ref/" + n.removesuffix(".gz") for n in os.listdir(os.path.join(thu, "ref")))
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, "thuthesis-example.tar.gz")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            _tar_add(tar, name, _read_maybe_gz(os.path.join(thu, name)))
    with open(target, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    print(f"{target}: {len(names)} files, {os.path.getsize(target):,} bytes")
    quantum = os.path.join(out_dir, "quantum-template")
    os.makedirs(quantum, exist_ok=True)
    with open(os.path.join(quantum, "quantum-template.tex"), "wb") as f:
        f.write(_read_maybe_gz(os.path.join(texdoc, "quantumarticle", "quantum-template.tex")))
    print(f"{quantum}/quantum-template.tex")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", help="download/extract here and keep it (default: a temp dir, removed)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "formats"))
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="mapcc-formats-")
    os.makedirs(work, exist_ok=True)
    try:
        got = fetch(work)
        wiki_sample(got["gensim"], os.path.join(args.out, "wiki", "enwiki-sample-multistream.xml.bz2"))
        papers(os.path.join(got["texlive-publishers-doc"], TEXDOC), os.path.join(args.out, "papers"))
        os.makedirs(os.path.join(args.out, "pdf"), exist_ok=True)
        shutil.copyfile(
            os.path.join(got["texlive-lang-chinese"], TEXDOC, "xpinyin", "xpinyin.pdf"),
            os.path.join(args.out, "pdf", "xpinyin.pdf"),
        )
        # one page that is a raster image only (a scan of the ancient 弦图 diagram): no text layer
        shutil.copyfile(
            os.path.join(got["texlive-lang-chinese"], SCAN_PDF), os.path.join(args.out, "pdf", "xiantu-ancient.pdf")
        )
        os.makedirs(os.path.join(args.out, "books"), exist_ok=True)
        shutil.copyfile(
            os.path.join(got["live-manual-epub"], "usr/share/doc/live-manual/epub/live-manual.en.epub"),
            os.path.join(args.out, "books", "live-manual.en.epub"),
        )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
