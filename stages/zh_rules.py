"""MAP-CC's Chinese quality rules as pure functions of text.

The rules are those of the CT-LLM release's `filter/filter.py` (`self_defined_rules`, `duplicates_rules` and the
bracket rule of `unify_format`), rewritten so that each one measures what its comment in the original says, and
without the original's bugs:

- its n-gram repetition rule never rejected anything (`if not duplicates_rules(...)` tested a non-empty tuple);
  here the thresholds apply;
- its duplicated 5-10-gram measure returned the number of *distinct characters* inside duplicated n-grams, which
  is bounded by the alphabet and so almost never exceeds 0.6 of a long text; here it is the share of *positions*
  covered by repeated n-grams;
- its punctuation rule only knew ASCII punctuation and `…`, so a Chinese text punctuated with 。、“” had "no
  punctuation"; here every Unicode punctuation character counts;
- it ran the rules after rewriting full-width punctuation to ASCII (so `。。。` in its read-more list could never
  match); here the rules accept the text as it is, and that rewrite (`to_ascii_punctuation`) is an opt-in step.

The filter stage passes every rule the NFKC form of the document (`normalize`), as MAP-CC measured most rules on
NFKC text; the stored text is not changed. Each function returns the measured value; the thresholds are the
`[stages.filter.zh]` config (defaults and docs: `pipeline config --defaults`) and are applied by the filter stage.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

import jieba
import numpy as np
import regex

from stages.nfkc import nfkc

# Sentence ends: ASCII and full-width terminal marks, and the ellipsis.
_SENTENCE_END = re.compile(r"[.!?;。！？；…]+")
# Everything that is not a word character (punctuation, symbols, whitespace).
_NON_WORD = re.compile(r"[^\w]+")
# What MAP-CC stripped before segmenting: punctuation and symbols, keeping whitespace.
_PUNCT_KEEP_SPACE = re.compile(r"[^\w\s]+")
_DIGIT = re.compile(r"\d")
_WORD_CHAR = re.compile(r"\w")
_HASH_RUN = re.compile(r"[#＃]+")
# An ellipsis: a run of `…`, of two or more dots, or of two or more 。 (a common way to type one in Chinese).
_ELLIPSIS_RUN = re.compile(r"…+|\.{2,}|。{2,}")
# A line ending in an ellipsis: `…` (and `……`), three or more dots (NFKC turns `…` into `...`), or two or more 。.
# Closing quotes and brackets after it (`……”`, `...)`) do not hide it.
_ELLIPSIS_LINE_END = re.compile(r"(?:…|\.{3,}|。{2,})[”’」』)）\]】\"']*$")
_PUNCTUATION = regex.compile(r"\p{P}")
_BRACKETED = re.compile(r"【(.*?)】")

# MAP-CC's bullet characters, plus the hyphen Gopher counts as a bullet.
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "※", "·", "➢", "‣", "▶", "◀", "◦", "–", "-")
READMORE_SUFFIXES = ("readmore", "展开", "更多", "。。。")

# MAP-CC's full-width to ASCII table (`unify_format`), for the optional rewrite.
_FULLWIDTH = "。！“”＃＄％＆‘’（）＊＋，－／：；＜＝＞？＠［＼］＾＿｀｛｜｝～"
_HALFWIDTH = ".!\"\"#$%&''()*+,-/:;<=>?@[\\]^_`{|}~"
_TO_ASCII = str.maketrans(_FULLWIDTH, _HALFWIDTH)


def normalize(text: str) -> str:
    """The NFKC form the rules are measured on (full-width letters, digits and punctuation folded)."""
    return nfkc(text)


def to_ascii_punctuation(text: str) -> str:
    """MAP-CC's rewrite of full-width punctuation to ASCII (。 -> ., ， -> ,). Changes training text: opt-in."""
    return text.translate(_TO_ASCII)


