"""MAP-CC's Chinese rules (stages/zh_rules.py), one test per rule with a passing and a failing real text, and the
zh rule set as the filter stage applies it (thresholds from config, reason = first failing rule)."""

from __future__ import annotations

import gzip
import json
import math
import random
from collections import Counter

import pytest
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from stages import zh_rules as z
from stages.filters.zh import ZhQualityFilter, ZhRulesConfig
from tests.conftest import SAMPLE

# Real texts, quoted: Li Bai's 静夜思, the opening of the Analects and of the Thousand Character Classic.
JINGYESI = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
LUNYU = "子曰：学而时习之，不亦说乎？有朋自远方来，不亦乐乎？人不知而不愠，不亦君子乎？"
QIANZIWEN = "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。寒来暑往，秋收冬藏。闰余成岁，律吕调阳。云腾致雨，露结为霜。"


@pytest.fixture(scope="module")
def books() -> list[str]:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["content"] for line in f]


@pytest.fixture(scope="module")
def classical(zh_docs) -> str:
    """A Traditional-script classical text from the sample (鄭伯克段於鄢, 《左傳》)."""
    return z.normalize(zh_docs[0])


@pytest.fixture(scope="module")
def manual(books) -> str:
    """Modern Simplified Chinese mixed with English commands: a chapter of the Debian reference in the sample."""
    doc = next(b for b in books if "systemctl" in b and 2000 < len(b) < 8000)
    return z.normalize(doc)


@pytest.fixture(scope="module")
def zh_filter() -> ZhQualityFilter:
    return ZhQualityFilter(ZhRulesConfig())


def zh_doc(text: str) -> Document:
    return Document(text=text, id="t", metadata={"lang": "zh", "kind": "text"})


# --- one test per rule ------------------------------------------------------------------------------------------


def test_sentences(classical):
    assert z.sentence_count(JINGYESI) == 2
    assert z.sentence_count(classical) > 10
    assert z.sentence_count("床前明月光") == 1  # one sentence: fails "more than one"
    assert z.sentence_count("。。。！！！") == 0


def test_length(classical):
    assert 50 <= z.char_length(classical) <= 10_000
    assert z.char_length(JINGYESI) < 50


def test_mean_word_length(classical, manual):
    assert 1.3 <= z.mean_word_length(classical) <= 10
    assert 1.3 <= z.mean_word_length(manual) <= 10
    # the start of the character frequency list (现代汉语常用字频表): single characters only
    assert z.mean_word_length("的 一 是 不 了 人 我 在 有 他 这 为 之 大 来 以 个 中 上 们") < 1.3
    # a checksum line: one 64-character "word"
    checksum = "校验和：8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
    assert z.mean_word_length(checksum) > 10
    assert z.mean_word_length("。，！") == 0.0  # no words at all


def test_mean_word_length_segmenters_agree(classical):
    assert z.mean_word_length(classical, "jieba-rs") == pytest.approx(z.mean_word_length(classical, "jieba"), abs=0.02)
    with pytest.raises(ValueError, match="segmenter"):
        z.mean_word_length(classical, "thulac")


def test_hash_ratio(manual):
    assert z.hash_ratio(manual) <= 0.1
    hashtags = "#春节##回家##年夜饭##春晚#"
    assert z.hash_ratio(hashtags) > 0.1
    assert z.hash_ratio("＃春节＃＃回家＃") > 0.1  # full-width hashes count too


def test_ellipsis_ratio(classical):
    assert z.ellipsis_ratio(classical) <= 0.1
    assert z.ellipsis_ratio("嗯……好……是……吧……") > 0.1
    assert z.ellipsis_ratio(z.normalize("嗯……好……")) > 0.1  # NFKC turns …… into "......": still one ellipsis
    assert z.ellipsis_ratio("等等。。好。。") > 0.1


