"""Deduplication rules as pure functions: exact keys, shingles, MinHash signatures, LSH band keys, similar lines.

Everything on shingles is vectorized with NumPy (uint64 arithmetic wraps modulo 2**64, which is what the hashes
below rely on): a document's code points become one array (NFKC, case folding and whitespace removal by a table
lookup per code point where the text allows it, see `_fold_table`), n-gram hashes come from one prefix sum, word
hashes from one cumulative sum, and the MinHash signature from a (permutations x shingles) multiply-add and a row
minimum. No Python loop runs per shingle.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from itertools import compress

import numpy as np
import xxhash
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from model.han import is_chinese
from stages.nfkc import nfkc, nul_joined, nul_pieces

_P = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so it is invertible modulo 2**64
_P_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_Q = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant, odd
_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"[\W_]+")


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the output (vectorized)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def exact_key(text: str, normalize: str = "whitespace_case") -> tuple[int, int]:
    """128-bit hash of the text after the configured folding: "none", "whitespace" (runs of whitespace become one
    space, ends stripped) or "whitespace_case" (and case-folded)."""
    if normalize != "none":
        # = _WS.sub(" ", text).strip(): `\s` and str.split() both mean str.isspace() (checked over every code point
        # in tests/test_dedup.py), and split/join takes a third of the regex's time
        text = " ".join(text.split())
        if normalize == "whitespace_case":
            text = text.casefold()
    h = xxhash.xxh3_128_intdigest(text.encode("utf-8", "surrogatepass"))
    return h >> 64, h & 0xFFFFFFFFFFFFFFFF


def uses_char_shingles(lang: str | None, kind: str | None, text: str) -> bool:
    """Chinese (and Japanese) text has no spaces between words: it is shingled by characters."""
    if kind == "code":
        return False
    if lang is not None:
        return lang in ("zh", "ja", "yue", "wuu")
    return is_chinese(text)


def _distinct(h: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique, without its overhead on small arrays)."""
    h = np.sort(h)
    return h[np.concatenate(([True], h[1:] != h[:-1]))] if len(h) else h


def _nfkc_fold(text: str) -> str:
    return nfkc(text).casefold()


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


_TABLE_END = 0x40000  # planes 0-3: the BMP, the SMP, and the ideograph extensions B-H of classical Chinese text
_HANGUL_JAMO_V_T = range(0x1161, 0x11C3)  # vowels and trailing consonants compose algorithmically (L+V, LV+T)


