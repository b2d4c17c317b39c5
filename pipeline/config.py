"""Loading and validating `pipeline.toml`.

The whole file is validated before any work starts: an unknown key, a wrong type, a missing input path or an
impossible value is a `ConfigError` naming the file and the dotted key. `--set a.b=value` overrides go through the
same validation. Relative paths are resolved against the folder of the config file.
"""

from __future__ import annotations

import copy
import datetime
import glob
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.base import StageConfig
from stages.decontam import DecontamConfig
from stages.dedup import DedupConfig
from stages.filter import FilterConfig
from stages.ingest import IngestConfig
from stages.langid import LangidConfig
from stages.pii import PiiConfig
from stages.tokenize import TokensConfig
from stages.tokenizer import TokenizerConfig
from train.config import EvalSection, ModelSection, TrainSection

STAGE_ORDER = ["ingest", "langid", "filter", "dedup", "pii", "decontam", "tokenizer", "tokenize"]


class ConfigError(Exception):
    """A config problem, with the file and the key it concerns."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(_Strict):
    workdir: str = "out"
    """Folder for every stage's output: `<workdir>/<stage>/kept`, `removed`, `stats.json`."""
    seed: int = 1234
    """Seed for everything sampled (held-out splits, tokenizer samples, training order)."""


class SlurmSettings(_Strict):
    partition: str = ""
    time: str = "24:00:00"

    @field_validator("time", mode="before")
    @classmethod
    def _time_as_text(cls, v):
        return v.strftime("%H:%M:%S") if isinstance(v, datetime.time) else v

    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2, gt=0)
    qos: str = "normal"
    job_name: str = "mapcc"
    venv_path: str | None = None
    env_command: str | None = None
    sbatch_args: dict[str, str] = Field(default_factory=dict)
    max_array_size: int = Field(1001, ge=1)


class RaySettings(_Strict):
    cpus_per_task: int = Field(1, ge=1)
    mem_per_cpu_gb: float = Field(2, gt=0)
    address: str | None = None
    """`ray.init(address=...)`; None joins the running cluster ("auto", started with `ray start --head`) and fails if
    there is none; "local" starts a private instance for one command."""


class ExecutorSection(_Strict):
    kind: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(2, ge=1)
    """Number of tasks each stage is split into (files are sharded across tasks)."""
    workers: int = Field(2, ge=1)
    """Tasks run at once (local: processes; slurm/ray: concurrent jobs)."""
    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _slurm_needs_partition(self):
        if self.kind == "slurm" and not self.slurm.partition:
            raise ValueError("executor.slurm.partition is required when executor.kind = 'slurm'")
        return self


class SourceSection(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Unique name; becomes the `source` column and the first part of every document id."""
    path: str
    """A file, a folder (read recursively) or a glob, relative to the config file."""
    format: Literal["jsonl", "parquet", "warc", "text"]
    text_field: str = "text"
    id_field: str | None = None
    url_field: str | None = None
    kind: Literal["text", "code"] = "text"
    weight: float = Field(1.0, ge=0)
    """Mixture weight used when sampling for the tokenizer and training."""
    text_mode: Literal["file", "blocks"] = "file"
    """format = "text": one document per file, or one per blank-line-separated block."""
    glob: str | None = None
    """Only files matching this pattern, relative to a folder `path`: "*.py" matches the top level only,
    "**/*.py" every subfolder too."""


class StagesSection(_Strict):
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    langid: LangidConfig = Field(default_factory=LangidConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)


class Config(_Strict):
    run: RunSection = Field(default_factory=RunSection)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)
    sources: list[SourceSection] = Field(default_factory=list)
    stages: StagesSection = Field(default_factory=StagesSection)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)

    # Set by load_config; not TOML keys.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    _file: Path = Path("pipeline.toml")

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceSection]):
        seen = set()
        for s in sources:
            if s.name in seen:
                raise ValueError(f"source name {s.name!r} is used twice")
            seen.add(s.name)
        return sources

    @property
    def file(self) -> Path:
        return self._file

    def path(self, p: str | Path) -> Path:
        """`p` resolved against the config file's folder (absolute paths stay as they are)."""
        p = Path(p).expanduser()
        return p if p.is_absolute() else (self._file.parent / p).resolve()

    @property
    def workdir(self) -> Path:
        return self.path(self.run.workdir)

    def under_workdir(self, p: str | Path) -> Path:
        """`p` resolved against run.workdir (absolute paths stay): where `train.<mode>.out` folders live."""
        return Path(p) if Path(p).is_absolute() else self.workdir / p

    def stage_section(self, stage: str) -> StageConfig:
        if stage == "tokenizer":
            return self.tokenizer
        if stage == "tokenize":
            return self.tokens
        return getattr(self.stages, stage)


def _parse_value(raw: str) -> Any:
    """A `--set` value: any TOML literal (numbers, booleans, strings in quotes, arrays, inline tables);
    anything that is not valid TOML is taken as a bare string."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    # 02:00:00 or 2026-01-01 on a command line is meant as text (a Slurm time limit, a tag), not a TOML time
    return raw if isinstance(value, datetime.date | datetime.time) else value


def apply_override(data: dict, override: str, file: Path) -> None:
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected key=value (e.g. --set executor.tasks=4)")
    key, raw = override.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{file}: --set {key}: {'.'.join(parts[: i + 1])} is not an index of the list")
            node = node[int(part)]
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise ConfigError(f"{file}: --set {key}: {'.'.join(parts[: i + 1])} is a value, not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{file}: --set {key}: {last!r} is not an index of the list")
        node[int(last)] = _parse_value(raw)
    else:
        node[last] = _parse_value(raw)


def _loc(loc: tuple) -> str:
    """pydantic's error location as a dotted key, with list items named by index (sources.1.path)."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def format_validation_error(err: ValidationError, file: Path) -> str:
    lines = [f"{file}: invalid configuration"]
    for e in err.errors():
        key = _loc(e["loc"])
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"]
            if "input" in e and not isinstance(e["input"], dict | list):
                msg += f" (got {e['input']!r})"
        lines.append(f"  {key or '<top level>'}: {msg}")
    return "\n".join(lines)


def _check_paths(cfg: Config) -> None:
    for i, src in enumerate(cfg.sources):
        p = cfg.path(src.path)
        if glob.has_magic(str(src.path)):
            if not glob.glob(str(p), recursive=True):
                raise ConfigError(f"{cfg.file}: sources.{i}.path: no file matches {str(p)!r} (source {src.name!r})")
        elif not p.exists():
            raise ConfigError(f"{cfg.file}: sources.{i}.path: {str(p)!r} does not exist (source {src.name!r})")
    for i, b in enumerate(cfg.stages.decontam.benchmarks):
        if cfg.stages.decontam.enabled and not cfg.path(b.path).exists():
            raise ConfigError(
                f"{cfg.file}: stages.decontam.benchmarks.{i}.path: {str(cfg.path(b.path))!r} does not exist"
            )


def validate_data(data: dict, file: Path, check_paths: bool = True) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, file)) from None
    cfg._file = Path(file).resolve()
    if check_paths:
        _check_paths(cfg)
    return cfg


def load_config(
    path: str | Path = "pipeline.toml", overrides: list[str] | tuple = (), check_paths: bool = True
) -> Config:
    """Read, override and validate a config file. Raises ConfigError with the file and key on any problem."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    data = copy.deepcopy(data)
    for o in overrides:
        apply_override(data, o, file)
    return validate_data(data, file, check_paths=check_paths)
