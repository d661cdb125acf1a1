"""Read models for the CLI: batch status, result export, one job's history. One query each
where it matters (they run against million-job tables)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result
from models.jobs import FLEET_KINDS, Batch, Job, JobStatus
from worker.errors import NotFoundError


def require_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFoundError(f"unknown batch {batch_id}")
    return batch


def batch_status(session: Session, batch_id: int | None) -> dict[str, Any]:
    """Counts per state, failures by reason, held jobs, throughput, usage; with ``lanes``,
    the (model, region) pairs of the batch (of every active job when no batch is named).

    The jobs are read in one pass (``GROUP BY status, error_kind, model, region``: a handful
    of groups however many jobs), not one scan per figure: at a million jobs each scan costs
    a few hundred milliseconds."""
    where = [] if batch_id is None else [Job.batch_id == batch_id]
    if batch_id is not None:
        require_batch(session, batch_id)
    counts = dict.fromkeys(JobStatus.ALL, 0)
    failures: dict[str, int] = {}
    lanes: set[tuple[str, str]] = set()
    created: list[datetime] = []
    ended: list[datetime] = []
    finished = 0
    groups = session.execute(
        select(
            Job.status,
            Job.error_kind,
            Job.model,
            Job.region,
            func.count(),
            func.min(Job.created_at),
            func.max(Job.finished_at),
            func.count(Job.finished_at),
        )
        .where(*where)
        .group_by(Job.status, Job.error_kind, Job.model, Job.region)
    )
    for status, kind, model, region, n, first_created, last_ended, ended_n in groups:
        counts[status] = counts.get(status, 0) + int(n)
        if status == JobStatus.FAILED:
            failures[str(kind)] = failures.get(str(kind), 0) + int(n)
        if batch_id is not None or status in JobStatus.ACTIVE:
            lanes.add((model, region))
        created.extend([first_created] if first_created is not None else [])
        ended.extend([last_ended] if last_ended is not None else [])
        finished += int(ended_n)
    total = sum(counts.values())
    first, last = min(created, default=None), max(ended, default=None)
    # Jobs waiting on a problem of the fleet (a refused key, a model missing from the catalog):
    # not failures, but nothing moves until someone looks.
    held = {
        str(kind): {"jobs": int(n), "reason": reason}
        for kind, n, reason in session.execute(
            select(Job.error_kind, func.count(), func.max(Job.error_message))
            .where(*where, Job.status == JobStatus.PENDING, Job.error_kind.in_(FLEET_KINDS))
            .group_by(Job.error_kind)
        )
    }
    usage = session.execute(
        select(
            func.count(Attempt.id),
            func.coalesce(func.sum(Attempt.input_tokens), 0),
            func.coalesce(func.sum(Attempt.output_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0.0),
            func.sum(case((Attempt.http_status == 429, 1), else_=0)),
        )
        .join(Job, Job.id == Attempt.job_id)
        .where(*where)
    ).one()
    done = counts[JobStatus.SUCCEEDED] + counts[JobStatus.FAILED] + counts[JobStatus.CANCELLED]
    return {
        "batch_id": batch_id,
        "total": total,
        "counts": counts,
        "done": done,
        "final": total > 0 and done == total,
        "failures": failures,
        "held": held,
        "throughput_jobs_per_s": _rate(finished, first, last),
        "attempts": int(usage[0]),
        "http_429": int(usage[4] or 0),
        "input_tokens": int(usage[1]),
        "output_tokens": int(usage[2]),
        "cost_usd": round(float(usage[3]), 6),
        "lanes": sorted(lanes),
    }


def _rate(finished: int, first: datetime | None, last: datetime | None) -> float | None:
    if not finished or first is None or last is None:
        return None
    span = (last - first).total_seconds()
    return round(finished / span, 3) if span > 0 else None


def iter_results(session: Session, batch_id: int, chunk: int = 5000) -> Iterator[dict[str, Any]]:
    """One record per job, in id order, in keyset pages of ``chunk`` (memory stays bounded
    over a million jobs). Only the exported columns are read, as plain rows: loading whole
    ``Job`` objects (variables, re-ask context) costs more than writing the line."""
    require_batch(session, batch_id)
    query = (
        select(
            Job.id,
            Job.transcript_id,
            Job.status,
            Job.model,
            Job.error_kind,
            Job.error_message,
            Result.data,
            Result.request_id,
            Result.model,
            Result.repaired,
        )
        .outerjoin(Result, Result.job_id == Job.id)
        .order_by(Job.id)
        .limit(chunk)
    )
    last_id = 0
    while True:
        rows = session.execute(query.where(Job.batch_id == batch_id, Job.id > last_id)).all()
        if not rows:
            return
        for job_id, transcript_id, status, model, kind, message, data, rid, answered, rep in rows:
            yield {
                "job_id": job_id,
                "transcript_id": transcript_id,
                "status": status,
                "result": data,
                "request_id": rid,
                "model": model if answered is None else answered,
                "repaired": rep,
                "error": f"{kind}: {message}" if status == JobStatus.FAILED else None,
            }
        last_id = rows[-1][0]
