"""Read one batch from the database into a report dict: results streamed in chunks of job ids,
attempts summed per model by SQL. Works the same on Postgres and SQLite."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, select
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result
from models.content import Schema
from models.jobs import Job
from worker.reports.aggregate import Aggregator
from worker.reports.facts import JobFacts
from worker.reports.spec import FieldSpec, fields_from_schema
from worker.services.queries import require_batch

REPORT_VERSION = 1
CHUNK_JOBS = 2000


def collect_report(
    session: Session,
    batch_id: int,
    *,
    specs: Sequence[FieldSpec] | None = None,
    title: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report of ``batch_id`` as a JSON-ready dict (``trends`` is left ``None``)."""
    batch = require_batch(session, batch_id)
    schema_ids = list(
        session.scalars(select(Job.schema_id).where(Job.batch_id == batch_id).distinct())
    )
    defaults = default_specs(session, sorted(schema_ids))
    specs = defaults if specs is None else with_schema_facts(specs, defaults)
    aggregator = Aggregator(specs)
    facts = JobFacts()
    for row in _job_rows(session, batch_id):
        facts.add_job(
            job_id=row.id,
            status=row.status,
            error_kind=row.error_kind,
            error_message=row.error_message,
            reasks=row.reasks or 0,
            transport_retries=row.transport_retries or 0,
            has_result=row.result_id is not None,
            repaired=bool(row.repaired),
        )
        if row.result_id is not None:
            aggregator.add(row.data)
    _add_usage(session, batch_id, facts)
    models = session.scalars(select(Job.model).where(Job.batch_id == batch_id).distinct())
    return {
        "report_version": REPORT_VERSION,
        "title": title or f"Batch report: {batch.name or f'batch {batch_id}'}",
        "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "batch": {
            "id": batch.id,
            "name": batch.name,
            "created_at": batch.created_at.isoformat(timespec="seconds"),
            "schema_ids": sorted(schema_ids),
            "models": sorted(models),
        },
        **facts.finish(),
        "fields": aggregator.finish()["fields"],
        "trends": None,
    }


def default_specs(session: Session, schema_ids: Sequence[int]) -> list[FieldSpec]:
    """Specs derived from every schema the batch uses, first schema first, one per path."""
    specs: dict[str, FieldSpec] = {}
    for schema_id in schema_ids:
        schema = session.get(Schema, schema_id)
        for spec in fields_from_schema(schema.body if schema else None):
            specs.setdefault(spec.path, spec)
    return list(specs.values())


_JOB_COLUMNS = (
    Job.id,
    Job.status,
    Job.error_kind,
    Job.error_message,
    Job.reasks,
    Job.transport_retries,
    Result.id.label("result_id"),
    Result.data,
    Result.repaired,
)


def with_schema_facts(specs: Sequence[FieldSpec], defaults: Sequence[FieldSpec]) -> list[FieldSpec]:
    """Explicit specs (a pipeline config) filled in from the schema where they say nothing:
    enum values (so unchosen ones show as 0), number bounds and integer-ness."""
    known = {(d.path, d.kind): d for d in defaults}
    filled = []
    for spec in specs:
        schema = known.get((spec.path, spec.kind))
        if schema is not None:
            bounded = spec.minimum is not None or spec.maximum is not None
            spec = replace(
                spec,
                values=spec.values or schema.values,
                minimum=spec.minimum if bounded else schema.minimum,
                maximum=spec.maximum if bounded else schema.maximum,
                integer=spec.integer or schema.integer,
            )
        filled.append(spec)
    return filled


def _job_rows(session: Session, batch_id: int) -> Iterator[Row[Any]]:
    last_id = 0
    while True:
        rows = session.execute(
            select(*_JOB_COLUMNS)
            # The bound on results too lets Postgres start both index scans at the chunk.
            .outerjoin(Result, and_(Result.job_id == Job.id, Result.job_id > last_id))
            .where(Job.batch_id == batch_id, Job.id > last_id)
            .order_by(Job.id)
            .limit(CHUNK_JOBS)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def _add_usage(session: Session, batch_id: int, facts: JobFacts) -> None:
    # An answer (HTTP 200) that named no model, from a request with fallbacks, is "unknown":
    # never the primary's; a failed call is the model asked.
    answered_unknown = and_(Attempt.model_answered.is_(None), Attempt.http_status == 200)
    model = case(
        (answered_unknown, "unknown"),
        else_=func.coalesce(Attempt.model_answered, Attempt.model_requested),
    )
    unpriced = and_(Attempt.cost_usd.is_(None), Attempt.input_tokens.is_not(None))
    usage = session.execute(
        select(
            model,
            func.count(Attempt.id),
            func.sum(case((Attempt.http_status == 429, 1), else_=0)),
            func.coalesce(func.sum(Attempt.input_tokens), 0),
            func.coalesce(func.sum(Attempt.output_tokens), 0),
            func.coalesce(func.sum(Attempt.cached_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0.0),
            func.sum(case((unpriced, 1), else_=0)),
            func.coalesce(func.sum(Attempt.cache_write_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_breakdown["cache_saved_usd"].as_float()), 0.0),
        )
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(model)
    )
    for name, attempts, http_429, tokens_in, tokens_out, cached, cost, no_price, *cache in usage:
        facts.add_usage(
            str(name),
            attempts=int(attempts),
            http_429=int(http_429 or 0),
            input_tokens=int(tokens_in),
            output_tokens=int(tokens_out),
            cached_tokens=int(cached),
            cost_usd=float(cost),
            unpriced_attempts=int(no_price or 0),
            cache_write_tokens=int(cache[0] or 0),
            cache_saved_usd=float(cache[1] or 0.0),
        )
    outcomes = session.execute(
        select(Attempt.outcome, func.count())
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(Attempt.outcome)
    )
    for outcome, n in outcomes:
        facts.add_outcome(str(outcome), int(n))
