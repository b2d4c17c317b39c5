"""Loading and validating `pipeline.toml`.

The whole file is validated before any work starts: an unknown key, a wrong type, a missing input path or an
impossible value is a `ConfigError` naming the file and the dotted key. `--set a.b=value` overrides go through the
same validation. Relative paths are resolved against the folder of the config file.
"""

from __future__ import annotations

import codecs
import copy
import datetime
import glob
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

# The stage config classes from stages/config/, not from the stage modules: loading a config imports no stage's
# libraries (stages/base.py's docstring; BENCHMARKS.md, "Fourth pass: process start").
from stages.config.base import StageConfig
from stages.config.base import StrictModel as _Strict
from stages.config.decontam import DecontamConfig
from stages.config.dedup import DedupConfig
from stages.config.filter import FilterConfig
from stages.config.ingest import IngestConfig
from stages.config.langid import LangidConfig
from stages.config.pii import PiiConfig
from stages.config.quality import QualityConfig
from stages.config.tokenize import TokensConfig
from stages.config.tokenizer import TokenizerConfig
from train.config import EvalSection, ModelSection, TrainSection

STAGE_ORDER = ["ingest", "langid", "filter", "quality", "dedup", "pii", "decontam", "tokenizer", "tokenize"]


class ConfigError(Exception):
    """A config problem, with the file and the key it concerns."""


class RunSection(_Strict):
    """Where every output goes, and the seed."""

    workdir: str = "out"
    """Folder for every stage's output: `<workdir>/<stage>/kept`, `removed`, `stats.json` (not empty: use "." for
    the config file's folder)."""

    @field_validator("workdir")
    @classmethod
    def _workdir_not_empty(cls, v: str):
        # "" resolves to the config file's folder: stage folders would be written among the user's files unasked
        if not v.strip():
            raise ValueError('run.workdir is empty; name a folder (use "." for the config file\'s own folder)')
        return v

    seed: int = 1234
    """Seed for everything sampled (held-out splits, tokenizer samples, training order)."""


class SlurmSettings(_Strict):
    """Used when executor.kind = "slurm"; passed to datatrove's SlurmPipelineExecutor."""

    partition: str = ""
    """Slurm partition; required when executor.kind = "slurm"."""
    time: str = "24:00:00"
    """Job time limit, HH:MM:SS."""

    @field_validator("time", mode="before")
    @classmethod
    def _time_as_text(cls, v):
        return v.strftime("%H:%M:%S") if isinstance(v, datetime.time) else v

    cpus_per_task: int = Field(1, ge=1)
    """CPUs per array task."""
    mem_per_cpu_gb: float = Field(2, gt=0)
    """Memory per CPU, in GB."""
    qos: str = "normal"
    """Slurm quality of service."""
    job_name: str = "mapcc"
    """Each stage's job is named <job_name>-<stage>-<phase>."""
    venv_path: str | None = None
    """Virtual environment activated in each job (the path of its bin/activate)."""
    env_command: str | None = None
    """Shell command run in each job before the task, e.g. "module load python"."""
    sbatch_args: dict[str, str] = Field(default_factory=dict)
    """Extra #SBATCH options, e.g. { account = "proj123" }."""
    max_array_size: int = Field(1001, ge=1)
    """The cluster's MaxArraySize: longer job arrays are split."""


class RaySettings(_Strict):
    """Used when executor.kind = "ray" (pip install 'mapcc[ray]')."""

    cpus_per_task: int = Field(1, ge=1)
    """CPUs Ray reserves per task."""
    mem_per_cpu_gb: float = Field(2, gt=0)
    """Memory per CPU Ray reserves, in GB."""
    address: str | None = None
    """`ray.init(address=...)`; None joins the running cluster ("auto", started with `ray start --head`) and fails if
    there is none; "local" starts a private instance for one command."""


class ExecutorSection(_Strict):
    """Which datatrove executor runs the stages, split into how many tasks."""

    kind: Literal["local", "slurm", "ray"] = "local"
    """Which datatrove executor runs the stages: local | slurm | ray."""
    tasks: int = Field(2, ge=1)
    """Number of tasks each stage is split into (files are sharded across tasks)."""
    workers: int = Field(2, ge=1)
    """Tasks run at once (local: processes; slurm/ray: concurrent jobs)."""
    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    """local only: how worker processes start (forkserver | spawn | fork)."""
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _slurm_needs_partition(self):
        if self.kind == "slurm" and not self.slurm.partition:
            raise ValueError("executor.slurm.partition is required when executor.kind = 'slurm'")
        return self


