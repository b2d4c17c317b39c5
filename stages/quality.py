"""The quality stage: a trained fastText classifier scores every document, the step beyond the heuristic rules.

DCLM's recipe (Li et al. 2024): a fastText bigram classifier trained on a reference set the user trusts (curated text,
or a good stage's kept output) against random raw pages; the score is the probability of the reference label.
`pipeline quality train --positive A --negative B --out model.bin` trains one (`train_classifier` below) and writes
`model.bin.json` beside it with the training set sizes, the held-out accuracy / precision / recall, the hyper-parameters
and the text normalization, which this stage applies again at predict time.

The stage runs after filter and is off by default. Every text document gets `quality_score` (float32); `kind = "code"`
documents are not scored (null) and pass. A document is kept when its score reaches `threshold`, or, with
`keep_top_share`, when it is among that share of the best-scored documents of the whole input; removed documents
carry the reason `quality_low` and their score. The top share needs one global threshold across tasks, so the stage
then has three phases: `scores` (each task scores its shards into a histogram), `threshold` (one task adds the
histograms and writes `work/threshold.json`), and the usual filter phase.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import random
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import fasttext
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter

from model.han import HAN
from stages.base import Phase, StageContext
from stages.config.quality import QualityConfig
from stages.io import ReportsCounters, ShardReader, atomic_write_json

LABEL_HIGH = "__label__hq"  # the reference ("positive") set
LABEL_LOW = "__label__lq"  # the raw ("negative") set
NORMALIZATIONS = ("han_chars", "whitespace")
NEW_COLUMNS = [pa.field("quality_score", pa.float32())]
# Score histogram bins in stats.json counters (`quality_score_bin_00` holds [0, 0.05), ..., `_19` [0.95, 1]).
REPORT_BINS = 20


# ---------------------------------------------------------------------------------------------------------------
# Text normalization: the same function at training and at predict time, chosen by the name stored with the model.


_SPACES = re.compile(r"\s+")


def fasttext_text(text: str, normalization: str) -> str:
    """One line of space-separated tokens for fastText: NFKC, lowercase, whitespace collapsed (fastText reads one
    document per line). `han_chars` also makes every Han character a token of its own, so that fastText's word
    bigrams are character bigrams of Chinese, which has no spaces (without it a whole Chinese sentence is one
    token, seen once: measured in BENCHMARKS.md). `whitespace` is DCLM's tokenization, for space-separated text."""
    text = unicodedata.normalize("NFKC", text).lower()
    if normalization == "han_chars":
        text = HAN.sub(r" \g<0> ", text)
    elif normalization != "whitespace":
        raise ValueError(f"unknown normalization {normalization!r} (one of {', '.join(NORMALIZATIONS)})")
    return _SPACES.sub(" ", text).strip()


