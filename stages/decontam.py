"""Benchmark decontamination: finds documents that hold a test item of a benchmark, by n-gram overlap.

Benchmarks are files (`[[stages.decontam.benchmarks]]`: name, path, format jsonl | parquet | csv, fields); the
values of `fields` in one row form one item. Text is normalized (NFKC, lower case) and cut into units:
- English and other space-separated text: words (`\\w+`), compared as word 13-grams, as GPT-3 did;
- Chinese (an item whose non-space characters are >= 30% Han, `model.han.is_chinese`): characters, punctuation and whitespace removed,
  compared as character `zh_ngram`-grams (see `DecontamConfig.zh_ngram` for how n was chosen).
N-grams are taken within each field, never across two (a pasted item has option labels, line breaks and answer
keys between its fields). A field shorter than n units but at least `min_field_units` long counts as one n-gram of
its own length, so short questions can still be found; shorter fields (option letters, "是"/"否") count for nothing.

A document is flagged for an item when at least `threshold` of the item's distinct n-grams occur in it: a pasted
item matches nearly all of them, a document that merely shares a common phrase or sentence with a long item
matches a few (see `threshold` for the measurement); and (`per_field`) when one field with enough n-grams of its
own has `field_threshold` of them in it, so a question copied without its long options is found. Both shares
also need the item's specific n-grams (those no other item holds): a stem many items share flags none of them.
Modes: `drop` removes flagged documents (reason
`contaminated`); `cut` removes every matched n-gram of a flagged item with `cut_margin` characters either side,
as NeMo Curator's task decontamination does, and removes the document instead when that takes more than
`max_splits` cuts or leaves nothing. Flagged documents record `contaminated_by` (benchmark names, null when clean).

The n-gram index is built once per run, in `build`, and written to `<stage_dir>/index/` as NumPy arrays that every
worker memory-maps (the pages are shared, so workers add nothing per process): sorted 64-bit n-gram hashes, a CSR
map from each hash to the fields holding it (and each field's item), and each field's and item's n-gram counts.
Its size and build time go into `stats.json` (`index`). Documents are hashed 64 at a time
(`NgramIndex.batch_candidates`) and each is then decided alone, as `filter` decides one document. Counters (`stats.json["counters"]`): `decontam_docs_flagged`, per benchmark
`decontam_benchmark_<name>_docs` (documents flagged) and `..._item_matches` (item-document pairs), and in cut mode
`decontam_docs_cut`, `decontam_spans_cut`, `decontam_chars_cut`, `decontam_dropped_too_many_splits`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from model.han import is_chinese
from stages.base import Phase, StageContext
from stages.config.decontam import BenchmarkFile, DecontamConfig
from stages.io import ReportsCounters, atomic_write_json
from stages.nfkc import nfkc, nul_joined, nul_pieces

# ------------------------------------------------------------------------------------------- text to units

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_BASE = np.uint64(0x100000001B3)
MODES = ("en", "zh")


def normalize(text: str) -> tuple[str, np.ndarray | None]:
    """NFKC and lower case. Returns the normalized text and, when its length differs from the original's, the
    original position of each normalized character (None: position i is position i). ASCII is its own NFKC form,
    so only the non-ASCII runs that change length are mapped character by character."""
    norm = nfkc(text).lower()
    if len(norm) == len(text):
        return norm, None
    pieces, done = [], 0
    widths = None  # normalized characters per original character, where a run had to go character by character
    for m in _NON_ASCII.finditer(text):
        s, e = m.span()
        pieces.append(text[done:s].lower())
        run = nfkc(m.group()).lower()
        if len(run) == e - s:
            pieces.append(run)
        else:
            chars = [unicodedata.normalize("NFKC", c).lower() for c in m.group()]
            pieces.extend(chars)
            if widths is None:
                widths = np.ones(len(text), dtype=np.int64)
            widths[s:e] = [len(c) for c in chars]
        done = e
    pieces.append(text[done:].lower())
    positions = np.arange(len(text), dtype=np.int64)
    return "".join(pieces), positions if widths is None else np.repeat(positions, widths)


_BMP_END = 0x10000
_CAPITAL_SIGMA = 0x3A3  # the one character str.lower() maps by context (final sigma)
_HANGUL_JAMO_V_T = range(0x1161, 0x11C3)  # vowels and trailing consonants compose algorithmically (L+V, LV+T)


_NORMALIZE_TABLE: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _normalize_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per BMP code point, what `normalize` makes of it where that is a property of the character alone: the
    output length (int8; -1 where it is not), and the output as a slice (offsets) of one pool of code points.

    NFKC is a per-character compatibility decomposition, then canonical reordering (only of characters with a
    nonzero combining class) and canonical composition (a character joins the starter before it only when it is
    the second character of a two-character canonical decomposition, or a Hangul vowel or trailing jamo). A
    character is inert when no character of its decomposition has a nonzero combining class or is such a second
    character: in a text of inert characters there is nothing to reorder or compose, so NFKC(text) is the
    concatenation of each character's NFKC. str.lower() maps each character alone except the capital sigma
    (final sigma depends on the neighbours), so a character whose NFKC holds one is not inert either; nor are
    NUL and the surrogates. Texts holding a character that is not inert (or one beyond the BMP) take `normalize`.
    Built once per process when the first batch arrives (about 0.035 CPU-s: each normalization runs once over
    all BMP characters joined by NUL, which is inert and composes with nothing, so each result stays apart)."""
    global _NORMALIZE_TABLE
    if _NORMALIZE_TABLE is not None:
        return _NORMALIZE_TABLE
    codes = np.arange(1, _BMP_END, dtype=np.uint32)
    codes = codes[(codes < 0xD800) | (codes > 0xDFFF)]
    table = nul_joined(codes)
    decomposed, bounds = nul_pieces(unicodedata.normalize("NFKD", table))
    # Second characters of two-character canonical decompositions. A composite's canonical decomposition is also
    # two or more characters of its NFKD, so the BMP's candidates are those; beyond the BMP, every plane that is
    # not already in NFD is looked at the same way (a BMP character can be the second of a composite there).
    candidates = codes[np.diff(bounds) >= 2].tolist()
    for plane in range(1, 17):
        chars = np.arange(plane << 16, (plane + 1) << 16, dtype=np.uint32)
        text = chars.tobytes().decode("utf-32-le")
        if not unicodedata.is_normalized("NFD", text):
            _, plane_bounds = nul_pieces(unicodedata.normalize("NFD", nul_joined(chars)))
            candidates += chars[np.diff(plane_bounds) >= 2].tolist()
    seconds = set(_HANGUL_JAMO_V_T)
    for c in candidates:
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(int(parts[1], 16))
    distinct_chars = np.unique(decomposed)
    combining = np.fromiter(map(unicodedata.combining, map(chr, distinct_chars.tolist())), np.int64)
    blocks = np.zeros(0x110000, dtype=np.int64)  # 1 for a character that reorders or composes
    blocks[distinct_chars[combining > 0]] = 1
    blocks[list(seconds)] = 1
    blocked = np.add.reduceat(blocks[decomposed], bounds[:-1]) > 0
    blocked |= bounds[:-1] == bounds[1:]  # (no decomposition is empty; reduceat would misread one)
    composed = unicodedata.normalize("NFKC", table)
    nfkc_chars, nfkc_bounds = nul_pieces(composed)
    blocked |= np.add.reduceat((nfkc_chars == _CAPITAL_SIGMA).astype(np.int64), nfkc_bounds[:-1]) > 0
    pool, out_bounds = nul_pieces(composed.lower())
    counts = np.diff(out_bounds)
    blocked |= (counts == 0) | (np.diff(nfkc_bounds) == 0)  # (none is empty; reduceat would misread one)
    lengths = np.full(_BMP_END, -1, dtype=np.int8)
    lengths[codes[~blocked]] = counts[~blocked]
    offsets = np.zeros(_BMP_END, dtype=np.int64)
    offsets[codes[~blocked]] = out_bounds[:-1][~blocked]
    _NORMALIZE_TABLE = lengths, offsets, pool
    return _NORMALIZE_TABLE