class SourceSection(_Strict):
    """One `[[sources]]` table per input: a file, folder or glob in one format."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Unique name; becomes the `source` column and the first part of every document id."""
    path: str
    """A file, a folder (read recursively) or a glob, relative to the config file."""
    format: Literal["jsonl", "parquet", "warc", "text", "wikipedia", "arxiv", "pdf", "epub"]
    """jsonl (plain, .gz or .zst) | parquet | warc | text | wikipedia (MediaWiki XML dump, plain or bz2) | arxiv
    (LaTeX source: a .tar.gz per paper or a folder) | pdf | epub."""
    text_field: str = "text"
    """jsonl/parquet: the field holding the text."""
    id_field: str | None = None
    """jsonl/parquet: the field holding a document id; unset: ids are <source>:<file>:<line or record>."""
    url_field: str | None = None
    """jsonl/parquet: the field holding the URL; unset: no URL."""
    kind: Literal["text", "code"] = "text"
    """text | code: code documents skip langid and the language filters, and get the code rules instead."""
    weight: float = Field(1.0, ge=0)
    """Mixture weight used when sampling for the tokenizer and training."""
    text_mode: Literal["file", "blocks", "chapter"] = "file"
    """format = "text": one document per file, or one per blank-line-separated block; format = "epub": one per
    book ("file") or one per chapter ("chapter")."""
    wiki_variant: Literal["zh-hans", "zh-hant", "zh-cn", "zh-tw", "zh-hk", "zh-sg", "zh-mo", "zh-my"] | None = None
    """format = "wikipedia": the script variant that Chinese Wikipedia's -{zh-hans:...;zh-hant:...}- markup is
    resolved to (none: the markup is left as it is)."""
    glob: str | None = None
    """Only files matching this pattern, relative to a folder `path`: "*.py" matches the top level only,
    "**/*.py" every subfolder too."""
    encoding: str | None = None
    """jsonl/text: the character encoding of the files when it is not UTF-8, e.g. "gb18030" (Python codec names);
    unset: UTF-8, and a line (jsonl) or file (text) that is not valid UTF-8 goes to removed/ as not_utf8."""

    @field_validator("name")
    @classmethod
    def _name_is_not_a_path_step(cls, v: str):
        # the name becomes a folder name (token shards per source): "." or ".." would write outside its folder
        if set(v) == {"."}:
            raise ValueError(f"source name {v!r} is not allowed: it names a folder step")
        return v

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None):
        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r} (a Python codec name, e.g. 'gb18030')") from None
        return v

    @model_validator(mode="after")
    def _options_fit_format(self):
        # a mode another format reads differently would otherwise be taken silently ("chapter" as "blocks")
        modes = {"text": ("file", "blocks"), "epub": ("file", "chapter")}.get(self.format, ("file",))
        if self.text_mode not in modes:
            raise ValueError(f"text_mode {self.text_mode!r} does not apply to format {self.format!r} (use {modes})")
        if self.wiki_variant and self.format != "wikipedia":
            raise ValueError(f"wiki_variant applies to format 'wikipedia' only, not {self.format!r}")
        if self.encoding and self.format not in ("jsonl", "text"):
            raise ValueError(f"encoding applies to formats 'jsonl' and 'text' only, not {self.format!r}")
        return self


class StagesSection(_Strict):
    """The corpus stages, in the order they run. Each is on unless its table says `enabled = false`."""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    langid: LangidConfig = Field(default_factory=LangidConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)


class AblateVariantSection(_Strict):
    """One extra `[[ablate.variants]]` entry: the final corpus of the config with `set` applied."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Its name: a folder under <workdir>/ablate/ and a row of the results."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Config keys (dotted, under `stages.` or `sources`) and their values, e.g. { "stages.dedup.enabled" = false }.
    Stages from the first one whose output changes are rerun in <workdir>/ablate/<name>/work; earlier ones reused."""


class AblateSection(_Strict):
    """`pipeline ablate`: the same model, seed and token budget trained on each variant of the corpus, compared on
    held-out text and the eval tasks (FineWeb's ablations)."""

    variants: list[str | AblateVariantSection] = Field(
        default_factory=lambda: ["ingest", "langid", "filter", "dedup", "final"]
    )
    """A corpus stage's kept output by name (ingest = the raw corpus; "final" = the last enabled corpus stage), or a
    table { name, set = {...} } for a config override."""
    tokens: int = Field(2_000_000, ge=1)
    """Training tokens per variant (and seed): the same budget for every variant."""
    heldout: list[str] = []
    """Held-out text files (.jsonl with `text` and optional `id`, `lang`; .txt blank-line blocks; .parquet); each
    gives a bits-per-byte figure named by its file stem. Rows found in any variant (by id or normalised text) are
    dropped and counted (or refused, see `overlap`)."""
    seeds: list[int] = [0]
    """Training seeds (model init and data order); with several, results are the mean and the spread (max - min)."""
    preset: str = "tiny"
    """Model preset of every ablation model ([model] keys still override its fields)."""
    tokenizer: str | None = None
    """SentencePiece model shared by every variant; default: the tokenizer stage's (trained on the final corpus)."""
    max_epochs: float = Field(4.0, gt=0)
    """A variant with fewer than tokens / max_epochs tokens trains max_epochs passes only; its row says `capped`."""
    eval_points: int = Field(5, ge=1)
    """Held-out evaluations per run, evenly spaced (the points of the bits-per-byte against tokens plot)."""
    max_items: int = Field(0, ge=0)
    """Items per eval task (eval.tasks) scored after training; 0: eval.max_items (0 there: all)."""
    overlap: Literal["drop", "error"] = "drop"
    """A held-out row also found in a variant: drop it (counted in results.json) or stop with an error."""

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, v: list[int]):
        if not v or len(set(v)) != len(v):
            raise ValueError("ablate.seeds must list at least one seed, each once")
        return v


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
    ablate: AblateSection = Field(default_factory=AblateSection)

    # Set by load_config; not TOML keys.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)
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
    quality = cfg.stages.quality
    if quality.enabled and quality.model and not cfg.path(quality.model).is_file():
        raise ConfigError(f"{cfg.file}: stages.quality.model: {str(cfg.path(quality.model))!r} does not exist")
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