def teaser_list(docs: list[str], n: int = 12, width: int = 24) -> str:
    """A portal page's list of teasers built from real text: the sample's sentences cut at `width` characters, each
    ending in "……" as such lists print them."""
    sentences = [s for d in docs for s in d.replace("\n", "").split("。") if len(s) > width + 5]
    return "\n".join(s[:width] + "……" for s in sentences[:n])


def test_ellipsis_lines(classical, manual, zh_docs):
    assert z.ellipsis_line_ratio(classical) <= 0.3
    assert z.ellipsis_line_ratio(manual) <= 0.3
    teasers = z.normalize(teaser_list(zh_docs))  # as the stage measures it: …… becomes ......
    assert z.ellipsis_line_ratio(teasers) == 1.0
    assert z.ellipsis_ratio(teasers) <= 0.1  # what let such pages through: one ellipsis per ~26 characters
    # every way of typing one, with a closing quote or bracket after it
    ends = "他说：“明天再说……”\n详见下文...\n未完待续。。。\n（略……）\n这一行正常结束。"
    assert z.ellipsis_line_ratio(ends) == pytest.approx(0.8)
    assert z.ellipsis_line_ratio("版本 1.2.3\n等等。\n见第2..3页") == 0.0  # dots inside a line are not an ending
    # just below and above Gopher's 0.3: 3 of 10 lines pass, 4 of 10 fail
    lines = [s for d in zh_docs for s in z.normalize(d).splitlines() if s.strip() and not s.endswith(".")][:10]
    assert len(lines) == 10
    three = "\n".join(s + "……" if i < 3 else s for i, s in enumerate(lines))
    four = "\n".join(s + "……" if i < 4 else s for i, s in enumerate(lines))
    assert z.ellipsis_line_ratio(three) == pytest.approx(0.3)
    assert z.ellipsis_line_ratio(four) == pytest.approx(0.4)


def test_teaser_list_is_removed_by_the_stage(zh_filter, zh_docs):
    page = teaser_list(zh_docs)
    assert zh_filter.filter(zh_doc(page)) == (False, "zh_ellipsis_lines")
    assert ZhQualityFilter(ZhRulesConfig(skip=["ellipsis_lines"])).filter(zh_doc(page)) is True  # kept before
    # the sample's Chinese books all still pass this rule
    assert all(z.ellipsis_line_ratio(z.normalize(d)) <= 0.3 for d in zh_docs)


def test_digit_ratio(manual):
    assert z.digit_ratio(manual) <= 0.3
    timetable = "G1 北京南 06:36 上海虹桥 11:29\nG3 北京南 07:00 上海虹桥 11:36\nG5 北京南 07:20 上海虹桥 12:11"
    assert z.digit_ratio(timetable) > 0.3


def test_readmore_lines(manual):
    assert z.readmore_line_ratio(manual) <= 0.3
    feed = "国务院常务会议部署稳就业举措 展开\n今年夏粮生产再获丰收 更多\n多地发布高温预警……。。。\n新华社评论"
    assert z.readmore_line_ratio(feed) == pytest.approx(0.75)
    assert z.readmore_line_ratio("Python 入门教程 ReadMore") == 1.0  # case-insensitive


def test_bullet_lines(manual):
    assert z.bullet_line_ratio(manual) <= 0.9
    menu = "• 首页\n• 新闻\n• 体育\n• 财经\n● 娱乐"
    assert z.bullet_line_ratio(menu) == 1.0
    assert z.bullet_line_ratio("  - 缩进的列表项\n- 第二项") == 1.0  # leading spaces do not hide a bullet


def test_punctuation(classical):
    assert z.punctuation_ratio(classical) > 0
    # 。、“” are punctuation too (MAP-CC's ASCII-only set missed them)
    assert z.punctuation_ratio("他说“好”。") > 0
    assert z.punctuation_ratio("北京 上海 广州 深圳 杭州 南京 成都 重庆") == 0


def test_unique_chars(classical):
    assert z.unique_char_ratio(classical) > 0.1
    assert z.unique_char_ratio("哈" * 60 + "好好好") <= 0.1


