"""`tbatch enqueue`: validate a whole input, then store it in one transaction, or store nothing.

Validation happens at the boundary so a batch never starts with jobs that can only fail: the
template must produce the gateway's transcript tag for every job's variables, the schema must be
valid JSON Schema (draft 2020-12), every model and fallback must exist in the catalog of the
job's region (an EU job may only name models the EU host serves). Templates and schemas are
stored once by content hash. Insertion streams in chunks with ON CONFLICT DO NOTHING, which
makes re-enqueueing the same (transcript, template, schema, model) into a batch a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.content import Schema, Template
from models.db import insert_ignoring_conflicts
from models.jobs import Batch, Job
from worker.errors import InputError, NotFoundError
from worker.gateway.types import REGIONS, ModelInfo, residency_problem
from worker.output import check_schema, schema_hash
from worker.prompts import (
    CompiledTemplate,
    check_template_for_enqueue,
    compile_template,
    template_hash,
)
from worker.services.job_input import (
    MAX_TOKENS_LIMIT,
    Catalog,
    JobInput,
    check_fallback_count,
    parse_job_lines,
)
from worker.services.job_writer import JobWriter
from worker.services.routes import fit_max_tokens
from worker.settings import Settings

DEFAULT_MAX_TOKENS = Settings.model_fields["default_max_tokens"].default

MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class EnqueueRequest:
    transcripts_source: str
    template_text: str
    template_source: str
    schema: Any
    schema_source: str
    model: str
    fallbacks: tuple[str, ...] = ()
    region: str = "us"
    name: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    priority: int = 0
    batch_id: int | None = None
    model_region_global: bool = False
    reasoning: dict[str, Any] | None = None  # ``job_input.reasoning_value``
    # A new batch's canary (worker/services/batch_health.py): the callers pass
    # ``settings.canary_calls``; 0 releases every job at once. Adding to a batch keeps its own.
    canary_jobs: int = 0


class RowSink(Protocol):
    def add(self, row: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class EnqueueOutcome:
    batch_id: int
    jobs: int  # jobs in the batch after this enqueue
    new: int  # of those, how many were not already in the batch
    # Things the user should know that do not stop the batch (a model retiring soon, a
    # max_tokens fitted to a model's context), each once.
    notes: tuple[str, ...] = ()


class _ModelChecker:
    """Checks the models of a chain per region against the gateway's catalog, fetched once per
    region: every model must be served there, take every parameter the job sets, and a model
    retiring soon is noted. A catalog given as ids only (tests, old callers) checks ids."""

    def __init__(self, catalog: Catalog, today: date) -> None:
        self._catalog = catalog
        self._today = today
        self._cache: dict[str, Mapping[str, ModelInfo | None]] = {}
        self.notes: dict[str, None] = {}  # ordered, each once

    def infos(self, region: str) -> Mapping[str, ModelInfo | None]:
        if region not in self._cache:
            found = self._catalog(region)
            if isinstance(found, Mapping):
                self._cache[region] = {
                    k: v if isinstance(v, ModelInfo) else None for k, v in found.items()
                }
            else:
                self._cache[region] = dict.fromkeys(found)
        return self._cache[region]

    def problem(self, model: str, region: str, role: str) -> str | None:
        if model in self.infos(region):
            return None
        if region == "eu" and model in self.infos("us"):
            return (
                f"{role} {model!r} is US-only; an EU job may only use models the EU host "
                "serves (EU data never goes to a US-only model)"
            )
        return f"unknown {role} {model!r} (not in the {region.upper()} gateway's model catalog)"

    def chain_problem(
        self,
        chain: Sequence[str],
        region: str,
        *,
        temperature: float | None,
        max_tokens: int,
        reasoning: Mapping[str, Any] | None = None,
    ) -> ChainProblem | None:
        """The first model of ``chain`` that cannot take the job's parameters, or None.

        The gateway rejects a parameter a model does not support, and a fallback inherits the
        top level's, so one unsupported ``temperature`` fails every job of the batch at call
        time: refused here instead, naming the model (tbatch does not drop it silently: the
        user set it). Structured output needs no check: each model gets a route it takes.
        """
        for role, model in _roles(chain):
            problem = self.problem(model, region, role)
            if problem:
                return ChainProblem(problem, "--model" if role == "model" else "--fallback")
            info = self.infos(region).get(model)
            if info is None:
                continue
            params = info.supported_parameters
            for name, value, option in (
                ("temperature", temperature, "--temperature"),
                ("reasoning", reasoning, "--reasoning-*"),
            ):
                if value is not None and params is not None and name not in params:
                    message = (
                        f"{role} {model!r} does not support {name} (the gateway would reject "
                        f"every call); leave {name} unset or choose another model"
                    )
                    return ChainProblem(message, option)
            self._note(info, max_tokens)
        return None

    def _note(self, info: ModelInfo, max_tokens: int) -> None:
        fitted = fit_max_tokens(max_tokens, info)
        if fitted != max_tokens:
            self.notes[
                f"max_tokens {max_tokens} is sent to {info.id} as {fitted} (half its "
                f"{info.context_length}-token context, leaving room for the transcript)"
            ] = None
        retires = info.retirement_date
        if retires is not None and retires <= self._today + RETIREMENT_NOTICE:
            when = "retired on" if retires <= self._today else "retires on"
            self.notes[
                f"model {info.id} {when} {retires.isoformat()} (the catalog's retirement_date); "
                "name a fallback or move to another model"
            ] = None


RETIREMENT_NOTICE = timedelta(days=30)


@dataclass(frozen=True)
class ChainProblem:
    """Why a chain cannot run the job, and the enqueue option that set what is wrong."""

    message: str
    option: str


def check_chain(
    catalog: Catalog,
    region: str,
    chain: Sequence[str],
    *,
    temperature: float | None,
    max_tokens: int,
    today: date,
    reasoning: Mapping[str, Any] | None = None,
) -> tuple[str | None, tuple[str, ...]]:
    """The chain's problem (None: it can run) and its notes, as enqueue would find them (for
    ``tbatch nightly check``, which stores nothing)."""
    checker = _ModelChecker(catalog, today)
    problem = checker.chain_problem(
        chain, region, temperature=temperature, max_tokens=max_tokens, reasoning=reasoning
    )
    return (problem.message if problem else None), tuple(checker.notes)


def _roles(chain: Sequence[str]) -> Iterable[tuple[str, str]]:
    for index, model in enumerate(chain):
        yield ("model" if index == 0 else "fallback"), model


def enqueue(
    session: Session,
    req: EnqueueRequest,
    lines: Iterable[str],
    catalog: Catalog,
    *,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    today: date | None = None,
    estimator: RowSink | None = None,
) -> EnqueueOutcome:
    """Validate and store; raises InputError (nothing stored) on the first bad input.
    ``estimator`` (``estimating.EstimateCollector``) sees every stored row; the caller keeps
    its estimate on a new batch once this is committed (``estimating.keep_estimate``: sampling
    transcript sizes takes seconds, which must not sit between the jobs' ``created_at`` and
    their commit, where the run's clock starts), and ``tbatch status`` sets it against the
    actual once the batch is final."""
    checked = validate(req, lines, catalog, default_max_tokens=default_max_tokens, today=today)
    batch_id = _batch(session, req)
    template_id = _stored_id(session, Template, template_hash(req.template_text), req.template_text)
    schema_id = _stored_id(session, Schema, schema_hash(req.schema), req.schema)
    writer = JobWriter(
        session,
        batch_id=batch_id,
        template_id=template_id,
        schema_id=schema_id,
        region=req.region,
        model_region_global=req.model_region_global,
        priority=req.priority,
        reasoning=req.reasoning,
    )
    try:
        for row in checked.rows:
            writer.add(row)
            if estimator is not None:
                estimator.add(row)
        new = writer.flush()
    except InputError:
        session.rollback()
        raise
    except IntegrityError as exc:
        session.rollback()
        if not _custom_id_taken(exc):
            raise
        raise InputError(
            f"a custom_id of this input is already used in batch {batch_id} (custom_id is "
            "unique within a batch); nothing was stored",
            source=req.transcripts_source,
        ) from None
    jobs = session.scalar(select(func.count()).select_from(Job).where(Job.batch_id == batch_id))
    return EnqueueOutcome(
        batch_id=batch_id, jobs=int(jobs or 0), new=new, notes=tuple(checked.models.notes)
    )


@dataclass
class Validated:
    """A request that passed the checks of the whole batch; ``rows`` yields its jobs' rows
    while they pass theirs, then raises InputError listing every bad line (or an empty input)
    after the last. ``tbatch estimate`` walks the same rows and stores nothing."""

    template: CompiledTemplate
    models: _ModelChecker
    rows: Iterator[dict[str, Any]]


def validate(
    req: EnqueueRequest,
    lines: Iterable[str],
    catalog: Catalog,
    *,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    today: date | None = None,
) -> Validated:
    """Every check ``enqueue`` makes, with no database: the request now, the lines as
    ``rows`` is walked."""
    if req.region not in REGIONS:
        raise InputError(f"region must be one of {', '.join(REGIONS)}, not {req.region!r}")
    _raise_if(residency_problem(req.region, req.model_region_global), "--global-routing")
    _check_request_fields(req)
    tpl = compile_template(req.template_text, source=req.template_source)
    check_schema(req.schema, source=req.schema_source)
    check_fallback_count(req.fallbacks, lambda p: InputError(p, source="--fallback"))
    models = _ModelChecker(catalog, today or utcnow().date())
    chain_problem = models.chain_problem(
        [req.model, *req.fallbacks],
        req.region,
        temperature=req.temperature,
        max_tokens=req.max_tokens or default_max_tokens,
        reasoning=req.reasoning,
    )
    if chain_problem:
        raise InputError(chain_problem.message, source=chain_problem.option)
    rows = _rows(req, lines, tpl, models, default_max_tokens)
    return Validated(tpl, models, rows)


def _rows(
    req: EnqueueRequest,
    lines: Iterable[str],
    tpl: CompiledTemplate,
    models: _ModelChecker,
    default_max_tokens: int,
) -> Iterator[dict[str, Any]]:
    errors: list[InputError] = []
    checked_variables: set[str] = set()
    seen = _SeenJobs()
    custom_ids: dict[str, int] = {}  # custom_id -> the line that gave it
    count = 0
    for item in parse_job_lines(lines, source=req.transcripts_source):
        if isinstance(item, InputError):
            errors.append(item)
        else:
            row = _row(item, req)
            problem = (
                _check_job(item, req, tpl, models, checked_variables, default_max_tokens)
                or seen.problem(row)
                or _repeated_custom_id(item, custom_ids)
            )
            if problem:
                errors.append(InputError(problem, source=req.transcripts_source, line=item.line))
            elif not errors:
                count += 1
                yield row
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise InputError("\n".join(str(e) for e in errors))
    if count == 0:
        raise InputError("no transcript ids in the input", source=req.transcripts_source)


def _repeated_custom_id(item: JobInput, first_lines: dict[str, int]) -> str | None:
    if item.custom_id is None:
        return None
    first = first_lines.setdefault(item.custom_id, item.line)
    if first == item.line:
        return None
    return f"custom_id {item.custom_id!r} is already used on line {first} (unique in a batch)"


def _custom_id_taken(exc: IntegrityError) -> bool:
    """The batch already holds one of the input's custom_ids (Postgres names the index,
    SQLite the columns)."""
    text = str(exc.orig)
    return "ux_jobs_batch_custom_id" in text or "jobs.batch_id, jobs.custom_id" in text


class _SeenJobs:
    """Lines naming the same transcript and model are one job (the table's unique key): the
    same line twice is harmless, but different variables or overrides would be merged into
    whichever came first, silently. Kept as two integers per job, so 1M lines stay small."""

    def __init__(self) -> None:
        self._jobs: dict[int, int] = {}

    def problem(self, row: dict[str, Any]) -> str | None:
        key = hash((row["transcript_id"], row["model"]))
        fields = (
            row["fallbacks"],
            row["max_tokens"],
            row["temperature"],
            row["variables"],
            row["custom_id"],
            row["metadata"],
        )
        fingerprint = hash(json.dumps(fields, sort_keys=True, default=str))
        first = self._jobs.setdefault(key, fingerprint)
        if first == fingerprint:
            return None
        return (
            f"transcript {row['transcript_id']} with model {row['model']} is already on an "
            "earlier line with different variables or overrides; a batch holds one job per "
            "transcript and model (enqueue the variant into another batch)"
        )


def _check_request_fields(req: EnqueueRequest) -> None:
    """What the batch and job columns cannot hold, named before anything is stored."""
    name_length = Batch.name.type.length
    if req.name is not None and name_length is not None and len(req.name) > name_length:
        raise InputError(
            f"batch name is {len(req.name)} characters; at most {name_length}", source="--name"
        )
    if req.max_tokens is not None and not 1 <= req.max_tokens <= MAX_TOKENS_LIMIT:
        raise InputError(f"must be an integer from 1 to {MAX_TOKENS_LIMIT}", source="--max-tokens")


def _raise_if(problem: str | None, source: str) -> None:
    if problem:
        raise InputError(problem, source=source)


def _check_job(
    item: JobInput,
    req: EnqueueRequest,
    tpl: Any,
    models: _ModelChecker,
    checked: set[str],
    default_max_tokens: int,
) -> str | None:
    if item.model or item.fallbacks is not None or item.temperature is not None or item.max_tokens:
        row = _row(item, req)
        problem = models.chain_problem(
            [row["model"], *row["fallbacks"]],
            req.region,
            temperature=row["temperature"],
            max_tokens=row["max_tokens"] or default_max_tokens,
            reasoning=req.reasoning,
        )
        if problem:
            return problem.message
    # Rendering is cheap but not free: jobs sharing variables are checked once.
    key = repr(sorted(item.variables.items()))
    if key not in checked:
        try:
            check_template_for_enqueue(tpl, item.variables)
        except InputError as exc:
            return f"template {req.template_source}: {exc.problem}"
        checked.add(key)
    return None


def _row(item: JobInput, req: EnqueueRequest) -> dict[str, Any]:
    fallbacks = item.fallbacks if item.fallbacks is not None else req.fallbacks
    return {
        "transcript_id": item.transcript_id,
        "model": item.model or req.model,
        "fallbacks": list(fallbacks),
        "max_tokens": item.max_tokens if item.max_tokens is not None else req.max_tokens,
        "temperature": item.temperature if item.temperature is not None else req.temperature,
        "variables": item.variables or None,
        "custom_id": item.custom_id,
        "metadata": item.metadata,
    }


def _batch(session: Session, req: EnqueueRequest) -> int:
    if req.batch_id is not None:
        batch = session.get(Batch, req.batch_id)
        if batch is None:
            raise NotFoundError(f"unknown batch {req.batch_id}")
        if batch.cancelled:
            raise InputError(
                f"batch {batch.id} was cancelled: nothing of it runs again; "
                "enqueue into a new batch (leave out --batch)"
            )
        return batch.id
    batch = Batch(name=req.name, priority=req.priority, canary_jobs=req.canary_jobs)
    session.add(batch)
    session.flush()
    return batch.id


def _stored_id(session: Session, model: type[Template] | type[Schema], sha: str, body: Any) -> int:
    """The row id for this content, inserting it if new. ON CONFLICT, not check-then-insert:
    two enqueues of a new template at once must both succeed."""
    session.execute(
        insert_ignoring_conflicts(session, model, index_elements=["sha256"]).values(
            sha256=sha, body=body, created_at=utcnow()
        )
    )
    found = session.scalar(select(model.id).where(model.sha256 == sha))
    assert found is not None
    return int(found)


def load_schema_text(text: str, *, source: str) -> Mapping[str, Any] | bool:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", source=source, line=exc.lineno) from None
    if not isinstance(value, dict | bool):
        raise InputError("a JSON Schema must be an object or a boolean", source=source)
    return value
