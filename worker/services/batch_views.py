"""Read models of the operator's view (`tbatch ui`, `tbatch batches`): the list of batches and
one batch's detail, built on :func:`worker.services.queries.batch_status` (so counts are the
trigger-kept counters on Postgres, exact at every moment) plus the ETA of
:func:`worker.services.progress.eta_s` (the one ETA `tbatch status` and `wait` show too).

Limits come through a port, ``limit_of(model, region) -> Limit | None`` (the running
limiter's ``limit``, which includes a limit learned from the gateway's 429s; or the configured
one), so this module reads no settings and no Redis itself.

What costs more than the counters: a batch's per-model use and its calls per minute read the
batch's attempts (``attempts`` by ``job_id``, joined to the batch's jobs); the minutes are
bounded to the last :data:`TIMELINE_MINUTES` of the batch's activity.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.attempts import Attempt
from models.jobs import Batch, Job
from models.vocabulary import AttemptOutcome, JobStatus
from worker.ratelimit.config import Limit
from worker.services.progress import eta_s
from worker.services.queries import batch_status, require_batch

LimitOf = Callable[[str, str], Limit | None]
#: The calls-per-minute chart covers at most this many minutes (ending at the last call).
TIMELINE_MINUTES = 120
_ANSWERED = (AttemptOutcome.OK, AttemptOutcome.REPAIRED)


def list_batches(session: Session, limit_of: LimitOf, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` batches first, each as :func:`batch_summary` gives it."""
    ids = session.scalars(select(Batch.id).order_by(Batch.id.desc()).limit(limit))
    return [batch_summary(session, int(batch_id), limit_of) for batch_id in ids]


def batch_summary(session: Session, batch_id: int, limit_of: LimitOf) -> dict[str, Any]:
    """Id, name, created, counts per state, paused/cancelled, canary, ETA, usage and cost."""
    batch = require_batch(session, batch_id)
    status = batch_status(session, batch_id)
    remaining = {(r["model"], r["region"]): int(r["jobs"]) for r in status["remaining_by_lane"]}
    held = state_of(batch, status)
    eta = None
    if held in ("running", "pending"):
        eta = eta_s(status, [_lane(model, region, limit_of) for model, region in remaining])
    elif held == "final":
        eta = 0.0
    return {
        **status,
        "batch_id": batch_id,
        "name": batch.name,
        "created_at": batch.created_at,
        "cancelled": batch.cancelled,
        "state": held,
        "remaining": sum(remaining.values()),
        "eta_s": eta,
        "lanes": [{"model": m, "region": r, "remaining": n} for (m, r), n in remaining.items()],
    }


def state_of(batch: Batch, status: dict[str, Any]) -> str:
    """One word for the list: cancelled, paused, final, running or pending (nothing out yet)."""
    if batch.cancelled:
        return "cancelled"
    if status["final"]:
        return "final"
    if batch.paused_reason:
        return "paused"
    counts = status["counts"]
    started = status["done"] + counts[JobStatus.QUEUED] + counts[JobStatus.RUNNING]
    return "running" if started or status["attempts"] else "pending"


def _lane(model: str, region: str, limit_of: LimitOf) -> dict[str, Any]:
    """A lane as :func:`worker.services.progress.eta_s` reads it."""
    limit = limit_of(model, region)
    return {
        "model": model,
        "region": region,
        "limit": None if limit is None else limit.requests,
        "window_s": None if limit is None else limit.window_s,
    }


def batch_detail(session: Session, batch_id: int, limit_of: LimitOf) -> dict[str, Any]:
    """The summary plus failures with their rerun command, per-model budget and use, and
    calls per minute per model (with 429s) for the chart."""
    summary = batch_summary(session, batch_id, limit_of)
    use = model_use(session, batch_id)
    lanes = {(row["model"], row["region"]) for row in use}
    lanes |= {(lane["model"], lane["region"]) for lane in summary["lanes"]}
    left = {(x["model"], x["region"]): x["remaining"] for x in summary["lanes"]}
    models = []
    for model, region in sorted(lanes):
        limit = limit_of(model, region)
        row = next((u for u in use if (u["model"], u["region"]) == (model, region)), None)
        models.append(
            {
                "model": model,
                "region": region,
                "limit": None if limit is None else limit.requests,
                "window_s": None if limit is None else limit.window_s,
                "limit_per_min": None if limit is None else per_minute(limit),
                "remaining": left.get((model, region), 0),
                **(row or _NO_USE),
            }
        )
    return {
        **summary,
        "failure_groups": failure_groups(session, batch_id, summary["failures"]),
        "models": models,
        "minutes": calls_per_minute(session, batch_id),
    }