def test_entropy(classical):
    assert z.char_entropy(classical) >= 3
    assert z.char_entropy(JINGYESI) < 3  # 24 characters cannot reach it
    assert z.char_entropy("") == 0.0


def test_entropy_unique_chars_and_sentences_equal_their_definitions(books):
    """The entropy sums one term per distinct character from a table per distinct count, from NumPy's counts for
    long texts; the value is exactly (==) the plain sum over characters in first-occurrence order, on every Chinese
    sample document as NFKC text. The sentence count from one regex equals the split-and-search definition, the mean
    word length the mean over the non-whitespace pieces."""
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    for text in [z.normalize(t) for t in books + notes] + [
        "一",
        "哈哈哈哈",
        "ab\n" * 7,
        "。。a。!b",
        "，、“”。x",
        " \n ",
        QIANZIWEN * 30 + "\U00020000\U0002a6d6" + JINGYESI * 10,  # beyond the Basic Multilingual Plane
    ]:
        n = len(text)
        assert z._char_counts(text) == list(Counter(text).values()), text[:40]
        assert z.char_entropy(text) == -sum(c / n * math.log(c / n) for c in Counter(text).values()), text[:40]
        assert z.unique_char_ratio(text) == len(set(text)) / n
        assert z.sentence_count(text) == z.sentence_count_plain(text), text[:40]
        words = [w for w in z.segment(z._PUNCT_KEEP_SPACE.sub("", text)) if not w.isspace()]
        assert z.mean_word_length(text) == (sum(map(len, words)) / len(words) if words else 0.0), text[:40]


def test_stripping_through_the_code_point_table_equals_the_regex(books):
    """`word_chars` and the punctuation strip before segmenting select long texts' characters through a table of
    every code point; the result is the regex substitution's, on every Chinese sample document (raw and NFKC),
    both sides of the length switch, and on every code point (surrogates, unassigned; astral ones through the regex)
    in shuffled runs."""
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    texts = books + notes + [z.normalize(t) for t in books + notes]
    every = "".join(map(chr, range(0x110000)))
    shuffled = list(every)
    random.Random(13).shuffle(shuffled)
    bmp = [c for c in shuffled if ord(c) < z.TABLE_CODE_POINTS]  # the table's side: every code point it holds
    texts += [every, "".join(shuffled), "".join(bmp), "a\u3000b_１。\t\ud800x" * 40, "𠀀" + "中文，" * 100]
    assert any(len(t) < z.KEPT_BY_TABLE_FROM for t in texts) and any(len(t) >= z.KEPT_BY_TABLE_FROM for t in texts)
    for text in texts:
        for pattern in (z._NON_WORD, z._PUNCT_KEEP_SPACE):
            assert z._strip(pattern, text) == pattern.sub("", text), (pattern.pattern, text[:40])
    assert z.word_chars(texts[0]) == z._NON_WORD.sub("", texts[0])


def test_counts_through_the_code_point_tables_equal_the_regex(books):
    """Digits and punctuation are counted through tables of every code point for long texts, digits on the text
    instead of its word characters, and the hash and ellipsis runs behind a check for their characters: every value
    equals the regex definition (==) on every Chinese sample document (raw and NFKC), on every code point in
    shuffled runs (astral ones through the regex), and on texts full of the characters the guards look for; every
    digit (\\d) of the whole code space is a word character (\\w)."""
    assert all(z._WORD_CHAR.match(c) for c in map(chr, range(0x110000)) if z._DIGIT.match(c))
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    texts = books + notes + [z.normalize(t) for t in books + notes]
    shuffled = list(map(chr, range(0x110000)))
    random.Random(14).shuffle(shuffled)
    bmp = [c for c in shuffled if ord(c) < z.TABLE_CODE_POINTS]
    texts += [
        "".join(shuffled),
        "".join(bmp),
        "".join(bmp[:5000]),
        "#＃##。。…..１２3٣" * 30,
        "𠀀" + "中文，12。。" * 60,
    ]
    texts += ["", "#", "..", "abc"]
    for text in texts:
        chars = z._NON_WORD.sub("", text)
        assert z.digit_ratio(text) == (len(z._DIGIT.findall(chars)) / len(chars) if chars else 0.0), text[:40]
        assert z.punctuation_ratio(text) == (len(z._PUNCTUATION.findall(text)) / len(text) if text else 0.0)
        assert z.hash_ratio(text) == (len(z._HASH_RUN.findall(text)) / len(text) if text else 0.0), text[:40]
        assert z.ellipsis_ratio(text) == (len(z._ELLIPSIS_RUN.findall(text)) / len(text) if text else 0.0)