def load_classifier(path: Path) -> tuple[object, dict]:
    """The fastText model and its `<model>.json` (normalization, labels); a ValueError names what is missing."""
    path = Path(path)
    meta_path = path.with_name(path.name + ".json")
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if not meta_path.is_file():
        raise ValueError(f"{meta_path} is missing: `pipeline quality train` writes it beside the model (normalization)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("normalization") not in NORMALIZATIONS:
        raise ValueError(f"{meta_path}: normalization {meta.get('normalization')!r} is not one of {NORMALIZATIONS}")
    fasttext.FastText.eprint = lambda *a, **k: None  # silences the load_model deprecation warning
    try:
        model = fasttext.load_model(str(path))
    except ValueError as e:
        raise ValueError(f"{path} is not a fastText model: {e}") from None
    if set(model.get_labels()) != {LABEL_HIGH, LABEL_LOW}:
        raise ValueError(f"{path}: labels {model.get_labels()} are not {LABEL_HIGH} and {LABEL_LOW}")
    return model, meta


def predict_scores(model, lines: list[str]) -> np.ndarray:
    """Probability of the reference label for each normalized line (float32, clipped to [0, 1]: fastText's softmax
    can round to slightly above 1)."""
    if not lines:
        return np.empty(0, dtype=np.float32)
    labels, probs = model.predict(lines, k=2, threshold=0.0)
    out = np.empty(len(lines), dtype=np.float32)
    for i, (lab, prob) in enumerate(zip(labels, probs)):
        out[i] = next((p for lb, p in zip(lab, prob) if lb == LABEL_HIGH), 1.0 - prob[0])
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# The global threshold of keep_top_share: a histogram of the float32 bit patterns of the scores. For non-negative
# floats the bit pattern orders like the value; dropping its 12 low bits leaves 2^18 bins of relative width 2^-11,
# so every task's histogram has a fixed size (memory does not grow with the corpus) and adding them is exact.

BIN_SHIFT = 12
N_BINS = (np.float32(1.0).view(np.uint32) >> BIN_SHIFT) + 1


def score_bins(scores: np.ndarray) -> np.ndarray:
    return (np.asarray(scores, dtype=np.float32).view(np.uint32) >> BIN_SHIFT).astype(np.int64)


def bin_floor(b: int) -> float:
    """The smallest score of bin `b`."""
    return float(np.uint32(b << BIN_SHIFT).view(np.float32))


def top_share_threshold(histogram: np.ndarray, share: float) -> float:
    """The lower edge of the bin where the documents counted from the best score reach `share` of all; every
    document scoring at least that is kept."""
    total = int(histogram.sum())
    if total == 0:
        return 0.0
    want = share * total
    from_top = np.cumsum(histogram[::-1])
    b = len(histogram) - 1 - int(np.searchsorted(from_top, want - 1e-9))
    return bin_floor(max(b, 0))


class _Scorer:
    """Loads the model in each worker (fastText models do not pickle) and scores batches of documents."""

    def __init__(self, model_path: Path, batch_size: int):
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self._model = None
        self._meta: dict = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def scores(self, docs: list[Document]) -> list[float | None]:
        if self._model is None:
            self._model, self._meta = load_classifier(self.model_path)
        out: list[float | None] = [None] * len(docs)
        where = [i for i, d in enumerate(docs) if d.metadata.get("kind") != "code"]
        lines = [fasttext_text(docs[i].text, self._meta["normalization"]) for i in where]
        for i, s in zip(where, predict_scores(self._model, lines).tolist()):
            out[i] = s
        return out


class QualityScores(PipelineStep):
    """Phase `scores` of keep_top_share: this task's score histogram, written to work/histograms/<rank>.npy."""

    name = "quality scores"
    type = "🏅 - QUALITY"

    def __init__(self, work: Path, model_path: Path, batch_size: int):
        super().__init__()
        self.work = Path(work)
        self.scorer = _Scorer(model_path, batch_size)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        hist = np.zeros(N_BINS, dtype=np.int64)
        batch: list[Document] = []

        def flush():
            scores = np.asarray([s for s in self.scorer.scores(batch) if s is not None], dtype=np.float32)
            np.add.at(hist, score_bins(scores), 1)
            batch.clear()

        for doc in data or ():
            batch.append(doc)
            if len(batch) >= self.scorer.batch_size:
                flush()
        flush()
        out = self.work / "histograms" / f"{rank:05d}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.npy")
        np.save(tmp, hist)
        os.replace(tmp, out)
        return
        yield


class QualityThreshold(PipelineStep):
    """Phase `threshold` (one task): adds the tasks' histograms and writes the global cut to work/threshold.json."""

    name = "quality threshold"
    type = "🏅 - QUALITY"

    def __init__(self, work: Path, share: float, score_tasks: int):
        super().__init__()
        self.work, self.share, self.score_tasks = Path(work), share, score_tasks

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        hist = np.zeros(N_BINS, dtype=np.int64)
        for r in range(self.score_tasks):
            hist += np.load(self.work / "histograms" / f"{r:05d}.npy")
        threshold = top_share_threshold(hist, self.share)
        scored = int(hist.sum())
        kept = int(hist[score_bins(np.asarray([threshold]))[0] :].sum())
        atomic_write_json(
            self.work / "threshold.json",
            {"keep_top_share": self.share, "threshold": threshold, "scored": scored, "at_or_above": kept},
        )
        return
        yield


