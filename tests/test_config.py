"""Config loading: every problem is an error naming the file and the key, raised before any work starts."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tomllib
import typing

import pytest
from pydantic import BaseModel

from pipeline.cli import main
from pipeline.config import Config, ConfigError, load_config
from pipeline.config_toml import field_doc, to_toml
from tests.conftest import REPO, write_config

SOURCE = """
[[sources]]
name = "books"
path = "books.jsonl"
format = "jsonl"
"""


@pytest.fixture
def cfg_path(tmp_path):
    (tmp_path / "books.jsonl").write_text('{"text": "你好，世界。"}\n', encoding="utf-8")
    return write_config(tmp_path, SOURCE)


def error_of(path, overrides=(), **kw) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides, **kw)
    return str(e.value)


def test_repo_config_is_valid():
    cfg = load_config(REPO / "pipeline.toml")
    assert cfg.stages.ingest.enabled
    assert [s.name for s in cfg.sources] == [
        *("books_zh", "web", "articles_en", "notes_zh", "code"),
        *("wiki_en", "papers", "pdf_zh", "ebooks"),
    ]
    assert cfg.stages.langid.keep == ["zh", "en"]
    assert cfg.model.preset == "tiny"
    assert cfg.train.pretrain.out and cfg.train.sft.out and cfg.train.dpo.out
    # relative paths resolve against the config file's folder, not the current directory
    assert cfg.workdir == (REPO / "out").resolve()


def test_unknown_key_names_key_and_file(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + "\n[stages.ingest]\nunicode_from = 'NFC'\n")
    msg = error_of(cfg_path)
    assert "stages.ingest.unicode_from" in msg and "unknown key" in msg and str(cfg_path) in msg


def test_unknown_top_level_section(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + "\n[executer]\ntasks = 3\n")
    assert "executer: unknown key" in error_of(cfg_path)


def test_wrong_type(cfg_path):
    msg = error_of(cfg_path, ["executor.tasks=many"])
    assert "executor.tasks" in msg and "integer" in msg


def test_negative_workers(cfg_path):
    msg = error_of(cfg_path, ["executor.workers=-2"])
    assert "executor.workers" in msg and "greater than or equal to 1" in msg


def test_threshold_outside_unit_interval(cfg_path):
    assert "stages.langid.min_score" in error_of(cfg_path, ["stages.langid.min_score=1.5"])
    assert "tokens.valid_fraction" in error_of(cfg_path, ["tokens.valid_fraction=-0.1"])


def test_missing_input_path_names_source(cfg_path):
    msg = error_of(cfg_path, ["sources.0.path=nowhere/*.jsonl"])
    assert "sources.0.path" in msg and "books" in msg
    msg = error_of(cfg_path, ["sources.0.path=missing.jsonl"])
    assert "missing.jsonl" in msg and "does not exist" in msg


def test_bad_enum_and_missing_required(cfg_path):
    assert "sources.0.format" in error_of(cfg_path, ["sources.0.format=xml"])
    cfg_path.write_text(cfg_path.read_text().replace('format = "jsonl"\n', ""))
    msg = error_of(cfg_path)
    assert "sources.0.format" in msg and "required key is missing" in msg


def test_duplicate_source_names(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + SOURCE)
    assert "used twice" in error_of(cfg_path)


def test_slurm_needs_partition(cfg_path):
    assert "partition" in error_of(cfg_path, ["executor.kind=slurm"])
    cfg = load_config(cfg_path, ["executor.kind=slurm", "executor.slurm.partition=cpu"])
    assert cfg.executor.slurm.partition == "cpu"


def test_overrides_are_typed_and_validated(cfg_path):
    cfg = load_config(
        cfg_path,
        [
            "executor.tasks=7",
            "stages.langid.keep=['zh']",
            "sources.0.kind=code",
            "run.workdir=/tmp/elsewhere",
            "model.preset=125m",
        ],
    )
    assert cfg.executor.tasks == 7
    assert cfg.stages.langid.keep == ["zh"]
    assert cfg.sources[0].kind == "code"
    assert str(cfg.workdir) == "/tmp/elsewhere"
    assert "model.preset" in error_of(cfg_path, ["model.preset=huge"])
    assert "expected key=value" in error_of(cfg_path, ["executor.tasks"])
    assert "not an index" in error_of(cfg_path, ["sources.3.kind=code"])
    assert "stages.nope: unknown key" in error_of(cfg_path, ["stages.nope.enabled=true"])


def test_invalid_toml_names_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[run\nworkdir = 1\n")
    assert "bad.toml: not valid TOML" in error_of(p)


def test_cli_rejects_bad_config_before_any_work(cfg_path):
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "ingest", "--config", str(cfg_path), "--set", "executor.workers=0"],
        capture_output=True,
        text=True,
        cwd=cfg_path.parent,
    )
    assert r.returncode == 2
    assert "executor.workers" in r.stderr and str(cfg_path) in r.stderr
    assert not (cfg_path.parent / "out").exists()


def test_demo_reads_its_argv_not_sys_argv(monkeypatch, capsys):
    """`demo.main(argv)` takes its overrides from argv (pytest's own sys.argv holds none of them)."""
    from pipeline import demo

    monkeypatch.chdir(REPO)
    assert demo.main(["executor.workers=-1", "--no-train"]) == 2  # refused by validation, before any work
    err = capsys.readouterr().err
    assert "executor.workers" in err and "greater than or equal to 1" in err


# ---------------------------------------------------------------------------------------------------------------
# Defaults live in the code: pipeline.toml keeps what the sample run sets, `pipeline config` prints the rest.

FULL_CONFIG = REPO / "tests" / "fixtures" / "pipeline_full.toml"  # pipeline.toml before it was trimmed: every key


def config_output(args: list[str], capsys) -> str:
    assert main(["config", *args]) == 0
    return capsys.readouterr().out


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    """Every key of a config model as (dotted key, its documentation), tables and arrays of tables walked into."""
    keys = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        if typing.get_origin(sub) is list and isinstance(typing.get_args(sub)[0], type):
            sub = typing.get_args(sub)[0]
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += leaf_keys(sub, f"{prefix}{name}.")
        else:
            keys.append((f"{prefix}{name}", field_doc(model, name)))
    return keys


def config_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """`model` and every model its fields hold, at any depth (tables, arrays of tables, unions)."""
    found = {model}
    todo = [info.annotation for info in model.model_fields.values()]
    while todo:
        t = todo.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            if t not in found:
                found |= config_models(t)
        else:
            todo += typing.get_args(t)
    return found


def test_field_doc_is_what_pydantic_reads_as_the_attribute_docstring():
    """field_doc parses the docs only when `pipeline config` prints them; pydantic's own extraction, which
    `use_attribute_docstrings` ran for every config class at every process start, gives the same text for every
    field every config class declares (inherited fields are documented where they are declared)."""
    from pydantic._internal._docs_extraction import extract_docstrings_from_cls  # the reference, pydantic's

    models = {base for m in config_models(Config) for base in m.__mro__ if issubclass(base, BaseModel)} - {BaseModel}
    assert len(models) > 40  # StrictModel and StageConfig declare fields too (`enabled`)
    for model in models:
        declared = [n for n in vars(model).get("__annotations__", {}) if n in model.model_fields]
        expected = extract_docstrings_from_cls(model, use_inspect=True)
        assert {n: field_doc(model, n) for n in declared} == {n: expected.get(n) for n in declared}, model


def test_trimmed_pipeline_toml_gives_the_same_config_as_the_full_one():
    """Every value the full, commented pipeline.toml documented (most of them equal to a code default) still holds,
    so a code default that drifts from the documented one fails here."""
    trimmed = load_config(REPO / "pipeline.toml")
    full = load_config(FULL_CONFIG, check_paths=False)
    assert trimmed.model_dump() == full.model_dump()
    assert len(leaf_keys(Config)) > 200 and len(REPO.joinpath("pipeline.toml").read_text().splitlines()) < 179


def test_every_config_key_and_table_is_documented_in_its_model():
    undocumented = [key for key, doc in leaf_keys(Config) if not (doc or "").strip()]
    assert undocumented == []
    tables = {key.rsplit(".", 1)[0] for key, _ in leaf_keys(Config) if "." in key}
    text = to_toml(Config(), "defaults")
    for table in tables:  # each table header (or, for an empty array of tables, its example) follows its docs
        header = next(
            line for line in text.splitlines() if line.lstrip("# ").startswith((f"[{table}]", f"[[{table}]]"))
        )
        before = text.splitlines()[text.splitlines().index(header) - 1]
        assert before.startswith("# ") and not before.startswith("# ["), table


def test_config_defaults_is_toml_of_the_code_defaults(capsys):
    text = config_output(["--defaults"], capsys)
    assert Config.model_validate(tomllib.loads(text)).model_dump() == Config().model_dump()
    # every key appears, set (`key = `) or, when unset by default, commented out (`# key = `), after its docs
    lines = text.splitlines()
    for key, doc_text in leaf_keys(Config):
        name = key.rsplit(".", 1)[-1]
        at = [i for i, line in enumerate(lines) if re.match(rf"^(# )?{name} = ", line)]
        assert at, key
        doc = [f"# {line}".rstrip() for line in inspect.cleandoc(doc_text).splitlines()]
        assert any(lines[i - len(doc) : i] == doc for i in at), key
    assert 'segmenter = "jieba-rs"' in lines and "# max_per_doc = (unset)" in lines
    assert "[stages.filter.en.gopher_quality]" in lines and "# [[sources]]" in text


def test_config_prints_the_effective_config_after_set(capsys):
    text = config_output(["--config", str(REPO / "pipeline.toml"), "--set", "executor.tasks=8"], capsys)
    shown = Config.model_validate(tomllib.loads(text))
    assert shown.executor.tasks == 8 and [s.name for s in shown.sources][0] == "books_zh"
    expected = load_config(REPO / "pipeline.toml", ["executor.tasks=8"])
    assert shown.model_dump() == expected.model_dump()
    assert shown.stages.decontam.enabled and shown.train.pretrain.lr == 3e-3  # set by pipeline.toml
    assert shown.stages.filter.zh.min_entropy == 3.0  # a default the file leaves out


def test_config_defaults_takes_no_overrides(capsys):
    assert main(["config", "--defaults", "--set", "executor.tasks=8"]) == 2
    assert "takes no --set" in capsys.readouterr().err


def test_config_output_round_trips_awkward_values(cfg_path, capsys):
    """Quotes, backslashes, newlines, DEL, non-ASCII text, keys that need quoting and float edge cases survive."""
    overrides = [
        'run.workdir="out \\"q\\" \\\\ 语料\\n\\u007f"',
        'executor.slurm.sbatch_args={ "mail.type" = "END", account = "p 1" }',
        "stages.pii.placeholders={ email = '<电子邮件>' }",
        "train.pretrain.eps=1e-300",
        "stages.langid.min_score={ zh = 0.0, en = 1.0 }",
    ]
    text = config_output(["--config", str(cfg_path), *[a for o in overrides for a in ("--set", o)]], capsys)
    shown = Config.model_validate(tomllib.loads(text))
    assert shown.model_dump() == load_config(cfg_path, overrides, check_paths=False).model_dump()
    assert shown.run.workdir == 'out "q" \\ 语料\n\x7f' and shown.executor.slurm.sbatch_args["mail.type"] == "END"