def test_bracket_ratio(classical):
    assert z.bracket_ratio(classical) <= 0.1
    ads = "【限时特惠】【包邮】【正品保证】2024新款连衣裙【买一送一】"
    assert z.bracket_ratio(ads) > 0.1


def test_top_ngram(classical, books):
    for n in (2, 3, 4):
        assert z.top_ngram_ratio(classical, n) <= {2: 0.20, 3: 0.18, 4: 0.16}[n]
    # 《幽梦影》 in the sample's notes: a genuinely repetitive parallel structure
    zhang_chao = "一日之计种蕉，一岁之计种竹，十年之计种柳，百年之计种松。"
    assert z.top_ngram_ratio(zhang_chao, 2) > 0.20  # 之计: 4 times in 20 characters
    # overlapping occurrences cover a position once: a true fraction
    assert z.top_ngram_ratio("哈哈哈哈哈哈", 2) == 1.0
    # punctuation and line breaks are not n-gram material: a poem's "。\n" is never its top 2-gram
    assert z.word_chars("举头望明月，\n低头思故乡。") == "举头望明月低头思故乡"


def test_dup_ngram(classical):
    assert z.dup_ngram_ratio(classical, 5) <= 0.6
    tripled = "\n".join([LUNYU] * 3)
    assert z.dup_ngram_ratio(tripled, 5) > 0.6  # the second and third copies repeat the first
    assert z.dup_ngram_ratio(tripled, 10) > 0.6
    # positions, not distinct characters (the original's bug): doubling a text makes half of it repeated
    doubled = QIANZIWEN + QIANZIWEN
    assert z.dup_ngram_ratio(doubled, 5) == pytest.approx(0.5)


def test_dup_ngram_early_stop_is_exact(classical):
    thresholds = {n: 0.6 for n in range(5, 11)}
    passed, n, _ = z.passes_dup_ngrams(classical, thresholds)
    assert passed and n == 5  # all thresholds equal: n = 5 decides for all
    strict = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    tripled = "\n".join([LUNYU] * 3)
    passed, n, value = z.passes_dup_ngrams(tripled, strict)
    assert not passed and n == 5 and value == z.dup_ngram_ratio(tripled, 5)
    # the ratio never grows with n (what the early stop relies on)
    values = [z.dup_ngram_ratio(tripled, n) for n in range(5, 11)]
    assert values == sorted(values, reverse=True)


@pytest.mark.slow
def test_vectorized_ngram_rules_equal_their_string_definitions(books):
    """The NumPy n-gram rules give exactly (==, not approximately) the values of the plain string versions on every
    Chinese document of the sample (books and notes blocks) for n = 1 to 12 (past the shared order's depth of 10),
    on repetitive texts whose ties and overlaps decide which n-gram is measured, and on texts of many distinct
    characters, whose windows do not fit one 63-bit key (the order is then built from overlapping shorter ones)."""
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    texts = [z.normalize(t) for t in books + notes]
    texts += ["哈哈哈哈哈哈好", "ab" * 50 + "ba" * 50, "天地玄黄天地" * 3 + "宇宙洪荒宇宙" * 3, "", "一", QIANZIWEN * 4]
    many = "".join(map(chr, range(0x4E00, 0x4E00 + 7000)))  # 7,000 distinct: 4 characters per 63-bit key
    texts += [many * 2 + many[:50], many[:3000] + QIANZIWEN * 3 + many[2990:6000] + many[:300]]
    nonzero = 0
    for text in texts:
        for n in range(1, 13):
            chars = z.word_chars(text)
            top, dup = z._top_ngram_ratio_sorted(chars, n), z._dup_ngram_ratio_sorted(chars, n)
            assert top == z.top_ngram_ratio_plain(text, n), (n, text[:40])
            assert dup == z.dup_ngram_ratio_plain(text, n), (n, text[:40])
            assert (top, dup) == (z.top_ngram_ratio(text, n), z.dup_ngram_ratio(text, n))
            nonzero += top > 0 and dup > 0
    assert nonzero > 1000


