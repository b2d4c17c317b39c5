"""The whole flow on a corpus made by bench/make_corpus.py: time, memory, disk per stage, and ground-truth recall.

    .venv/bin/python bench/make_corpus.py --size 0.1GB --out /work/scale_data/c100m
    .venv/bin/python bench/bench_scale.py --corpus /work/scale_data/c100m --workdir /work/scale_data/run100m \
        --tasks 16 --workers 2 --out bench/results/scale-0.1GB.json

Each stage runs as `pipeline run <stage>` in a child process (the real command, process start included) with a
config made from this repository's pipeline.toml, its [[sources]] replaced by the corpus's `sources.toml`. While it
runs, the process tree is sampled every 0.2 s from /proc: each process's VmHWM (its peak resident set, kept by the
kernel, so a sample just has to see the process before it exits) is recorded and attributed to its phase by the
time it was first seen (a phase spans from its logs/<phase>/executor.json to its logs/<phase>/stats.json). Workers
are the processes forked by the pool (the children of multiprocessing's forkserver); the `pipeline` process itself
is reported apart. Disk written is the size of the stage's folder when it has finished.

Recall against the corpus's ground_truth.parquet, each over the documents that reached the stage concerned:
  filter     junk pages removed by langid or filter (and, for scale, the share of clean originals they removed)
  dedup      pairs (copy, original) that both entered dedup and did not both come out: exact copies, and near
             copies per target Jaccard; plus how many documents that have no copy dedup removed
  pii        planted values no longer in the text pii kept
  decontam   documents with a pasted benchmark item that decontam removed; plus other documents it removed
With --report-only the stages are not run; the figures are read from an existing --workdir (recall, disk) and the
previous --out JSON (time, memory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
STAGES = ["ingest", "langid", "filter", "dedup", "pii", "decontam", "tokenizer", "tokenize"]
SAMPLE_EVERY_S = 0.2


def machine() -> dict:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_config(corpus: Path, workdir: Path) -> Path:
    """The repository's pipeline.toml with the corpus's sources and absolute paths to the bundled benchmarks."""
    text = (REPO / "pipeline.toml").read_text(encoding="utf-8")
    kept: list[str] = []
    in_sources = False
    for line in text.splitlines():
        if line.startswith("[[sources]]"):
            in_sources = True
            continue
        if in_sources and line.startswith("["):
            in_sources = False
        if not in_sources:
            kept.append(line)
    text = "\n".join(kept).replace('"data/sample/', f'"{REPO}/data/sample/')
    sources = (corpus / "sources.toml").read_text(encoding="utf-8")
    sources = re.sub(r'^path = "([^"]+)"', lambda m: f'path = "{corpus.resolve() / m.group(1)}"', sources, flags=re.M)
    first_stage = text.index("\n[stages.") + 1  # the trimmed pipeline.toml has no [stages.ingest] table
    text = text[:first_stage] + sources + text[first_stage:]
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "pipeline.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


class TreeSampler(threading.Thread):
    """Samples every process under `root` until stopped: {pid: [first_seen, VmHWM kB, role, CPU seconds]}."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.procs: dict[int, list] = {}
        self.stop = threading.Event()
        self.ticks = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _read(pid: int, name: str) -> str | None:
        try:
            return Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            return None

    def run(self) -> None:
        while not self.stop.is_set():
            parents: dict[int, int] = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    st = self._read(int(d), "stat")
                    if st:
                        parents[int(d)] = int(st[st.rindex(")") + 2 :].split()[1])
            tree = {self.root}
            changed = True
            while changed:
                changed = False
                for pid, ppid in parents.items():
                    if ppid in tree and pid not in tree:
                        tree.add(pid)
                        changed = True
            now = time.time()
            for pid in tree:
                stat = self._read(pid, "stat")
                status = self._read(pid, "status")
                m = re.search(r"VmHWM:\s+(\d+)", status or "")
                if not m:
                    continue
                rec = self.procs.get(pid)
                if rec is None:
                    cmd = (self._read(pid, "cmdline") or "").replace("\0", " ")
                    pcmd = (self._read(parents.get(pid, 0), "cmdline") or "").replace("\0", " ")
                    # a pool worker is forked by the forkserver, so it carries the forkserver's command line too
                    role = "main" if pid == self.root else "worker" if "forkserver" in pcmd else "helper"
                    if role != "worker" and ("forkserver" in cmd or "resource_tracker" in cmd):
                        role = "helper"
                    rec = self.procs[pid] = [now, 0, role, 0.0]
                rec[1] = max(rec[1], int(m.group(1)))
                if stat:  # utime + stime, cumulative: the last sample before the process exits is its CPU time
                    fields = stat[stat.rindex(")") + 2 :].split()
                    rec[3] = (int(fields[11]) + int(fields[12])) / self.ticks
            self.stop.wait(SAMPLE_EVERY_S)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def phase_windows(stage_dir: Path) -> list[tuple[str, float, float]]:
    out = []
    for d in sorted((stage_dir / "logs").glob("*")):
        start, end = d / "executor.json", d / "stats.json"
        if start.exists() and end.exists():
            out.append((d.name, start.stat().st_mtime, end.stat().st_mtime))
    return sorted(out, key=lambda w: w[1])