@lru_cache(maxsize=4)
def word_chars(text: str) -> str:
    """The text without whitespace, punctuation and symbols: what the character n-gram rules count over, so that
    a line-final "。\\n" or a run of spaces is never the "top 2-gram" of a poem or a table."""
    return _NON_WORD.sub("", text)


@lru_cache(maxsize=4)
def _lines(text: str) -> tuple[str, ...]:
    """Non-empty lines, stripped. Empty lines are layout, not content: they do not dilute line ratios."""
    return tuple(s for line in text.splitlines() if (s := line.strip()))


# ---------------------------------------------------------------------------------------------------------------
# Document-level measures


def sentence_count(text: str) -> int:
    """Sentences: pieces between terminal marks (. ! ? ; 。 ！ ？ ； …) that hold a word character, so that
    "，、“”" between two marks is not a sentence. MAP-CC keeps more than one."""
    return sum(1 for s in _SENTENCE_END.split(text) if _WORD_CHAR.search(s))


def char_length(text: str) -> int:
    """Characters (after NFKC when given normalized text), whitespace included, as MAP-CC counted them."""
    return len(text)


def segment(text: str, segmenter: str = "jieba-rs") -> list[str]:
    """Words of `text` by jieba's dictionary and HMM: `jieba-rs` (rjieba, a Rust port, ~25x faster; on Chinese
    text its mean word length matches jieba's to 1e-4 on average) or `jieba` (the Python original MAP-CC used)."""
    if segmenter == "jieba-rs":
        # Imported here: rjieba loads its dictionary on import, 0.3-0.95 s (python -X importtime, this 2-core
        # machine), and only this rule needs it, while every `pipeline` command imports this module.
        import rjieba

        return rjieba.cut(text, hmm=True)
    if segmenter == "jieba":
        return _jieba().lcut(text)
    raise ValueError(f"unknown segmenter {segmenter!r} (jieba-rs or jieba)")


@lru_cache(maxsize=1)
def _jieba():
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def mean_word_length(text: str, segmenter: str = "jieba-rs") -> float:
    """Mean length of the words jieba finds once punctuation is removed (MAP-CC: 1.3 to 10). 0.0 without words.
    Segmentation uses jieba's HMM for unknown words, as MAP-CC did: without it unknown words fall apart into
    single characters and ordinary Chinese prose drops below 1.3."""
    words = [w for w in segment(_PUNCT_KEEP_SPACE.sub("", text), segmenter) if not w.isspace()]
    if not words:
        return 0.0
    return sum(map(len, words)) / len(words)


def hash_ratio(text: str) -> float:
    """Runs of `#` per character (MAP-CC: <= 0.1)."""
    return len(_HASH_RUN.findall(text)) / len(text) if text else 0.0


def ellipsis_ratio(text: str) -> float:
    """Ellipses (runs of `…`, `..`, `。。`) per character (MAP-CC: <= 0.1)."""
    return len(_ELLIPSIS_RUN.findall(text)) / len(text) if text else 0.0


def digit_ratio(text: str) -> float:
    """Digits over characters that are neither punctuation nor whitespace (MAP-CC: <= 0.3)."""
    chars = word_chars(text)
    return len(_DIGIT.findall(chars)) / len(chars) if chars else 0.0


def readmore_line_ratio(text: str, suffixes: tuple[str, ...] = READMORE_SUFFIXES) -> float:
    """Share of non-empty lines ending with a "read more" marker, case-insensitively (MAP-CC: <= 0.3)."""
    lines = _lines(text)
    if not lines:
        return 0.0
    suffixes = tuple(s.lower() for s in suffixes)
    return sum(1 for line in lines if line.lower().endswith(suffixes)) / len(lines)


def ellipsis_line_ratio(text: str) -> float:
    """Share of non-empty lines ending in an ellipsis (…, ……, ..., 。。。) (Gopher: <= 0.3). The per-character
    `ellipsis_ratio` misses a teaser list (every line a snippet cut off with "……") because its lines are long;
    this is the line-level rule Gopher applies, for Chinese list and portal pages."""
    lines = _lines(text)
    return sum(1 for line in lines if _ELLIPSIS_LINE_END.search(line)) / len(lines) if lines else 0.0


