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
from itertools import repeat

import jieba
import numpy as np
import regex

from stages.config.filter import READMORE_SUFFIXES  # the default of [stages.filter.zh] readmore_suffixes
from stages.nfkc import nfkc

# Sentence ends: ASCII and full-width terminal marks, and the ellipsis.
_SENTENCE_END = re.compile(r"[.!?;。！？；…]+")
# A sentence: its first word character and everything up to the next terminal mark.
_SENTENCE = re.compile(r"\w[^.!?;。！？；…]*")
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
# The same test without a regex scan of the line: strip the closing characters, then look at the end. No closer is an
# ellipsis character, so the strip stops where the ellipsis ends, and a line ends in one of these exactly when the
# regex finds its match.
_ELLIPSIS_CLOSERS = "”’」』)）]】\"'"
_ELLIPSIS_ENDS = ("…", "...", "。。")
_PUNCTUATION = regex.compile(r"\p{P}")
_BRACKETED = re.compile(r"【(.*?)】")
_SIGMA = frozenset("Σσς")

# MAP-CC's bullet characters, plus the hyphen Gopher counts as a bullet.
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "※", "·", "➢", "‣", "▶", "◀", "◦", "–", "-")

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


KEPT_BY_TABLE_FROM = 256
"""Characters from which `word_chars` and the punctuation strip before segmenting select the kept characters with a
code-point table (NumPy) instead of the regex substitution: 14 against 73 µs per text on the scale corpus's Chinese
documents (about 2,700 characters); under a few hundred characters NumPy's cost per call is larger than the regex."""


TABLE_CODE_POINTS = 0x10000
"""The code-point table covers the Basic Multilingual Plane (built in about 5 ms per pattern; every code point to
U+10FFFF took 0.11 s, a twentieth of a small run's CPU time); a text with a character beyond it uses the regex."""


@lru_cache(maxsize=2)
def _kept_code_points(pattern: re.Pattern) -> np.ndarray:
    """For every code point of the Basic Multilingual Plane (surrogates included), whether `pattern.sub("", ...)`
    keeps it, taken from the pattern itself run once over a string of all of them, so that selecting through the
    table is the substitution character for character (`pattern` removes runs of single characters: what it
    removes from a text does not depend on the neighbours)."""
    every = "".join(map(chr, range(TABLE_CODE_POINTS)))
    kept = np.zeros(TABLE_CODE_POINTS, dtype=bool)
    kept[np.frombuffer(pattern.sub("", every).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)] = True
    return kept