@functools.lru_cache(maxsize=1)
def _fold_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per code point below _TABLE_END, what `_WS.sub("", nfkc(text).casefold())` turns it into, for the characters
    where that is a property of the character alone: lengths (int8; -1 where the character is not one of them), the
    first output code point, and each character's output as a slice (offsets) of one pool of code points.

    Why per character: NFKC is a full compatibility decomposition (a mapping per character), canonical reordering
    (only of runs of characters with a nonzero combining class) and canonical composition (a character joins the
    starter before it only if it is the second character of a two-character canonical decomposition, or a Hangul
    vowel or trailing jamo). Call a character inert when every character of its decomposition has combining class 0
    and is no such second character. In a text of inert characters the decomposed string has nothing to reorder and
    nothing to compose, so NFKC(text) is the concatenation of the characters' own NFKC. Case folding maps each
    character alone (str.casefold has no context rule) and whitespace removal drops single characters, so the
    whole fold is per character. Texts with any other character (combining marks, Hangul, code points from
    _TABLE_END on, lone surrogates, NUL) take the string path. `tests/test_dedup.py` checks the table against the
    string path. Built once per process (0.06-0.1 CPU-s: one NFKD and one case fold over all characters of the
    table joined by NUL, which is inert and no first or second character of any composition, so it keeps every
    character's result apart)."""
    chars = _table_code_points(_TABLE_END)
    table = nul_joined(chars)
    nfkd = unicodedata.normalize("NFKD", table)
    decomposed, bounds = nul_pieces(nfkd)
    # A two-character canonical decomposition is also two or more characters of NFKD; beyond the table, one quick
    # check says whether any code point decomposes at all (none does in Unicode 15: planes 4-16 are unassigned,
    # tags, variation selectors and private use), else they are all looked at.
    candidates = chars[np.diff(bounds) >= 2].tolist()
    beyond = np.arange(_TABLE_END, 0x110000, dtype=np.uint32).tobytes().decode("utf-32-le")
    if not unicodedata.is_normalized("NFD", beyond):
        candidates += range(_TABLE_END, 0x110000)
    seconds = set(_HANGUL_JAMO_V_T)
    for c in candidates:
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(int(parts[1], 16))
    distinct = _distinct(decomposed)
    combining = np.fromiter(map(unicodedata.combining, map(chr, distinct.tolist())), np.int64, len(distinct))
    blocks = np.zeros(0x110000, dtype=np.int64)  # 1 for a character that reorders or composes
    blocks[distinct[combining > 0]] = 1
    blocks[list(seconds)] = 1
    blocked = np.add.reduceat(blocks[decomposed], bounds[:-1]) > 0
    blocked |= bounds[:-1] == bounds[1:]  # (no decomposition is empty; reduceat would misread one)
    # An inert character's NFKC is its NFKD (composition joins a starter only with a following second character
    # or Hangul V/T jamo, and an inert character's NFKD has none), so the outputs come from the NFKD already made:
    # one NFKC of the table less (0.07 CPU-s). A blocked character's piece of the pool is never looked up.
    pool, bounds = nul_pieces(_WS.sub("", nfkd.casefold()))
    pool = pool.astype(np.uint64)
    counts = np.diff(bounds)
    inert = chars[~blocked]
    lengths = np.full(_TABLE_END, -1, dtype=np.int8)
    lengths[inert] = counts[~blocked]
    offsets = np.zeros(_TABLE_END, dtype=np.int64)
    offsets[inert] = bounds[:-1][~blocked]
    first = np.zeros(_TABLE_END, dtype=np.uint64)
    has_output = ~blocked & (counts > 0)
    first[chars[has_output]] = pool[bounds[:-1][has_output]]
    return lengths, first, offsets, pool


def _table_code_points(end: int) -> np.ndarray:
    """Every code point from 1 to end - 1 but the surrogates (uint32)."""
    codes = np.arange(1, end, dtype=np.uint32)
    return codes[(codes < 0xD800) | (codes > 0xDFFF)]


def folded_codepoints(text: str) -> np.ndarray:
    """The code points of `_WS.sub("", nfkc(text).casefold())` as uint64, by table lookup where every character of
    the text is inert (see `_fold_table`; nearly every Chinese text), else by the string functions."""
    cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(cp) == 0 or cp.max() >= _TABLE_END:
        return _codepoints(_WS.sub("", _nfkc_fold(text)))
    lengths, first, offsets, pool = _fold_table()
    counts = lengths[cp]
    if counts.min() < 0:
        return _codepoints(_WS.sub("", _nfkc_fold(text)))
    if counts.max() <= 1:  # one or no output per character: a gather of the kept ones
        return first[cp[counts == 1]]
    counts = counts.astype(np.int64)
    total = np.cumsum(counts)
    # output k belongs to character i = repeat index; its place in i's slice is k - (total[i] - counts[i])
    return pool[np.repeat(offsets[cp] - (total - counts), counts) + np.arange(total[-1])]


_powers: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _base_powers(base: np.uint64, count: int) -> tuple[np.ndarray, np.ndarray]:
    """base**k and base**-k modulo 2**64 for k < count (cached per base, grown by doubling)."""
    up, down = _powers.get(int(base), (np.empty(0, dtype=np.uint64), None))
    if len(up) < count:
        size = max(count, 2 * len(up), 1024)
        inverse = np.uint64(pow(int(base), -1, 2**64))
        up = np.full(size, base, dtype=np.uint64)
        down = np.full(size, inverse, dtype=np.uint64)
        up[0] = down[0] = 1
        up, down = np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64)  # wrap modulo 2**64
        _powers[int(base)] = (up, down)
    return up[:count], down[:count]