def run_stage(cfg: Path, stage: str, tasks: int, workers: int, extra: tuple[str, ...] = ()) -> dict:
    """`extra`: more command-line arguments (e.g. --force, --set key=value), as bench_dedup_scale.py passes."""
    cmd = [str(REPO / ".venv" / "bin" / "pipeline"), "run", stage, "--config", str(cfg),
           "--set", f"executor.tasks={tasks}", "--set", f"executor.workers={workers}", *extra]  # fmt: skip
    load_before = loadavg()
    t0 = time.time()
    log = open(cfg.parent / f"{stage}.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cfg.parent)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    rc = proc.wait()
    sampler.stop.set()
    sampler.join()
    log.close()
    wall = time.time() - t0
    if rc != 0:
        raise SystemExit(f"bench_scale: `{' '.join(cmd)}` exited {rc}; see {cfg.parent / (stage + '.log')}")
    stage_dir = cfg.parent / "out" / stage
    stats = json.loads((stage_dir / "stats.json").read_text())
    windows = phase_windows(stage_dir)
    phases: dict[str, int] = {}
    for first_seen, hwm, role, _ in sampler.procs.values():
        if role != "worker":
            continue
        name = next((n for n, s, e in windows if s - 1 <= first_seen <= e), windows[-1][0] if windows else "main")
        phases[name] = max(phases.get(name, 0), hwm)
    main_kb = sampler.procs.get(proc.pid, [0, 0, "", 0.0])[1]
    return {
        "stage": stage,
        "wall_s": round(wall, 1),
        "stage_wall_s": stats.get("wall_seconds"),
        "docs_in": stats.get("docs_in"),
        "bytes_in": stats.get("bytes_in"),
        "kept": stats.get("kept"),
        "bytes_kept": stats.get("bytes_kept"),
        "removed": stats.get("removed"),
        "worker_peak_rss_mb": round(max(phases.values(), default=0) / 1024, 1),
        "phase_peak_rss_mb": {k: round(v / 1024, 1) for k, v in phases.items()},
        "main_peak_rss_mb": round(main_kb / 1024, 1),
        "cpu_s": round(sum(r[3] for r in sampler.procs.values()), 1),
        "main_cpu_s": round(sampler.procs.get(proc.pid, [0, 0, "", 0.0])[3], 1),
        "workers_seen": sum(1 for r in sampler.procs.values() if r[2] == "worker"),
        "disk_mb": round(dir_bytes(stage_dir) / 1e6, 1),
        "load_before": load_before,
        "load_after": loadavg(),
    }


# ----------------------------------------------------------------------------------------------- recall


def read_ids(folder: Path, columns: list[str]) -> dict[str, list]:
    """Columns of every shard in folder (missing columns as None)."""
    out: dict[str, list] = {c: [] for c in columns}
    for f in sorted(folder.glob("*.parquet")):
        names = set(pq.read_schema(f).names)
        t = pq.read_table(f, columns=[c for c in columns if c in names])
        for c in columns:
            out[c].extend(t.column(c).to_pylist() if c in names else [None] * t.num_rows)
    return out


def stage_io(out: Path, stage: str) -> tuple[set, set, dict]:
    """(ids in, ids kept, {removed id: reason}) of a stage."""
    kept = set(read_ids(out / stage / "kept", ["id"])["id"])
    rem = read_ids(out / stage / "removed", ["id", "reason"])
    removed = dict(zip(rem["id"], rem["reason"], strict=True))
    return kept | set(removed), kept, removed


def ratio(a: int, b: int) -> dict:
    return {"found": a, "of": b, "recall": round(a / b, 4) if b else None}


def recall(corpus: Path, out: Path) -> dict:
    gt = pq.read_table(corpus / "ground_truth.parquet").to_pylist()
    by_cat: dict[str, list[dict]] = {}
    for r in gt:
        by_cat.setdefault(r["category"], []).append(r)
    res: dict = {}
    lang_in, lang_kept, _ = stage_io(out, "langid")
    _, filt_kept, _ = stage_io(out, "filter")
    junk = [r for r in by_cat.get("junk", []) if r["id"] in lang_in]
    res["filter_junk"] = ratio(sum(r["id"] not in filt_kept for r in junk), len(junk))
    for kind in sorted({r["junk_kind"] for r in junk}):
        sub = [r for r in junk if r["junk_kind"] == kind]
        res[f"filter_junk_{kind}"] = ratio(sum(r["id"] not in filt_kept for r in sub), len(sub))
    clean = [r for r in by_cat.get("original", []) if r["id"] in lang_in]
    res["filter_removed_originals"] = ratio(sum(r["id"] not in filt_kept for r in clean), len(clean))

    dd_in, dd_kept, dd_removed = stage_io(out, "dedup")
    for cat in ("exact_dup", "near_dup"):
        pairs = [r for r in by_cat.get(cat, []) if r["id"] in dd_in and r["original_id"] in dd_in]
        groups = [("", pairs)]
        if cat == "near_dup":
            groups += [(f"_j{t}", [r for r in pairs if r["target_jaccard"] == t]) for t in (0.95, 0.9, 0.85, 0.7)]
        for suffix, sub in groups:
            found = sum(not (r["id"] in dd_kept and r["original_id"] in dd_kept) for r in sub)
            res[f"dedup_{cat}{suffix}"] = ratio(found, len(sub))
    has_copy = {r["original_id"] for r in gt if r["original_id"]}
    lone = [r for r in gt if r["category"] in ("original", "pii", "bench") and r["id"] not in has_copy]
    lone = [r for r in lone if r["id"] in dd_in]
    res["dedup_removed_without_copy"] = ratio(sum(r["id"] in dd_removed for r in lone), len(lone))

    pii_in, _, _ = stage_io(out, "pii")
    docs = {r["id"]: r for r in by_cat.get("pii", []) if r["id"] in pii_in}
    texts: dict[str, str] = {}
    for f in sorted((out / "pii" / "kept").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "text"], filters=[("id", "in", list(docs))] if docs else None)
        texts.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True))
    per_type: dict[str, list[int]] = {}
    for pid, r in docs.items():
        text = texts.get(pid)
        if text is None:  # removed by pii (max_per_doc): its values are not in the corpus any more
            text = ""
        for kind, value in zip(r["pii_types"], r["pii_values"], strict=True):
            c = per_type.setdefault(kind, [0, 0])
            c[0] += value not in text
            c[1] += 1
    res["pii_values"] = ratio(sum(c[0] for c in per_type.values()), sum(c[1] for c in per_type.values()))
    for kind, (a, b) in sorted(per_type.items()):
        res[f"pii_{kind}"] = ratio(a, b)

    dc_in, dc_kept, dc_removed = stage_io(out, "decontam")
    bench = [r for r in by_cat.get("bench", []) if r["id"] in dc_in]
    res["decontam_items"] = ratio(sum(r["id"] in dc_removed for r in bench), len(bench))
    bench_ids = {r["id"] for r in by_cat.get("bench", [])}
    others = len(dc_in) - len(bench)
    res["decontam_removed_others"] = ratio(sum(i not in bench_ids for i in dc_removed), others)
    return res