def normalized_texts(texts: list[str]) -> list[str]:
    """`[normalize(t)[0] for t in texts]`, by table lookup (`_normalize_table`) for the texts whose characters are
    all inert BMP characters (nearly every Chinese and English text), by `normalize` for the others."""
    joined = "\n".join(texts)  # "\n" is inert and its own normalization
    if not joined:
        return list(texts)
    cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths, offsets, pool = _normalize_table()
    counts = lengths[np.minimum(cps, _BMP_END - 1)]
    counts[cps >= _BMP_END] = -1
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.cumsum(sizes + 1) - sizes - 1  # each text's first character in `joined`
    bad_before = np.concatenate(([0], np.cumsum(counts < 0)))
    bad = bad_before[starts + sizes] > bad_before[starts]
    if bad.any():  # map the good texts only, each bad one by `normalize`
        good = [t for t, b in zip(texts, bad.tolist()) if not b]
        mapped = iter(normalized_texts(good))
        return [normalize(t)[0] if b else next(mapped) for t, b in zip(texts, bad.tolist())]
    if counts.max() == 1:  # one output character per character: a gather, at the same positions
        out = pool[offsets[cps]]
        out_starts, out_ends = starts, starts + sizes
    else:
        counts = counts.astype(np.int64)
        total = np.cumsum(counts)
        # output k belongs to character i = repeat index; its place in i's slice is k - (total[i] - counts[i])
        out = pool[np.repeat(offsets[cps] - (total - counts), counts) + np.arange(total[-1])]
        position = np.concatenate(([0], total))  # where each character's output starts, and the end
        out_starts, out_ends = position[starts], position[starts + sizes]
    normalized = out.tobytes().decode("utf-32-le")
    return [normalized[s:e] for s, e in zip(out_starts.tolist(), out_ends.tolist())]


def item_mode(text: str) -> str:
    """zh when the item is Chinese by the project's one definition (`model.han.is_chinese`), else en."""
    return "zh" if is_chinese(text) else "en"