def _ngram_hashes(values: np.ndarray, n: int, base: np.uint64) -> np.ndarray:
    """Polynomial hash of every window of n consecutive values, h(i) = sum_j values[i+j] * base**(n-1-j) modulo
    2**64, then mixed. From one prefix sum S[k] = sum_{j<k} values[j] * base**-j (base is odd, so invertible):
    h(i) = base**(i+n-1) * (S[i+n] - S[i]), a few passes whatever n is (n multiply-adds before; same values)."""
    count = len(values) - n + 1
    up, down = _base_powers(base, len(values))
    prefix = np.empty(len(values) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(values * down, out=prefix[1:])
    return _mix((prefix[n:] - prefix[:count]) * up[n - 1 :])


def char_ngram_hashes(text: str, n: int = 13) -> np.ndarray:
    """Hashed character n-grams of the text with whitespace removed and NFKC + case folding applied (MAP-CC: 13
    characters), in text order, repeats included. A text shorter than n is one n-gram, so equal short texts still
    match."""
    cp = folded_codepoints(text)
    if len(cp) == 0:
        return np.empty(0, dtype=np.uint64)
    return _ngram_hashes(cp, min(n, len(cp)), _P)


def char_shingles(text: str, n: int = 13) -> np.ndarray:
    """Distinct hashed character n-grams (the shingle set, sorted); see `char_ngram_hashes`."""
    return _distinct(char_ngram_hashes(text, n))


def word_hashes(text: str) -> np.ndarray:
    """One 64-bit hash per word (NFKC, case-folded, split at non-word characters), without a Python loop per
    word: with prefix sums S[k] = sum c_i * P**i, a word [a, b) hashes to (S[b] - S[a]) * P**-a."""
    norm = _NON_WORD.sub(" ", _nfkc_fold(text)).strip()
    if not norm:
        return np.empty(0, dtype=np.uint64)
    cp = _codepoints(norm)
    space = cp == 32
    starts = np.flatnonzero(np.concatenate(([True], space[:-1])) & ~space)
    ends = np.flatnonzero(~space & np.concatenate((space[1:], [True]))) + 1
    powers = np.cumprod(np.full(len(cp), _P, dtype=np.uint64))  # P**1 .. P**L
    weighted = np.where(space, np.uint64(0), cp * powers)
    prefix = np.concatenate(([np.uint64(0)], np.cumsum(weighted, dtype=np.uint64)))
    inv_powers = np.cumprod(np.full(len(cp) + 1, _P_INV, dtype=np.uint64))  # P**-1 .. P**-(L+1)
    return _mix((prefix[ends] - prefix[starts]) * inv_powers[starts])


def word_ngram_hashes(text: str, n: int = 5) -> np.ndarray:
    """Hashed word n-grams (datatrove and FineWeb use 5 words), in text order, repeats included. Fewer than n
    words: one n-gram."""
    words = word_hashes(text)
    if len(words) == 0:
        return np.empty(0, dtype=np.uint64)
    return _ngram_hashes(words, min(n, len(words)), _Q)


def word_shingles(text: str, n: int = 5) -> np.ndarray:
    """Distinct hashed word n-grams (the shingle set, sorted); see `word_ngram_hashes`."""
    return _distinct(word_ngram_hashes(text, n))


def shingles_for(text: str, lang: str | None, kind: str | None, char_n: int = 13, word_n: int = 5) -> np.ndarray:
    """The document's shingle set (distinct, sorted): what exact verification's Jaccard compares."""
    return _distinct(ngram_hashes_for(text, lang, kind, char_n, word_n))


def ngram_hashes_for(text: str, lang: str | None, kind: str | None, char_n: int = 13, word_n: int = 5) -> np.ndarray:
    """The document's hashed n-grams with repeats, unsorted: enough for a MinHash signature, whose minimum over a
    multiset is its minimum over the set, without the sort that makes the set (0.08-0.11 CPU-s on the 13 MB chain
    input; repeats there are 1.7% of the n-grams)."""
    if uses_char_shingles(lang, kind, text):
        return char_ngram_hashes(text, char_n)
    return word_ngram_hashes(text, word_n)


def minhash_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiply-shift permutations h -> ((a*h + b) mod 2**64) >> 32 with odd a (a 2-universal family)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def minhash_signature(shingles: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 512) -> np.ndarray:
    """The minimum over shingles of each permutation: uint32[num_perm], min((a*h + b) mod 2**64) >> 32.

    Laid out permutations x shingles, `chunk` shingles at a time (98 x 512 x 8 bytes = 400 KB per block): each
    block is filled with the shingles (one broadcast copy), multiplied in place by a block holding each row's `a`,
    added a block holding each row's `b`, and reduced along its rows. Every operand of the multiply and the add is
    then contiguous, where (shingles[:, None] * a) broadcasts `a` along the inner axis and NumPy's uint64 loops run
    1.6-2x slower per element (measured in-cache: 0.65 + 0.32 + 0.30 ns before, 0.12 + 0.26 + 0.17 + 0.16 after)."""
    a_rows, b_rows = _permutation_blocks(a.tobytes(), b.tobytes(), chunk)
    sig = np.full(len(a), np.iinfo(np.uint64).max, dtype=np.uint64)
    block = np.empty((len(a), min(chunk, len(shingles))), dtype=np.uint64)
    for start in range(0, len(shingles), chunk):
        cols = shingles[start : start + chunk]
        n = len(cols)
        out = block[:, :n]
        np.copyto(out, cols)
        np.multiply(out, a_rows[:, :n], out=out)
        np.add(out, b_rows[:, :n], out=out)
        np.minimum(sig, out.min(axis=1), out=sig)
    # The shift is monotonic, so min(x >> 32) = min(x) >> 32: one shift per permutation, not per shingle.
    return (sig >> np.uint64(32)).astype(np.uint32)


@functools.lru_cache(maxsize=8)
def _permutation_blocks(a: bytes, b: bytes, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(num_perm, chunk) blocks whose row p is a[p] (and b[p]) repeated, for `minhash_signature`."""
    a_, b_ = np.frombuffer(a, dtype=np.uint64), np.frombuffer(b, dtype=np.uint64)
    return np.repeat(a_, chunk).reshape(len(a_), chunk), np.repeat(b_, chunk).reshape(len(b_), chunk)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per LSH band: two documents share a key when all `rows` values of that band are equal.
    `sig` is one signature (-> keys[bands]) or a stack of them (-> keys[documents, bands]): the loop over rows runs
    once for the whole stack, which is what the signature step does with a task's documents."""
    m = sig[..., : bands * rows].astype(np.uint64).reshape(sig.shape[:-1] + (bands, rows))
    h = np.full(m.shape[:-1], np.uint64(0x84222325CBF29CE4), dtype=np.uint64)
    for j in range(rows):
        h = _mix(h * _P + m[..., j])
    return h


def estimated_jaccard(sig1: np.ndarray, sig2: np.ndarray) -> float:
    return float(np.mean(sig1 == sig2))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle sets (as returned by char_shingles / word_shingles)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """The LSH S-curve: the chance that a pair of this Jaccard similarity shares at least one band,
    1 - (1 - J**rows)**bands (MinHash agrees on one permutation with probability J)."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def spread_hash(values: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of integer values (document nodes), to split them evenly into parts."""
    return _mix(np.asarray(values).astype(np.uint64))


def lsh_threshold(bands: int, rows: int) -> float:
    """Similarity at which a pair becomes a candidate with probability about 1/2: (1/b)**(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


# ---------------------------------------------------------------------------------------------------------------
# Similar lines inside one document (MAP-CC)


def remove_similar_lines_reference(
    text: str, max_distance: float = 0.1, exact_only_below: int = 15, max_candidates: int = 2000
) -> tuple[str, int]:
    """The definition `remove_similar_lines` must equal (kept as the readable statement of the rule, and the
    reference of tests/test_dedup.py): one line at a time, each compared in Python with the kept lines before it.

    Drop every line that nearly repeats an earlier kept line of the same document: edit distance at most
    `max_distance` x the longer line's length. Lines shorter than `exact_only_below` characters are dropped only
    when exactly equal (after stripping); blank lines always stay, so paragraphs keep their shape. Cheap checks come
    first: an exact-match set, then length (lengths can differ by at most the allowed distance), then character
    overlap (the distance is at least the number of characters of the longer line with no counterpart).

    Returns the new text and the number of lines dropped."""
    lines = text.split("\n")
    kept: list[str] = []
    seen: set[str] = set()
    previous: list[tuple[str, int, Counter]] = []  # kept long lines: (stripped, length, character counts)
    dropped = 0
    for line in lines:
        s = line.strip()
        if not s:
            kept.append(line)
            continue
        if s in seen:
            dropped += 1
            continue
        n = len(s)
        if n >= exact_only_below:
            counts = None
            duplicate = False
            for other, m, other_counts in previous[-max_candidates:]:
                longest = max(n, m)
                budget = int(max_distance * longest)
                if abs(n - m) > budget:
                    continue
                if counts is None:
                    counts = Counter(s)
                unmatched = longest - sum((counts & other_counts).values())
                if unmatched > budget:
                    continue
                if Levenshtein.distance(s, other, score_cutoff=budget) <= budget:
                    duplicate = True
                    break
            if duplicate:
                dropped += 1
                continue
            previous.append((s, n, counts if counts is not None else Counter(s)))
        seen.add(s)
        kept.append(line)
    return ("\n".join(kept) if dropped else text), dropped


# Long lines decided per block in remove_similar_lines: a block's edit-distance matrix is at most SIMILAR_LINES_BLOCK x
# (max_candidates + SIMILAR_LINES_BLOCK) entries, 1.3 M at the defaults (about 40 MB of temporaries), whatever the
# document.
SIMILAR_LINES_BLOCK = 512


def _near_earlier_lines(
    texts: list[str],
    lengths: np.ndarray,
    start: int,
    stop: int,
    window: np.ndarray,
    max_distance: float,
) -> dict[int, np.ndarray]:
    """For the long lines start..stop-1, the earlier long lines within the edit-distance bound: those among
    `window` (kept lines before `start` that can still be in a candidate window) and those of the block before
    each. One rapidfuzz `cdist` call (C) gives the bounded distances of the block; the length bound, computed
    with NumPy, decides which entries count (rapidfuzz also returns at once on those lengths)."""
    rows = np.arange(start, stop)
    cols = np.concatenate((window, rows))
    n_row, n_col = lengths[rows][:, None], lengths[cols][None, :]
    # int(max_distance * longest) of the reference: float64 product, truncated
    budget = (max_distance * np.maximum(n_row, n_col)).astype(np.int64)
    possible = (np.abs(n_row - n_col) <= budget) & (cols[None, :] < rows[:, None])
    if not possible.any():
        return {}
    block = texts[start:stop]
    # the block's own list as choices when there is no window to put before it (no copy)
    choices = block if len(window) == 0 else [texts[j] for j in window.tolist()] + block
    # one cutoff for the block: distances up to it are exact, so each pair's own budget is compared exactly
    distance = process.cdist(
        block,
        choices,
        scorer=Levenshtein.distance,
        score_cutoff=int(budget[possible].max()),
        dtype=np.int32,
        workers=1,
    )
    left, right = np.nonzero(possible & (distance <= budget))
    if len(left) == 0:
        return {}
    cuts = np.flatnonzero(np.diff(left)) + 1  # row-major: left is sorted
    return {start + int(g[0]): cols[r] for g, r in zip(np.split(left, cuts), np.split(right, cuts), strict=True)}


def remove_similar_lines(
    text: str, max_distance: float = 0.1, exact_only_below: int = 15, max_candidates: int = 2000
) -> tuple[str, int]:
    """Drop every line that nearly repeats an earlier kept line of the same document: edit distance at most
    `max_distance` x the longer line's length, against the last `max_candidates` kept long lines. Lines shorter
    than `exact_only_below` characters are dropped only when exactly equal (after stripping); blank lines always
    stay, so paragraphs keep their shape. Returns the new text and the number of lines dropped.

    The same decisions as `remove_similar_lines_reference` (tests/test_dedup.py compares them), computed so that
    no Python loop runs per pair of lines: the bounded edit distances of a block of long lines come from one
    rapidfuzz call (C), the length bound from NumPy. A short line never goes for being near another, so it goes
    exactly when it is not its text's first occurrence (found with one dict built in C); only the long lines are
    walked in order, as which of them are kept decides the later ones. The reference's character-count prefilter
    (a Counter intersection, ~11 us a pair) and its Python loop over pairs were most of the dedup stage's time on
    Chinese web text (BENCHMARKS.md, "Third pass: dedup, whole stage")."""
    lines = text.split("\n")
    stripped = [line.strip() for line in lines]
    # each text's first line: the dict keeps the last value given, and the lines go in backwards
    first = dict(zip(reversed(stripped), range(len(stripped) - 1, -1, -1)))
    long_rows = [row for row, s in enumerate(stripped) if len(s) >= exact_only_below and s]
    if len(first) == len(stripped) and len(long_rows) < 2:  # no repeated text, nothing to compare
        return text, 0
    # blank lines stay; short lines stay when first of their text; long lines are decided below
    keep = [not s or first[s] == row for row, s in enumerate(stripped)]
    texts = [stripped[row] for row in long_rows]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    kept_rank = np.full(len(texts), -1, dtype=np.int64)  # each kept long line's place in the reference's `previous`
    previous = 0  # kept long lines so far
    near: dict[int, np.ndarray] = {}
    block_end = 0
    seen: set[str] = set()  # kept long texts (a short text never equals a long one)
    for k, s in enumerate(texts):
        if k >= block_end:  # every long line before k is decided: the window is known
            block_end = min(k + min(SIMILAR_LINES_BLOCK, max_candidates), len(texts))
            window = np.flatnonzero(kept_rank[:k] >= max(previous - max_candidates, 0))
            near = _near_earlier_lines(texts, lengths, k, block_end, window, max_distance)
        row = long_rows[k]
        if s in seen:
            keep[row] = False
            continue
        earlier = near.get(k)
        # a near earlier line counts when it was kept and is among the last max_candidates kept long lines
        if earlier is not None and bool((kept_rank[earlier] >= max(previous - max_candidates, 0)).any()):
            keep[row] = False
            continue
        keep[row] = True  # also when an earlier copy of its text went
        kept_rank[k] = previous
        previous += 1
        seen.add(s)
    dropped = keep.count(False)
    return ("\n".join(compress(lines, keep)) if dropped else text), dropped