@lru_cache(maxsize=4)
def _code_points(text: str) -> np.ndarray | None:
    """The text's code points (uint32), or None when one lies beyond the tables' plane: shared by every rule that
    reads the text through a code-point table (one encoding per text)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return codes if not len(codes) or codes.max() < TABLE_CODE_POINTS else None


@lru_cache(maxsize=2)
def _matched_code_points(pattern: re.Pattern) -> np.ndarray:
    """For every code point of the Basic Multilingual Plane, whether `pattern` (one character per match: a class
    such as `\\d` or `\\p{P}`) matches it, from the pattern itself run once over a string of all of them."""
    every = np.arange(TABLE_CODE_POINTS, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    matched = np.zeros(TABLE_CODE_POINTS, dtype=bool)
    matched[[m.start() for m in pattern.finditer(every)]] = True
    return matched


def _count_matches(pattern: re.Pattern, text: str) -> int:
    """`len(pattern.findall(text))` for a pattern of one character per match; long texts of the Basic Multilingual
    Plane through the code-point table (a regex call per match costs about 0.1 µs, a table lookup per character a
    few ns)."""
    if len(text) < KEPT_BY_TABLE_FROM or (codes := _code_points(text)) is None:
        return len(pattern.findall(text))
    return int(np.count_nonzero(_matched_code_points(pattern)[codes]))


def _strip(pattern: re.Pattern, text: str) -> str:
    """`pattern.sub("", text)` for a pattern that removes runs of characters of one class (`[^\\w]+`); long texts
    of the Basic Multilingual Plane through the code-point table."""
    if len(text) < KEPT_BY_TABLE_FROM or (codes := _code_points(text)) is None:
        return pattern.sub("", text)
    return codes[_kept_code_points(pattern)[codes]].tobytes().decode("utf-32-le", "surrogatepass")


@lru_cache(maxsize=4)
def word_chars(text: str) -> str:
    """The text without whitespace, punctuation and symbols: what the character n-gram rules count over, so that
    a line-final "。\\n" or a run of spaces is never the "top 2-gram" of a poem or a table."""
    return _strip(_NON_WORD, text)


@lru_cache(maxsize=4)
def _lines(text: str) -> tuple[str, ...]:
    """Non-empty lines, stripped. Empty lines are layout, not content: they do not dilute line ratios."""
    return tuple(filter(None, map(str.strip, text.splitlines())))  # C loops: no Python frame a line


# ---------------------------------------------------------------------------------------------------------------
# Document-level measures


def sentence_count(text: str) -> int:
    """Sentences: pieces between terminal marks (. ! ? ; 。 ！ ？ ； …) that hold a word character, so that
    "，、“”" between two marks is not a sentence. MAP-CC keeps more than one. One match per such piece (from its
    first word character to the next mark), half the time of splitting and searching each piece."""
    return len(_SENTENCE.findall(text))


def sentence_count_plain(text: str) -> int:
    """`sentence_count` as split pieces tested one by one (the definition)."""
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
    pieces = segment(_strip(_PUNCT_KEEP_SPACE, text), segmenter)
    spaces = list(filter(str.isspace, pieces))  # whitespace pieces are no words; C loops, no Python frame a piece
    words = len(pieces) - len(spaces)
    if not words:
        return 0.0
    return (sum(map(len, pieces)) - sum(map(len, spaces))) / words


def hash_ratio(text: str) -> float:
    """Runs of `#` per character (MAP-CC: <= 0.1)."""
    if "#" not in text and "＃" not in text:  # no run without its character: no regex scan
        return 0.0
    return len(_HASH_RUN.findall(text)) / len(text)


def ellipsis_ratio(text: str) -> float:
    """Ellipses (runs of `…`, `..`, `。。`) per character (MAP-CC: <= 0.1)."""
    if "…" not in text and ".." not in text and "。。" not in text:  # every run holds one of these
        return 0.0
    return len(_ELLIPSIS_RUN.findall(text)) / len(text)


def digit_ratio(text: str) -> float:
    """Digits over characters that are neither punctuation nor whitespace (MAP-CC: <= 0.3)."""
    chars = word_chars(text)
    # Digits (\d) are word characters (\w), so the text holds exactly the digits of its word characters; counted on
    # the text, whose code points the other rules share (tests/test_filter_zh.py checks \d within \w).
    return _count_matches(_DIGIT, text) / len(chars) if chars else 0.0


def readmore_line_ratio(text: str, suffixes: tuple[str, ...] = READMORE_SUFFIXES) -> float:
    """Share of non-empty lines ending with a "read more" marker, case-insensitively (MAP-CC: <= 0.3)."""
    suffixes = tuple(s.lower() for s in suffixes)
    if _SIGMA.isdisjoint("".join(suffixes)):
        # A guard in C before the loop over lines (no suffix occurs in most texts): lowercasing a line gives the
        # same characters as lowercasing the whole text at that place, except for the final sigma (the only
        # context-dependent mapping of str.lower), so a suffix without a sigma that is nowhere in the lowered text
        # ends no lowered line.
        lowered = text.lower()
        if not any(s in lowered for s in suffixes):
            return 0.0
    lines = _lines(text)
    if not lines:
        return 0.0
    return sum(map(str.endswith, map(str.lower, lines), repeat(suffixes))) / len(lines)


def ellipsis_line_ratio(text: str) -> float:
    """Share of non-empty lines ending in an ellipsis (…, ……, ..., 。。。) (Gopher: <= 0.3). The per-character
    `ellipsis_ratio` misses a teaser list (every line a snippet cut off with "……") because its lines are long;
    this is the line-level rule Gopher applies, for Chinese list and portal pages."""
    if "…" not in text and "..." not in text and "。。" not in text:  # the line end needs one: no regex per line
        return 0.0
    lines = _lines(text)
    if not lines:
        return 0.0
    ends = sum(map(str.endswith, map(str.rstrip, lines, repeat(_ELLIPSIS_CLOSERS)), repeat(_ELLIPSIS_ENDS)))
    return ends / len(lines)


def bullet_line_ratio(text: str, bullets: tuple[str, ...] = BULLETS) -> float:
    """Share of non-empty lines starting with a bullet (MAP-CC: <= 0.9)."""
    lines = _lines(text)
    return sum(map(str.startswith, lines, repeat(bullets))) / len(lines) if lines else 0.0


def punctuation_ratio(text: str) -> float:
    """Unicode punctuation (category P: 。，、“” as well as ASCII) per character (MAP-CC: > 0)."""
    return _count_matches(_PUNCTUATION, text) / len(text) if text else 0.0


@lru_cache(maxsize=4)
def _char_counts(text: str) -> list[int]:
    """Occurrences of each distinct character, in order of first occurrence (the entropy's summation order): a
    Counter for short texts; from 1,024 characters on, counts by code point (`np.bincount`) read at each character's
    first occurrence, found with `np.minimum.at` (no sort: 0.4x the time of the sorted `np.unique` this replaced on
    the chain's Chinese documents, which was itself 0.8x the Counter; the Counter is faster under 256 characters)."""
    if len(text) < 1024:
        return list(Counter(text).values())
    codes = _code_points(text)
    if codes is None:  # beyond the plane a count per code point would be 1.1 million long
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        _, first, counts = np.unique(codes, return_index=True, return_counts=True)
        return counts[np.argsort(first)].tolist()
    counts = np.bincount(codes)
    positions = np.arange(len(codes))
    first = np.full(len(counts), len(codes), dtype=positions.dtype)
    np.minimum.at(first, codes, positions)
    return counts[codes[first[codes] == positions]].tolist()


def unique_char_ratio(text: str) -> float:
    """Distinct characters over characters (MAP-CC: > 0.1)."""
    return len(_char_counts(text)) / len(text) if text else 0.0


def char_entropy(text: str) -> float:
    """Entropy (natural log) of the character unigram distribution (MAP-CC: >= 3)."""
    if not text:
        return 0.0
    n = len(text)
    counts = _char_counts(text)
    # One logarithm per distinct count (most characters share a few small counts), summed in the order of the
    # characters' first occurrence as before, so the value is the same to the last bit.
    term = {c: c / n * math.log(c / n) for c in set(counts)}
    return -sum(map(term.__getitem__, counts))


def bracket_ratio(text: str) -> float:
    """Characters inside 【】 over characters (MAP-CC: <= 0.1)."""
    return sum(map(len, _BRACKETED.findall(text))) / len(text) if text else 0.0


def _ngrams(chars: str, n: int) -> list[str]:
    return [chars[i : i + n] for i in range(len(chars) - n + 1)]


# The n-gram rules below work on integer ids, one per position, with NumPy: a Python string per n-gram, a Counter
# and a set cost about 1 µs per character and were most of the filter's time. All n-gram sizes of one text share
# one sort (`_window_order`): the positions ordered by the NGRAM_DEPTH characters that start there, so that for
# every n up to that depth the occurrences of one n-gram are a run of the order. Sorting once per n instead (with
# re-ranking for the n whose ids do not fit 63 bits) took 25 sorts per document and most of the rules' time.
# `top_ngram_ratio_plain` and `dup_ngram_ratio_plain` are the same measures written over strings, one n-gram at a
# time: the definitions, which tests/test_filter_zh.py compares with the sorted versions on every Chinese document
# of the sample for n = 1 to 12. Texts of under SORTED_FROM word characters are measured by the definitions
# themselves: NumPy's cost per call is larger than the whole string loop there.

NGRAM_DEPTH = 10
"""The window the shared order sorts by: MAP-CC's rules use n = 2 to 10; a larger n gets its own, deeper order."""
SORTED_FROM = 128
"""Word characters from which the n-gram rules use the shared order; below, the string definitions are faster (on the
sample's Chinese documents, median 66 word characters: 51 against 225 µs for all nine sizes under 32 characters,
183 against 251 µs at 64-127, 352 against 286 µs at 128-255)."""


@lru_cache(maxsize=4)
def _char_ranks(chars: str) -> tuple[np.ndarray, int]:
    """Each character's rank among the distinct characters of `chars` (int64), and how many distinct there are."""
    codes = np.frombuffer(chars.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    distinct, ranks = np.unique(codes, return_inverse=True)
    return ranks.astype(np.int64), len(distinct)


@lru_cache(maxsize=4)
def _window_order(chars: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, shared): the positions of `chars` sorted by the `depth` characters from each position on (past the
    end counts as a character below all others), and for each position of that order after the first, how many
    leading characters its window shares with the one before (at most `depth`). An n-gram (n <= depth) occurs at
    the positions of one run of `order` whose neighbours share >= n characters (not in text order: the run is
    sorted by the characters after the n-gram); a window that runs past the end shares fewer than n with every
    other (past the end is at a different offset in each), so it is a run of its own."""
    ranks, k = _char_ranks(chars)
    length = len(ranks)
    padded = np.zeros(length + depth, dtype=np.int64)
    padded[:length] = ranks + 1  # 0: past the end
    base, width = k + 1, 1
    while width < depth and base ** (width + 1) < 1 << 63:
        width += 1
    keys = np.zeros(length, dtype=np.int64)  # the first `width` characters, as digits base k + 1
    for j in range(width):
        keys = keys * base + padded[j : j + length]
    while width < depth:
        # Two overlapping windows of `width` give one of `wider`: the dense rank of the first (lexicographic, 0 past
        # the end) then that of the one starting wider - width later.
        distinct, dense = np.unique(keys, return_inverse=True)
        dense_padded = np.zeros(length + depth, dtype=np.int64)
        dense_padded[:length] = dense + 1
        wider = min(2 * width, depth)
        keys = dense_padded[:length] * (len(distinct) + 1) + dense_padded[wider - width : wider - width + length]
        width = wider
    order = np.argsort(keys)
    windows = padded[order[:, None] + np.arange(depth)]  # one row per position, in order
    equal = np.zeros((max(length - 1, 0), depth + 1), dtype=bool)  # a last column of False ends every row
    np.equal(windows[1:], windows[:-1], out=equal[:, :depth])
    return order, equal.argmin(axis=1)  # the first differing character: the shared length


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
    if len(chars) < SORTED_FROM:
        return top_ngram_ratio_plain(chars, n)
    return _top_ngram_ratio_sorted(chars, n)


def _top_ngram_ratio_sorted(chars: str, n: int) -> float:
    """`top_ngram_ratio` of word characters `chars` from the shared order."""
    if len(chars) < n:
        return 0.0
    return _top_ngram_ratios(chars, TOP_NGRAM_SIZES if n in TOP_NGRAM_SIZES else (n,))[n]


TOP_NGRAM_SIZES = (2, 3, 4)
"""MAP-CC's sizes of the top n-gram rule: `top_ngram_ratio` measures them all the first time it sees a text."""


@lru_cache(maxsize=4)
def _top_ngram_ratios(chars: str, ns: tuple[int, ...]) -> dict[int, float]:
    """`top_ngram_ratio` for each n of `ns` at once: the runs of every n in one 2-D pass (row r cut where the shared
    length is below ns[r]; each row starts a run, so no run crosses rows), then per n the most frequent run, the
    first to occur among equals, and the positions its occurrences cover."""
    length, rows = len(chars), len(ns)
    order, shared = _window_order(chars, max(*ns, NGRAM_DEPTH))
    run_starts = np.ones((rows, length), dtype=bool)
    np.less(shared[None, :], np.array(ns)[:, None], out=run_starts[:, 1:])
    starts = np.flatnonzero(run_starts)  # flat index: row * length + place in the order
    counts = np.diff(starts, append=rows * length)
    row_firsts = np.searchsorted(starts, np.arange(rows) * length)  # each row's first run
    tops = np.maximum.reduceat(counts, row_firsts).tolist()
    ratios = {}
    for r, (n, top) in enumerate(zip(ns, tops)):
        if length < n or top < 2:  # a window past the end is a run of one, so a run of two or more is an n-gram's
            ratios[n] = 0.0
            continue
        row = slice(row_firsts[r], row_firsts[r + 1] if r + 1 < rows else len(starts))
        begins = starts[row][counts[row] == top] - r * length
        if len(begins) > 1:  # the run that occurs first
            begins = begins[[np.argmin(order[begins[:, None] + np.arange(top)].min(axis=1))]]
        ratios[n] = _covered(np.sort(order[begins[0] : begins[0] + top]), n) / length
    return ratios


@lru_cache(maxsize=4)
def _dup_ngram_ratios(chars: str, ns: tuple[int, ...]) -> dict[int, float]:
    """`dup_ngram_ratio` for each n of `ns` (none above NGRAM_DEPTH) at once. Only positions of the order whose
    window shares at least min(ns) characters with a neighbour's can be in a run of two or more (a repeated
    n-gram), so the pass works on those alone (a few percent of a text as a rule): row r of a 2-D array marks, among
    them, the members of each run at n = ns[r] that are not its first position in the text; the positions some
    marked window covers are counted from the marked positions in text order, min(gap to the next, n) each."""
    length = len(chars)
    order, shared = _window_order(chars, NGRAM_DEPTH)
    pairs = np.flatnonzero(shared >= min(ns))  # neighbours in the order (i, i + 1) that share that much
    if not len(pairs):
        return dict.fromkeys(ns, 0.0)
    in_pair = np.zeros(length, dtype=bool)
    in_pair[pairs] = in_pair[pairs + 1] = True
    members = np.flatnonzero(in_pair)  # places in the order, ascending
    # shared length between consecutive members; 0 where they are not neighbours in the order (a run ends there)
    linked = np.where(members[1:] == members[:-1] + 1, shared[members[:-1]], 0)
    rows, m = len(ns), len(members)
    sizes = np.array(ns)
    run_starts = np.ones((rows, m), dtype=bool)
    np.less(linked[None, :], sizes[:, None], out=run_starts[:, 1:])
    run_starts = run_starts.ravel()
    positions = np.tile(order[members], rows)
    firsts = np.minimum.reduceat(positions, np.flatnonzero(run_starts))  # each run's first position in the text
    repeats = positions != firsts[np.cumsum(run_starts) - 1]
    keys = np.sort((np.repeat(np.arange(rows), m) * length + positions)[repeats])  # (row, position), in order
    if not len(keys):
        return dict.fromkeys(ns, 0.0)
    row = keys // length
    n_of = sizes[row]
    cover = n_of.copy()  # the last marked window of a row covers n
    same_row = row[1:] == row[:-1]
    np.minimum(np.diff(keys), n_of[:-1], out=cover[:-1], where=same_row)
    covered = np.bincount(row, weights=cover, minlength=rows)
    return {n: int(c) / length for n, c in zip(ns, covered.tolist())}


DUP_NGRAM_SIZES = tuple(range(5, 11))
"""MAP-CC's sizes of the duplicated n-gram rule: `dup_ngram_ratio` measures them all the first time it sees a text."""


def dup_ngram_ratio(text: str, n: int) -> float:
    """Share of word characters that repeat an earlier character n-gram (MAP-CC: n = 5..10, <= 0.60 each).

    Positions are counted, once each, for every occurrence of an n-gram after its first. This is the measure the
    original meant; it counted distinct characters instead. The share can only shrink as n grows (a repeated
    (n+1)-gram is made of repeated n-grams), which `passes_dup_ngrams` uses to stop early."""
    chars = word_chars(text)
    if len(chars) < SORTED_FROM:
        return dup_ngram_ratio_plain(chars, n)
    return _dup_ngram_ratio_sorted(chars, n)


def _dup_ngram_ratio_sorted(chars: str, n: int) -> float:
    """`dup_ngram_ratio` of word characters `chars` from the shared order."""
    if len(chars) < n:
        return 0.0
    if n > NGRAM_DEPTH:
        order, shared = _window_order(chars, n)
        starts = np.concatenate(([0], np.flatnonzero(shared < n) + 1))
        repeat = np.ones(len(chars) - n + 1, dtype=bool)
        firsts = np.minimum.reduceat(order, starts)
        repeat[firsts[firsts <= len(chars) - n]] = False
        return _covered(np.flatnonzero(repeat), n) / len(chars)
    ns = DUP_NGRAM_SIZES if n in DUP_NGRAM_SIZES else (n,)
    return _dup_ngram_ratios(chars, ns)[n]


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