def test_dup_lines(classical):
    assert z.dup_line_ratio(classical) <= 0.287
    # a Debian reference card entry from the sample's web pages: the frame lines repeat
    card = "  │\n  │ dpkg-divert [options] file\n  │\n  │ 覆盖一个文件在软件包中的旧版本。\n  │\n  -- Debian 参考卡片"
    assert z.dup_line_ratio(card) > 0.287


def test_ascii_punctuation_rewrite():
    assert z.to_ascii_punctuation("子曰：“学而时习之，不亦说乎？”") == '子曰:"学而时习之,不亦说乎?"'


# --- edge cases -------------------------------------------------------------------------------------------------


def test_empty_lines_do_not_dilute_line_ratios():
    menu = "• 首页\n• 新闻"
    assert z.bullet_line_ratio(menu) == z.bullet_line_ratio(menu.replace("\n", "\n\n\n\n"))
    assert z.dup_line_ratio("\n\n第一行\n\n\n第二行\n\n") == 0.0


def test_empty_and_all_punctuation_texts_do_not_crash(zh_filter):
    for text in ("", "。。。！！！？？？……", "\n\n\n"):
        for name, rule in z.RULES.items():
            value = rule(text, 5) if name in ("top_ngram", "dup_ngram") else rule(text)
            assert value >= 0
    assert zh_filter.filter(zh_doc("。，、！？；：“”……" * 10)) == (False, "zh_sentences")


def test_traditional_and_mixed_texts_pass(zh_filter, zh_docs, manual):
    assert zh_filter.filter(zh_doc(zh_docs[0])) is True  # Traditional classical Chinese
    assert zh_filter.filter(zh_doc(manual)) is True  # Chinese with English commands and paths


def test_very_long_single_line(zh_filter, zh_docs):
    line = "".join(d.replace("\n", "") for d in zh_docs)[:9_000]
    assert "\n" not in line
    assert z.bullet_line_ratio(line) == 0 and z.dup_line_ratio(line) == 0
    assert zh_filter.filter(zh_doc(line)) is True


def test_code_in_a_text_document(zh_filter, books):
    # the sample's Chinese manuals quote shell and C snippets inside prose: they stay
    doc = next(b for b in books if "#include" in b and len(b) < 10_000)
    assert zh_filter.filter(zh_doc(doc)) is True
    # a C source file mislabelled as a Chinese text document fails the rules
    source = "#include <stdio.h>\n#define N 10\n#define M 20\n// 主函数\nint main(){int a[N];return 0;}"
    assert zh_filter.filter(zh_doc(source))[0] is False


# --- the rule set in the stage -----------------------------------------------------------------------------------


def test_reason_is_first_failing_rule_and_thresholds_come_from_config(zh_filter, zh_docs):
    assert zh_filter.filter(zh_doc(JINGYESI)) == (False, "zh_length")
    tripled = "\n".join([zh_docs[1]] * 3)
    assert zh_filter.filter(zh_doc(tripled)) == (False, "zh_dup_lines")
    lenient = ZhQualityFilter(ZhRulesConfig(max_dup_lines=1.0))
    assert lenient.filter(zh_doc(tripled)) == (False, "zh_dup_5gram")
    skipping = ZhQualityFilter(ZhRulesConfig(max_dup_lines=1.0, skip=["dup_ngram"]))
    assert skipping.filter(zh_doc(tripled)) is True
    short = ZhQualityFilter(ZhRulesConfig(min_length=10, min_entropy=0))
    assert short.filter(zh_doc(JINGYESI)) is True  # 明月 twice in 20 characters: 0.20, not above 0.20
    stricter = ZhQualityFilter(ZhRulesConfig(min_length=10, min_entropy=0, max_top_ngram={2: 0.15}))
    assert stricter.filter(zh_doc(JINGYESI)) == (False, "zh_top_2gram")


