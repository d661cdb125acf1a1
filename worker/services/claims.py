"""Compare-and-set state moves of a job. Each is one UPDATE whose WHERE names the state it
expects, so two deliveries of one message (or a worker and the reconciler) cannot both win.

A job sent back to ``pending`` (a retry, a re-ask, a 429, a deferred send, a lost lease) lands
in ``cancelled`` instead when its batch was cancelled meanwhile: the same statement reads the
flag, so no cancel can slip between the check and the move.

A job whose batch was paused after it was queued is not claimed: its delivery parks it back in
``pending`` uncalled (:func:`park`), where the dispatcher leaves it until ``tbatch resume``.
Without this a pause would still spend every job already on the broker.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, exists, update
from sqlalchemy.orm import Session

from models.db import table_of
from models.jobs import Batch, Job
from models.vocabulary import FINAL_STATUSES, FailureKind, JobStatus

_JOBS = table_of(Job)
_BATCHES = table_of(Batch)
# The job's batch is paused (one probe of the batch's primary key per statement).
_PAUSED = exists().where(_BATCHES.c.id == _JOBS.c.batch_id, _BATCHES.c.paused_reason.is_not(None))
# Built once: a claim per delivery only binds its parameters.
_CLAIM = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("b_job_id"), _JOBS.c.status == JobStatus.QUEUED, ~_PAUSED)
    .values(
        status=JobStatus.RUNNING,
        lease_token=bindparam("b_token"),
        lease_expires_at=bindparam("b_expires"),
        deliveries=_JOBS.c.deliveries + 1,
        started_at=bindparam("b_now"),
    )
    .returning(*_JOBS.c)
)


def batch_cancelled() -> ColumnElement[bool]:
    """True for a job whose batch was cancelled (correlated to the job row being updated)."""
    return exists().where(Batch.id == Job.batch_id, Batch.cancelled.is_(True))


def back_to_pending(now: datetime, error_kind: object = None) -> dict[str, Any]:
    """``status`` (and what goes with it) for a job going back to ``pending``: ``cancelled``
    if its batch was cancelled, so nothing of a cancelled batch is called again.
    ``error_kind`` (a value or a column) is kept when the job stays pending."""
    cancelled = batch_cancelled()
    return {
        "status": case((cancelled, JobStatus.CANCELLED), else_=JobStatus.PENDING),
        "finished_at": case((cancelled, now), else_=None),
        "error_kind": case((cancelled, FailureKind.CANCELLED), else_=error_kind),
    }


def out_of_deliveries(unfinished: Any, max_deliveries: int) -> Any:
    """The poison rule, written once: a job whose deliveries ended ``max_deliveries`` times
    without finishing it (a crash, a hang, a lost lease) fails instead of being delivered again.

    ``unfinished`` is a number (a worker looking at the job it just claimed: ``deliveries - 1``,
    as its own delivery has not ended) or the ``jobs.deliveries`` column (the reconciler, whose
    expired leases did end unfinished); ``>=`` gives a bool or a SQL expression alike.
    """
    return unfinished >= max_deliveries


def claim(session: Session, job_id: int, *, now: datetime, lease_s: float) -> Job | None:
    """queued -> running under a new lease; None if the job was not queued (a duplicate or
    stale delivery, a cancelled or finished job)."""
    token = str(uuid.uuid4())
    params = {
        "b_job_id": job_id,
        "b_token": token,
        "b_expires": now + timedelta(seconds=lease_s),
        "b_now": now,
    }
    row = session.execute(_CLAIM, params).mappings().first()
    # A detached ``Job`` from the claimed row (RETURNING: no second SELECT): the call that
    # follows runs outside any session, and the moves after it name the job by id and lease.
    return None if row is None else Job(**row)


def park(session: Session, job_id: int, *, now: datetime) -> bool:
    """queued -> pending, uncalled, for a job :func:`claim` refused because its batch is
    paused (``cancelled`` if the batch was cancelled too). False when the job was not queued
    in a paused batch: the refusal was a duplicate or stale delivery."""
    parked = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED, _PAUSED)
        .values(**back_to_pending(now, Job.error_kind))
        .returning(Job.id)
    ).first()
    return parked is not None


def finish(session: Session, job: Job, *, now: datetime, status: str, **values: Any) -> bool:
    """running (under our lease) -> ``status``. False if our lease was lost meanwhile.

    ``pending`` means "pending unless the batch was cancelled" (:func:`back_to_pending`).
    """
    moved: dict[str, Any] = (
        back_to_pending(now, values.pop("error_kind", None))
        if status == JobStatus.PENDING
        else {"status": status, "finished_at": now if status in FINAL_STATUSES else None}
    )
    done = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.status == JobStatus.RUNNING,
            Job.lease_token == job.lease_token,
        )
        .values(lease_token=None, lease_expires_at=None, **moved, **values)
        .returning(Job.id)
    ).first()
    return done is not None
