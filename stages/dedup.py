"""Dedup stage: exact duplicates, then near duplicates (MinHash LSH), then near-duplicate lines inside documents.

It runs in datatrove's multi-stage shape, split by document or key everywhere, so no task holds the corpus, all
signatures, all candidates' shingles or all duplicate ids:

1. `signatures` (executor.tasks tasks): each task reads its share of the input and writes, per document, a 128-bit
   exact key and one 64-bit key per LSH band (MinHash over character 13-grams for Chinese, word 5-grams
   otherwise), already split by bucket part (key % bucket_parts), plus the document ids, under `<stage>/work/`.
2. `buckets` (one job per band and key range, and per key range of the exact keys; min(jobs, executor.tasks)
   tasks, each doing its share of the jobs one after the other): sorts one band's keys of its range from every task
   and writes the pairs of documents that share a key; near pairs (smaller node first) are split by verification
   part, hash(smaller node) % verify_parts.
3. verification (verify = "exact": `candidates` (verify_parts tasks) lists each part's distinct pairs and the
   documents it needs; `shingles` (executor.tasks tasks, the input split of step 1) writes those documents'
   shingle sets once per part that needs them; `verify` (verify_parts tasks) keeps the pairs whose exact Jaccard
   reaches verify_threshold, holding only its part's sets. verify = "signature": `verify` compares the pairs'
   full signatures instead. verify = "none" (MAP-CC) merges every candidate.)
4. `clusters` (one task): connected components (NumPy union-find) of the exact pairs, then of all merging pairs,
   on integer nodes only, written split by group into cluster_parts files.
5. `keepers` (cluster_parts tasks): the keeper of a group is its smallest id, so the kept set does not depend on
   the number of tasks; writes per signature task which positions to remove and the cluster of each kept one.
6. `filter` (executor.tasks tasks, the same input split as step 1): removes `exact_duplicate` and `near_duplicate`
   documents (with `duplicate_of`), records `dup_cluster`/`dup_cluster_size` on kept ones (for up-sampling as in
   FineWeb-2), and drops near-repeated lines inside each kept document (`dup_lines_removed`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.logging import logger

from stages.arrow import column_array, numpy_array, to_numpy
from stages.base import Phase, StageContext
from stages.config.dedup import DedupConfig
from stages.dedup_rules import (
    band_keys,
    exact_key,
    jaccard,
    lsh_threshold,
    minhash_params,
    minhash_signature,
    ngram_hashes_for,
    remove_similar_lines,
    shingles_for,
    spread_hash,
)
from stages.files import list_shards
from stages.io import ReportsCounters, ShardReader

RANK_BITS = 40  # a node is rank << 40 | position in the task's input stream
_DIGITS = re.compile(r"(\d+)")


def natural_key(doc_id: str) -> tuple:
    """Ids compared with their numbers as numbers ("web:x.warc:46" before "web:x.warc:139"), so the keeper of a
    group is its earliest document in input order, whatever the number of tasks."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(doc_id))


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _part_of(nodes: np.ndarray, parts: int) -> np.ndarray:
    """The verification part of each document node (a hash, so parts are even whatever the task split)."""
    if parts == 1:
        return np.zeros(len(nodes), dtype=np.int64)
    return (spread_hash(nodes) % np.uint64(parts)).astype(np.int64)