def units(text: str, mode: str, positions: bool = True, normalized: tuple | None = None):
    """Unit codes (uint64) and, with `positions`, each unit's [start, end) in `text`: words (en) or letters and
    digits (zh). `normalized` is `normalize(text)` when the caller has it already."""
    norm, pos = normalized or normalize(text)
    if mode == "zh":
        cps = np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        keep = np.flatnonzero(_alnum(cps))
        codes = (cps[keep].astype(np.uint64) + np.uint64(1)) * np.uint64(_GOLDEN)
        if not positions:
            return codes, None, None
        starts, ends = keep.astype(np.int64), keep.astype(np.int64) + 1
    else:
        cps = np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        codes, starts, ends = word_codes(cps)
        if not positions:
            return codes, None, None
    if pos is not None and len(starts):
        starts, ends = pos[starts], pos[ends - 1] + 1
    return codes, starts, ends


_BMP_ALNUM: np.ndarray | None = None


def _alnum(cps: np.ndarray) -> np.ndarray:
    """str.isalnum of each code point: a table lookup in the BMP, a call per character above it."""
    global _BMP_ALNUM
    if _BMP_ALNUM is None:
        _BMP_ALNUM = np.fromiter((chr(c).isalnum() for c in range(0x10000)), dtype=bool, count=0x10000)
    if not len(cps) or cps.max() < 0x10000:  # nearly every text: one gather
        return _BMP_ALNUM[cps]
    mask = np.zeros(len(cps), dtype=bool)
    bmp = cps < 0x10000
    mask[bmp] = _BMP_ALNUM[cps[bmp]]
    for i in np.flatnonzero(~bmp).tolist():
        mask[i] = chr(int(cps[i])).isalnum()
    return mask


_UNDERSCORE = 0x5F


def word_codes(cps: np.ndarray, alnum: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The words of a normalized text given as code points (uint32): each maximal run of `\\w` characters (what
    `re` calls a word character: `str.isalnum()` or "_"), as a 64-bit code, with its [start, end) in `cps`.
    A word's code is the polynomial of its characters' codes, sum_j c_j * B**(len-1-j) modulo 2**64 with
    c = (code point + 1) * golden (as the zh units), taken for all words at once from one prefix sum as in
    `window_hashes_multi`, then fmix64: the same for the same word wherever it stands, one NumPy pass per text
    instead of a regex match and a hash call per word. `alnum` is `_alnum(cps)` when the caller has it."""
    padded = np.zeros(len(cps) + 2, dtype=bool)  # a non-word character on either side
    np.bitwise_or(_alnum(cps) if alnum is None else alnum, cps == _UNDERSCORE, out=padded[1:-1])
    changes = np.flatnonzero(padded[1:] != padded[:-1])  # a word starts, then ends, then the next starts ...
    starts, ends = changes[0::2], changes[1::2]
    if not len(starts):
        empty = np.empty(0, dtype=np.int64)
        return np.empty(0, dtype=np.uint64), empty, empty
    up, down = _base_powers(len(cps))
    prefix = np.empty(len(cps) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum((cps.astype(np.uint64) + np.uint64(1)) * np.uint64(_GOLDEN) * down, out=prefix[1:])
    codes = (prefix[ends] - prefix[starts]) * up[ends - 1]
    return _fmix64(codes), starts, ends


def distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique's hash path is slow on uint64 in NumPy 2.3+)."""
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) else a


def _mix(h: np.ndarray, length: int) -> np.ndarray:
    """Finalizer (MurmurHash3 fmix64) with the window length folded in, so n-grams of different lengths differ."""
    return _fmix64(h ^ np.uint64((length * _GOLDEN) & _M64))


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's fmix64, in place on `h` (which it returns)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 1 << 64))  # _BASE is odd, so it has an inverse modulo 2**64
_powers: dict[str, np.ndarray] = {"up": np.ones(1, dtype=np.uint64), "down": np.ones(1, dtype=np.uint64)}


def _base_powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    """B**k and B**-k modulo 2**64 for k < count (cached, grown by doubling)."""
    if len(_powers["up"]) < count:
        size = max(count, 2 * len(_powers["up"]))
        for name, factor in (("up", _BASE), ("down", _BASE_INVERSE)):
            steps = np.full(size, factor, dtype=np.uint64)
            steps[0] = 1
            _powers[name] = np.cumprod(steps, dtype=np.uint64)  # wraps modulo 2**64
    return _powers["up"][:count], _powers["down"][:count]


