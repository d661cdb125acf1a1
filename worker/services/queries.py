"""Read models for the CLI: batch status, result export, one job's history. None reads a
whole million-job batch where a counter or an index answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, bindparam, case, cast, func, or_, select
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result
from models.content import Schema
from models.jobs import Batch, Job
from models.vocabulary import ACTIVE_STATUSES, FLEET_KINDS, JobStatus
from worker.errors import NotFoundError
from worker.services.counts import (
    Group,
    Usage,
    counted_groups,
    counted_usage,
    counters_kept,
    groups_from,
    usage_from,
)


def require_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFoundError(f"unknown batch {batch_id}")
    return batch


def batch_status(session: Session, batch_id: int | None, *, scan: bool = False) -> dict[str, Any]:
    """Counts per state, failures by reason, held jobs, throughput, usage; with ``lanes``,
    the (model, region) pairs of the batch (of every active job when no batch is named).

    On Postgres the figures come from the counters the triggers keep (a handful of rows per
    batch, however many jobs: worker/services/counts.py); ``scan`` (and SQLite, which has no
    triggers) reads the jobs and attempts themselves, in one pass each."""
    batch = None if batch_id is None else require_batch(session, batch_id)
    counted = counters_kept(session) and not scan
    groups = batch_groups(session, batch_id, scan=scan)
    usage = counted_usage(session, batch_id) if counted else _scanned_usage(session, batch_id)
    counts: dict[str, int] = dict.fromkeys(JobStatus, 0)
    failures: dict[str, int] = {}
    lanes: set[tuple[str, str]] = set()
    remaining: dict[tuple[str, str], int] = {}
    for group in groups:
        counts[group.status] = counts.get(group.status, 0) + group.jobs
        if group.status == JobStatus.FAILED:
            failures[str(group.error_kind)] = failures.get(str(group.error_kind), 0) + group.jobs
        if batch_id is not None or group.status in ACTIVE_STATUSES:
            lanes.add((group.model, group.region))
        if group.status in ACTIVE_STATUSES:
            lane = (group.model, group.region)
            remaining[lane] = remaining.get(lane, 0) + group.jobs
    total = sum(counts.values())
    first = min((g.first_created for g in groups if g.first_created), default=None)
    last = max((g.last_finished for g in groups if g.last_finished), default=None)
    done = counts[JobStatus.SUCCEEDED] + counts[JobStatus.FAILED] + counts[JobStatus.CANCELLED]
    return {
        "batch_id": batch_id,
        "total": total,
        "counts": counts,
        "done": done,
        "final": total > 0 and done == total,
        "failures": failures,
        "held": _held(session, batch_id),
        "throughput_jobs_per_s": _rate(sum(g.finished for g in groups), first, last),
        "attempts": usage.attempts,
        "http_429": usage.http_429,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        **usage_fields(usage),
        "estimate": _estimate_vs_actual(batch, usage, total > 0 and done == total, first, last),
        "lanes": sorted(lanes),
        # Jobs not final yet per (model, region): what an ETA divides by each model's limit.
        "remaining_by_lane": [
            {"model": m, "region": r, "jobs": n} for (m, r), n in sorted(remaining.items())
        ],
        "first_created_at": first,
        "last_finished_at": last,
        **_health(batch),
    }


def _estimate_vs_actual(
    batch: Batch | None,
    usage: Usage,
    final: bool,
    first: datetime | None,
    last: datetime | None,
) -> dict[str, Any] | None:
    """What ``tbatch estimate`` predicted at enqueue and, once the batch is final, what it
    came to (its wall clock from the first job created to the last finished)."""
    if batch is None or not batch.estimate:
        return None
    names = ("jobs", "wall_clock_s", "input_tokens", "output_tokens", "cost_usd")
    estimated = {name: batch.estimate.get(name) for name in names}
    actual = None
    if final:
        actual = {
            "jobs": batch.estimate.get("jobs"),
            "wall_clock_s": None if not (first and last) else (last - first).total_seconds(),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost_usd": None if usage.cost_unknown else round(usage.cost_usd, 6),
        }
    return {"estimated": estimated, "actual": actual}


def usage_fields(usage: Usage) -> dict[str, Any]:
    """Cost and caching for ``status``: ``cost_usd`` is None ("unknown") when any answered
    attempt's price was unknown, never the partial sum (that is ``cost_known_usd``)."""
    return {
        "cost_usd": None if usage.cost_unknown else round(usage.cost_usd, 6),
        "cost_known_usd": round(usage.cost_usd, 6),
        "cost_unknown_attempts": usage.cost_unknown,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_saved_usd": round(usage.cache_saved_usd, 6),
        "global_saved_usd": round(usage.global_saved_usd, 6),
    }


