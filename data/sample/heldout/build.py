"""Build the held-out text of `pipeline ablate` for the sample run: text of the same kind as the sample corpus, from
the same two Debian packages, that the sample's own selection leaves out (so no variant can contain it).

    .venv/bin/python data/sample/heldout/build.py --workdir /tmp/heldout-src

- heldout_zh.jsonl: manpages-zh pages. data/sample/build.py takes every 3rd eligible page (index % 3 == 0) into
  books_zh; these are the pages at index % 3 == 1, rendered the same way (groff), GFDL-1.2+ like the sample's.
- heldout_en.jsonl: debian-reference-en sections. The sample takes the odd chapters (ch01, ch03, ...) into
  articles_en; these are sections of the even chapters (ch02, ch04, ...), GPL-2+ like the sample's.

Each file is capped at MAX_CHARS characters (whole documents) so that evaluating it during a demo takes seconds.
Rows: {"id", "text", "lang", "url"}. Deterministic: pinned package versions, sorted file lists, fixed rules.
`pipeline ablate` still checks every row against every variant by id and by normalised-text hash.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import build as sample_build  # noqa: E402  (data/sample/build.py: the sample's own fetch and HTML helpers)

PACKAGES = {"manpages-zh": "1.6.4.0-1", "debian-reference-en": "2.100"}
MAX_CHARS = 40_000


def manpages_zh(root: str) -> list[dict]:
    rows, total = [], 0
    for i, (rel, f) in enumerate(sample_build.manpage_files(root)):
        if i % 3 != 1:  # build.py's books_zh takes i % 3 == 0
            continue
        text = sample_build.render_manpage(f)
        if text is None:
            continue
        if total + len(text) > MAX_CHARS:
            break
        name, sect = rel.split("/")[1].rsplit(".", 1)
        url = f"https://manpages.debian.org/bookworm/manpages-zh/{name}.{sect}.zh_CN.html"
        rows.append({"id": f"heldout:manpages-zh/zh_CN/{rel}", "text": text, "lang": "zh", "url": url})
        total += len(text)
    return rows


def debian_reference_en(root: str) -> list[dict]:
    d = os.path.join(root, "usr", "share", "debian-reference")
    rows, total = [], 0
    for f in sorted(glob.glob(os.path.join(d, "ch*.en.html")))[1::2]:  # build.py's articles_en takes [::2]
        base = os.path.basename(f)
        for sid, _title, text in sample_build.docbook_sections(f):
            if len(text) < 1000 or total + len(text) > MAX_CHARS:
                continue
            url = f"https://www.debian.org/doc/manuals/debian-reference/{base}#{sid}"
            rows.append({"id": f"heldout:debian-reference-en/{base}#{sid}", "text": text, "lang": "en", "url": url})
            total += len(text)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="download/extract here and keep it (default: a temp dir)")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="heldout-build-")
    for pkg, ver in PACKAGES.items():
        dest = os.path.join(work, pkg)
        if not os.path.isdir(dest):
            debs = glob.glob(os.path.join(work, f"{pkg}_*.deb"))
            if not debs:
                subprocess.run(["apt-get", "download", f"{pkg}={ver}"], cwd=work, check=True)
                debs = glob.glob(os.path.join(work, f"{pkg}_*.deb"))
            subprocess.run(["dpkg", "-x", sorted(debs)[-1], dest], check=True)
    for name, rows in (
        ("heldout_zh.jsonl", manpages_zh(os.path.join(work, "manpages-zh"))),
        ("heldout_en.jsonl", debian_reference_en(os.path.join(work, "debian-reference-en"))),
    ):
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        print(f"{name}: {len(rows)} documents, {sum(len(r['text']) for r in rows):,} characters", file=sys.stderr)


if __name__ == "__main__":
    main()
