"""Writing the evidence: one attempt row per gateway call, one result per job (database-unique).

A success writes the attempt, the result and the job's final state in one transaction; the
result insert is ``ON CONFLICT (job_id) DO NOTHING`` so a duplicate delivery that also got an
answer records its (paid) attempt but never a second result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, bindparam, insert, update
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result
from models.db import insert_ignoring_conflicts, table_of
from models.jobs import Job
from models.vocabulary import JobStatus
from worker import metrics
from worker.gateway.types import CompletionResult
from worker.output import Valid
from worker.services.attempt import MAX_RAW_CHARS, AttemptRecord

_NUL = "\x00"

# The per-answer statements, built once (see ``models.db.table_of``).
_ATTEMPTS = table_of(Attempt)
_JOBS = table_of(Job)
_INSERT_ATTEMPT = insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)
_SUCCEED = (
    update(_JOBS)
    .where(
        _JOBS.c.id == bindparam("b_job_id"),
        _JOBS.c.status == JobStatus.RUNNING,
        _JOBS.c.lease_token == bindparam("b_lease_token"),
    )
    .values(
        status=JobStatus.SUCCEEDED,
        lease_token=None,
        lease_expires_at=None,
        finished_at=bindparam("b_now"),
        error_kind=None,
        error_message=None,
        reask_context=None,
    )
    .returning(_JOBS.c.id)
)
_INSERT_RESULT: dict[str, Insert] = {}  # per dialect: ON CONFLICT (job_id) DO NOTHING


def storable_text(text: str | None, limit: int | None = None) -> str | None:
    """``text`` as Postgres can store it: no text column accepts NUL, which becomes U+FFFD
    (the raw answer's evidence otherwise intact), and at most ``limit`` characters."""
    if text is None:
        return None
    if _NUL in text:
        text = text.replace(_NUL, "\ufffd")
    return text if limit is None else text[:limit]


def fit(column: Any, value: str | None) -> str | None:
    """A gateway-supplied value cut to its ``String(n)`` column (a 300-character request_id
    must not cost the answer it came with)."""
    return storable_text(value, column.type.length)


def storable_list(items: list[str]) -> list[str] | None:
    return [storable_text(item, 4000) or "" for item in items] or None


def record_attempt(session: Session, rec: AttemptRecord, *, now: datetime) -> int:
    metrics.observe_attempt(rec)
    job = rec.job
    asked = rec.model_asked or job.model
    values = {
        "job_id": job.id,
        "request_id": fit(Attempt.request_id, rec.request_id),
        "purpose": rec.purpose,
        "model_requested": asked,
        "model_answered": fit(Attempt.model_answered, rec.model_answered),
        "fallback_used": bool(rec.model_answered and rec.model_answered != asked),
        "route": rec.route,
        "plan": rec.plan,
        "region": rec.region,
        "http_status": rec.http_status,
        "outcome": rec.outcome,
        "error_kind": fit(Attempt.error_kind, rec.error_kind),
        "error_message": storable_text(rec.error_message, 4000),
        "finish_reason": fit(Attempt.finish_reason, rec.finish_reason),
        "raw_text": storable_text(rec.raw_text, MAX_RAW_CHARS),
        "repairs": storable_list(rec.repairs),
        "validation_errors": storable_list(rec.validation_errors),
        "latency_ms": rec.latency_ms,
        "cost_usd": rec.cost_usd,
        "cost_breakdown": rec.cost_breakdown,
        "started_at": rec.started_at,
        "sent_at": rec.sent_at,
        "finished_at": now,
        "input_tokens": rec.usage.get("input_tokens"),
        "output_tokens": rec.usage.get("output_tokens"),
        "total_tokens": rec.usage.get("total_tokens"),
        "cached_tokens": rec.usage.get("cached_tokens"),
        "cache_write_tokens": rec.usage.get("cache_write_tokens"),
        "reasoning_tokens": rec.usage.get("reasoning_tokens"),
    }
    row = session.execute(_INSERT_ATTEMPT, values).scalar_one()
    return int(row)


def store_result(
    session: Session,
    job: Job,
    attempt_id: int,
    outcome: Valid,
    result: CompletionResult,
    answer: str,
    *,
    now: datetime,
) -> bool:
    """Mark the job succeeded and insert its result, if this delivery still holds the job.
    ``answer`` is the text the result was parsed from (the content, or a tool call's arguments).

    False when the lease was lost meanwhile (the reconciler requeued the job, another delivery
    or a cancel or a forced reprocess moved it on): what happened since stands, and this
    answer stays recorded as its attempt only. The result insert also ignores a conflict on
    ``job_id``, so the database itself never holds two results for one job.
    """
    moved = session.execute(
        _SUCCEED, {"b_job_id": job.id, "b_lease_token": job.lease_token, "b_now": now}
    ).first()
    if moved is None:
        return False
    values: dict[str, Any] = {
        "job_id": job.id,
        "attempt_id": attempt_id,
        "data": outcome.data,
        "raw_text": storable_text(answer, MAX_RAW_CHARS),
        "repaired": outcome.repaired,
        "model": fit(Result.model, result.model_answered),
        "request_id": fit(Result.request_id, result.request_id),
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "created_at": now,
    }
    session.execute(_result_insert(session), values)
    return True


def _result_insert(session: Session) -> Insert:
    dialect = session.get_bind().dialect.name
    stmt = _INSERT_RESULT.get(dialect)
    if stmt is None:
        stmt = insert_ignoring_conflicts(session, table_of(Result), index_elements=["job_id"])
        _INSERT_RESULT[dialect] = stmt
    return stmt