def batch_groups(session: Session, batch_id: int | None, *, scan: bool = False) -> list[Group]:
    """The jobs per (status, error kind, model, region): from the counters on Postgres (exact:
    totals plus pending deltas), from the jobs themselves with ``scan`` or on SQLite."""
    if counters_kept(session) and not scan:
        return counted_groups(session, batch_id)
    return _scanned_groups(session, batch_id)


def _health(batch: Batch | None) -> dict[str, Any]:
    """Why the batch is paused (``tbatch resume`` releases it), whether it was cancelled and
    its open canary, from the batch row itself: ``canary`` is None once the canary passed (or
    for no canary)."""
    if batch is None:
        return {
            "paused_reason": None,
            "paused_at": None,
            "canary": None,
            "cancelled": False,
            "created_at": None,
        }
    canary = None
    if batch.canary_jobs > 0:
        canary = {"jobs": batch.canary_jobs, "released": batch.canary_released}
    return {
        "paused_reason": batch.paused_reason,
        "paused_at": batch.paused_at,
        "canary": canary,
        "cancelled": batch.cancelled,
        "created_at": batch.created_at,
    }


def _scanned_groups(session: Session, batch_id: int | None) -> list[Group]:
    """The jobs in one pass (``GROUP BY status, error_kind, model, region``), not one scan
    per figure."""
    where = [] if batch_id is None else [Job.batch_id == batch_id]
    rows = session.execute(
        select(
            Job.status,
            Job.error_kind,
            Job.model,
            Job.region,
            func.count(),
            func.count(Job.finished_at),
            func.min(Job.created_at),
            func.max(Job.finished_at),
        )
        .where(*where)
        .group_by(Job.status, Job.error_kind, Job.model, Job.region)
    )
    return groups_from(rows)


