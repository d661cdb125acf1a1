"""The nightly pipelines file (TOML): typed, validated on load, errors naming file/pipeline/field.

    [[pipeline]]
    name = "support-nightly"
    schedule = "30 2 * * *"                 # 5-field cron, UTC
    source = { type = "assemblyai", status = "completed" }   # or { type = "file", path = "..." }
    template = "call_analytics.j2"          # paths are relative to this file
    schema = "call_analytics.schema.json"
    model = "claude-sonnet-4-6"
    fallbacks = ["gemini-2.5-flash"]        # at most 2
    region = "us"                           # us | eu
    priority = 0                            # -4..4
    global_routing = true                   # send model_region "global" (cheaper)
    max_tokens = 4000
    variables = { team = "the support team" }
    report = { out_dir = "reports", fields = [{ path = "sentiment", kind = "enum" }] }

Every error comes back as one ``ConfigError`` listing each problem as
``pipelines.toml: pipeline 'support-nightly': field 'schedule': ...``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.errors import ConfigError
from worker.gateway.types import MAX_FALLBACKS, Region, residency_problem
from worker.nightly.cron import Cron, parse_cron

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
MAX_REPORTED_ERRORS = 20


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    return Path(context.get("base_dir", "."))


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    path = value if value.is_absolute() else _base_dir(info) / value
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path.resolve()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssemblyAISource(_Strict):
    """AssemblyAI's transcript list API: the transcripts created on the run date and the
    ``lookback_days`` before it that this pipeline has not taken yet, so one created on day D
    that completes after D's run is taken by a later night (once: ``pipeline_transcripts``)."""

    type: Literal["assemblyai"]
    status: Literal["completed"] = "completed"
    region: Region | None = None  # None: the pipeline's region
    lookback_days: int = Field(default=2, ge=0, le=30)


class FileSource(_Strict):
    """A file of transcript ids, one a line; ``{date}`` in the path becomes the run date."""

    type: Literal["file"]
    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str, info: ValidationInfo) -> str:
        return value if Path(value).is_absolute() else str(_base_dir(info) / value)

    def path_for(self, run_date_iso: str) -> Path:
        return Path(self.path.replace("{date}", run_date_iso))


Source = Annotated[AssemblyAISource | FileSource, Field(discriminator="type")]


# The kinds worker.reports.spec.FieldSpec aggregates (a unit test keeps the two lists equal).
ReportKind = Literal["enum", "number", "array_items", "boolean", "count"]


class FieldSpec(_Strict):
    """One field of the answers to aggregate in the report: a dotted path (``[]`` opens an
    array, as in ``action_items[].owner``) and how to aggregate it."""

    path: str = Field(min_length=1)
    kind: ReportKind
    label: str | None = None
    top: int = Field(default=10, ge=1)  # most frequent values shown (array_items)
    bins: int = Field(default=10, ge=1)  # histogram bins (number, count)
    minimum: float | None = None
    maximum: float | None = None


class ReportConfig(_Strict):
    out_dir: Path = Field(default=Path("reports"), validate_default=True)
    fields: list[FieldSpec] | None = None

    @field_validator("out_dir")
    @classmethod
    def _absolute(cls, value: Path, info: ValidationInfo) -> Path:
        return (value if value.is_absolute() else _base_dir(info) / value).resolve()


class Pipeline(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    schedule: str
    source: Source
    template: Path
    schema_path: Path = Field(alias="schema")
    model: str = Field(min_length=1)
    fallbacks: tuple[str, ...] = Field(default=(), max_length=MAX_FALLBACKS)
    region: Region = "us"
    priority: int = Field(default=0, ge=-4, le=4)
    global_routing: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    # The gateway's reasoning: an effort or a thinking-token cap (not both).
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    reasoning_max_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    report: ReportConfig

    @model_validator(mode="before")
    @classmethod
    def _default_report(cls, data: Any) -> Any:
        # Validated like a written table, so the default out_dir is relative to the file too.
        if isinstance(data, dict) and "report" not in data:
            return {**data, "report": {}}
        return data

    @model_validator(mode="after")
    def _residency(self) -> Pipeline:
        problem = residency_problem(self.region, self.global_routing)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        parse_cron(value)
        return value

    @field_validator("template", "schema_path")
    @classmethod
    def _file(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info)

    @field_validator("fallbacks")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("fallbacks repeat a model")
        return value

    @model_validator(mode="after")
    def _one_reasoning(self) -> Pipeline:
        if self.reasoning_effort is not None and self.reasoning_max_tokens is not None:
            raise ValueError("give reasoning_effort or reasoning_max_tokens, not both")
        return self

    @property
    def cron(self) -> Cron:
        return parse_cron(self.schedule)

    @property
    def source_region(self) -> Region:
        if isinstance(self.source, AssemblyAISource) and self.source.region:
            return self.source.region
        return self.region

    def out_dir(self, run_date_iso: str) -> Path:
        """Where the report of one night goes: ``<out_dir>/<pipeline>/<date>``."""
        return self.report.out_dir / self.name / run_date_iso


class NightlyConfig(_Strict):
    path: Path
    pipelines: dict[str, Pipeline]

    def get(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise ConfigError(f"{self.path}: no pipeline {name!r} (known: {known})") from None


def load_config(path: str | Path) -> NightlyConfig:
    """Read and validate the pipelines file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipelines config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: pipelines config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: Mapping[str, Any], path: Path) -> NightlyConfig:
    errors = [
        f"{path}: field {key!r}: unknown key (expected [[pipeline]])"
        for key in raw
        if key != "pipeline"
    ]
    tables = raw.get("pipeline", [])
    if not isinstance(tables, list) or not tables:
        errors.append(f"{path}: field 'pipeline': expected one or more [[pipeline]] tables")
        tables = []
    base_dir = path.resolve().parent
    pipelines: dict[str, Pipeline] = {}
    for index, table in enumerate(tables, start=1):
        label = _label(table, index)
        if not isinstance(table, dict):
            errors.append(f"{path}: {label}: expected a table")
            continue
        try:
            pipeline = Pipeline.model_validate(table, context={"base_dir": base_dir})
        except ValidationError as exc:
            errors.extend(f"{path}: {label}: {line}" for line in _describe(exc))
            continue
        if pipeline.name in pipelines:
            errors.append(f"{path}: {label}: field 'name': duplicate pipeline name")
            continue
        pipelines[pipeline.name] = pipeline
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        if len(errors) > len(shown):
            shown.append(f"... and {len(errors) - len(shown)} more")
        raise ConfigError("\n".join(shown))
    return NightlyConfig(path=path, pipelines=pipelines)


def _label(table: Any, index: int) -> str:
    name = table.get("name") if isinstance(table, dict) else None
    return f"pipeline {name!r}" if isinstance(name, str) and name else f"pipeline #{index}"


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        if loc[:1] == ["source"] and loc[1:2] in (["assemblyai"], ["file"]):
            del loc[1]  # the union's tag, not a key the user wrote
        where = ".".join(loc) or "pipeline"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"field {where!r}: {message}")
    return lines
