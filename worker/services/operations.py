"""The on-call engineer's tools: find a job by request_id, show its history, run it again,
cancel a batch. Every change is a compare-and-set; history is never deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, inspect, literal, select, update
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result, ResultHistory
from models.base import UTCDateTime
from models.db import rowcount, table_of
from models.jobs import Batch, Job
from models.vocabulary import FailureKind, JobStatus
from worker.errors import InputError, NotFoundError
from worker.services.job_input import Catalog
from worker.services.queries import require_batch

_RESULTS = table_of(Result)
# A replaced result keeps every column of ``results`` but its own id.
ARCHIVED_COLUMNS = tuple(column.key for column in _RESULTS.columns if column.key != "id")


def job_for_request_id(session: Session, request_id: str) -> int:
    job_id = session.scalar(select(Attempt.job_id).where(Attempt.request_id == request_id).limit(1))
    if job_id is None:
        job_id = session.scalar(select(Result.job_id).where(Result.request_id == request_id))
    if job_id is None:
        raise NotFoundError(f"no attempt has request_id {request_id!r}")
    return int(job_id)


def job_history(session: Session, job_id: int) -> dict[str, Any]:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"unknown job {job_id}")
    attempts = session.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id))
    result = session.scalar(select(Result).where(Result.job_id == job_id))
    replaced = session.scalars(
        select(ResultHistory).where(ResultHistory.job_id == job_id).order_by(ResultHistory.id)
    )
    return {
        "job": _row(job, exclude={"reask_context", "lease_token"}),
        "attempts": [_row(a, exclude={"raw_text"}) for a in attempts],
        "result": None if result is None else _row(result),
        "replaced_results": [_row(r) for r in replaced],
    }


def _row(obj: Any, exclude: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """Every column by its name; the value read through the mapped attribute, whose name may
    differ (``jobs.metadata`` is ``Job.meta``: ``getattr(job, "metadata")`` is the MetaData)."""
    mapper = inspect(obj).mapper
    return {
        c.key: getattr(obj, mapper.get_property_by_column(c).key)
        for c in obj.__table__.columns
        if c.key not in exclude
    }


def reprocess(
    session: Session,
    job_ids: list[int],
    *,
    now: datetime,
    force: bool = False,
    model: str | None = None,
    catalog: Catalog | None = None,
) -> dict[str, int]:
    """Put failed (or, with ``force``, succeeded) jobs back to ``pending`` with fresh budgets.
    Jobs in flight are left alone. A new model must be served in the job's region. Jobs of a
    cancelled batch are refused (the whole call stores nothing)."""
    counts = {"requeued": 0, "skipped": 0}
    for job_id in job_ids:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFoundError(f"unknown job {job_id}")
        allowed = (JobStatus.FAILED, JobStatus.CANCELLED) + (
            (JobStatus.SUCCEEDED,) if force else ()
        )
        if job.status not in allowed:
            counts["skipped"] += 1
            continue
        if session.scalar(select(Batch.cancelled).where(Batch.id == job.batch_id)):
            raise InputError(
                f"job {job.id} belongs to batch {job.batch_id}, which was cancelled: nothing of "
                "a cancelled batch runs again; enqueue its transcripts into a new batch"
            )
        if model is not None:
            _check_model(model, job, catalog)
            _check_unique(session, job, model)
        if job.status == JobStatus.SUCCEEDED:
            _archive_result(session, job.id, now)
        values: dict[str, Any] = {
            "status": JobStatus.PENDING,
            "not_before": None,
            "deliveries": 0,
            "transport_retries": 0,
            "reasks": 0,
            "reask_context": None,
            "reroute_model": None,
            "finished_at": None,
            "error_kind": None,
            "error_message": None,
        }
        if model is not None:
            values["model"] = model
        session.execute(
            update(Job).where(Job.id == job.id, Job.status == job.status).values(**values)
        )
        counts["requeued"] += 1
    return counts


def _check_model(model: str, job: Job, catalog: Catalog | None) -> None:
    if catalog is None:
        return
    if model not in set(catalog(job.region)):
        where = "the EU host" if job.region == "eu" else "the gateway"
        raise InputError(
            f"--model {model!r} is not served by {where}; job {job.id} is a {job.region.upper()} "
            "job and its data must stay there"
        )


def _check_unique(session: Session, job: Job, model: str) -> None:
    """A batch holds one job per transcript, template, schema and model: moving this job to
    ``model`` must not collide with the job that already has it."""
    if model == job.model:
        return
    twin = session.scalar(
        select(Job.id).where(
            Job.batch_id == job.batch_id,
            Job.transcript_id == job.transcript_id,
            Job.template_id == job.template_id,
            Job.schema_id == job.schema_id,
            Job.model == model,
        )
    )
    if twin is not None:
        raise InputError(
            f"--model {model!r}: job {job.id} cannot move to it, job {twin} of batch "
            f"{job.batch_id} already runs transcript {job.transcript_id} on {model}; "
            f"reprocess job {twin} instead"
        )


def _archive_result(session: Session, job_id: int, now: datetime) -> None:
    """Move the job's result to ``result_history`` in one INSERT ... SELECT over every column
    the two tables share, so a column added to ``results`` is kept without touching this."""
    session.execute(
        insert(ResultHistory).from_select(
            [*ARCHIVED_COLUMNS, "replaced_at"],
            select(
                *(_RESULTS.c[name] for name in ARCHIVED_COLUMNS), literal(now, UTCDateTime)
            ).where(_RESULTS.c.job_id == job_id),
        )
    )
    session.execute(delete(Result).where(Result.job_id == job_id))


def failed_jobs(session: Session, batch_id: int, status: str, reason: str | None) -> list[int]:
    require_batch(session, batch_id)
    where = [Job.batch_id == batch_id, Job.status == status]
    if reason:
        where.append(Job.error_kind == reason)
    return list(session.scalars(select(Job.id).where(*where).order_by(Job.id)))


def resume_batch(
    session: Session, batch_id: int, *, canary_jobs: int, now: datetime
) -> dict[str, Any]:
    """Release a paused batch after its cause was fixed.

    The jobs that failed with the pause's kind go back to ``pending`` as ``tbatch reprocess
    --batch B --reason K`` puts them (they failed for the shared cause, not their own), the
    streak is cleared and the canary starts again with ``canary_jobs`` calls, so a fix that
    did not work costs a canary's calls, not the batch's. Raises InputError for a batch that
    is not paused or was cancelled (nothing is changed)."""
    batch = session.get(Batch, batch_id, with_for_update=True)
    if batch is None:
        raise NotFoundError(f"unknown batch {batch_id}")
    if batch.paused_reason is None:
        raise InputError(f"batch {batch_id} is not paused; nothing to resume")
    if batch.cancelled:
        raise InputError(f"batch {batch_id} was cancelled: nothing of it runs again")
    kind, reason = batch.streak_kind, batch.paused_reason
    ids = failed_jobs(session, batch_id, JobStatus.FAILED, kind) if kind else []
    counts = reprocess(session, ids, now=now)
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(
            paused_reason=None,
            paused_at=None,
            streak=0,
            streak_kind=None,
            canary_jobs=canary_jobs,
            canary_released=0,
        )
    )
    return {
        "batch_id": batch_id,
        "paused_reason": reason,
        "kind": kind,
        "requeued": counts["requeued"],
        "canary_jobs": canary_jobs,
    }


def cancel_batch(session: Session, batch_id: int, *, now: datetime) -> int:
    """Stop the rest of a batch: waiting jobs become ``cancelled``; finished results stay, and
    a call already in flight finishes and is recorded."""
    batch = require_batch(session, batch_id)
    session.execute(update(Batch).where(Batch.id == batch.id).values(cancelled=True))
    return rowcount(
        session.execute(
            update(Job)
            .where(Job.batch_id == batch_id, Job.status.in_((JobStatus.PENDING, JobStatus.QUEUED)))
            .values(status=JobStatus.CANCELLED, finished_at=now, error_kind=FailureKind.CANCELLED)
            .execution_options(synchronize_session=False)
        )
    )