def test_only_zh_documents_are_checked(zh_filter):
    assert zh_filter.filter(Document(text=JINGYESI, id="e", metadata={"lang": "en", "kind": "text"})) is True
    assert zh_filter.filter(Document(text=JINGYESI, id="c", metadata={"lang": "code", "kind": "code"})) is True


def test_unknown_rule_in_skip_is_a_config_error():
    with pytest.raises(ValueError, match="unknown rule"):
        ZhRulesConfig(skip=["no_such_rule"])


def test_scores_measure_every_rule_and_decide_as_the_early_stop(zh_filter, books):
    """Every rule is measured (the `scores` column), also after the first failing one; the decision is the one
    the rules gave when measuring stopped at the first failure and the duplicated n-grams stopped early."""
    cfg = ZhRulesConfig()
    fields = [t.field for t in zh_filter.thresholds]
    for text in books:
        scores, reason = zh_filter.evaluate(zh_doc(text))
        assert list(scores) == fields and all(v is not None for v in scores.values())
        t = z.normalize(text)
        early = None  # the order and comparisons the filter used before it measured every rule
        for field, fails in (
            ("zh_length", not cfg.min_length <= len(t) <= cfg.max_length),
            ("zh_sentences", z.sentence_count(t) < cfg.min_sentences),
            ("zh_hash_ratio", z.hash_ratio(t) > cfg.max_hash_ratio),
            ("zh_ellipsis_ratio", z.ellipsis_ratio(t) > cfg.max_ellipsis_ratio),
            ("zh_bracket_ratio", z.bracket_ratio(t) > cfg.max_bracket_ratio),
            ("zh_punctuation", z.punctuation_ratio(t) <= cfg.min_punctuation),
            ("zh_unique_chars", z.unique_char_ratio(t) <= cfg.min_unique_chars),
            ("zh_entropy", z.char_entropy(t) < cfg.min_entropy),
            ("zh_digit_ratio", z.digit_ratio(t) > cfg.max_digit_ratio),
            ("zh_readmore_lines", z.readmore_line_ratio(t) > cfg.max_readmore_lines),
            ("zh_ellipsis_lines", z.ellipsis_line_ratio(t) > cfg.max_ellipsis_lines),
            ("zh_bullet_lines", z.bullet_line_ratio(t) > cfg.max_bullet_lines),
            ("zh_dup_lines", z.dup_line_ratio(t) > cfg.max_dup_lines),
            *((f"zh_top_{n}gram", z.top_ngram_ratio(t, n) > v) for n, v in sorted(cfg.max_top_ngram.items())),
        ):
            if fails:
                early = field
                break
        if early is None:
            passed, n, _ = z.passes_dup_ngrams(t, cfg.max_dup_ngram)
            if not passed:
                early = f"zh_dup_{n}gram"
            elif not cfg.min_mean_word_length <= z.mean_word_length(t) <= cfg.max_mean_word_length:
                early = "zh_mean_word_length"
        assert reason == early
    tripled = "\n".join([books[3]] * 3)
    scores, reason = zh_filter.evaluate(zh_doc(tripled))
    assert reason == "zh_dup_lines" and scores["zh_dup_lines"] == 2 / 3
    assert scores["zh_dup_5gram"] > 0.6 and scores["zh_mean_word_length"] > 1.3  # measured after the failure