_NO_USE = {"calls": 0, "http_429": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}


def per_minute(limit: Limit) -> float:
    """A limit as calls per minute (the chart's unit)."""
    return round(limit.requests * 60.0 / limit.window_s, 2)


def failure_groups(
    session: Session, batch_id: int, failures: dict[str, int]
) -> list[dict[str, Any]]:
    """Failed jobs per reason, most first, with one message and the command that reruns them
    (the real options of `tbatch reprocess`, worker/cli/recovery.py)."""
    samples = dict(
        session.execute(
            select(Job.error_kind, func.max(Job.error_message))
            .where(Job.batch_id == batch_id, Job.status == JobStatus.FAILED)
            .group_by(Job.error_kind)
        ).all()
    )
    return [
        {
            "reason": kind,
            "jobs": n,
            "message": samples.get(kind),
            "command": f"tbatch reprocess --batch {batch_id} --reason {kind}",
        }
        for kind, n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def model_use(session: Session, batch_id: int) -> list[dict[str, Any]]:
    """Per model asked and region: calls, 429s, tokens and cost of the batch's attempts."""
    rows = session.execute(
        select(
            Attempt.model_requested,
            Attempt.region,
            func.count(),
            func.coalesce(func.sum(_is_429()), 0),
            func.coalesce(func.sum(Attempt.input_tokens), 0),
            func.coalesce(func.sum(Attempt.output_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0.0),
        )
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(Attempt.model_requested, Attempt.region)
        .order_by(Attempt.model_requested, Attempt.region)
    )
    return [
        {
            "model": model,
            "region": region,
            "calls": int(calls),
            "http_429": int(n429),
            "input_tokens": int(tin),
            "output_tokens": int(tout),
            "cost_usd": round(float(cost), 6),
        }
        for model, region, calls, n429, tin, tout, cost in rows
    ]


def _is_429() -> Any:
    return case((Attempt.http_status == 429, 1), else_=0)


def calls_per_minute(session: Session, batch_id: int) -> list[dict[str, Any]]:
    """Per model asked and minute (of the send, else the start): calls, answers used (ok or
    repaired) and 429s, over the last :data:`TIMELINE_MINUTES` minutes of the batch."""
    at = func.coalesce(Attempt.sent_at, Attempt.started_at)
    in_batch = (Job.id == Attempt.job_id) & (Job.batch_id == batch_id)
    last = session.scalar(select(func.max(at)).join(Job, in_batch))
    if last is None:
        return []
    since = _as_utc(last) - timedelta(minutes=TIMELINE_MINUTES)
    minute = _minute(session, at)
    rows = session.execute(
        select(
            Attempt.model_requested,
            minute,
            func.count(),
            func.coalesce(func.sum(_answered()), 0),
            func.coalesce(func.sum(_is_429()), 0),
        )
        .join(Job, in_batch)
        .where(at >= since)
        .group_by(Attempt.model_requested, minute)
        .order_by(minute)
    )
    return [
        {
            "model": model,
            "minute": _as_minute(value),
            "calls": int(calls),
            "answered": int(ok),
            "http_429": int(n429),
        }
        for model, value, calls, ok, n429 in rows
    ]


def _answered() -> Any:
    return case((Attempt.outcome.in_(_ANSWERED), 1), else_=0)


def _minute(session: Session, at: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("minute", at)
    return func.strftime("%Y-%m-%d %H:%M:00", at)


def _as_minute(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _as_utc(value).replace(second=0, microsecond=0)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