def window_hashes_multi(codes: np.ndarray, lengths: list[int]) -> dict[int, np.ndarray]:
    """64-bit hash of every window of each length in `lengths`: the polynomial
    h(i, L) = sum_j codes[i + j] * B**(L-1-j) over uint64 (wrapping), then `_mix`. All lengths come from one prefix
    sum, S[k] = sum_{j<k} codes[j] * B**-j, as h(i, L) = B**(i+L-1) * (S[i+L] - S[i]) (exact modulo 2**64), so each
    length costs two passes instead of one pass per unit of its length."""
    wanted = sorted({L for L in lengths if 0 < L <= len(codes)})
    out = {L: np.empty(0, dtype=np.uint64) for L in lengths}
    if not wanted:
        return out
    up, down = _base_powers(len(codes))
    prefix = np.empty(len(codes) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(codes * down, out=prefix[1:])
    # All lengths go into one buffer, so the finalizer runs once over it rather than once per length.
    sizes = [len(codes) - L + 1 for L in wanted]
    buffer = np.empty(sum(sizes), dtype=np.uint64)
    start = 0
    for L, size in zip(wanted, sizes):
        view = buffer[start : start + size]
        np.subtract(prefix[L:], prefix[: len(prefix) - L], out=view)
        view *= up[L - 1 :]
        view ^= np.uint64((L * _GOLDEN) & _M64)
        out[L] = view
        start += size
    _fmix64(buffer)
    return out


def window_hashes(codes: np.ndarray, length: int) -> np.ndarray:
    """64-bit hash of every window of `length` consecutive units."""
    return window_hashes_multi(codes, [length])[length]


def field_ngrams(
    fields: list[str], n: dict[str, int], min_units: dict[str, int]
) -> tuple[str, list[np.ndarray], set[int]]:
    """An item's mode, the distinct n-gram hashes of each field that counts (fields too short to count are left
    out) and the window lengths they use. N-grams stay within a field; a field shorter than n but at least
    `min_units` long is one n-gram of its own length."""
    mode = item_mode(" ".join(fields))
    size, shortest = n[mode], min_units.get(mode, n[mode])
    grams, lengths = [], set()
    for text in fields:
        codes = units(text, mode)[0]
        length = size if len(codes) >= size else len(codes) if len(codes) >= shortest else 0
        if length:
            grams.append(distinct(window_hashes(codes, length)))
            lengths.add(length)
    return mode, grams, lengths


def item_ngrams(fields: list[str], n: dict[str, int], min_units: dict[str, int]) -> tuple[str, np.ndarray, set[int]]:
    """An item's mode, its distinct n-gram hashes (all fields together) and the window lengths they use."""
    mode, grams, lengths = field_ngrams(fields, n, min_units)
    return mode, distinct(np.concatenate(grams)) if grams else np.empty(0, dtype=np.uint64), lengths


# ------------------------------------------------------------------------------------------- benchmark files


def _field_texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [t for v in value for t in _field_texts(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _field_texts(v)]
    text = str(value).strip()
    return [text] if text else []


def read_items(path: Path, fmt: str, fields: list[str], key: str) -> Iterator[list[str]]:
    """The field texts of each row. A field that is not a column of the file is a ValueError naming `key`."""

    def missing(columns) -> None:
        absent = [f for f in fields if f not in columns]
        if absent:
            raise ValueError(f"{key}.fields: {absent} not in {path} (its columns: {sorted(columns)})")

    if fmt == "parquet":
        pf = pq.ParquetFile(path)
        missing(pf.schema_arrow.names)
        for batch in pf.iter_batches(columns=fields, batch_size=4096):
            for row in batch.to_pylist():
                yield [t for f in fields for t in _field_texts(row[f])]
    elif fmt == "csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing(reader.fieldnames or [])
            for row in reader:
                yield [t for f in fields for t in _field_texts(row[f])]
    else:
        opener = gzip.open if str(path).endswith(".gz") else open
        seen: set[str] = set()
        rows = 0
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                rows += 1
                seen.update(row)
                yield [t for fld in fields for t in _field_texts(row.get(fld))]
        if rows:
            missing(seen)


# ------------------------------------------------------------------------------------------- the index

# keys: sorted distinct n-gram hashes; offsets: CSR into `fields`, the fields holding each key (a field's number is
# global; `field_item` gives its item); field_sizes: each field's n-grams held by no other item (its specific
# n-grams, what per-field flagging counts); item_sizes: each item's distinct n-grams, item_specific_sizes: those
# no other item holds; item_bench: its benchmark.
INDEX_FILES = (
    "keys", "offsets", "fields", "field_item", "field_sizes", "item_sizes", "item_specific_sizes", "item_bench"
)  # fmt: skip


# Part of the index's fingerprint: an index built with other unit codes (before: words hashed with xxh3 of their
# text; now `word_codes`) has other keys, so a workdir's index from that code is rebuilt, not reused.
INDEX_FORMAT = "word codes: polynomial of code points"


def build_index(cfg: DecontamConfig, files: list[tuple[BenchmarkFile, Path]], out: Path) -> dict:
    """Builds the n-gram index of all benchmarks into `out` (reused when the files and settings are unchanged).
    Returns its meta.json."""
    fingerprint = hashlib.sha256()
    fingerprint.update(INDEX_FORMAT.encode())
    fingerprint.update(
        json.dumps(cfg.model_dump(exclude={"mode", "cut_margin", "max_splits"}), sort_keys=True).encode()
    )
    for _, path in files:
        fingerprint.update(hashlib.sha256(path.read_bytes()).digest())
    meta_path = out / "meta.json"
    if meta_path.exists() and all((out / f"{name}.npy").exists() for name in INDEX_FILES):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fingerprint") == fingerprint.hexdigest():
            return meta

    start = time.time()
    n = {"en": cfg.en_ngram, "zh": cfg.zh_ngram}
    hashes: list[np.ndarray] = []
    owners: list[np.ndarray] = []  # the field of each hash
    field_item: list[int] = []
    sizes: list[int] = []
    bench_of: list[int] = []
    lengths: dict[str, set[int]] = {m: set() for m in MODES}
    per_bench: dict[str, dict] = {}
    for b, (bench, path) in enumerate(files):
        key = f"stages.decontam.benchmarks.{b}"
        stats = Counter()
        for fields in read_items(path, bench.format, bench.fields, key):
            mode, per_field, used = field_ngrams(fields, n, cfg.min_field_units)
            stats["items"] += 1
            if not per_field:
                stats["items_too_short"] += 1
                continue
            lengths[mode] |= used
            stats[f"items_{mode}"] += 1
            size = len(distinct(np.concatenate(per_field)))
            stats["ngrams"] += size
            for grams in per_field:
                hashes.append(grams)
                owners.append(np.full(len(grams), len(field_item), dtype=np.int32))
                field_item.append(len(sizes))
            sizes.append(size)
            bench_of.append(b)
        per_bench[bench.name] = dict(stats)
    all_hashes = np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)
    all_owners = np.concatenate(owners) if owners else np.empty(0, dtype=np.int32)
    order = np.lexsort((all_owners, all_hashes))
    all_hashes, all_owners = all_hashes[order], all_owners[order]
    keys, first = np.unique(all_hashes, return_index=True)
    offsets = np.append(first, len(all_hashes)).astype(np.int64)
    field_items = np.asarray(field_item, dtype=np.int32)
    # A key is specific when one item holds it: fields are numbered item by item, so within a key (sorted by field)
    # the first and last entry have the same item exactly then. Shared keys (common stems such as 下列说法正确的是,
    # repeated across a task's questions) do not count towards a field's coverage.
    entry_items = field_items[all_owners]
    specific = entry_items[offsets[:-1]] == entry_items[offsets[1:] - 1] if len(keys) else np.empty(0, dtype=bool)
    field_sizes = np.bincount(all_owners[np.repeat(specific, np.diff(offsets))], minlength=len(field_items)).astype(
        np.int32
    )
    item_specific_sizes = np.bincount(entry_items[offsets[:-1][specific]], minlength=len(sizes)).astype(np.int32)
    arrays = {
        "keys": keys,
        "offsets": offsets,
        "fields": all_owners,
        "field_item": field_items,
        "field_sizes": field_sizes,
        "item_sizes": np.asarray(sizes, dtype=np.int32),
        "item_specific_sizes": item_specific_sizes,
        "item_bench": np.asarray(bench_of, dtype=np.int16),
    }
    out.mkdir(parents=True, exist_ok=True)
    # meta.json goes first and comes back last: an index whose build was killed has none, so the next run rebuilds
    # it, whatever fingerprint an earlier meta.json named
    meta_path.unlink(missing_ok=True)
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", arr)
    nbytes = sum(int(a.nbytes) for a in arrays.values())
    meta = {
        "fingerprint": fingerprint.hexdigest(),
        "benchmarks": [bench.name for bench, _ in files],
        "per_benchmark": per_bench,
        "ngram": n,
        "window_lengths": {m: sorted(v) for m, v in lengths.items() if v},
        "items": len(sizes),
        "fields": len(field_items),
        "ngrams": int(len(all_hashes)),
        "distinct_ngrams": int(len(keys)),
        "bytes": nbytes,
        "bytes_per_million_ngrams": round(nbytes / max(len(all_hashes), 1) * 1e6),
        "build_seconds": round(time.time() - start, 3),
    }
    atomic_write_json(meta_path, meta)
    return meta


@dataclass
class Match:
    items: np.ndarray  # flagged item numbers
    benchmarks: list[str]  # their benchmark names, sorted, distinct
    spans: list[tuple[int, int]]  # character spans of the matched n-grams of flagged items (unmerged)


class NgramIndex:
    """The memory-mapped index of `build_index`, and the lookup of one document against it."""

    def __init__(self, folder: Path):
        self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in INDEX_FILES}
        self.keys = np.asarray(arrays["keys"])  # a plain view of the map: np.memmap's wrapping costs per call
        self.offsets = arrays["offsets"]
        self.fields = arrays["fields"]
        self.field_item = arrays["field_item"]
        self.field_sizes = arrays["field_sizes"]
        self.item_sizes = arrays["item_sizes"]
        self.item_specific_sizes = arrays["item_specific_sizes"]
        self.item_bench = arrays["item_bench"]
        self.names = self.meta["benchmarks"]
        self.lengths = {m: [int(x) for x in v] for m, v in self.meta["window_lengths"].items()}
        # A bit per bucket of the top bits of the keys (about 16 bits per key, 8 MiB at most): almost every n-gram of
        # a document is in no benchmark, and one look at this table drops it before the sort and binary search.
        self.bucket_bits = int(min(max(int(len(self.keys) * 16).bit_length(), 16), 26))
        self.buckets = np.zeros(1 << (self.bucket_bits - 3), dtype=np.uint8)
        top = (self.keys >> np.uint64(64 - self.bucket_bits)).astype(np.int64)
        np.bitwise_or.at(self.buckets, top >> 3, (1 << (top & 7)).astype(np.uint8))

    def doc_ngrams(self, text: str, positions: bool = False):
        """Hashes of every window of the lengths the index holds, with (`positions`) each window's character span."""
        normalized = normalize(text)
        hashes, starts, ends = [], [], []
        for mode, lengths in self.lengths.items():
            codes, s, e = units(text, mode, positions, normalized)
            for length, h in window_hashes_multi(codes, lengths).items():
                hashes.append(h)
                if positions:
                    starts.append(s[: len(h)])
                    ends.append(e[length - 1 : length - 1 + len(h)])
        if not hashes:
            return np.empty(0, dtype=np.uint64), None, None
        if not positions:
            return np.concatenate(hashes), None, None
        return np.concatenate(hashes), np.concatenate(starts), np.concatenate(ends)

    def batch_candidates(self, texts: list[str]) -> list[np.ndarray]:
        """For each text, its n-gram hashes that fall in a bucket some benchmark key uses (the first cut `_lookup`
        makes, so `_lookup` of these gives what it gives for all of the text's n-grams). The texts are hashed
        together: their units back to back, the windows of every length hashed in one pass (a window's hash does
        not depend on where it starts), the windows that cross from one text into the next dropped. That is a fixed
        number of NumPy calls per batch instead of some sixty per document."""
        if not texts:
            return []
        norms = normalized_texts(texts)
        # letters and digits (zh) or words (en) of the texts joined by "\n" (no unit and no word character)
        cps = np.frombuffer("\n".join(norms).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        text_starts = np.cumsum([0] + [len(n) + 1 for n in norms[:-1]])
        doc_parts: list[np.ndarray] = []
        hash_parts: list[np.ndarray] = []
        alnum = _alnum(cps)
        for mode, lengths in self.lengths.items():
            if mode == "zh":
                keep = np.flatnonzero(alnum)
                codes = (cps[keep].astype(np.uint64) + np.uint64(1)) * np.uint64(_GOLDEN)
                unit_doc = np.searchsorted(text_starts, keep, side="right") - 1
            else:
                codes, word_starts, _ = word_codes(cps, alnum)
                unit_doc = np.searchsorted(text_starts, word_starts, side="right") - 1
            for length, h in window_hashes_multi(codes, lengths).items():
                inside = unit_doc[: len(h)] == unit_doc[length - 1 : length - 1 + len(h)]
                top = (h >> np.uint64(64 - self.bucket_bits)).astype(np.int64)
                inside &= ((self.buckets[top >> 3] >> (top & 7).astype(np.uint8)) & 1).astype(bool)
                doc_parts.append(unit_doc[: len(h)][inside])
                hash_parts.append(h[inside])
        empty = np.empty(0, dtype=np.uint64)
        if not hash_parts:
            return [empty] * len(texts)
        docs, hashes = np.concatenate(doc_parts), np.concatenate(hash_parts)
        order = np.argsort(docs, kind="stable")
        bounds = np.searchsorted(docs[order], np.arange(len(texts) + 1))
        hashes = hashes[order]
        return [hashes[bounds[i] : bounds[i + 1]] for i in range(len(texts))]

    def item_shares(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Items with at least one n-gram in `text`, and the share of each item's distinct n-grams found."""
        items, shares, _ = self._lookup(self.doc_ngrams(text)[0])
        return items, shares

    def _lookup(self, hashes: np.ndarray):
        none = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64), None
        if not len(self.keys) or not len(hashes):
            return none
        top = (hashes >> np.uint64(64 - self.bucket_bits)).astype(np.int64)
        hashes = hashes[((self.buckets[top >> 3] >> (top & 7).astype(np.uint8)) & 1).astype(bool)]
        if not len(hashes):  # most documents: no n-gram falls in a bucket any benchmark uses
            return none
        queries = distinct(hashes)  # sorted queries search faster, and shares count distinct n-grams
        pos = np.searchsorted(self.keys, queries)
        pos[pos == len(self.keys)] = 0
        found_keys = pos[self.keys[pos] == queries]
        if not len(found_keys):
            return none
        lo, hi = self.offsets[found_keys], self.offsets[found_keys + 1]
        counts = hi - lo
        gather = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        fields = np.asarray(self.fields[gather])
        owners = np.asarray(self.field_item[fields])
        # An item's distinct n-grams: a key held by two fields of one item counts once (entries of a key are
        # sorted by field, so by item).
        first_of_item = np.ones(len(owners), dtype=bool)
        first_of_item[1:] = owners[1:] != owners[:-1]
        first_of_item[np.cumsum(counts)[:-1]] = True  # a new key starts
        items, found = np.unique(owners[first_of_item], return_counts=True)
        return items, found / np.asarray(self.item_sizes[items]), (found_keys, counts, owners, fields)

    def _specific_share_passes(self, found, flagged: np.ndarray, threshold: float) -> np.ndarray:
        """For each flagged item, whether `threshold` of its specific n-grams (held by no other item) are in the
        document too, or it has none. A document holding only a stem that many items share (CHARM's
        以下陈述是否包含时代错误...如何选择？, most of a short question) reaches the whole-item share of every
        item with that stem but none of their specific n-grams."""
        _, counts, owners, _ = found
        ends = np.cumsum(counts)
        first = ends - counts
        specific_items = owners[first[owners[first] == owners[ends - 1]]]
        hits = np.bincount(specific_items, minlength=int(flagged.max()) + 1)[flagged]
        sizes = np.asarray(self.item_specific_sizes[flagged])
        return (sizes == 0) | (hits >= threshold * sizes)

    def field_covered_items(self, found, field_threshold: float, min_ngrams: int) -> np.ndarray:
        """Items one of whose fields with at least `min_ngrams` specific n-grams has at least `field_threshold` of
        them in the document (`found` from `_lookup`)."""
        found_keys, counts, owners, fields = found
        ends = np.cumsum(counts)
        specific = owners[ends - counts] == owners[ends - 1]
        hit_fields = fields[np.repeat(specific, counts)]
        if not len(hit_fields):
            return np.empty(0, dtype=np.int64)
        field_ids, hits = np.unique(hit_fields, return_counts=True)
        sizes = np.asarray(self.field_sizes[field_ids])
        covered = field_ids[(sizes >= min_ngrams) & (hits >= field_threshold * sizes)]
        return np.unique(np.asarray(self.field_item[covered]))

    def match(
        self,
        text: str,
        threshold: float,
        want_spans: bool = False,
        field_threshold: float | None = None,
        field_min_ngrams: int = 1,
    ) -> Match | None:
        """The items of which at least `threshold` of the distinct n-grams occur in `text`, or (with
        `field_threshold`) one field of which, holding at least `field_min_ngrams` specific n-grams, has at least
        `field_threshold` of them in `text`; None when no item is. With `want_spans`, the character spans of the
        flagged items' n-grams in `text`."""
        return self.match_hashes(
            self.doc_ngrams(text)[0], text, threshold, want_spans, field_threshold, field_min_ngrams
        )

    def match_hashes(
        self,
        hashes: np.ndarray,
        text: str,
        threshold: float,
        want_spans: bool = False,
        field_threshold: float | None = None,
        field_min_ngrams: int = 1,
    ) -> Match | None:
        """`match` given the text's n-gram hashes (all of them, or those `batch_candidates` keeps)."""
        items, shares, found = self._lookup(hashes)
        flagged = items[shares >= threshold]
        if len(flagged):
            flagged = flagged[self._specific_share_passes(found, flagged, threshold)]
        if field_threshold is not None and found is not None:
            flagged = np.union1d(flagged, self.field_covered_items(found, field_threshold, field_min_ngrams))
        if not len(flagged):
            return None
        benches = sorted({self.names[int(b)] for b in np.asarray(self.item_bench[flagged])})
        spans: list[tuple[int, int]] = []
        if want_spans:  # only for flagged documents: hash again with positions
            found_keys, counts, owners, _ = found
            key_of_owner = np.repeat(found_keys, counts)
            good = self.keys[np.unique(key_of_owner[np.isin(owners, flagged)])]
            hashes, starts, ends = self.doc_ngrams(text, positions=True)
            sel = np.isin(hashes, good)
            spans = list(zip(starts[sel].tolist(), ends[sel].tolist()))
        return Match(flagged, benches, spans)


def merge_spans(spans: list[tuple[int, int]], margin: int, length: int) -> list[tuple[int, int]]:
    """Spans widened by `margin` on each side (within [0, length]) and merged where they touch or overlap."""
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        s, e = max(0, s - margin), min(length, e + margin)
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def cut_text(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` without the (merged, sorted) spans; the pieces left are joined by a blank line."""
    pieces, pos = [], 0
    for s, e in spans:
        pieces.append(text[pos:s])
        pos = e
    pieces.append(text[pos:])
    return "\n\n".join(p.strip() for p in pieces if p.strip())


# ------------------------------------------------------------------------------------------- the step


# Documents hashed together: per-document NumPy calls cost more than the hashing of a typical web page, and 64
# documents of a few thousand characters keep the batch's window arrays at a few MB.
BATCH_DOCUMENTS = 64


def find_items(index: NgramIndex, cfg: DecontamConfig, text: str, want_spans: bool = False) -> Match | None:
    """The benchmark items `text` holds under the stage's thresholds (whole-item share, and per field when
    `per_field`): the one check for corpus documents and for fine-tuning examples."""
    return index.match(
        text,
        cfg.threshold,
        want_spans=want_spans,
        field_threshold=cfg.field_threshold if cfg.per_field else None,
        field_min_ngrams=cfg.field_min_ngrams,
    )


def text_check(ctx_cfg: Any, cfg: DecontamConfig, index_dir: Path) -> Callable[[str], list[str]]:
    """text -> names of the benchmarks whose items it holds (empty when clean), for fine-tuning data: the corpus
    stage's index in `index_dir` (built there when missing or made from other files or settings, else reused) and
    its thresholds."""
    try:
        build_index(cfg, benchmark_files(ctx_cfg, cfg), index_dir)
    except ValueError as e:
        raise ValueError(f"{ctx_cfg.file}: {e}") from None
    index = NgramIndex(index_dir)

    def check(text: str) -> list[str]:
        match = find_items(index, cfg, text)
        return match.benchmarks if match else []

    return check


class Decontaminate(ReportsCounters, BaseFilter):
    """Flags documents holding benchmark items; drops them or cuts the items out (`mode`)."""

    name = "🧪 decontaminate"
    counter_prefixes = ("decontam_",)

    def __init__(self, cfg: DecontamConfig, index_dir: Path, exclusion_writer=None, batch_size: int = BATCH_DOCUMENTS):
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.cfg = cfg
        self.index_dir = Path(index_dir)
        self._index: NgramIndex | None = None

    def __getstate__(self):  # workers map the index files themselves
        state = self.__dict__.copy()
        state["_index"] = None
        return state

    @property
    def index(self) -> NgramIndex:
        if self._index is None:
            self._index = NgramIndex(self.index_dir)
        return self._index

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self._decide(doc, self.index.doc_ngrams(doc.text)[0])

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """The documents of a batch hashed together (`NgramIndex.batch_candidates`), each then decided alone."""
        candidates = self.index.batch_candidates([doc.text for doc in batch])
        return [self._decide(doc, hashes) for doc, hashes in zip(batch, candidates, strict=True)]

    def _decide(self, doc: Document, hashes: np.ndarray) -> bool | tuple[bool, str]:
        cut = self.cfg.mode == "cut"
        match = self.index.match_hashes(
            hashes,
            doc.text,
            self.cfg.threshold,
            want_spans=cut,
            field_threshold=self.cfg.field_threshold if self.cfg.per_field else None,
            field_min_ngrams=self.cfg.field_min_ngrams,
        )
        if match is None:
            doc.metadata["contaminated_by"] = None
            return True
        doc.metadata["contaminated_by"] = match.benchmarks
        self.stat_update("decontam_docs_flagged")
        for name in match.benchmarks:
            self.stat_update(f"decontam_benchmark_{name}_docs")
        for b in np.asarray(self.index.item_bench[match.items]).tolist():
            self.stat_update(f"decontam_benchmark_{self.index.names[b]}_item_matches")
        if not cut:
            return False, "contaminated"
        spans = merge_spans(match.spans, self.cfg.cut_margin, len(doc.text))
        if len(spans) > self.cfg.max_splits:
            self.stat_update("decontam_dropped_too_many_splits")
            return False, "contaminated"
        text = cut_text(doc.text, spans)
        if not text:
            self.stat_update("decontam_dropped_nothing_left")
            return False, "contaminated"
        self.stat_update("decontam_docs_cut")
        self.stat_update("decontam_spans_cut", value=len(spans))
        self.stat_update("decontam_chars_cut", value=len(doc.text) - len(text))
        doc.text = text
        return True


def benchmark_files(ctx_cfg: Any, cfg: DecontamConfig) -> list[tuple[BenchmarkFile, Path]]:
    """Each benchmark with its resolved path; a missing file is a ValueError naming the key."""
    if not cfg.benchmarks:
        raise ValueError(
            f"{ctx_cfg.file}: stages.decontam.benchmarks is empty: add [[stages.decontam.benchmarks]] tables "
            "(name, path, format, fields) or set stages.decontam.enabled = false"
        )
    files = []
    names = set()
    for i, b in enumerate(cfg.benchmarks):
        if b.name in names:
            raise ValueError(f"{ctx_cfg.file}: stages.decontam.benchmarks.{i}.name: {b.name!r} is used twice")
        names.add(b.name)
        path = ctx_cfg.path(b.path)
        if not path.is_file():
            raise ValueError(f"{ctx_cfg.file}: stages.decontam.benchmarks.{i}.path: no such file: {path}")
        files.append((b, path))
    return files


def build(ctx: StageContext) -> list[Phase]:
    cfg: DecontamConfig = ctx.stage_cfg
    files = benchmark_files(ctx.cfg, cfg)
    try:
        build_index(cfg, files, ctx.stage_dir / "index")
    except ValueError as e:
        raise ValueError(f"{ctx.cfg.file}: {e}") from None
    step = Decontaminate(cfg, ctx.stage_dir / "index")
    return [ctx.standard_phase([step], new_columns=[pa.field("contaminated_by", pa.list_(pa.string()))])]


def finalize(cfg: Any, stage_dir: Path, merged: dict) -> None:
    """Adds the index's size and build time to stats.json (once, not summed over tasks)."""
    meta_path = Path(stage_dir) / "index" / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta.pop("fingerprint", None)
        merged["index"] = meta
