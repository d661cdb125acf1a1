"""Writing the evidence: one attempt row per gateway call, one result per job (database-unique).

A success writes the attempt, the result and the job's final state in one transaction; the
result insert is ``ON CONFLICT (job_id) DO NOTHING`` so a duplicate delivery that also got an
answer records its (paid) attempt but never a second result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result
from models.db import insert_ignoring_conflicts
from models.jobs import Job, JobStatus
from worker import metrics
from worker.errors import GatewayError
from worker.gateway.types import CompletionResult, ModelInfo
from worker.output import Valid

MAX_RAW_CHARS = 100_000


@dataclass
class AttemptRecord:
    job: Job
    started_at: datetime
    region: str
    purpose: str = "call"
    request_id: str | None = None
    model_answered: str | None = None
    http_status: int | None = None
    outcome: str = "transient"
    error_kind: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    raw_text: str | None = None
    repairs: list[str] = field(default_factory=list)
    validation_errors: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    usage: dict[str, int | None] = field(default_factory=dict)
    cost_usd: float | None = None
    sent_at: datetime | None = None

    def take_result(self, result: CompletionResult, catalog: dict[str, ModelInfo]) -> None:
        self.request_id = result.request_id
        self.model_answered = result.model_answered
        self.http_status = result.http_status
        self.finish_reason = result.finish_reason_raw or result.finish_reason
        self.raw_text = (result.content or result.refusal or "")[:MAX_RAW_CHARS]
        self.latency_ms = result.latency_ms
        self.usage = {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
            "total_tokens": result.usage.total_tokens,
            "cached_tokens": result.usage.cached_tokens,
        }
        self.cost_usd = estimate_cost(catalog.get(result.model_answered), result)

    def take_error(self, error: GatewayError) -> None:
        self.request_id = error.request_id
        self.http_status = error.status
        self.outcome = "transient" if error.kind in _TRANSIENT_KINDS else "permanent"
        self.error_kind = error.kind
        self.error_message = str(error)[:4000]


_TRANSIENT_KINDS = {"transient", "rate_limited", "server_error", "timeout", "connection"}


def estimate_cost(info: ModelInfo | None, result: CompletionResult) -> float | None:
    if info is None or info.input_usd_per_mtok is None or info.output_usd_per_mtok is None:
        return None
    cached = result.usage.cached_tokens or 0
    fresh_in = max(0, (result.usage.input_tokens or 0) - cached)
    # Cached input is billed at a discount; 10% is the common provider rate.
    cost = fresh_in * info.input_usd_per_mtok + cached * info.input_usd_per_mtok * 0.1
    cost += (result.usage.output_tokens or 0) * info.output_usd_per_mtok
    return round(cost / 1_000_000, 8)


def observe(rec: AttemptRecord) -> None:
    """Count the attempt in the Prometheus metrics."""
    model = rec.job.model
    metrics.CALLS.labels(model, str(rec.http_status or rec.error_kind or "none")).inc()
    metrics.OUTCOMES.labels(model, rec.outcome).inc()
    if rec.http_status == 429:
        metrics.RATE_LIMITED.labels(model).inc()
    if rec.latency_ms is not None:
        metrics.LATENCY.labels(model).observe(rec.latency_ms / 1000)
    answered = rec.model_answered or model
    for direction in ("input", "output"):
        tokens = rec.usage.get(f"{direction}_tokens")
        if tokens:
            metrics.TOKENS.labels(answered, direction).inc(tokens)
    if rec.cost_usd:
        metrics.COST.labels(answered).inc(rec.cost_usd)
    if rec.repairs:
        metrics.REPAIRS.labels(model).inc()
    if rec.validation_errors:
        metrics.VALIDATION_FAILURES.labels(model).inc()
    if rec.purpose == "reask":
        metrics.REASKS.labels(model).inc()


def record_attempt(session: Session, rec: AttemptRecord, *, now: datetime) -> int:
    observe(rec)
    job = rec.job
    row = session.execute(
        insert(Attempt)
        .values(
            job_id=job.id,
            request_id=rec.request_id,
            purpose=rec.purpose,
            model_requested=job.model,
            model_answered=rec.model_answered,
            fallback_used=bool(rec.model_answered and rec.model_answered != job.model),
            region=rec.region,
            http_status=rec.http_status,
            outcome=rec.outcome,
            error_kind=rec.error_kind,
            error_message=rec.error_message,
            finish_reason=rec.finish_reason,
            raw_text=rec.raw_text,
            repairs=rec.repairs or None,
            validation_errors=rec.validation_errors or None,
            latency_ms=rec.latency_ms,
            cost_usd=rec.cost_usd,
            started_at=rec.started_at,
            sent_at=rec.sent_at,
            finished_at=now,
            **rec.usage,
        )
        .returning(Attempt.id)
    ).scalar_one()
    return int(row)


def store_result(
    session: Session,
    job: Job,
    attempt_id: int,
    outcome: Valid,
    result: CompletionResult,
    *,
    now: datetime,
) -> bool:
    """Insert the result unless the job has one; mark the job succeeded. False if a result
    already existed (a duplicate delivery finished first)."""
    values: dict[str, Any] = {
        "job_id": job.id,
        "attempt_id": attempt_id,
        "data": outcome.data,
        "raw_text": (result.content or "")[:MAX_RAW_CHARS],
        "repaired": outcome.repaired,
        "model": result.model_answered,
        "request_id": result.request_id,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "created_at": now,
    }
    stmt = insert_ignoring_conflicts(session, Result, index_elements=["job_id"])
    inserted = session.execute(stmt.values(**values).returning(Result.id)).first()
    if inserted is None:
        return False
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            status=JobStatus.SUCCEEDED,
            lease_token=None,
            lease_expires_at=None,
            finished_at=now,
            error_kind=None,
            error_message=None,
            reask_context=None,
        )
    )
    return True
