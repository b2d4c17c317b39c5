"""Documents per second per worker for the pii and decontam steps, and the memory of the decontamination index.

    .venv/bin/python bench/bench_pii_decontam.py [--repeats 3] [--no-write]
    .venv/bin/python bench/bench_pii_decontam.py --choose-n      # the measurement behind zh_ngram and threshold

Everything runs in this one process (one worker) on the real documents of the bundled sample corpus (books_zh,
notes_zh, articles_en, code; the files as they are, before langid and filters); only the steps are timed, Parquet
reading and writing being the same for every stage. Medians of `--repeats` runs.

- pii: `PiiRedactor` (all nine detectors on text, emails and IPs on code).
- decontam: `Decontaminate` with the bundled benchmarks (MMLU sample + CHARM zh, ~12k n-grams) and with a large
  index of ~1.3M n-grams (every paragraph of the first half of the corpus as an item, looked up by the other
  half), in drop mode.
- index memory: bytes of the index arrays (what each worker memory-maps, shared between workers) per million
  benchmark n-grams, and build time.

`--choose-n` prints, for Chinese n-gram lengths 5-15, how many benchmark n-grams clean documents share, how many
clean documents would be flagged, and the recall on CHARM items pasted into real documents whole and with one
character in 15 replaced; and, for the threshold, the share of an item's n-grams that pasted items and clean
documents reach (MMLU and CHARM). The results are in the docstrings of `DecontamConfig.zh_ngram` and `threshold`.

The timing table is written into the `## PII and decontamination` section of BENCHMARKS.md (other sections are
left as they are).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datatrove.data import Document

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import write_section  # noqa: E402  (bench/ is on sys.path when run as a script)

from stages.decontam import (  # noqa: E402
    BenchmarkFile,
    DecontamConfig,
    Decontaminate,
    NgramIndex,
    build_index,
    distinct,
    item_ngrams,
    read_items,
)
from stages.pii import PiiConfig, PiiRedactor  # noqa: E402
from stages.pii_rules import find_pii_unfiltered, redact  # noqa: E402

SAMPLE = REPO / "data" / "sample"
BENCH = SAMPLE / "benchmarks"
SECTION = "## PII and decontamination"
MMLU = BenchmarkFile(
    name="mmlu", path=str(BENCH / "mmlu.jsonl"), format="jsonl", fields=["question", "A", "B", "C", "D"]
)
CHARM = BenchmarkFile(
    name="charm_zh", path=str(BENCH / "charm_zh.csv"), format="csv", fields=["question", "A", "B", "C", "D", "E", "F"]
)


def load_docs() -> dict[str, list[Document]]:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line)["content"] for line in f]
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    articles = pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()
    code = [
        p.read_text(encoding="utf-8", errors="replace") for p in sorted((SAMPLE / "code").rglob("*")) if p.is_file()
    ]

    def docs(texts, kind="text"):
        return [Document(text=t, id=str(i), metadata={"kind": kind}) for i, t in enumerate(texts)]

    return {"zh": docs(books + notes), "en": docs(articles), "code": docs(code, "code")}


def fresh(docs: list[Document]) -> list[Document]:
    return [Document(text=d.text, id=d.id, metadata=dict(d.metadata)) for d in docs]


def utf8_mb(docs: list[Document]) -> float:
    return sum(len(d.text.encode("utf-8")) for d in docs) / 1e6


def one_pass(work, docs: list[Document]) -> tuple[float, float]:
    """Wall and CPU seconds of `work` over fresh copies of `docs` (copies made outside the timing)."""
    batch = fresh(docs)
    wall, cpu = time.perf_counter(), time.process_time()
    for d in batch:
        work(d)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(cases: list[tuple[str, str, object, list[Document]]], repeats: int) -> dict[tuple[str, str], tuple]:
    """Median wall and CPU seconds of every (row, documents) case over `repeats` rounds; in each round every case
    runs once, in turn, so that load from other processes on the shared machine hits them alike."""
    walls: dict[tuple[str, str], list[float]] = {(r, n): [] for r, n, _, _ in cases}
    cpus: dict[tuple[str, str], list[float]] = {(r, n): [] for r, n, _, _ in cases}
    for _ in range(repeats):
        for row, name, work, docs in cases:
            wall, cpu = one_pass(work, docs)
            walls[(row, name)].append(wall)
            cpus[(row, name)].append(cpu)
    return {key: (statistics.median(walls[key]), statistics.median(cpus[key])) for key in walls}


def big_benchmark(docs: list[Document], folder: Path) -> Path:
    """Every paragraph (>= 20 characters) of the given documents as one item of a JSONL benchmark."""
    path = folder / "paragraphs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            for para in d.text.split("\n"):
                if len(para.strip()) >= 20:
                    f.write(json.dumps({"text": para.strip()}, ensure_ascii=False) + "\n")
    return path


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(repeats: int) -> str:
    from datatrove.pipeline.formatters import PIIFormatter

    corpus = load_docs()
    everything = corpus["zh"] + corpus["en"] + corpus["code"]
    load_before = os.getloadavg()

    pii = PiiRedactor(PiiConfig())
    pii_email_ip = PiiRedactor(PiiConfig(types=["email", "ip"]))
    stock_pii = PIIFormatter()

    def unfiltered(doc: Document) -> None:  # every detector on the whole text: the pii step before prefilters
        doc.text = redact(doc.text, find_pii_unfiltered(doc.text))

    def stock(doc: Document) -> None:
        doc.text = stock_pii.format(doc.text)

    cases = []
    for name in ("zh", "en", "code"):
        cases.append(("pii, nine types (ours)", name, pii.filter, corpus[name]))
    for name in ("zh", "en"):
        cases += [
            ("pii, nine types, every detector on every text (before the prefilters)", name, unfiltered, corpus[name]),
            ("pii, email + IP (ours)", name, pii_email_ip.filter, corpus[name]),
            ("pii, email + IP: datatrove PIIFormatter (peer)", name, stock, corpus[name]),
        ]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = DecontamConfig(enabled=True, benchmarks=[MMLU, CHARM])
        meta = build_index(cfg, [(MMLU, Path(MMLU.path)), (CHARM, Path(CHARM.path))], tmp / "small")
        step = Decontaminate(cfg, tmp / "small")
        for name in ("zh", "en", "code"):
            cases.append((f"decontam, {meta['ngrams']:,} n-grams", name, step.filter, corpus[name]))

        half = len(everything) // 2
        rng = random.Random(0)
        shuffled = everything[:]
        rng.shuffle(shuffled)
        items, queries = shuffled[:half], shuffled[half:]
        bench = BenchmarkFile(name="paragraphs", path="paragraphs.jsonl", format="jsonl", fields=["text"])
        rss_before = rss_mb()
        start = time.perf_counter()
        big_meta = build_index(
            cfg.model_copy(update={"benchmarks": [bench]}), [(bench, big_benchmark(items, tmp))], tmp / "big"
        )
        build_sec = time.perf_counter() - start
        rss_build = rss_mb() - rss_before
        big = Decontaminate(cfg, tmp / "big")
        cases.append((f"decontam, {big_meta['ngrams']:,} n-grams", "all kinds", big.filter, queries))
        timings = interleaved(cases, repeats)
        flagged = sum(big.index.match(d.text, cfg.threshold) is not None for d in queries)
    load_after = os.getloadavg()

    lines = [
        SECTION,
        "",
        f"`.venv/bin/python bench/bench_pii_decontam.py --repeats {repeats}` on "
        f"{platform.machine()}, {platform.system()}, Python {platform.python_version()} "
        f"({_cpu()}, shared with other work: load average {load_before[0]:.1f} before and {load_after[0]:.1f} after "
        f"the run, so wall times vary between runs and the CPU-time columns are the steadier measure); one worker, "
        f"medians of {repeats} rounds in which every row runs once in turn, only the steps timed (no Parquet I/O). "
        "MB are megabytes of UTF-8 text. Documents: the sample corpus files as they are (before langid and filters).",
        "",
        "| step | documents | docs | MB (UTF-8) | wall s | CPU s | docs/s per worker | MB/s per worker (wall) "
        "| MB/s per CPU-second | vs peer (wall) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    peers = {("pii, email + IP (ours)", n): ("pii, email + IP: datatrove PIIFormatter (peer)", n) for n in ("zh", "en")}
    for row, name, _, docs in cases:
        wall, cpu = timings[(row, name)]
        mb = utf8_mb(docs)
        ratio = ""
        if (row, name) in peers:
            ratio = f"{timings[peers[(row, name)]][0] / wall:.2f}x"
        lines.append(
            f"| {row} | {name} | {len(docs):,} | {mb:.2f} | {wall:.2f} | {cpu:.2f} | {len(docs) / wall:,.0f} "
            f"| {mb / wall:.2f} | {mb / cpu:.2f} | {ratio} |"
        )
    per_million = big_meta["bytes"] / big_meta["ngrams"] * 1e6 / 2**20
    lines += [
        "",
        "Decontamination index (NumPy arrays, memory-mapped by every worker, so the pages are shared):",
        "",
        "| index | items | n-grams | bytes | MiB per million n-grams | build seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| bundled MMLU + CHARM sample | {meta['items']:,} | {meta['ngrams']:,} | {meta['bytes']:,} "
        f"| {meta['bytes'] / meta['ngrams'] * 1e6 / 2**20:.1f} | {meta['build_seconds']:.2f} |",
        f"| paragraphs of half the corpus | {big_meta['items']:,} | {big_meta['ngrams']:,} | {big_meta['bytes']:,} "
        f"| {per_million:.1f} | {build_sec:.2f} |",
        "",
        f"About {per_million:.0f} MiB per million n-grams: 8-byte hash keys, 8-byte CSR offsets per distinct key and a "
        "4-byte item number per (n-gram, item) pair. Building the large index raised this process's peak RSS by "
        f"{rss_build:.0f} MB (the build holds the unsorted pairs and their sort order at once). The large-index "
        f"run flagged {flagged} of {len(queries)} query documents (paragraphs shared between sample documents: "
        "licence blocks, repeated headings), so it also times the drop path.",
        "",
    ]
    return "\n".join(lines)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {len(os.sched_getaffinity(0))} cores"
    except OSError:
        pass
    return "unknown CPU"


# ------------------------------------------------------------------------------------------- choosing n


def format_item(fields: dict, lang: str) -> str:
    """An item as it would appear pasted into a web page: question, lettered options, answer."""
    options = [(k, fields[k]) for k in "ABCDEF" if fields.get(k)]
    if lang == "zh":
        return (
            fields["question"]
            + "\n选项：\n"
            + "\n".join(f"({k}) {v}" for k, v in options)
            + f"\n答案：{fields.get('answer', '')}"
        )
    return fields["question"] + "\n" + "\n".join(f"{k}. {v}" for k, v in options) + f"\nAnswer: {fields.get('answer')}"


def edit_every(text: str, k: int, lang: str) -> str:
    """Change every k-th unit (a Han character or letter for zh, a word for en) to another one (its first character
    to the next code point): typos, OCR errors, variant characters, spelling variants."""
    if lang == "en":
        count = 0

        def change(m):
            nonlocal count
            count += 1
            w = m.group()
            return chr(ord(w[0]) + 1) + w[1:] if count % k == 0 else w

        return re.sub(r"\w+", change, text)
    out, count = [], 0
    for c in text:
        if c.isalnum():
            count += 1
            if count % k == 0:
                c = chr(ord(c) + 1)
        out.append(c)
    return "".join(out)


def paste(host: str, item: str, rng: random.Random) -> str:
    cut = host.find("\n", rng.randrange(max(1, len(host)))) if len(host) > 1 else -1
    cut = len(host) if cut == -1 else cut
    return host[:cut] + "\n" + item + "\n" + host[cut:]


def rows_of(bench: BenchmarkFile) -> list[dict]:
    if bench.format == "csv":
        with open(bench.path, encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in open(bench.path, encoding="utf-8") if line.strip()]


def item_numbers(bench: BenchmarkFile, cfg: DecontamConfig) -> list[int | None]:
    """Index item number of each row (None: too short to index), as build_index numbers them."""
    out, k = [], 0
    n = {"en": cfg.en_ngram, "zh": cfg.zh_ngram}
    for fields in read_items(Path(bench.path), bench.format, bench.fields, "bench"):
        if len(item_ngrams(fields, n, cfg.min_field_units)[1]):
            out.append(k)
            k += 1
        else:
            out.append(None)
    return out


def evaluate(bench: BenchmarkFile, cfg: DecontamConfig, clean: list[str], hosts: list[str], lang: str, folder: Path):
    """Clean-corpus overlap and paste recall of one benchmark under one config."""
    build_index(cfg, [(bench, Path(bench.path))], folder)
    index = NgramIndex(folder)
    shared_keys: set[int] = set()
    clean_max, clean_flagged, clean_touched = 0.0, 0, 0
    for text in clean:
        hashes = distinct(index.doc_ngrams(text)[0])
        pos = np.searchsorted(index.keys, hashes)
        pos[pos == len(index.keys)] = 0
        shared_keys.update(pos[index.keys[pos] == hashes].tolist())
        _, shares = index.item_shares(text)
        clean_touched += bool(len(shares))
        if len(shares):
            clean_max = max(clean_max, float(shares.max()))
            clean_flagged += bool((shares >= cfg.threshold).any())
    rng = random.Random(1)
    numbers = item_numbers(bench, cfg)
    rows = rows_of(bench)
    whole, edited30, edited15, question_only, shares_whole = 0, 0, 0, 0, []
    for row, k in zip(rows, numbers):
        host = rng.choice(hosts)
        for variant, text in (
            ("whole", format_item(row, lang)),
            ("edited30", edit_every(format_item(row, lang), 30, lang)),
            ("edited15", edit_every(format_item(row, lang), 15, lang)),
            ("question", row["question"]),
        ):
            if k is None:
                continue
            items, shares = index.item_shares(paste(host, text, rng))
            share = float(shares[items == k][0]) if (items == k).any() else 0.0
            hit = share >= cfg.threshold
            if variant == "whole":
                whole += hit
                shares_whole.append(share)
            elif variant == "edited30":
                edited30 += hit
            elif variant == "edited15":
                edited15 += hit
            else:
                question_only += hit
    return {
        "items": len(rows),
        "indexed": sum(k is not None for k in numbers),
        "ngrams": len(index.keys),
        "shared": len(shared_keys) / max(len(index.keys), 1),
        "clean_flagged": clean_flagged,
        "clean_touched": clean_touched,
        "clean_max": clean_max,
        "whole": whole,
        "edited30": edited30,
        "edited15": edited15,
        "question_only": question_only,
        "min_share_whole": min(shares_whole) if shares_whole else 0.0,
    }


def choose_n() -> None:
    corpus = load_docs()
    zh = [d.text for d in corpus["zh"]]
    en = [d.text for d in corpus["en"]]
    head = "n    indexed  n-grams  shared  docs-sharing-any  flagged  max-share  whole  edit-1/30  edit-1/15  question"

    def line(n, r):
        return (
            f"{n:<4} {r['indexed']:>3}/{r['items']:<4} {r['ngrams']:>7}  {r['shared']:>6.1%}  {r['clean_touched']:>16}"
            f"  {r['flagged'] if 'flagged' in r else r['clean_flagged']:>7}  {r['clean_max']:>9.2f}  {r['whole']:>5}"
            f"  {r['edited30']:>9}  {r['edited15']:>9}  {r['question_only']:>8}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        threshold = DecontamConfig().threshold
        print(
            f"Chinese: {CHARM.name} against {len(zh)} clean zh documents (books_zh + notes_zh), threshold {threshold}"
        )
        print(head)
        for n in (5, 6, 8, 10, 12, 13, 15):
            cfg = DecontamConfig(zh_ngram=n, min_field_units={"en": 8, "zh": min(8, n)})
            print(line(n, evaluate(CHARM, cfg, zh, zh, "zh", Path(tmp) / f"zh{n}")))
        print(f"\nEnglish: {MMLU.name} against {len(en)} clean en documents (articles_en), word n-grams")
        print(head)
        for n in (8, 13):
            cfg = DecontamConfig(en_ngram=n, min_field_units={"en": min(8, n), "zh": 8})
            print(line(n, evaluate(MMLU, cfg, en, en, "en", Path(tmp) / f"en{n}")))
        print(f"\nThreshold (zh n = {DecontamConfig().zh_ngram}, en n = {DecontamConfig().en_ngram}):")
        print("thr  " + head[5:])
        for t in (0.2, 0.3, 0.5, 0.7, 0.9):
            cfg = DecontamConfig(threshold=t)
            print(line(t, evaluate(CHARM, cfg, zh, zh, "zh", Path(tmp) / f"t{t}zh")) + "   zh")
            print(line(t, evaluate(MMLU, cfg, en, en, "en", Path(tmp) / f"t{t}en")) + "   en")
        print("\nshared: benchmark n-grams found in some clean document; docs-sharing-any: clean documents holding at")
        print(
            "least one benchmark n-gram (what a one-n-gram rule would flag); flagged, max-share: clean documents at or"
        )
        print("above the threshold, and the highest share of one item's n-grams any clean document holds; whole,")
        print("edit-1/30, edit-1/15, question: items found when pasted into a real document whole, with every 30th or")
        print("15th unit changed, or only the question (no options)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    ap.add_argument("--choose-n", action="store_true", help="print the measurement behind zh_ngram and threshold")
    args = ap.parse_args()
    if args.choose_n:
        choose_n()
        return 0
    section = run_bench(args.repeats)
    print(section)
    if not args.no_write:
        write_section(REPO / "BENCHMARKS.md", SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