class QualityFilter(ReportsCounters, BaseFilter):
    """Sets `quality_score` and removes documents below the threshold (given, or read from the threshold phase)."""

    name = "🏅 quality classifier"
    counter_prefixes = ("quality_",)

    def __init__(self, model_path: Path, batch_size: int, threshold: float | None, threshold_file: Path | None):
        super().__init__(None, batch_size=batch_size)
        self.scorer = _Scorer(model_path, batch_size)
        self.threshold = threshold
        self.threshold_file = Path(threshold_file) if threshold_file else None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        if self.threshold is None:
            self.threshold = json.loads(self.threshold_file.read_text(encoding="utf-8"))["threshold"]
        results: list[bool | tuple[bool, str]] = []
        for doc, score in zip(batch, self.scorer.scores(batch)):
            doc.metadata["quality_score"] = score
            if score is None:
                self.stat_update("quality_code_unscored")
                results.append(True)
                continue
            self.stat_update("quality_scored")
            self.stat_update(f"quality_score_bin_{min(int(score * REPORT_BINS), REPORT_BINS - 1):02d}")
            results.append(True if score >= self.threshold else (False, "quality_low"))
        return results


def build(ctx: StageContext) -> list[Phase]:
    cfg: QualityConfig = ctx.stage_cfg
    if not cfg.model:
        raise ValueError(
            f"{ctx.cfg.file}: stages.quality.model is not set: train a classifier with "
            "`pipeline quality train --positive A --negative B --out M.bin` and set it to M.bin"
        )
    model_path = ctx.cfg.path(cfg.model)
    try:
        load_classifier(model_path)  # here, so that a bad file stops the run before any task starts
    except ValueError as e:
        raise ValueError(f"{ctx.cfg.file}: stages.quality.model: {e}") from None
    work = ctx.stage_dir / "work"
    phases = []
    threshold_file = None
    if cfg.keep_top_share is not None:
        phases.append(
            Phase("scores", [ShardReader(ctx.input_dir), QualityScores(work, model_path, cfg.batch_size)], ctx.tasks)
        )
        phases.append(Phase("threshold", [QualityThreshold(work, cfg.keep_top_share, ctx.tasks)], 1))
        threshold_file = work / "threshold.json"
    step = QualityFilter(model_path, cfg.batch_size, cfg.threshold, threshold_file)
    phases.append(ctx.standard_phase([step], new_columns=NEW_COLUMNS))
    if len(phases) > 1:
        phases[-1].name = "filter"
    return phases


def finalize(cfg, stage_dir: Path, merged: dict) -> None:
    """stats.json gets the threshold used and the model's training summary (once, not summed over tasks)."""
    section: QualityConfig = cfg.stages.quality
    threshold_file = Path(stage_dir) / "work" / "threshold.json"
    if section.keep_top_share is not None and threshold_file.exists():
        merged["threshold"] = json.loads(threshold_file.read_text(encoding="utf-8"))
    else:
        merged["threshold"] = {"threshold": section.threshold}
    meta_path = cfg.path(section.model).with_name(cfg.path(section.model).name + ".json") if section.model else None
    if meta_path and meta_path.exists():
        merged["model"] = {"path": str(cfg.path(section.model)), **json.loads(meta_path.read_text(encoding="utf-8"))}


# ---------------------------------------------------------------------------------------------------------------
# Training: `pipeline quality train`


