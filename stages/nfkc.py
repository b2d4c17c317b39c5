"""NFKC normalization that leaves Chinese ideographs alone: the same result as `unicodedata.normalize("NFKC", ...)`,
in a fraction of the time on Chinese text.

CPython normalizes a whole string once its quick check fails, and nearly every Chinese text fails it (full-width
punctuation ，：（） has compatibility mappings), so every ideograph goes through decomposition and recomposition
for nothing. The ideographs of CJK Unified Ideographs and extension A (U+4E00-U+9FFF, U+3400-U+4DBF) have no
decomposition, combining class 0, and are in no two-character canonical decomposition, so nothing composes with
them on either side and canonical reordering stops at them: NFKC(a + ideographs + b) = NFKC(a) + ideographs +
NFKC(b). Only the runs between ideographs are normalized. `tests/test_decontam.py` checks the claim over every code
point's decomposition and compares the result with `unicodedata.normalize` on the sample and on random strings of
composing characters.

The same argument holds for every character that nothing can be moved past or composed into: when no character of a
text's compatibility decomposition (NFKD) is "trailing" (a combining class other than 0, the second character of a
two-character canonical decomposition, or a Hangul vowel or final jamo, which compose algorithmically), canonical
reordering and composition have nothing to act on, so NFKC(text) is the concatenation of each character's NFKD. Nearly
every Chinese and English text is such a text; it is folded with one table lookup per code point (NumPy) instead of
one call per run between ideographs (`_fold`); `tests/test_nfkc.py` checks the tables against every code point and
the result against `unicodedata.normalize`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

IDEOGRAPH_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))
_IDEOGRAPH_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff]+)")


@functools.lru_cache(maxsize=1 << 16)
def _normalize_short_run(run: str) -> str:
    return unicodedata.normalize("NFKC", run)


def _normalize_run(run: str) -> str:
    """The short runs between ideographs repeat (，, 。, ：, "\n"), so a cache answers most of them without a call;
    long runs (a paragraph of English) are normalized directly, so the cache holds at most 65,536 x 16 characters."""
    return _normalize_short_run(run) if len(run) <= 16 else unicodedata.normalize("NFKC", run)


FOLD_CODE_POINTS = 0x10000
"""The fold tables cover the Basic Multilingual Plane (built in about 25 ms, once per process, when the first text
that needs them arrives); a text with a character beyond it takes the run-by-run path."""
FOLD_FROM = 64
"""Characters from which a text is folded through the tables: below, NumPy's cost per call exceeds the run-by-run
path's."""
# The Hangul vowel (V) and final (T) jamo: L + V and LV + T compose by the algorithm, not by a decomposition mapping.
_HANGUL_TRAILING = ((0x1161, 0x1175), (0x11A8, 0x11C2))


@functools.lru_cache(maxsize=1)
def _fold_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(foldable, lengths, offsets, flat) for every code point of the Basic Multilingual Plane: whether no character
    of its NFKD is trailing (module docstring), and its NFKD as `flat[offsets[c] : offsets[c] + lengths[c]]`."""
    codes = np.arange(1, FOLD_CODE_POINTS, dtype=np.uint32)
    every = codes.tobytes().decode("utf-32-le", "surrogatepass")
    # One call for all: NUL (a starter that composes with nothing, and in no NFKD) between the characters stops
    # reordering at each of them, so each piece between two NULs is one character's NFKD.
    separated = np.zeros(2 * len(codes) - 1, dtype=np.uint32)
    separated[0::2] = codes
    decomposed = unicodedata.normalize("NFKD", separated.tobytes().decode("utf-32-le", "surrogatepass"))
    pieces = np.frombuffer(decomposed.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    bounds = np.concatenate(([-1], np.flatnonzero(pieces == 0), [len(pieces)]))
    lengths = np.concatenate(([1], np.diff(bounds) - 1))  # NUL itself first: its NFKD is itself
    flat = np.concatenate(([0], pieces[pieces != 0])).astype(np.uint32)
    offsets = np.cumsum(lengths) - lengths
    trailing = np.zeros(FOLD_CODE_POINTS, dtype=bool)
    trailing[1:] = np.fromiter(map(unicodedata.combining, every), dtype=np.int32, count=len(every)) != 0
    for decomposition in map(unicodedata.decomposition, every):
        if decomposition and decomposition[0] != "<":  # canonical: a pair's second character composes backwards
            parts = decomposition.split()
            if len(parts) == 2 and int(parts[1], 16) < FOLD_CODE_POINTS:
                trailing[int(parts[1], 16)] = True
    for lo, hi in _HANGUL_TRAILING:
        trailing[lo : hi + 1] = True
    blocked = trailing[np.minimum(flat, FOLD_CODE_POINTS - 1)] | (flat >= FOLD_CODE_POINTS)
    foldable = np.add.reduceat(blocked, offsets) == 0  # every NFKD is at least one character long
    return foldable, lengths, offsets, flat


def _fold(text: str) -> str | None:
    """NFKC of `text` as the concatenation of its characters' NFKD, or None where that does not hold (a trailing
    character, or one beyond the tables)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if codes.max() >= FOLD_CODE_POINTS:
        return None
    foldable, lengths, offsets, flat = _fold_tables()
    if not foldable[codes].all():
        return None
    widths = lengths[codes]
    starts = offsets[codes]
    if len(widths) == int(widths.sum()):  # one character each: no expansion
        return flat[starts].tobytes().decode("utf-32-le", "surrogatepass")
    ends = np.cumsum(widths)
    owner = np.repeat(np.arange(len(codes)), widths)  # the input character of each output character
    within = np.arange(int(ends[-1])) - (ends - widths)[owner]
    return flat[starts[owner] + within].tobytes().decode("utf-32-le", "surrogatepass")


def nfkc(text: str) -> str:
    """`unicodedata.normalize("NFKC", text)`: through the fold tables where every character allows it, else
    normalizing only the runs between ideographs."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    if len(text) >= FOLD_FROM:
        folded = _fold(text)
        if folded is not None:
            return folded
    return nfkc_by_runs(text)


def nfkc_by_runs(text: str) -> str:
    """`unicodedata.normalize("NFKC", text)`, normalizing only the runs between ideographs."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    parts = _IDEOGRAPH_RUN.split(text)  # even positions: between ideographs; odd: ideograph runs (kept as they are)
    parts[0::2] = map(_normalize_run, parts[0::2])
    return "".join(parts)


def nul_joined(codes: np.ndarray) -> str:
    """The code points `codes` (no NUL, no surrogate) joined by NUL, built as UTF-32 (a Python join of a million
    one-character strings costs 0.2 s): one string to normalize per table instead of one call per character."""
    spaced = np.zeros((len(codes), 2), dtype=np.uint32)
    spaced[:, 0] = codes
    return spaced.ravel()[:-1].tobytes().decode("utf-32-le")


def nul_pieces(joined: str) -> tuple[np.ndarray, np.ndarray]:
    """The code points (uint32) of a NUL-joined string without the NULs, and where each piece starts (one more
    entry: the end), so that piece i is values[bounds[i] : bounds[i + 1]]."""
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    is_nul = cp == 0
    nul = np.flatnonzero(is_nul)
    bounds = np.empty(len(nul) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, len(cp) - len(nul)
    np.subtract(nul, np.arange(len(nul)), out=bounds[1:-1])
    return cp[~is_nul], bounds
