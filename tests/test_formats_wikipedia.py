"""format = "wikipedia": MediaWiki XML dumps, on the bundled real dump (pages of gensim's enwiki test dump, written
as a multistream bz2), a truncated copy of it, and zh wiki's variant markup."""

from __future__ import annotations

import bz2
import json
import subprocess
import sys
from collections import Counter

import polars as pl
import pytest

from pipeline.config import load_config
from pipeline.verify import verify
from stages.formats.wikipedia import clean_wikitext, read_dump, resolve_variants
from tests.conftest import SAMPLE, write_config
from tests.test_ingest import kept, removed, run_ingest, source

DUMP = SAMPLE / "formats" / "wiki" / "enwiki-sample-multistream.xml.bz2"


@pytest.fixture(scope="module")
def pages():
    with bz2.open(DUMP) as f:
        return list(read_dump(f))


def test_dump_is_multistream_and_every_page_is_read(pages):
    data = DUMP.read_bytes()
    assert data.count(b"BZh9") >= 4  # header, pages in several streams, footer
    assert len(pages) == 25
    assert [p.record for p in pages] == sorted(p.record for p in pages)  # page ids, in dump order


def test_articles_kept_and_other_pages_have_reasons(pages):
    reasons = Counter(p.error for p in pages)
    assert reasons == {None: 15, "wiki_redirect": 6, "wiki_disambiguation": 3, "wiki_not_article": 1}
    by_title = {p.title: p for p in pages}
    assert by_title["AccessibleComputing"].error == "wiki_redirect"
    assert by_title["AccessibleComputing"].text.startswith("#REDIRECT")  # the raw page is kept for removed/
    assert by_title["Austin (disambiguation)"].error == "wiki_disambiguation"
    assert by_title["Wikipedia:Adding Wikipedia articles to Nupedia"].error == "wiki_not_article"


def test_wikitext_becomes_clean_text(pages):
    page = next(p for p in pages if p.title == "Transport in Angola")
    assert page.record == 708 and page.url == "https://en.wikipedia.org/wiki/Transport_in_Angola"
    text = page.text
    assert text.startswith("Transport in Angola comprises:")  # bold markup and links resolved to their text
    lines = text.split("\n")
    assert "Railways" in lines and "Ports and harbors" in lines  # headings kept as their own line
    assert "Luanda Railway (CFL) (northern)" in lines  # list items kept as lines, piped links as their label
    for markup in ("{{", "}}", "[[", "]]", "<ref", "cite news", "Category:", "File:", "thumb|", "'''", "=="):
        assert markup not in text, markup
    # every kept article is free of template, table and reference markup
    for p in pages:
        if p.error is None:
            assert "{{" not in p.text and "{|" not in p.text and "<ref" not in p.text, p.title


def test_tables_and_infobox_removed_but_prose_kept():
    wikitext = (
        "{{Infobox country|name=Angola|capital=[[Luanda]]}}\n'''Angola''' is a country.<ref>{{cite web|url=x}}</ref>\n"
        '{| class="wikitable"\n|-\n! Year !! Value\n|-\n| 2008 || 87\n|}\n== History ==\n* First item\n# Second item\n'
        "<!-- hidden -->[[Category:Countries]][[File:Map.png|thumb|A map]]Text after."
    )
    assert clean_wikitext(wikitext) == "Angola is a country.\n\nHistory\nFirst item\nSecond item\nText after."


def test_variant_markup_resolved_to_one_script():
    # forms from MediaWiki's LanguageConverter manual (Help:Language conversion)
    text = "-{zh-hans:计算机; zh-hant:電腦;}-与-{A|zh-cn:鼠标; zh-tw:滑鼠;}-，-{H|zh-cn:打印机; zh-tw:印表機;}--{自由软件}-"
    assert resolve_variants(text, "zh-hans") == "计算机与鼠标，自由软件"
    assert resolve_variants(text, "zh-hant") == "電腦与滑鼠，自由软件"
    assert resolve_variants(text, "zh-tw") == "電腦与滑鼠，自由软件"  # zh-tw falls back to zh-hant's entry
    assert resolve_variants("-{R|-{zh-hans:内;zh-hant:內}-}-", "zh-hans") == "内"  # nested: innermost first
    assert resolve_variants("no markup", "zh-hans") == "no markup"


def test_ingest_ids_stable_and_removed_reasons(tmp_path):
    ids = []
    for tasks in (1, 3):
        folder = tmp_path / f"t{tasks}"
        folder.mkdir()
        cfg, _ = run_ingest(write_config(folder, source("wiki", str(DUMP), "wikipedia"), tasks=tasks))
        df = kept(cfg)
        ids.append(sorted(df["id"]))
        assert verify(cfg, quiet=True) == []
    assert ids[0] == ids[1] and "wiki:enwiki-sample-multistream.xml.bz2:708" in ids[0] and len(ids[0]) == 15
    assert set(df.columns) >= {"title", "author"}
    rm = removed(cfg)
    assert Counter(rm["reason"]) == {"wiki_redirect": 6, "wiki_disambiguation": 3, "wiki_not_article": 1}


@pytest.mark.slow
def test_truncated_bz2_is_a_failed_file_and_pages_before_the_damage_are_kept(tmp_path):
    data = DUMP.read_bytes()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "cut-pages-articles.xml.bz2").write_bytes(data[: len(data) * 3 // 5])
    cfg_path = write_config(tmp_path, source("wiki", "src", "wikipedia"))
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path)], capture_output=True, text=True
    )
    assert r.returncode == 1, r.stderr
    assert "cut-pages-articles.xml.bz2" in r.stderr
    cfg = load_config(cfg_path)
    stats = json.loads((cfg.workdir / "ingest" / "stats.json").read_text())
    assert [f["file"].rsplit("/", 1)[-1] for f in stats["failed_files"]] == ["cut-pages-articles.xml.bz2"]
    assert stats["failed_files"][0]["error"].startswith("EOFError: Compressed file ended")
    read = len(kept(cfg)) + len(removed(cfg))
    assert 0 < read < 25  # the pages before the cut
    assert kept(cfg).filter(pl.col("title") == "Actrius").height == 1
    assert verify(cfg, quiet=True) == []


def test_source_options_checked_against_format(tmp_path):
    from pipeline.config import ConfigError

    for extra, fmt, message in [
        ('wiki_variant = "zh-hans"', "epub", "wiki_variant applies to format 'wikipedia' only"),
        ('wiki_variant = "zh"', "wikipedia", "sources.0.wiki_variant"),
        ('text_mode = "chapter"', "text", "text_mode 'chapter' does not apply to format 'text'"),
    ]:
        cfg_path = write_config(tmp_path, f'[[sources]]\nname = "a"\npath = "{DUMP}"\nformat = "{fmt}"\n{extra}\n')
        with pytest.raises(ConfigError, match=message):
            load_config(cfg_path)
    cfg = load_config(write_config(tmp_path, source("a", str(DUMP), "wikipedia", wiki_variant="zh-hant")))
    assert cfg.sources[0].wiki_variant == "zh-hant"