def _expand(spec: str) -> list[Path]:
    """A folder (its *.parquet, *.jsonl, *.jsonl.gz, recursively), a glob, or one file."""
    p = Path(spec).expanduser()
    if p.is_dir():
        files = [
            f for f in sorted(p.rglob("*")) if f.is_file() and f.name.endswith((".parquet", ".jsonl", ".jsonl.gz"))
        ]
    elif glob.has_magic(spec):
        files = [Path(f) for f in sorted(glob.glob(str(p), recursive=True)) if Path(f).is_file()]
    else:
        files = [p] if p.is_file() else []
    if not files:
        raise ValueError(f"{spec}: no .parquet, .jsonl or .jsonl.gz file found there")
    return files


def read_documents(
    spec: str, text_field: str = "text", id_field: str = "id", sources: list[str] | None = None
) -> Iterator[tuple[str, str]]:
    """(id, text) of every document of a folder, glob or file of Parquet / JSONL(.gz) documents; with `sources`,
    only rows whose `source` column is one of them. A row without `id_field` is named <file>:<row>."""
    for f in _expand(spec):
        name = f.name
        if name.endswith(".parquet"):
            columns = pq.read_schema(f).names
            if text_field not in columns:
                raise ValueError(f"{f}: no column {text_field!r} (columns: {', '.join(columns)})")
            want = [c for c in (text_field, id_field, "source") if c in columns]
            rows = (row for b in pq.ParquetFile(f).iter_batches(columns=want) for row in b.to_pylist())
        elif name.endswith((".jsonl", ".jsonl.gz")):
            rows = _jsonl_rows(f)
        else:
            raise ValueError(f"{f}: not a .parquet, .jsonl or .jsonl.gz file")
        for i, row in enumerate(rows):
            if sources is not None and row.get("source") not in sources:
                continue
            text = row.get(text_field)
            if not isinstance(text, str):
                raise ValueError(f"{f}: row {i + 1}: field {text_field!r} is missing or not text")
            doc_id = row.get(id_field)
            yield (str(doc_id) if doc_id is not None else f"{f}:{i}"), text


def _jsonl_rows(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n}: not valid JSON: {e.msg}") from None


def held_out(doc_id: str, seed: int, share: float) -> bool:
    """A fixed share of documents, chosen by a hash of the id (and seed): the same split on every run."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest(), "little")
    return h / 2**64 < share


def binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, precision and recall of the reference label at `threshold`, and ROC AUC (rank statistic)."""
    pred = scores >= threshold
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    auc = None
    if n_pos and n_neg:
        ranks = _average_ranks(scores)
        auc = round((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), 4)
    return {
        "documents": int(len(labels)),
        "positive": n_pos,
        "negative": n_neg,
        "threshold": threshold,
        "accuracy": round((tp + tn) / len(labels), 4) if len(labels) else None,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "negative_recall": round(tn / (tn + fp), 4) if tn + fp else None,
        "roc_auc": auc,
    }


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)  # ties share their mean rank
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def _train(train_file: Path, hyper: dict):
    """fastText's supervised training; its divergence ("Encountered NaN") becomes an error saying what helped.
    Measured on the sample corpus (books/articles against web pages, wordNgrams 2, 4 seeds each): every run with
    20,000 buckets diverged, half with 200,000, none with 1,000,000 or 2,000,000, whatever the lr (0.0125 still
    diverged with 20,000); wordNgrams 1 never did. Many n-grams hashed into one bucket is the likely cause."""
    try:
        return fasttext.train_supervised(input=str(train_file), verbose=0, **hyper)
    except RuntimeError as e:
        if "NaN" not in str(e):
            raise
        raise ValueError(
            f"fastText training diverged (NaN) with bucket {hyper['bucket']:,} and lr {hyper['lr']}: use more "
            "buckets (--bucket 1000000 or more) or a lower --lr"
        ) from None