# ----------------------------------------------------------------------------------------------- tables


def _gb(r: dict) -> float:
    return r["manifest"]["text_bytes"] / 1e9


def render(results: list[dict]) -> str:
    """Markdown tables of several runs (one per corpus size): per stage, dedup phases, growth, recall."""
    results = sorted(results, key=_gb)
    m = results[0]["machine"]
    lines = [
        f"Machine: {m['cpu']}, nproc {m['nproc']}, {m['ram_gb']} GB RAM, Python {m['python']}; "
        f"{results[0]['tasks']} tasks per stage, {results[0]['workers']} workers.",
        "",
        "| stage | corpus | docs in | input MB | wall s | wall s per GB of input | MB/s per worker | CPU s "
        "| CPU s per GB of input | worker peak RSS MB | pipeline process peak RSS MB | disk written MB "
        "| load avg before -> after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    growth = []
    for stage in STAGES:
        per_size = []
        for r in results:
            rows = {s["stage"]: s for s in r.get("stages", [])}
            if stage not in rows:
                continue
            s = rows[stage]
            prev = STAGES[STAGES.index(stage) - 1] if stage != "ingest" else None
            mb = (s["bytes_in"] or (rows.get(prev) or {}).get("bytes_kept") or 0) / 1e6
            per_gb = s["wall_s"] / (mb / 1000) if mb else float("nan")
            cpu_gb = s.get("cpu_s", float("nan")) / (mb / 1000) if mb else float("nan")
            per_size.append((r, s, per_gb, cpu_gb))
            lines.append(
                f"| {stage} | {_gb(r):.2f} GB | {s['docs_in'] or 0:,} | {mb:,.1f} | {s['wall_s']:,.1f} | {per_gb:,.0f} "
                f"| {mb / s['wall_s'] / r['workers']:.2f} | {s.get('cpu_s', float('nan')):,.1f} | {cpu_gb:,.0f} "
                f"| {s['worker_peak_rss_mb'] or '-'} | {s['main_peak_rss_mb']} "
                f"| {s['disk_mb']:,.1f} | {s['load_before']} -> {s['load_after']} |"
            )
        if len(per_size) >= 2:
            (r0, s0, g0, c0), (r1, s1, g1, c1) = per_size[0], per_size[-1]
            rss0 = max(s0["worker_peak_rss_mb"], s0["main_peak_rss_mb"])
            rss1 = max(s1["worker_peak_rss_mb"], s1["main_peak_rss_mb"])
            growth.append(
                f"| {stage} | {_gb(r0):.2f} -> {_gb(r1):.2f} GB | {g1 / g0:.2f} | {c1 / c0:.2f} "
                f"| {'yes' if c1 / c0 <= 1.25 else 'no'} "
                f"| {rss1 / rss0:.2f} | {'yes' if rss1 / rss0 <= 1.5 else 'no'} |"
            )
    lines += ["", "Dedup's phases, peak RSS per process (MB); `clusters` is one task, so it runs in the pipeline "
              "process (its column is that process's peak over the whole stage):", "",
              "| corpus | docs in | signatures (per worker) | buckets (per worker) | clusters (pipeline process) "
              "| filter (per worker) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in results:
        d = next((s for s in r.get("stages", []) if s["stage"] == "dedup"), None)
        if d:
            p = d["phase_peak_rss_mb"]
            lines.append(
                f"| {_gb(r):.2f} GB | {d['docs_in']:,} | {p.get('signatures', '-')} | {p.get('buckets', '-')} "
                f"| {d['main_peak_rss_mb']} | {p.get('filter', '-')} |"
            )
    lines += ["", "Growth from the smallest to the largest corpus (targets: time per GB within 1.25x, peak RSS "
              "within 1.5x; RSS is the larger of worker and pipeline process):", "",
              "| stage | sizes | wall s per GB, ratio | CPU s per GB, ratio | linear (CPU) | peak RSS, ratio | flat |",
              "| --- | --- | ---: | ---: | --- | ---: | --- |", *growth]  # fmt: skip
    keys = [k for k in results[-1].get("recall", {})]
    lines += ["", "Ground-truth recall (found / of, over the documents that reached the stage):", "",
              "| measure | " + " | ".join(f"{_gb(r):.2f} GB" for r in results) + " |",
              "| --- |" + " ---: |" * len(results)]  # fmt: skip
    for k in keys:
        cells = []
        for r in results:
            v = r.get("recall", {}).get(k)
            cells.append(f"{v['recall']:.3f} ({v['found']:,}/{v['of']:,})" if v and v["of"] else "-")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CORES_PER_NODE = 64
EFFICIENCY = 0.8  # share of a node's core-hours that does task work (stragglers, file-split imbalance, I/O waits)
BUCKET_BYTES_PER_DOC = 40  # a bucket task: key 8 B + node 8 B read, sort order 8 B, sorted copies 16 B
BUCKET_TASK_BUDGET = 1.5e9  # bytes of keys a bucket task may hold: bucket_parts is chosen to stay under it
# The clusters task's CPU and memory did not change measurably between 0.1 and 0.3 GB (fixed costs dominate), so
# its growth is estimated from its code, per document in a duplicate group (about 2 x the removed ones): Python
# dict entries and id strings (~500 B), and a few Python-level steps per node (~20 us). Estimates, not measurements.
CLUSTER_BYTES_PER_NODE = 500
CLUSTER_SECONDS_PER_NODE = 20e-6


def projection(results: list[dict], sizes_tb=(1, 10), nodes=(8, 32)) -> str:
    """Hours per stage, dedup RAM per node and disk for sizes_tb on `nodes` nodes, from the largest measured run.
    CPU seconds (not wall time) are scaled: they are what the measured work costs whatever the machine's load."""
    results = sorted(results, key=_gb)
    big = results[-1]
    gb = _gb(big)
    rows = {s["stage"]: s for s in big["stages"]}
    doc_bytes = big["manifest"]["text_bytes"] / big["manifest"]["documents"]
    d_big = rows["dedup"]
    grouped_share = 2 * d_big["removed"] / big["manifest"]["documents"]  # documents in a group, per corpus document
    out = [
        "| stage | CPU s per GB of raw corpus (measured) | not spread over nodes | "
        + " | ".join(f"{t} TB on {n} nodes, h" for t in sizes_tb for n in nodes)
        + " | disk per TB, GB |",
        "| --- | ---: | --- |" + " ---: |" * (len(sizes_tb) * len(nodes)) + " ---: |",
    ]
    total_disk = 0.0
    totals = {(t, n): 0.0 for t in sizes_tb for n in nodes}
    for stage in STAGES:
        s = rows[stage]
        cells = []
        for t in sizes_tb:
            for n in nodes:
                size_gb = t * 1000
                if stage == "tokenizer":  # a fixed-size sample (tokenizer.sample_chars), not the corpus
                    h = s["cpu_s"] / 3600
                else:
                    h = s["cpu_s"] / gb * size_gb / (n * CORES_PER_NODE * EFFICIENCY) / 3600
                if stage == "dedup":  # plus the one clusters task, which does not spread over nodes
                    h += CLUSTER_SECONDS_PER_NODE * grouped_share * t * 1e12 / doc_bytes / 3600
                totals[(t, n)] += h
                cells.append(f"{h:,.1f}")
        disk = s["disk_mb"] / gb  # MB per GB = GB per TB
        if stage != "tokenizer":  # the tokenizer writes its model and a fixed-size sample, whatever the corpus
            total_disk += disk
        note = {"dedup": "clusters (1 task)", "tokenizer": "all (1 task, fixed sample)"}.get(stage, "none")
        disk_cell = f"{s['disk_mb'] / 1000:.2f} (fixed)" if stage == "tokenizer" else f"{disk:,.0f}"
        out.append(f"| {stage} | {s['cpu_s'] / gb:,.0f} | {note} | " + " | ".join(cells) + f" | {disk_cell} |")
    out.append(
        "| **flow** | | | " + " | ".join(f"**{totals[k]:,.1f}**" for k in totals) + f" | **{total_disk:,.0f}** |"
    )
    out += ["", "| corpus | documents | bucket_parts | bucket task RAM | buckets: RAM per node (64 tasks at once) "
            "| clusters task RAM (estimate) | signatures/filter: RAM per node |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    worker = max(d_big["phase_peak_rss_mb"].get(p, 0) for p in ("signatures", "filter")) / 1000
    base = d_big["phase_peak_rss_mb"].get("buckets", 250) / 1000
    for t in sizes_tb:
        docs = t * 1e12 / doc_bytes
        parts = max(1, int(np.ceil(BUCKET_BYTES_PER_DOC * docs / BUCKET_TASK_BUDGET)))
        task_gb = base + BUCKET_BYTES_PER_DOC * docs / parts / 1e9
        clusters_gb = (d_big["main_peak_rss_mb"] * 1e6 + CLUSTER_BYTES_PER_NODE * grouped_share * docs) / 1e9
        out.append(
            f"| {t} TB | {docs / 1e6:,.0f} M | {parts} | {task_gb:.1f} GB | {task_gb * CORES_PER_NODE:,.0f} GB "
            f"| {clusters_gb:,.0f} GB | {worker * CORES_PER_NODE:,.0f} GB |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, help="folder written by bench/make_corpus.py")
    ap.add_argument("--workdir", type=Path, help="run folder (outside the repository)")
    ap.add_argument("--table", type=Path, nargs="+", help="only render the tables of these result JSON files")
    ap.add_argument("--benchmarks", type=Path, help="with --table: write them as a section of this BENCHMARKS.md")
    ap.add_argument("--section-intro", help="with --benchmarks: text put before the tables")
    ap.add_argument("--section-outro", help="with --benchmarks: text put between the tables and the projection")
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run, in order")
    ap.add_argument("--out", type=Path, help="JSON file for the results")
    ap.add_argument("--report-only", action="store_true", help="do not run; recompute recall and disk")
    args = ap.parse_args()
    if args.table:
        results = [json.loads(p.read_text()) for p in args.table]
        text = render(results)
        proj = projection(results) if len(results) >= 2 else ""
        print(text + "\n\n" + proj)
        if args.benchmarks:
            from common import write_section  # bench/ is on sys.path when run as a script

            heading = "## Scale: the whole flow at growing corpus sizes"
            parts = [heading, args.section_intro or "", text, args.section_outro or "", proj]
            write_section(args.benchmarks, heading, "\n\n".join(p.strip("\n") for p in parts if p) + "\n")
        return 0
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    result = json.loads(args.out.read_text()) if args.report_only and args.out and args.out.exists() else {}
    result.update(corpus=str(args.corpus), manifest=manifest, machine=machine(), tasks=args.tasks,
                  workers=args.workers)  # fmt: skip
    cfg = make_config(args.corpus, args.workdir)
    if not args.report_only:
        result["stages"] = []
        for stage in args.stages.split(","):
            row = run_stage(cfg, stage, args.tasks, args.workers)
            print(json.dumps(row), flush=True)
            result["stages"].append(row)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if set(STAGES[:6]) <= {s["stage"] for s in result.get("stages", [])}:
        result["recall"] = recall(args.corpus, args.workdir / "out")
        print(json.dumps(result["recall"], indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
