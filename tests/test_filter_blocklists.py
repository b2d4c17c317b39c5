"""URL blocklist and bad-word list (stages/filters/blocklists.py): the matching rules, and the two filters read
from their files on real sample documents."""

from __future__ import annotations

from datatrove.data import Document

from stages.filters.blocklists import (
    BadWordsFilter,
    UrlBlocklist,
    UrlBlocklistFilter,
    bad_words_pattern,
    count_bad_words,
)


def test_url_blocklist_matching():
    blocked = UrlBlocklist(["example.com", "http://www.news.cn/ads/", "  "])
    assert blocked.blocked("https://example.com/a") and blocked.blocked("http://m.example.com:8080/")
    assert not blocked.blocked("https://notexample.com/") and not blocked.blocked("https://example.community/")
    assert blocked.blocked("https://news.cn/ads/2024/1.html") and not blocked.blocked("https://news.cn/politics/")
    assert not blocked.blocked(None) and not blocked.blocked("")


def test_bad_words_matching():
    pattern = bad_words_pattern(["赌博", "casino", ""])
    assert count_bad_words("网络赌博违法。", pattern) == 1
    assert count_bad_words("Casino Royale is a novel.", pattern) == 1
    assert count_bad_words("Occasionally it rains.", pattern) == 0  # whole words for Latin entries
    assert count_bad_words("anything", bad_words_pattern([])) == 0


def test_url_blocklist_filter_reads_its_file(tmp_path, zh_docs):
    path = tmp_path / "blocklist.txt"
    path.write_text("# comment lines and blank lines are skipped\n\ngushiwen.cn\n", encoding="utf-8")
    step = UrlBlocklistFilter(path)
    page = Document(text=zh_docs[0], id="a", metadata={"url": "https://so.gushiwen.cn/guwen/1"})
    other = Document(text=zh_docs[0], id="b", metadata={"url": "https://zh.wikisource.org/wiki/1"})
    no_url = Document(text=zh_docs[0], id="c", metadata={"url": None})
    assert step.filter(page) == (False, "url_blocklist")
    assert step.filter(other) is True and step.filter(no_url) is True


def test_bad_words_filter_counts_against_max_and_skips_code(tmp_path, zh_docs):
    path = tmp_path / "bad_words.txt"
    path.write_text("# words\n淫\n", encoding="utf-8")
    text = next(t for t in zh_docs if "淫" in t)  # 石碏諫寵州籲: 驕奢淫佚
    hits = text.count("淫")
    assert BadWordsFilter(path).filter(Document(text=text, id="a", metadata={"kind": "text"})) == (False, "bad_words")
    assert BadWordsFilter(path, max_count=hits).filter(Document(text=text, id="a", metadata={"kind": "text"})) is True
    assert BadWordsFilter(path).filter(Document(text=text, id="b", metadata={"kind": "code"})) is True
