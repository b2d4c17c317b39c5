"""huggingface_hub's network stack stays out of a stage run, and is the real one for anyone who uses it
(pipeline/hf_deferred.py).

Each check runs in a fresh interpreter from the repository root, so what this test process imported does not count.
HF_HUB_OFFLINE keeps huggingface_hub from the network (building an HfFileSystem does not need it).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO, SAMPLE, write_config

# what a stage run must not import: huggingface_hub's API client and fsspec filesystem, and its HTTP stack
# (not ssl: fsspec imports asyncio, which imports ssl)
NETWORK = ["huggingface_hub.hf_api", "huggingface_hub.hf_file_system", "huggingface_hub._commit_api"]
NETWORK += ["huggingface_hub.errors", "httpx2", "httpcore2", "anyio"]


def _run(script: str) -> dict:
    """Runs `script` in a fresh interpreter; it prints one JSON object last. `loaded()` lists NETWORK modules."""
    prelude = (
        f"import json, sys\nNETWORK = {NETWORK!r}\ndef loaded():\n    return [m for m in NETWORK if m in sys.modules]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.splitlines()[-1]), "stderr": done.stderr}


def test_a_stage_run_imports_no_network_stack_and_then_the_real_classes_still_come(tmp_path):
    """Ingest then langid on 20 sample books in one process: both finish, nothing of NETWORK is imported, and
    datatrove's modules hold the stand-ins; then a direct import of huggingface_hub's names gives the real objects,
    and from then on datatrove's modules hold those same real objects."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        (tmp_path / "books.jsonl").write_text("".join(next(f) for _ in range(20)), encoding="utf-8")
    body = '[[sources]]\nname = "books"\npath = "books.jsonl"\nformat = "jsonl"\ntext_field = "content"\n'
    config = write_config(tmp_path, body, tasks=1, workers=1)
    out = _run(
        f"""
        from pipeline.cli import main
        rcs = [main(["run", stage, "--config", "{config}"]) for stage in ("ingest", "langid")]
        import datatrove.io as dio
        import datatrove.pipeline.writers.huggingface as hfw
        after_run = loaded()
        held = [dio.HfFileSystem.__module__, hfw.create_commit.__module__, hfw.HfHubHTTPError.__module__]

        from huggingface_hub import CommitOperationAdd, HfFileSystem, create_commit
        from huggingface_hub.utils import HfHubHTTPError
        import huggingface_hub.errors, huggingface_hub.hf_file_system

        real = [
            HfFileSystem is huggingface_hub.hf_file_system.HfFileSystem,
            HfHubHTTPError is huggingface_hub.errors.HfHubHTTPError,
            CommitOperationAdd.__module__ == "huggingface_hub._commit_api",
            create_commit.__module__ == "huggingface_hub.hf_api",
        ]
        same = [
            dio.HfFileSystem is HfFileSystem,
            hfw.create_commit is create_commit,
            hfw.CommitOperationAdd is CommitOperationAdd,
            hfw.HfHubHTTPError is HfHubHTTPError,
        ]
        print(json.dumps({{"rcs": rcs, "after_run": after_run, "held": held, "real": real, "same": same}}))
        """
    )
    assert out["rcs"] == [0, 0] and "langid: done" in out["stderr"]
    assert out["after_run"] == []
    assert out["held"] == ["pipeline.hf_deferred"] * 3  # the stand-ins, while nothing loaded the real modules
    assert out["real"] == [True] * 4
    assert out["same"] == [True] * 4


def test_forkserver_workers_import_no_network_stack_either(tmp_path):
    """Two tasks on two forkserver workers: the workers fork from a server that imported `pipeline` first, so no
    process of the command imports hf_api (-X importtime, inherited by every process through the environment,
    prints a line for each module any of them imports)."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        (tmp_path / "books.jsonl").write_text("".join(next(f) for _ in range(20)), encoding="utf-8")
    body = '[[sources]]\nname = "books"\npath = "books.jsonl"\nformat = "jsonl"\ntext_field = "content"\n'
    config = write_config(tmp_path, body, tasks=2, workers=2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPROFILEIMPORTTIME": "1"}
    for stage in ("ingest", "langid"):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", stage, "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{stage}: done: 20 in" in done.stderr
        imported = {
            line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
        }
        assert "stages.langid" in imported or stage == "ingest"  # the workers' imports are in the log
        assert imported.isdisjoint(NETWORK), sorted(imported & set(NETWORK))


def test_an_hf_path_gets_the_real_filesystem_and_datatrove_recognises_it():
    """With pipeline imported first: an `hf://` DataFolder is a real HfFileSystem (fsspec's registry imports it),
    datatrove's `isinstance` check is True for it and False for the local filesystem, before and after."""
    out = _run(
        """
        import pipeline
        import datatrove.io as dio
        local = dio.get_datafolder("/tmp")
        before = [isinstance(dio._get_true_fs(local.fs), dio.HfFileSystem), loaded()]
        hf = dio.get_datafolder("hf://datasets/someone/some-data")
        import huggingface_hub
        checks = [
            type(hf.fs) is huggingface_hub.HfFileSystem,
            isinstance(dio._get_true_fs(hf.fs), dio.HfFileSystem),
            not isinstance(dio._get_true_fs(local.fs), dio.HfFileSystem),
            dio.HfFileSystem is huggingface_hub.HfFileSystem,
        ]
        print(json.dumps({"before": before, "checks": checks}))
        """
    )
    assert out["before"] == [False, []]
    assert out["checks"] == [True] * 4


def test_calling_a_stand_in_calls_the_real_object():
    """`datatrove.io.HfFileSystem()` before anything loaded the real class builds a real HfFileSystem and puts the
    real class in datatrove.io; an `except` on the exception stand-in matches nothing else; `issubclass` answers for
    the real class."""
    out = _run(
        """
        import pipeline
        import datatrove.io as dio
        import datatrove.pipeline.writers.huggingface as hfw
        try:
            raise OSError("not an HF error")
        except hfw.HfHubHTTPError:
            caught = "stand-in"
        except OSError:
            caught = "OSError"
        fs = dio.HfFileSystem()
        import huggingface_hub.hf_file_system as real
        print(json.dumps({
            "caught": caught,
            "type": type(fs) is real.HfFileSystem,
            "replaced": dio.HfFileSystem is real.HfFileSystem,
            "protocol": dio.HfFileSystem.protocol == real.HfFileSystem.protocol,
        }))
        """
    )
    assert out == {**out, "caught": "OSError", "type": True, "replaced": True, "protocol": True}


def test_datatrove_imported_before_pipeline_is_left_alone():
    """When datatrove.io is loaded before `pipeline`, the finder is not installed and datatrove holds the real class."""
    out = _run(
        """
        import datatrove.io as dio
        import pipeline
        from pipeline import hf_deferred
        import huggingface_hub.hf_file_system as real
        finders = [type(f).__name__ for f in sys.meta_path if type(f).__module__ == "pipeline.hf_deferred"]
        print(json.dumps({"real": dio.HfFileSystem is real.HfFileSystem, "finders": finders}))
        """
    )
    assert out["real"] is True and out["finders"] == []