def _scanned_usage(session: Session, batch_id: int | None) -> Usage:
    where = [] if batch_id is None else [Job.batch_id == batch_id]
    row = session.execute(
        select(
            func.count(Attempt.id),
            func.coalesce(func.sum(Attempt.input_tokens), 0),
            func.coalesce(func.sum(Attempt.output_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0.0),
            func.coalesce(func.sum(case((Attempt.http_status == 429, 1), else_=0)), 0),
            func.coalesce(func.sum(Attempt.cached_tokens), 0),
            func.coalesce(func.sum(Attempt.cache_write_tokens), 0),
            func.coalesce(func.sum(case((_UNPRICED, 1), else_=0)), 0),
            func.coalesce(func.sum(Attempt.cost_breakdown["cache_saved_usd"].as_float()), 0.0),
            func.coalesce(func.sum(Attempt.cost_breakdown["global_saved_usd"].as_float()), 0.0),
        )
        .join(Job, Job.id == Attempt.job_id)
        .where(*where)
    ).one()
    return usage_from(row)


# An answered attempt whose price was unknown (as migration 0010's trigger counts it).
_UNPRICED = and_(
    Attempt.cost_usd.is_(None),
    or_(Attempt.input_tokens.is_not(None), Attempt.output_tokens.is_not(None)),
)


def _held(session: Session, batch_id: int | None) -> dict[str, dict[str, Any]]:
    """Jobs waiting on a problem of the fleet (a refused key, a model missing from the
    catalog): not failures, but nothing moves until someone looks. Read from ix_jobs_held."""
    where = [] if batch_id is None else [Job.batch_id == batch_id]
    return {
        str(kind): {"jobs": int(n), "reason": reason}
        for kind, n, reason in session.execute(
            select(Job.error_kind, func.count(), func.max(Job.error_message))
            .where(*where, Job.status == JobStatus.PENDING, Job.error_kind.in_(FLEET_KINDS))
            .group_by(Job.error_kind)
        )
    }


def _rate(finished: int, first: datetime | None, last: datetime | None) -> float | None:
    if not finished or first is None or last is None:
        return None
    span = (last - first).total_seconds()
    return round(finished / span, 3) if span > 0 else None


def batch_schemas(session: Session, batch_id: int) -> list[Any]:
    """The output schemas the batch's jobs were enqueued with (usually one)."""
    used = select(Job.schema_id).where(Job.batch_id == batch_id).distinct()
    return list(session.scalars(select(Schema.body).where(Schema.id.in_(used)).order_by(Schema.id)))


def iter_results(
    session: Session, batch_id: int, chunk: int = 5000, *, status: str | None = None
) -> Iterator[dict[str, Any]]:
    """One record per job (of ``status``, if given), in id order, in keyset pages of
    ``chunk`` (memory stays bounded over a million jobs), with what the job's attempts cost.

    ``result`` and ``metadata`` are the stored JSON documents as the database prints them
    (text, or None): an export writes them as is, and parsing a result only to serialise it
    again was two fifths of `tbatch results`' time (py-spy). Only the exported columns are
    read, as plain Core rows: loading ``Job`` objects (variables, re-ask context) costs more.
    """
    require_batch(session, batch_id)
    query = (
        select(
            Job.id,
            Job.custom_id,
            Job.transcript_id,
            Job.status,
            Job.model,
            Job.error_kind,
            Job.error_message,
            Job.finished_at,
            cast(Job.meta, Text),
            cast(Result.data, Text),
            Result.request_id,
            Result.model,
            Result.repaired,
            Result.id,
        )
        .outerjoin(Result, Result.job_id == Job.id)
        .order_by(Job.id)
        .limit(chunk)
    )
    where = [Job.batch_id == batch_id]
    if status is not None:
        where.append(Job.status == status)
    connection = session.connection()
    last_id = 0
    while True:
        rows = connection.execute(query.where(*where, Job.id > last_id)).all()
        if not rows:
            return
        spent = _attempt_totals(connection, [row[0] for row in rows])
        last_rids = _last_request_ids(
            connection,
            [spent[r[0]]["last_attempt"] for r in rows if r[-1] is None and r[0] in spent],
        )
        for row in rows:
            job_id, custom_id, transcript_id, status_, model, kind, message, finished = row[:8]
            metadata, data, rid, answered, rep, result_id = row[8:]
            totals = spent.get(job_id)  # this chunk's own dicts: popping is safe
            last = None if totals is None else totals.pop("last_attempt")
            totals = _NO_ATTEMPTS if totals is None else totals
            if result_id is None and last is not None:
                rid = last_rids.get(last)  # no result: the last call's request_id
            yield {
                "job_id": job_id,
                "custom_id": custom_id,
                "transcript_id": transcript_id,
                "status": status_,
                "result": data,
                "metadata": metadata,
                "request_id": rid,
                # The model that answered; a result's unknown model (an answer that named none,
                # from a request with fallbacks) stays unknown, not the job's model.
                "model": model if result_id is None else answered,
                "repaired": rep,
                **totals,
                "finished_at": finished,
                "error": f"{kind}: {message}" if status_ in _ENDED_BADLY else None,
            }
        last_id = rows[-1][0]


_ENDED_BADLY = (JobStatus.FAILED, JobStatus.CANCELLED)
_NO_ATTEMPTS = {
    "attempts": 0,
    "input_tokens": None,
    "output_tokens": None,
    "cached_tokens": None,
    "cost_usd": None,
}
_ATTEMPT_TOTALS = (
    select(
        Attempt.job_id,
        func.count(),
        func.sum(Attempt.input_tokens),
        func.sum(Attempt.output_tokens),
        func.sum(Attempt.cached_tokens),
        func.sum(Attempt.cost_usd),
        func.max(Attempt.id),
    )
    .where(Attempt.job_id.in_(bindparam("b_ids", expanding=True)))
    .group_by(Attempt.job_id)
)
_REQUEST_IDS = select(Attempt.id, Attempt.request_id).where(
    Attempt.id.in_(bindparam("a_ids", expanding=True))
)


def _attempt_totals(connection: Any, job_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per job: its attempts (every call, paid or not), what they used and cost, and its
    last attempt's id (``last_attempt``, for a job without a result)."""
    return {
        job_id: {
            "attempts": count,
            "input_tokens": inp,
            "output_tokens": out,
            "cached_tokens": cached,
            "cost_usd": None if cost is None else round(float(cost), 8),
            "last_attempt": last,
        }
        for job_id, count, inp, out, cached, cost, last in connection.execute(
            _ATTEMPT_TOTALS, {"b_ids": job_ids}
        )
    }


def _last_request_ids(connection: Any, attempt_ids: list[int]) -> dict[int, str | None]:
    """The request_id of each of these attempts (a failed job's last call: the id an
    on-call engineer looks up with `tbatch show --request-id`)."""
    if not attempt_ids:
        return {}
    return dict(connection.execute(_REQUEST_IDS, {"a_ids": attempt_ids}).all())