def train_classifier(
    positive: list[tuple[str, str]],
    negative: list[tuple[str, str]],
    out: Path,
    *,
    normalization: Literal["han_chars", "whitespace"] = "han_chars",
    epochs: int = 10,
    lr: float = 0.5,
    word_ngrams: int = 2,
    dim: int = 32,
    min_count: int = 2,
    bucket: int = 2_000_000,
    seed: int = 1234,
    holdout_share: float = 0.1,
    balance: bool = True,
) -> dict:
    """Trains the fastText classifier on (id, text) documents, positive (reference) against negative (raw), holding
    out `holdout_share` of each by id hash; writes `out` and `out.json` atomically and returns the JSON. With
    `balance`, the smaller set's training documents are repeated to about the larger one's count.

    A document id in both sets counts as positive only (a trusted document is no negative example). One thread:
    fastText's Hogwild updates are then in a fixed order, so the same inputs and seed give the same model."""
    out = Path(out)
    start = time.time()
    positive_ids = {i for i, _ in positive}
    negative_given = len(negative)
    negative = [(i, t) for i, t in negative if i not in positive_ids]
    overlap = negative_given - len(negative)
    train_lines: list[str] = []
    test_lines: list[str] = []
    test_labels: list[bool] = []
    sizes = {"positive": {"train": 0, "held_out": 0, "empty": 0}, "negative": {"train": 0, "held_out": 0, "empty": 0}}
    for docs, label, name in ((positive, LABEL_HIGH, "positive"), (negative, LABEL_LOW, "negative")):
        for doc_id, text in docs:
            line = fasttext_text(text, normalization)
            if not line:
                sizes[name]["empty"] += 1
                continue
            if held_out(doc_id, seed, holdout_share):
                test_lines.append(line)
                test_labels.append(label == LABEL_HIGH)
                sizes[name]["held_out"] += 1
            else:
                train_lines.append(f"{label} {line}")
                sizes[name]["train"] += 1
    if not sizes["positive"]["train"] or not sizes["negative"]["train"]:
        raise ValueError(f"both sets need training documents (after the held-out split): {sizes}")
    repeats = 1
    if balance:  # the smaller set's lines repeated (none dropped), so that the prior is not the class sizes' ratio
        small, large = sorted((sizes["positive"]["train"], sizes["negative"]["train"]))
        repeats = max(1, round(large / small))
        small_label = LABEL_HIGH if sizes["positive"]["train"] == small else LABEL_LOW
        train_lines += [line for line in train_lines if line.startswith(small_label + " ")] * (repeats - 1)
    random.Random(seed).shuffle(train_lines)  # fastText reads in order: mixed labels, not one block then the other
    out.parent.mkdir(parents=True, exist_ok=True)
    train_file = out.with_name(f".{out.name}.{os.getpid()}.train.txt")
    tmp_model = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    hyper = {
        "epoch": epochs,
        "lr": lr,
        "wordNgrams": word_ngrams,
        "dim": dim,
        "minCount": min_count,
        "bucket": bucket,
        "loss": "softmax",
        "thread": 1,
        "seed": seed,
    }
    try:
        train_file.write_text("\n".join(train_lines) + "\n", encoding="utf-8")
        model = _train(train_file, hyper)
        model.save_model(str(tmp_model))
        os.replace(tmp_model, out)
    finally:
        train_file.unlink(missing_ok=True)
        tmp_model.unlink(missing_ok=True)
    scores = predict_scores(model, test_lines)
    summary = {
        "normalization": normalization,
        "labels": {"positive": LABEL_HIGH, "negative": LABEL_LOW},
        "hyperparameters": hyper,
        "holdout_share": holdout_share,
        "documents": sizes,
        "balance": {"on": balance, "smaller_set_repeated": repeats},
        "in_both_sets": overlap,
        "held_out": binary_metrics(scores, np.asarray(test_labels, dtype=bool)),
        "model_bytes": out.stat().st_size,
        "seconds": round(time.time() - start, 2),
    }
    atomic_write_json(out.with_name(out.name + ".json"), summary)
    return summary