def _load_or_empty(files: list[Path], shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate([np.load(f) for f in files]) if files else np.empty(shape, dtype=dtype)


class DedupSignatures(PipelineStep):
    """Step 1: exact keys and LSH band keys of every document of this task, already split by bucket part."""

    name = "dedup signatures"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, cfg: DedupConfig, seed: int):
        super().__init__()
        self.work, self.cfg, self.seed = Path(work), cfg, seed

    def _save_by_part(self, folder: Path, tag: str, keys: np.ndarray, positions: np.ndarray, low: np.ndarray) -> None:
        """Keys and their stream positions, one file pair per bucket part (part = low % bucket_parts), so a bucket
        task reads its own range and not every task's whole band."""
        parts = self.cfg.bucket_parts
        part = low % np.uint64(parts) if parts > 1 else np.zeros(len(low), dtype=np.uint64)
        for p in range(parts):
            sel = part == p
            _save(folder / f"{p:03d}" / f"{tag}_keys.npy", np.ascontiguousarray(keys[sel]))
            _save(folder / f"{p:03d}" / f"{tag}_pos.npy", positions[sel])

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        cfg = self.cfg
        a, b = minhash_params(cfg.bands * cfg.rows, self.seed)
        ids, exact, has_sig, sigs = [], [], [], []
        for doc in data or ():
            ids.append(doc.id)
            if cfg.exact:
                exact.append(exact_key(doc.text, cfg.exact_normalize))
            if cfg.minhash:
                # n-grams with repeats: the signature is a minimum, the same over the multiset as over the set
                sh = ngram_hashes_for(
                    doc.text, doc.metadata.get("lang"), doc.metadata.get("kind"), cfg.char_ngram, cfg.word_ngram
                )
                if len(sh):
                    sigs.append(minhash_signature(sh, a, b))
                has_sig.append(bool(len(sh)))
            self.stat_update("documents")
        tag = f"{rank:05d}"
        if cfg.exact:
            keys = np.asarray(exact, dtype=np.uint64).reshape(-1, 2)
            self._save_by_part(self.work / "exact", tag, keys, np.arange(len(keys), dtype=np.int64), keys[:, 0])
        if cfg.minhash:
            mask = np.asarray(has_sig, dtype=bool)
            positions = np.flatnonzero(mask).astype(np.int64)
            full = np.asarray(sigs, dtype=np.uint32).reshape(-1, cfg.bands * cfg.rows)
            keys = band_keys(full, cfg.bands, cfg.rows)  # all of the task's documents at once
            if cfg.verify == "signature":  # rows in the order of positions
                _save(self.work / "signatures" / f"{tag}.npy", full)
                _save(self.work / "signatures" / f"{tag}_pos.npy", positions)
            for band in range(cfg.bands):
                self._save_by_part(self.work / "bands" / f"{band:03d}", tag, keys[:, band], positions, keys[:, band])
        table = pa.table({"id": column_array(ids, pa.string(), "id")})
        tmp = self.work / "ids" / f".{tag}.tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        os.replace(tmp, self.work / "ids" / f"{tag}.parquet")
        return
        yield


def _pairs_of_equal_keys(keys: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(n, 2) node pairs linking every run of equal keys to the run's first member."""
    if len(keys) < 2:
        return np.empty((0, 2), dtype=np.int64)
    order = np.lexsort(keys.T[::-1]) if keys.ndim == 2 else np.argsort(keys, kind="stable")
    k, n = keys[order], nodes[order]
    same = np.all(k[1:] == k[:-1], axis=1) if keys.ndim == 2 else k[1:] == k[:-1]
    run_start = np.concatenate(([True], ~same))
    first = np.maximum.accumulate(np.where(run_start, np.arange(len(k)), 0))
    member = np.flatnonzero(~run_start)
    return np.stack([n[first[member]], n[member]], axis=1)


def bucket_jobs(cfg: DedupConfig) -> int:
    """Jobs of the buckets step: one per LSH band and key range, and one per key range of the exact keys."""
    return ((cfg.bands if cfg.minhash else 0) + (1 if cfg.exact else 0)) * cfg.bucket_parts


class DedupBuckets(PipelineStep):
    """Step 2: one job per LSH band and key range (and per range of the exact keys) finds documents sharing a key
    across all tasks. Near pairs are written ordered (smaller node first) and split by verification part.

    A task does jobs rank, rank + world_size, ... one after the other (one job's keys in memory at a time), so the
    phase runs min(jobs, executor.tasks) tasks: a task's setup in datatrove's executor (log handlers, stats and
    completion files) cost about 0.013 CPU-s, and one task per job (15 at the defaults) was 0.2 CPU-s of every
    dedup run whatever its size, against about 0.01 for the jobs' own work on 13 MB (BENCHMARKS.md, "Fourth
    pass: dedup and ingest at small inputs")."""

    name = "dedup buckets"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, cfg: DedupConfig, signature_tasks: int):
        super().__init__()
        self.work, self.cfg, self.signature_tasks = Path(work), cfg, signature_tasks

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first (single-task phases merged, see build)
        for job in range(rank, bucket_jobs(self.cfg), world_size):
            self.stat_update("pairs", value=self.bucket_job(job))

    def bucket_job(self, job: int) -> int:
        """Writes the pairs of one band's (or the exact keys') key range; returns how many."""
        cfg = self.cfg
        group, part = divmod(job, cfg.bucket_parts)
        exact_task = cfg.exact and group == (cfg.bands if cfg.minhash else 0)
        folder = (self.work / "exact" if exact_task else self.work / "bands" / f"{group:03d}") / f"{part:03d}"
        keys, nodes = [], []
        for r in range(self.signature_tasks):
            keys.append(np.load(folder / f"{r:05d}_keys.npy"))
            nodes.append((np.int64(r) << RANK_BITS) | np.load(folder / f"{r:05d}_pos.npy"))
        all_keys = np.concatenate(keys) if keys else np.empty(0, dtype=np.uint64)
        pairs = _pairs_of_equal_keys(all_keys, np.concatenate(nodes) if nodes else np.empty(0, dtype=np.int64))
        if exact_task:
            _save(self.work / "pairs" / "exact" / f"exact_{part:03d}.npy", pairs)
        else:
            pairs = np.sort(pairs, axis=1)
            verify_parts = cfg.verify_parts if cfg.verify != "none" else 1
            owner = _part_of(pairs[:, 0], verify_parts)
            for v in range(verify_parts):
                _save(self.work / "pairs" / "near" / f"{v:03d}" / f"band_{group:03d}_{part:03d}.npy", pairs[owner == v])
        return len(pairs)


