"""Peak traced allocation of dedup's clusters (and keepers) step per grouped document, on the run folder of a
finished dedup (tracemalloc sees NumPy's buffers, not Arrow's). With PYTHONPATH=<a git archive of older code> it
measures that code's clusters step on a folder that code wrote.

    .venv/bin/python bench/clusters_mem.py /tmp/dedup_bench/base-default
"""

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse.csgraph  # noqa: F401  imported before tracing, so its module allocations are not counted

from pipeline.config import load_config
from stages import dedup

folder = Path(sys.argv[1])
cfg = load_config(folder / "pipeline.toml", check_paths=False)
work = folder / "out" / "dedup" / "work"
tasks = len(list((work / "ids").glob("*.parquet")))  # signature tasks of that run
if hasattr(dedup, "DedupKeepers"):
    steps = [dedup.DedupClusters(work, tasks, cfg.stages.dedup), dedup.DedupKeepers(work, tasks)]
else:
    steps = [dedup.DedupClusters(work, tasks, cfg.stages.dedup.verify, cfg.stages.dedup.verify_threshold)]
for step in steps:
    tracemalloc.start()
    list(step.run(None, 0, 1))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    acc = np.load(work / "accepted_pairs.npy")
    ex = [np.load(f) for f in (work / "pairs").rglob("exact*.npy")]
    grouped = len(np.unique(np.concatenate([acc, *ex]).ravel()))
    print(type(step).__name__, f"peak {peak / 1e6:.2f} MB, grouped documents {grouped}, {peak / grouped:.0f} B each")