def test_task_counted_routing_equals_datatrove_base_filter(books):
    """`TaskCountedFilter.run` (statistics summed once per task) keeps the same documents in the same order as
    datatrove's `BaseFilter.run`, and leaves the same totals in datatrove's statistics: total, forwarded, dropped,
    dropped per reason and the kept characters, on the sample's Chinese books (some kept, some removed)."""
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    texts = books + notes[::5]

    def documents() -> list[Document]:
        return [Document(text=t, id=str(i), metadata={"lang": "zh", "kind": "text"}) for i, t in enumerate(texts)]

    ours, reference = ZhQualityFilter(ZhRulesConfig()), ZhQualityFilter(ZhRulesConfig())
    kept = [d.id for d in ours.run(iter(documents()))]
    kept_reference = [d.id for d in BaseFilter.run(reference, iter(documents()))]
    assert kept == kept_reference and 0 < len(kept) < len(texts)
    totals = {label: m.total for label, m in ours.stats.stats.items()}
    totals_reference = {label: m.total for label, m in reference.stats.stats.items()}
    assert totals == totals_reference
    assert totals["total"] == len(texts) and any(label.startswith("dropped_zh_") for label in totals)


def test_line_rules_with_their_guards_equal_the_loops_over_lines(books):
    """`ellipsis_line_ratio` and `readmore_line_ratio` return 0.0 without looking at lines when the text holds no
    ellipsis or no suffix, and the line rules count with C loops (`map`; a line's ellipsis end by stripping closers
    instead of the regex); the values (and the non-empty lines) are
    exactly (==) the Python loops over every line, on every Chinese sample document
    (raw and NFKC) and on texts where the guard must not fire (suffixes in other cases, a final sigma)."""
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    texts = books + notes + [z.normalize(t) for t in books + notes]
    texts += ["第一段\n点击展开\n", "READ MORE\nREADMORE\n", "a……”\nb...\n", "x。。\ny。", "ΑΣ\nreadmoreΣ", ""]
    texts += ["a..)\nb.…\nc。。。”’」\n……\nd..\ne…x\n「f……」』】\n'g...'\n", "h。。]\n i.... \n。\n", 'j…"\nk.\n']
    rng = random.Random(15)  # random lines of ellipsis characters, closers, letters and spaces
    texts += ["".join(rng.choices("…..。。”’」』)）]】\"'ab \n", k=rng.randint(1, 40))) for _ in range(3000)]

    def nonempty_lines(text: str) -> tuple[str, ...]:
        return tuple(s for line in text.splitlines() if (s := line.strip()))

    def ellipsis_lines(text: str) -> float:
        lines = nonempty_lines(text)
        return sum(1 for line in lines if z._ELLIPSIS_LINE_END.search(line)) / len(lines) if lines else 0.0

    def readmore_lines(text: str, suffixes: tuple[str, ...]) -> float:
        lines = nonempty_lines(text)
        lowered = tuple(s.lower() for s in suffixes)
        return sum(1 for line in lines if line.lower().endswith(lowered)) / len(lines) if lines else 0.0

    measured = {"ellipsis": 0, "readmore": 0}  # texts where the loop ran and found lines (the guard did not fire)
    for text in texts:
        assert z._lines(text) == nonempty_lines(text)
        assert z.ellipsis_line_ratio(text) == ellipsis_lines(text), text[:40]
        lines = nonempty_lines(text)
        bullets = sum(1 for line in lines if line.startswith(z.BULLETS)) / len(lines) if lines else 0.0
        assert z.bullet_line_ratio(text) == bullets, text[:40]
        for suffixes in (z.READMORE_SUFFIXES, ("ReadMore", "ς")):
            assert z.readmore_line_ratio(text, suffixes) == readmore_lines(text, suffixes), text[:40]
        measured["ellipsis"] += z.ellipsis_line_ratio(text) > 0
        measured["readmore"] += z.readmore_line_ratio(text) > 0
    assert all(measured.values()), measured
    assert z.readmore_line_ratio("ΑΣ\nreadmore", ("ReadMore", "ς")) == 1.0  # "ας": the sigma suffix, no guard
