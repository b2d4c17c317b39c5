"""Ingest throughput and peak memory per worker, against datatrove's stock reader -> writer on the same input.

    .venv/bin/python bench/bench_ingest.py [--repeats 3] [--out bench/results/ingest.md]
    .venv/bin/python bench/bench_ingest.py --formats jsonl parquet --jsonl-sizes 1 32 --parquet-sizes 1 32 \
        --corpus /work/scale_data/c0.1 --repeats 3      # issue 13's ingest row

Inputs are built from the bundled sample corpus: JSONL (books_zh.jsonl.gz copied into N files), Parquet (the same
books written as Parquet, `doc_id`/`content`/`url`, N files; each copy's `doc_id`s prefixed with its number, so
ids stay unique) and WARC (web.warc.gz copied N times), each at two
sizes (JSONL and Parquet N = 4 and 32, WARC N = 1 and 4: HTML extraction is slow), so that throughput and memory
can be compared across sizes: memory per worker must not grow with the input. `--corpus` adds a scale corpus's
`jsonl/` and `parquet/` folders (bench/make_corpus.py). Every configuration runs as one task on one worker (a
separate process, so its peak RSS and CPU seconds are its own), `--repeats` rounds in which every implementation
of an input runs in turn (the machine is shared: interleaved, then medians). The reference rows run datatrove's
own `JsonlReader`/`ParquetReader`/`WarcReader (+ Trafilatura)` -> `ParquetWriter` on the same files in the same
run; JSONL and Parquet run ours twice, with and without `id_field` (the unique-id check: the id files, the repeats,
and a second read of the files that hold a repeated id; the inputs here have none).
`--base <checkout>` adds the same runs of another checkout's code (the merge base, say) to every round.
The ratio column is the reference's CPU seconds over ours (above 1: ours is faster), process start included.

The document formats (wikipedia, arxiv, pdf, epub; `--doc-sizes`, default 1 and 4 copies of the sample's file of
that format) have no datatrove reader to compare with, so their rows are ours only. `--formats` picks what runs:

    .venv/bin/python bench/bench_ingest.py --formats warc wikipedia arxiv pdf epub --warc-sizes 1

Those sample files are small, so the rows above are mostly process start; `--extraction` adds a table of the
extraction functions alone (stages/formats/, in this process, no pipeline), the sample file read `--repeats` times.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import emit  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"

MEASURE = textwrap.dedent(
    """
    import resource, subprocess, sys, time, json
    t = time.perf_counter()
    r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.stderr.write(r.stderr[-3000:])
        sys.exit(r.returncode)
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"seconds": dt, "cpu_seconds": u.ru_utime + u.ru_stime, "max_rss_mb": u.ru_maxrss / 1024}))
    """
)

DATATROVE_REF = textwrap.dedent(
    """
    import sys
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.pipeline.readers import ParquetReader
    fmt, src, out, text_key = sys.argv[1:5]
    if fmt == "jsonl":
        steps = [JsonlReader(src, text_key=text_key, id_key="doc_id", glob_pattern="*.jsonl.gz")]
    elif fmt == "parquet":
        steps = [ParquetReader(src, text_key=text_key, id_key="doc_id", glob_pattern="*.parquet")]
    else:
        steps = [WarcReader(src, glob_pattern="*.warc.gz"), Trafilatura(favour_precision=False, timeout=10.0)]
    # datatrove infers the schema from the first document unless told; the sample's first url is null, which
    # breaks later batches, so the reference gets an explicit schema and writes id and text only.
    import pyarrow as pa
    schema = pa.schema([("text", pa.string()), ("id", pa.string())])
    steps.append(ParquetWriter(out + "/kept", compression="zstd", schema=schema,
                               adapter=lambda self, doc: {"text": doc.text, "id": doc.id}))
    LocalPipelineExecutor(steps, tasks=1, workers=1, logging_dir=out + "/logs").run()
    """
)


SAMPLE_FILE = {
    "jsonl": "books_zh.jsonl.gz",
    "warc": "web.warc.gz",
    "wikipedia": "formats/wiki/enwiki-sample-multistream.xml.bz2",
    "arxiv": "formats/papers/thuthesis-example.tar.gz",
    "pdf": "formats/pdf/xpinyin.pdf",
    "epub": "formats/books/live-manual.en.epub",
}
STOCK_READER = {"jsonl", "parquet", "warc"}  # formats datatrove has a reader for
RECORD_FORMATS = {"jsonl", "parquet"}  # formats with an id_field (ours runs with and without it)


def make_input(root: Path, fmt: str, copies: int) -> Path:
    """`copies` files of the sample's file of `fmt`. JSONL and Parquet copies get their copy number in front of
    each `doc_id`, so that ids stay unique and the id_field rows measure the check, not thousands of repeats."""
    d = root / f"{fmt}_{copies}"
    d.mkdir(parents=True)
    if fmt in RECORD_FORMATS:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with gzip.open(SAMPLE / SAMPLE_FILE["jsonl"], "rb") as f:
            lines = f.read().splitlines()
        for i in range(copies):
            records = [json.loads(line) for line in lines]
            for r in records:
                r["doc_id"] = f"{i:03d}-{r['doc_id']}"
            if fmt == "jsonl":
                with gzip.open(d / f"{i:03d}_books_zh.jsonl.gz", "wt", encoding="utf-8") as f:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            else:  # the same books as Parquet: Chinese text, as the JSONL rows
                table = pa.Table.from_pylist(
                    [{"doc_id": r["doc_id"], "content": r["content"], "url": r.get("url")} for r in records],
                    schema=pa.schema([("doc_id", pa.string()), ("content", pa.string()), ("url", pa.string())]),
                )
                pq.write_table(table, d / f"{i:03d}_books_zh.parquet")
        return d
    name = Path(SAMPLE_FILE[fmt]).name
    for i in range(copies):
        shutil.copy(SAMPLE / SAMPLE_FILE[fmt], d / f"{i:03d}_{name}")
    return d


def config_for(folder: Path, fmt: str, workdir: Path, text_field: str, id_field: bool) -> Path:
    source = f'[[sources]]\nname = "{fmt}"\npath = "{folder}"\nformat = "{fmt}"\n'
    if fmt in RECORD_FORMATS:
        source += f'text_field = "{text_field}"\nurl_field = "url"\n' + ('id_field = "doc_id"\n' if id_field else "")
    cfg = workdir.parent / f"{workdir.name}.toml"
    cfg.write_text(f'[run]\nworkdir = "{workdir}"\n[executor]\ntasks = 1\nworkers = 1\n\n{source}')
    return cfg


def extraction_rates(repeats: int) -> list[str]:
    """Seconds per sample file and MB/s of extracted text for each document format's pure extraction."""
    import bz2
    import io
    import time

    from pdfminer.pdfpage import PDFPage

    from stages.formats import arxiv, epub, pdf, wikipedia

    def run_wiki(data):
        return [r.text for r in wikipedia.read_dump(bz2.BZ2File(io.BytesIO(data)))]

    def run_arxiv(data):
        return [arxiv.extract_paper(arxiv.archive_files(data)).text]

    def run_pdf(data):
        return [pdf.extract_pdf(io.BytesIO(data)).text]

    def run_epub(data):
        return [r.text for r in epub.read_epub(io.BytesIO(data), "book")]

    units = {"wikipedia": "pages", "arxiv": "papers", "pdf": "pages", "epub": "books"}
    runners = {"wikipedia": run_wiki, "arxiv": run_arxiv, "pdf": run_pdf, "epub": run_epub}
    lines = [
        "| format | sample file | file KB | records | text KB | seconds per file (median) | text MB/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fmt, fn in runners.items():
        data = (SAMPLE / SAMPLE_FILE[fmt]).read_bytes()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            texts = fn(data)
            times.append(time.perf_counter() - t)
        secs = statistics.median(times)
        text_bytes = sum(len(x.encode("utf-8")) for x in texts)
        records = len(list(PDFPage.get_pages(io.BytesIO(data)))) if fmt == "pdf" else len(texts)
        lines.append(
            f"| {fmt} | `{Path(SAMPLE_FILE[fmt]).name}` | {len(data) / 1024:.0f} | {records} {units[fmt]} | "
            f"{text_bytes / 1024:.0f} | {secs:.3f} | {text_bytes / 2**20 / secs:.2f} |"
        )
    return lines


def measure(cmd: list[str], cwd: Path | None = None) -> dict:
    r = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, cwd=cwd)
    if r.returncode:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jsonl-sizes", type=int, nargs="+", default=[4, 32])
    ap.add_argument("--parquet-sizes", type=int, nargs="+", default=[4, 32])
    ap.add_argument("--warc-sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--doc-sizes", type=int, nargs="+", default=[1, 4], help="copies for wikipedia/arxiv/pdf/epub")
    ap.add_argument(
        "--formats", nargs="+", default=["jsonl", "parquet", "warc"], choices=sorted({*SAMPLE_FILE, "parquet"})
    )
    ap.add_argument("--corpus", type=Path, help="also a scale corpus's jsonl/ and parquet/ (bench/make_corpus.py)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--extraction", action="store_true", help="also time the document formats' extraction alone")
    ap.add_argument(
        "--base",
        type=Path,
        help="also run another checkout's code (e.g. `git worktree add /tmp/base <commit>`) in the same rounds, as "
        "'base ingest' rows: `python -m pipeline` started in that folder imports its stages and pipeline",
    )
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = {"jsonl": args.jsonl_sizes, "parquet": args.parquet_sizes, "warc": args.warc_sizes}
        # (label, format, folder, text field)
        inputs = [
            (f"{fmt} x{n}", fmt, make_input(tmp / "in", fmt, n), "content")
            for fmt in args.formats
            for n in sizes.get(fmt, args.doc_sizes)
        ]
        if args.corpus:
            inputs += [
                (f"{args.corpus.name} {fmt}/", fmt, args.corpus / fmt, "text")
                for fmt in ("jsonl", "parquet")
                if fmt in args.formats
            ]
        for label, fmt, folder, text_field in inputs:
            in_bytes = sum(f.stat().st_size for f in folder.iterdir())
            impls = ["mapcc ingest"]
            if fmt in RECORD_FORMATS:
                impls = ["mapcc ingest, id_field", "mapcc ingest, no id_field"]
            if args.base:
                impls += [impl.replace("mapcc", "base") for impl in impls]
            if fmt in STOCK_READER:
                impls.append("datatrove stock")
            runs: dict[str, list[dict]] = {impl: [] for impl in impls}
            for r in range(args.repeats):  # interleaved: every implementation once per round
                for i, impl in enumerate(impls):
                    work = tmp / f"w_{i}_{r}"
                    ours = impl.startswith(("mapcc", "base"))
                    if ours:
                        cfg = config_for(folder, fmt, work, text_field, id_field="no id_field" not in impl)
                        cmd = [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg)]
                    else:
                        cmd = [sys.executable, "-c", DATATROVE_REF, fmt, str(folder), str(work), text_field]
                    runs[impl].append(measure(cmd, cwd=args.base if impl.startswith("base") else REPO))
                    if ours:
                        stats = json.loads((work / "ingest" / "stats.json").read_text())
                        docs, text_bytes = stats["docs_in"], stats["bytes_in"]
                    shutil.rmtree(work, ignore_errors=True)
            stock_cpu = (
                statistics.median(x["cpu_seconds"] for x in runs["datatrove stock"]) if fmt in STOCK_READER else None
            )
            for impl in impls:
                secs = statistics.median(x["seconds"] for x in runs[impl])
                cpu = statistics.median(x["cpu_seconds"] for x in runs[impl])
                rows.append(
                    {
                        "input": label,
                        "impl": impl,
                        "docs": docs,
                        "text_mb": text_bytes / 2**20,
                        "file_mb": in_bytes / 2**20,
                        "seconds": secs,
                        "cpu_seconds": cpu,
                        "docs_per_s": docs / secs,
                        "mb_per_s": text_bytes / 2**20 / secs,
                        "mb_per_cpu_s": text_bytes / 2**20 / cpu,
                        "vs_stock": stock_cpu / cpu if stock_cpu else None,
                        "rss_mb": statistics.median(x["max_rss_mb"] for x in runs[impl]),
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)

    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, Python {platform.python_version()}; "
        f"one task on one worker per row, median of {args.repeats} interleaved rounds (process start included).",
        "",
        "| input | implementation | docs | text MB | wall s | CPU s | text MB/s wall | text MB per CPU-s | "
        "vs stock (CPU) | peak RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = f"{r['vs_stock']:.2f}x" if r["vs_stock"] else ""
        lines.append(
            f"| {r['input']} | {r['impl']} | {r['docs']:,} | {r['text_mb']:.1f} | {r['seconds']:.2f} | "
            f"{r['cpu_seconds']:.2f} | {r['mb_per_s']:.2f} | {r['mb_per_cpu_s']:.2f} | {ratio} | {r['rss_mb']:.0f} |"
        )
    if args.extraction:
        sys.path.insert(0, str(REPO))
        lines += ["", f"Extraction alone (median of {args.repeats}):", "", *extraction_rates(args.repeats)]
    text = "\n".join(lines)
    emit(text, args.out)


if __name__ == "__main__":
    main()
