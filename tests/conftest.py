"""Shared fixtures: real text from the bundled sample corpus, and configs written into a temp folder."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"


# A `pipeline` command in a fresh interpreter that records the stack of the first `import pandas` (then steps
# aside: the import goes on) and prints, as its last line, its exit code, those stacks and which of
# WATCHED_IMPORTS it loaded: the no-pandas tests of the stages and of ingest's id_field path.
WATCHED_IMPORTS = ("pandas", "pyarrow.dataset", "pyarrow.acero", "warcio", "stages.formats.arxiv")
_IMPORT_RECORDING_RUN = f"""
import json, sys, traceback
stacks = []
class PandasImport:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            stacks.append("".join(traceback.format_stack()))
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, PandasImport())
from pipeline.cli import main
rc = main(sys.argv[1:])
loaded = sorted(m for m in {WATCHED_IMPORTS!r} if m in sys.modules)
print(json.dumps({{"rc": rc, "loaded": loaded, "stacks": stacks}}))
"""


def pipeline_run_recording_imports(*args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`pipeline <args>` in a fresh interpreter: the finished process and its record (None if it printed none)."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_RECORDING_RUN, *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    lines = done.stdout.splitlines()
    return done, (json.loads(lines[-1]) if done.returncode == 0 and lines else None)


def write_config(folder: Path, body: str, *, tasks: int = 2, workers: int = 1) -> Path:
    """A pipeline.toml in `folder` with the given sources/sections and a workdir inside the folder."""
    path = folder / "pipeline.toml"
    path.write_text(
        f'[run]\nworkdir = "out"\n\n[executor]\ntasks = {tasks}\nworkers = {workers}\n\n{body}\n', encoding="utf-8"
    )
    return path


@pytest.fixture(scope="session")
def zh_docs() -> list[str]:
    """Real Chinese documents from the sample corpus (books_zh)."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["content"] for line in f]
    return docs[:40]


@pytest.fixture(scope="session")
def en_docs() -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()[:20]