def _components(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes that appear in any pair, and their connected-component label: components numbered in the order of
    their smallest node, as scipy's connected_components numbers them (tests/test_dedup.py compares the two).

    Union by smallest root with pointer jumping, in NumPy: each round points the larger root of every edge whose
    ends have different roots at the smaller one, then follows pointers until every node points at its root, so a
    component's root ends as its smallest node. Replaces scipy.sparse.csgraph, whose import alone cost 0.15-0.2
    CPU-s per run (a fixed cost of every dedup run, whatever its size)."""
    if len(pairs) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    nodes, inverse = np.unique(pairs.ravel(), return_inverse=True)
    edges = inverse.reshape(-1, 2)
    root = np.arange(len(nodes))
    while True:
        a, b = root[edges[:, 0]], root[edges[:, 1]]
        apart = a != b
        if not apart.any():
            break
        edges = edges[apart]  # an edge whose ends share a root stays joined
        np.minimum.at(root, np.maximum(a[apart], b[apart]), np.minimum(a[apart], b[apart]))
        while True:  # root[x] <= x throughout, so this ends, at the roots
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
    labels = np.unique(root, return_inverse=True)[1]
    return nodes, labels


def _node_parts(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return nodes >> RANK_BITS, nodes & ((1 << RANK_BITS) - 1)


def _candidate_pairs(work: Path, part: int) -> np.ndarray:
    """The distinct candidate pairs (smaller node first) of one verification part, over all bands."""
    pairs = _load_or_empty(sorted((work / "pairs" / "near" / f"{part:03d}").glob("band_*.npy")), (0, 2), np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def _exactly_linked(work: Path, cfg: DedupConfig, pairs: np.ndarray) -> np.ndarray:
    """Which pairs join two documents of one exact-duplicate group. The exact pairs link each member of a group to
    its first member (a star, each group within one bucket part), so two nodes are in one group when their roots
    (the first member, or the node itself) are equal."""
    if not cfg.exact or len(pairs) == 0:
        return np.zeros(len(pairs), dtype=bool)
    files = [work / "pairs" / "exact" / f"exact_{p:03d}.npy" for p in range(cfg.bucket_parts)]
    exact = _load_or_empty(files, (0, 2), np.int64)
    if len(exact) == 0:
        return np.zeros(len(pairs), dtype=bool)
    order = np.argsort(exact[:, 1])
    members, roots = exact[order, 1], exact[order, 0]
    found = np.searchsorted(members, pairs).clip(max=len(members) - 1)
    root = np.where(members[found] == pairs, roots[found], pairs)
    return root[:, 0] == root[:, 1]


class DedupCandidates(PipelineStep):
    """For exact verification (verify_parts tasks): a part's distinct candidate pairs, and for each signature task
    the positions of the documents this part needs shingled. A pair inside one exact-duplicate group is left out:
    the exact pairs already join it in the clusters step, so verifying it (and shingling documents only it needs)
    could not change a group."""

    name = "dedup candidates"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, signature_tasks: int, cfg: DedupConfig):
        super().__init__()
        self.work, self.signature_tasks, self.cfg = Path(work), signature_tasks, cfg

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first (single-task phases merged, see build)
        pairs = _candidate_pairs(self.work, rank)
        linked = _exactly_linked(self.work, self.cfg, pairs)
        self.stat_update("exactly_linked_pairs", value=int(linked.sum()))
        pairs = pairs[~linked]
        _save(self.work / "candidates" / f"{rank:03d}.npy", pairs)
        ranks, positions = _node_parts(np.unique(pairs.ravel()))
        for r in range(self.signature_tasks):
            _save(self.work / "wanted" / f"{r:05d}" / f"{rank:03d}.npy", positions[ranks == r])
        self.stat_update("candidate_pairs", value=len(pairs))


class CandidateShingles(PipelineStep):
    """For exact verification (one task per signature task, same input split): the shingle sets of this task's
    candidate documents, written once per verification part that needs them (concatenated, with offsets).

    It reads only what it shingles: the text, `lang` and `kind` of its candidate rows, found by stream position
    (rows counted in the order a `ShardReader` of the same input and task yields them, file by file), not every
    document of the task as Documents (a few hundred of 1,976 documents on the 13 MB chain input; the whole read
    was about 0.1-0.3 CPU-s, BENCHMARKS.md "Fifth pass: dedup")."""

    name = "candidate shingles"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, cfg: DedupConfig, input_dir: Path | None):
        super().__init__()
        self.work, self.cfg = Path(work), cfg
        # the signatures phase's reader of the same input: its split of the files into tasks and their order
        self.reader = ShardReader(input_dir)

    def candidate_rows(self, positions: np.ndarray, rank: int, world_size: int):
        """(position, text, lang, kind) of the rows at the sorted stream `positions` of this task's input."""
        if len(positions) == 0 or self.reader.folder is None or not list_shards(self.reader.folder):
            return
        folder = self.reader.data_folder
        offset = 0
        for filepath in folder.get_shard(rank, world_size, recursive=False, glob_pattern="*.parquet") or []:
            with folder.open(filepath, "rb") as f, pq.ParquetFile(f) as pqf:
                rows = pqf.metadata.num_rows
                lo, hi = np.searchsorted(positions, [offset, offset + rows])
                if hi > lo:
                    names = pqf.schema_arrow.names
                    columns = [c for c in ("text", "lang", "kind") if c in names]
                    local = positions[lo:hi] - offset
                    table = pqf.read(columns=columns).take(numpy_array(local))
                    none = [None] * len(local)
                    values = [table.column(c).to_pylist() if c in names else none for c in ("text", "lang", "kind")]
                    yield from zip(positions[lo:hi].tolist(), *values, strict=True)
            offset += rows

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first (single-task phases merged: they write wanted/)
        parts = self.cfg.verify_parts
        wanted = [np.load(self.work / "wanted" / f"{rank:05d}" / f"{v:03d}.npy") for v in range(parts)]
        needed = np.unique(np.concatenate(wanted)) if wanted else np.empty(0, dtype=np.int64)
        sets: dict[int, np.ndarray] = {}
        for pos, text, lang, kind in self.candidate_rows(needed, rank, world_size):
            sets[pos] = shingles_for(text, lang, kind, self.cfg.char_ngram, self.cfg.word_ngram)
        for v, positions in enumerate(wanted):
            chunks = [sets[p] for p in positions.tolist()]  # wanted positions are sorted: rows in stream order
            offsets = np.concatenate(([0], np.cumsum([len(x) for x in chunks]))).astype(np.int64)
            base = self.work / "shingles" / f"{v:03d}" / f"{rank:05d}"
            _save(Path(f"{base}_pos.npy"), positions.astype(np.int64))
            _save(Path(f"{base}_off.npy"), offsets)
            _save(Path(f"{base}_val.npy"), np.concatenate(chunks) if chunks else np.empty(0, dtype=np.uint64))
        self.stat_update("candidate_documents", value=len(sets))
        return
        yield


VERIFY_BLOCK = 20_000  # candidate pairs compared at once in signature verification (2 x 20k x 117 x 8 B = 37 MB)


def _gather_rows(mats: dict[int, np.ndarray], ranks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Signature rows of (task, row) pairs: one fancy-indexed read per task of its memory-mapped matrix."""
    first = next(iter(mats.values()))
    out = np.empty((len(ranks), first.shape[1]), dtype=first.dtype)
    order = np.argsort(ranks, kind="stable")
    for idx in np.split(order, np.flatnonzero(np.diff(ranks[order])) + 1):
        out[idx] = mats[int(ranks[idx[0]])][rows[idx]]
    return out


class DedupVerify(PipelineStep):
    """Confirms one part's candidate pairs (verify_parts tasks): by exact Jaccard of the shingle sets, holding only
    this part's documents' sets, or by the share of equal signature values, reading only the candidates' rows."""

    name = "dedup verify"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, signature_tasks: int, verify: str, verify_threshold: float):
        super().__init__()
        self.work, self.signature_tasks = Path(work), signature_tasks
        self.verify, self.verify_threshold = verify, verify_threshold

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first (single-task phases merged, see build)
        if self.verify == "exact":
            pairs = np.load(self.work / "candidates" / f"{rank:03d}.npy")
            accepted = self.exact_verified(pairs, rank)
        else:
            pairs = _candidate_pairs(self.work, rank)
            accepted = self.signature_verified(pairs)
        _save(self.work / "verified" / f"{rank:03d}.npy", accepted)
        self.stat_update("candidate_pairs", value=len(pairs))
        self.stat_update("verified_pairs", value=len(accepted))

    def exact_verified(self, pairs: np.ndarray, part: int) -> np.ndarray:
        """The pairs whose exact shingle-set Jaccard is at least `verify_threshold`."""
        sets: dict[int, np.ndarray] = {}
        for r in range(self.signature_tasks):
            base = self.work / "shingles" / f"{part:03d}" / f"{r:05d}"
            pos = np.load(f"{base}_pos.npy")
            off = np.load(f"{base}_off.npy")
            val = np.load(f"{base}_val.npy")
            for i, p in enumerate(pos.tolist()):
                sets[(r << RANK_BITS) | p] = val[off[i] : off[i + 1]]
        keep = np.array([jaccard(sets[a], sets[b]) >= self.verify_threshold for a, b in pairs.tolist()], dtype=bool)
        return pairs[keep] if len(pairs) else pairs

    def signature_verified(self, pairs: np.ndarray) -> np.ndarray:
        """The pairs whose full signatures agree on at least `verify_threshold` of the permutations. Signatures are
        memory-mapped and only the candidates' rows are read."""
        if len(pairs) == 0:
            return pairs
        rows = np.empty(pairs.shape, dtype=np.int64)
        mats = {}
        ranks = pairs >> RANK_BITS
        for r in np.unique(ranks):
            positions = np.load(self.work / "signatures" / f"{int(r):05d}_pos.npy")
            mats[int(r)] = np.load(self.work / "signatures" / f"{int(r):05d}.npy", mmap_mode="r")
            sel = ranks == r
            rows[sel] = np.searchsorted(positions, pairs[sel] & ((1 << RANK_BITS) - 1))
        # compared in blocks of rows gathered per task: a Python loop per pair measured ~10 us a pair (about three
        # hours for the billion pairs of a 10 TB corpus, in one task), blocks ~2 us on the same loaded machine
        agree = np.empty(len(pairs))
        for start in range(0, len(pairs), VERIFY_BLOCK):
            block = slice(start, start + VERIFY_BLOCK)
            left = _gather_rows(mats, ranks[block, 0], rows[block, 0])
            right = _gather_rows(mats, ranks[block, 1], rows[block, 1])
            agree[block] = np.count_nonzero(left == right, axis=1) / left.shape[1]
        return pairs[agree >= self.verify_threshold]


def _groups(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each component, from one sort of the labels (not one scan of all nodes per component)."""
    if len(labels) == 0:
        return []
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)


class DedupClusters(PipelineStep):
    """Step 3 (one task): connected components of the exact pairs and of all merging pairs, on integer nodes only
    (about 60 bytes per grouped document: no ids, no Python objects), written split by component into
    `cluster_parts` files for the keepers step."""

    name = "dedup clusters"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, signature_tasks: int, cfg: DedupConfig):
        super().__init__()
        self.work, self.signature_tasks, self.cfg = Path(work), signature_tasks, cfg

    def near_pairs(self) -> np.ndarray:
        """The pairs that merge near duplicates: the verified ones, or (no verification) every candidate. Files are
        named from the config, not globbed, so leftovers of a run with other settings are never read."""
        cfg = self.cfg
        if not cfg.minhash:
            return np.empty((0, 2), dtype=np.int64)
        if cfg.verify != "none":
            files = [self.work / "verified" / f"{v:03d}.npy" for v in range(cfg.verify_parts)]
        else:
            near = self.work / "pairs" / "near" / "000"
            files = [near / f"band_{g:03d}_{p:03d}.npy" for g in range(cfg.bands) for p in range(cfg.bucket_parts)]
        return _load_or_empty(files, (0, 2), np.int64)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first (single-task phases merged, see build)
        exact_files = [self.work / "pairs" / "exact" / f"exact_{p:03d}.npy" for p in range(self.cfg.bucket_parts)]
        exact = _load_or_empty(exact_files if self.cfg.exact else [], (0, 2), np.int64)
        near = self.near_pairs()
        # the pairs that decided the clusters, for inspection (node = task << 40 | position; ids in work/ids/)
        _save(self.work / "accepted_pairs.npy", near)
        nodes, labels = _components(np.concatenate([exact, near]))
        del near
        # every node of an exact pair is also a node of all pairs: its exact group label, or -1
        exact_nodes, exact_labels = _components(exact)
        exact_of = np.full(len(nodes), -1, dtype=np.int64)
        exact_of[np.searchsorted(nodes, exact_nodes)] = exact_labels
        part = _part_of(labels, self.cfg.cluster_parts)
        for k in range(self.cfg.cluster_parts):
            sel = part == k
            _save(self.work / "groups" / f"{k:03d}.npy", np.stack([nodes[sel], labels[sel], exact_of[sel]], axis=1))
        self.stat_update("grouped_documents", value=len(nodes))
        self.stat_update("groups", value=int(labels.max()) + 1 if len(labels) else 0)


class DedupKeepers(PipelineStep):
    """Step 3b (cluster_parts tasks): for the components of one part, the keeper of each exact group and of each
    near-duplicate group (the smallest id, so the kept set does not depend on the number of tasks), and what to do
    with every member, written per signature task. A task holds only its part's members and their ids."""

    name = "dedup keepers"
    type = "🫂 - DEDUP"

    def __init__(self, work: Path, signature_tasks: int):
        super().__init__()
        self.work, self.signature_tasks = Path(work), signature_tasks

    def ids_of(self, nodes: np.ndarray) -> np.ndarray:
        """The document ids of nodes, reading one signature task's id column at a time."""
        out = np.empty(len(nodes), dtype=object)
        ranks = nodes >> RANK_BITS
        for r in np.unique(ranks):
            # ParquetFile, not pq.read_table: read_table goes through pyarrow.dataset, which imports pandas
            ids = pq.ParquetFile(self.work / "ids" / f"{int(r):05d}.parquet").read(columns=["id"]).column("id")
            sel = ranks == r
            out[sel] = to_numpy(ids.take(numpy_array(nodes[sel] & ((1 << RANK_BITS) - 1))))
        return out

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from data or ()  # the steps before it in the task first (single-task phases merged, see build)
        groups = np.load(self.work / "groups" / f"{rank:03d}.npy")
        nodes, labels, exact_labels = groups[:, 0], groups[:, 1], groups[:, 2]
        ids = self.ids_of(nodes)
        action: dict[int, tuple[str, str]] = {}  # row -> (reason, duplicate_of)
        # exact groups first: one copy (the earliest id) survives each
        in_exact = np.flatnonzero(exact_labels >= 0)
        for members in _groups(exact_labels[in_exact]):
            rows = in_exact[members]
            keeper = min(ids[rows], key=natural_key)
            action.update({int(m): ("exact_duplicate", keeper) for m in rows if ids[m] != keeper})
        # near-duplicate components over everything; the earliest surviving id is kept
        cluster: dict[int, tuple[str, int]] = {}
        for members in _groups(labels):
            survivors = [int(m) for m in members if int(m) not in action]
            keeper = min((ids[m] for m in survivors), key=natural_key)
            for m in survivors:
                if ids[m] == keeper:
                    cluster[m] = (keeper, len(members))
                else:
                    action[m] = ("near_duplicate", keeper)
        rows = sorted([*action, *cluster])
        ranks, positions = _node_parts(nodes[rows]) if rows else (np.empty(0, np.int64), np.empty(0, np.int64))
        table = pa.table(
            {
                "rank": numpy_array(ranks, pa.int64()),
                "pos": numpy_array(positions, pa.int64()),
                "reason": column_array([action[m][0] if m in action else "keep" for m in rows], pa.string(), "reason"),
                "ref": column_array([action[m][1] if m in action else cluster[m][0] for m in rows], pa.string(), "ref"),
                "size": column_array([cluster[m][1] if m in cluster else None for m in rows], pa.int32(), "size"),
            }
        )
        for r in range(self.signature_tasks):
            mine = table.filter(numpy_array(ranks == r)).drop(["rank"]).sort_by("pos")  # a NumPy mask: no pandas
            out = self.work / "clusters" / f"{r:05d}"
            out.mkdir(parents=True, exist_ok=True)
            tmp = out / f".{rank:03d}.tmp"
            pq.write_table(mine, tmp)
            os.replace(tmp, out / f"{rank:03d}.parquet")
        self.stat_update("removed", value=len(action))
        self.stat_update("clusters", value=len(cluster))
        logger.info(f"dedup keepers: {len(action)} documents to remove, {len(cluster)} near-duplicate clusters")


class DedupFilter(ReportsCounters, BaseFilter):
    """Step 4: drop the documents step 3 marked, annotate the kept ones with their cluster."""

    name = "dedup filter"
    counter_prefixes = ("dup_clusters",)

    def __init__(self, work: Path, cluster_parts: int):
        super().__init__()
        self.work, self.cluster_parts = Path(work), cluster_parts
        self.plan: dict[int, tuple[str, str, int | None]] = {}
        self.position = 0

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        folder = self.work / "clusters" / f"{rank:05d}"
        # ParquetFile, not pq.read_table (which imports pyarrow.dataset and pandas with it: 0.15-0.27 CPU-s)
        rows = [
            row
            for k in range(self.cluster_parts)
            for row in pq.ParquetFile(folder / f"{k:03d}.parquet").read().to_pylist()
        ]
        self.plan = {r["pos"]: (r["reason"], r["ref"], r["size"]) for r in rows}
        self.position = 0
        self.stat_update("dup_clusters", value=sum(1 for r in rows if r["reason"] == "keep"))
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason, ref, size = self.plan.get(self.position, ("keep", None, None))
        self.position += 1
        doc.metadata["dup_cluster"] = ref if reason == "keep" else None
        doc.metadata["dup_cluster_size"] = size if reason == "keep" and size else 1
        doc.metadata["dup_lines_removed"] = 0
        if reason == "keep":
            return True
        doc.metadata["duplicate_of"] = ref
        return False, reason


class SimilarLines(ReportsCounters, PipelineStep):
    """Rewrites each kept text document without the lines that nearly repeat an earlier line. Code is left
    alone: repeated lines (closing braces, `return None`) are part of a program."""

    name = "similar lines"
    type = "✂️ - FORMAT"
    counter_prefixes = ("lines_removed", "docs_with_lines_removed")

    def __init__(self, cfg: DedupConfig):
        super().__init__()
        self.cfg = cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # Counted on every document, code too (0 lines), so both counters exist, if 0, whenever a task had input.
        for doc in data:
            if doc.metadata.get("kind") == "code":
                text, dropped = doc.text, 0
            else:
                text, dropped = remove_similar_lines(
                    doc.text, self.cfg.line_max_distance, self.cfg.line_exact_only_below, self.cfg.line_max_candidates
                )
            doc.metadata.setdefault("dup_cluster", None)
            doc.metadata.setdefault("dup_cluster_size", 1)
            doc.metadata["dup_lines_removed"] = dropped
            self.stat_update("lines_removed", value=dropped)
            self.stat_update("docs_with_lines_removed", value=int(dropped > 0))
            if dropped:
                doc.text = text
            yield doc


NEW_COLUMNS = [
    pa.field("dup_cluster", pa.string()),
    pa.field("dup_cluster_size", pa.int32()),
    pa.field("dup_lines_removed", pa.int32()),
]
REMOVED_COLUMNS = [pa.field("duplicate_of", pa.string())]


def merge_single_task_phases(phases: list[Phase]) -> list[Phase]:
    """Consecutive phases of one task each, run as one phase of one task (named `a+b+...`): its steps one after
    the other, each step draining the steps before it first, so the same work writes the same files in the same
    order. What goes is each phase's setup in datatrove's executor (its three log handlers, executor.json, stats
    and completion files: 0.02-0.03 CPU-s a phase) and, on Slurm, a job and its queue wait. At the defaults with
    executor.tasks = 1 the seven phases before the filter are one; with 2 tasks, verify, clusters and keepers are."""
    merged: list[Phase] = []
    for phase in phases:
        if merged and merged[-1].tasks == 1 and phase.tasks == 1:
            before = merged[-1]
            merged[-1] = Phase(f"{before.name}+{phase.name}", [*before.steps, *phase.steps], 1, phase.kept_schema)
        else:
            merged.append(phase)
    return merged


def build(ctx: StageContext) -> list[Phase]:
    cfg: DedupConfig = ctx.stage_cfg
    work = ctx.stage_dir / "work"
    seed = ctx.cfg.run.seed
    logger.info(
        f"dedup: exact={cfg.exact}, minhash={cfg.minhash} ({cfg.bands}x{cfg.rows}, candidate threshold about "
        f"{lsh_threshold(cfg.bands, cfg.rows):.3f}, verify={cfg.verify} at {cfg.verify_threshold} in "
        f"{cfg.verify_parts} part(s)), similar_lines={cfg.similar_lines}"
    )
    phases = []
    steps: list = []
    if cfg.exact or cfg.minhash:
        phases.append(Phase("signatures", [ShardReader(ctx.input_dir), DedupSignatures(work, cfg, seed)], ctx.tasks))
        phases.append(Phase("buckets", [DedupBuckets(work, cfg, ctx.tasks)], min(bucket_jobs(cfg), ctx.tasks)))
        if cfg.minhash and cfg.verify == "exact":
            phases.append(Phase("candidates", [DedupCandidates(work, ctx.tasks, cfg)], cfg.verify_parts))
            phases.append(Phase("shingles", [CandidateShingles(work, cfg, ctx.input_dir)], ctx.tasks))
        if cfg.minhash and cfg.verify != "none":
            verify = DedupVerify(work, ctx.tasks, cfg.verify, cfg.verify_threshold)
            phases.append(Phase("verify", [verify], cfg.verify_parts))
        phases.append(Phase("clusters", [DedupClusters(work, ctx.tasks, cfg)], 1))
        phases.append(Phase("keepers", [DedupKeepers(work, ctx.tasks)], cfg.cluster_parts))
        phases = merge_single_task_phases(phases)
        steps.append(DedupFilter(work, cfg.cluster_parts))
    if cfg.similar_lines:
        steps.append(SimilarLines(cfg))
    phases.append(ctx.standard_phase(steps, new_columns=NEW_COLUMNS, removed_columns=REMOVED_COLUMNS))
    phases[-1].name = "filter"
    return phases