def bullet_line_ratio(text: str, bullets: tuple[str, ...] = BULLETS) -> float:
    """Share of non-empty lines starting with a bullet (MAP-CC: <= 0.9)."""
    lines = _lines(text)
    return sum(1 for line in lines if line.startswith(bullets)) / len(lines) if lines else 0.0


def punctuation_ratio(text: str) -> float:
    """Unicode punctuation (category P: 。，、“” as well as ASCII) per character (MAP-CC: > 0)."""
    return len(_PUNCTUATION.findall(text)) / len(text) if text else 0.0


def unique_char_ratio(text: str) -> float:
    """Distinct characters over characters (MAP-CC: > 0.1)."""
    return len(set(text)) / len(text) if text else 0.0


def char_entropy(text: str) -> float:
    """Entropy (natural log) of the character unigram distribution (MAP-CC: >= 3)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log(c / n) for c in Counter(text).values())


def bracket_ratio(text: str) -> float:
    """Characters inside 【】 over characters (MAP-CC: <= 0.1)."""
    return sum(map(len, _BRACKETED.findall(text))) / len(text) if text else 0.0


def _ngrams(chars: str, n: int) -> list[str]:
    return [chars[i : i + n] for i in range(len(chars) - n + 1)]


# The n-gram rules below work on integer ids, one per position, with NumPy: a Python string per n-gram, a Counter
# and a set cost about 1 µs per character and were most of the filter's time. `top_ngram_ratio_plain` and
# `dup_ngram_ratio_plain` are the same measures written over strings, one n-gram at a time: the definitions, which
# tests/test_filter_zh.py compares with these on every Chinese document of the sample for n = 2 to 10.


@lru_cache(maxsize=4)
def _char_ranks(chars: str) -> tuple[np.ndarray, int]:
    """Each character's rank among the distinct characters of `chars` (int64), and how many distinct there are."""
    codes = np.frombuffer(chars.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    distinct, ranks = np.unique(codes, return_inverse=True)
    return ranks.astype(np.int64), len(distinct)


def _ngram_ids(chars: str, n: int) -> np.ndarray:
    """An id per n-gram position (len(chars) - n + 1 of them), equal exactly when the n-grams are equal: the
    n-gram's ranks as digits base k while k**n fits in 63 bits, else the rank of (dense rank of the (n-1)-gram's id,
    rank of the next character), which stays below len(chars) * k."""
    ranks, k = _char_ranks(chars)
    count = len(ranks) - n + 1
    if k**n < 1 << 63:
        ids = np.zeros(count, dtype=np.int64)
        for j in range(n):
            ids = ids * k + ranks[j : j + count]
        return ids
    shorter = np.unique(_ngram_ids(chars, n - 1), return_inverse=True)[1].astype(np.int64)  # dense: < len(chars)
    return np.unique(shorter[:count] * k + ranks[n - 1 :], return_inverse=True)[1].astype(np.int64)


def _covered(starts: np.ndarray, n: int) -> int:
    """Positions covered by the n-long windows starting at the (sorted) `starts`, each position once."""
    if not len(starts):
        return 0
    return int(np.minimum(np.diff(starts), n).sum()) + n


def top_ngram_ratio(text: str, n: int) -> float:
    """Share of word characters covered by the most frequent character n-gram (MAP-CC, from Gopher: n = 2, 3, 4
    at <= 0.20, 0.18, 0.16). Every occurrence counts (Gopher's definition); overlapping occurrences (哈哈哈) cover
    each position once, so the value is a true fraction. Among equally frequent n-grams, the one that occurs
    first is measured."""
    chars = word_chars(text)
    if len(chars) < n:
        return 0.0
    ids = _ngram_ids(chars, n)
    values, first, counts = np.unique(ids, return_index=True, return_counts=True)
    top = counts.max()
    if top < 2:
        return 0.0
    gram = values[counts == top][np.argmin(first[counts == top])]
    return _covered(np.flatnonzero(ids == gram), n) / len(chars)


def dup_ngram_ratio(text: str, n: int) -> float:
    """Share of word characters that repeat an earlier character n-gram (MAP-CC: n = 5..10, <= 0.60 each).

    Positions are counted, once each, for every occurrence of an n-gram after its first. This is the measure the
    original meant; it counted distinct characters instead. The share can only shrink as n grows (a repeated
    (n+1)-gram is made of repeated n-grams), which `passes_dup_ngrams` uses to stop early."""
    chars = word_chars(text)
    if len(chars) < n:
        return 0.0
    ids = _ngram_ids(chars, n)
    repeat = np.ones(len(ids), dtype=bool)
    repeat[np.unique(ids, return_index=True)[1]] = False
    return _covered(np.flatnonzero(repeat), n) / len(chars)


def top_ngram_ratio_plain(text: str, n: int) -> float:
    """`top_ngram_ratio` over strings, one n-gram at a time (the definition; slow)."""
    chars = word_chars(text)
    if len(chars) < n:
        return 0.0
    gram, count = Counter(_ngrams(chars, n)).most_common(1)[0]
    if count < 2:
        return 0.0
    covered, end, pos = 0, 0, chars.find(gram)
    while pos != -1:
        covered += n - max(0, end - pos)
        end = pos + n
        pos = chars.find(gram, pos + 1)
    return covered / len(chars)


def dup_ngram_ratio_plain(text: str, n: int) -> float:
    """`dup_ngram_ratio` over strings, one n-gram at a time (the definition; slow)."""
    chars = word_chars(text)
    if len(chars) < n:
        return 0.0
    seen: set[str] = set()
    covered = end = 0
    for i, gram in enumerate(_ngrams(chars, n)):
        if gram in seen:
            covered += n - max(0, end - i)
            end = i + n
        else:
            seen.add(gram)
    return covered / len(chars)


def passes_dup_ngrams(text: str, max_ratio: dict[int, float]) -> tuple[bool, int, float]:
    """Checks `dup_ngram_ratio(text, n) <= max_ratio[n]` for every n, smallest n first, stopping as soon as the
    remaining thresholds cannot fail (the ratio never grows with n). Returns (passed, last n measured, value)."""
    ns = sorted(max_ratio)
    value = 0.0
    for i, n in enumerate(ns):
        value = dup_ngram_ratio(text, n)
        if value > max_ratio[n]:
            return False, n, value
        if value <= min(max_ratio[m] for m in ns[i:]):
            return True, n, value
    return True, ns[-1] if ns else 0, value


def dup_line_ratio(text: str) -> float:
    """Share of non-empty lines that repeat an earlier line (FineWeb-2 cmn_Hani: <= 0.287)."""
    lines = _lines(text)
    if not lines:
        return 0.0
    return (len(lines) - len(set(lines))) / len(lines)


# Every rule by name: the name is the config key stem and, prefixed with `zh_`, the removal reason.
RULES: dict[str, Callable[..., float]] = {
    "sentences": sentence_count,
    "length": char_length,
    "mean_word_length": mean_word_length,
    "hash_ratio": hash_ratio,
    "ellipsis_ratio": ellipsis_ratio,
    "digit_ratio": digit_ratio,
    "readmore_lines": readmore_line_ratio,
    "ellipsis_lines": ellipsis_line_ratio,
    "bullet_lines": bullet_line_ratio,
    "punctuation": punctuation_ratio,
    "unique_chars": unique_char_ratio,
    "entropy": char_entropy,
    "bracket_ratio": bracket_ratio,
    "top_ngram": top_ngram_ratio,
    "dup_ngram": dup_ngram_ratio,
    "dup_lines": dup_line_ratio,
}
