"""Compare-and-set state moves of a job. Each is one UPDATE whose WHERE names the state it
expects, so two deliveries of one message (or a worker and the reconciler) cannot both win.

A job sent back to ``pending`` (a retry, a re-ask, a 429, a deferred send, a lost lease) lands
in ``cancelled`` instead when its batch was cancelled meanwhile: the same statement reads the
flag, so no cancel can slip between the check and the move.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, exists, update
from sqlalchemy.orm import Session

from models.jobs import Batch, Job, JobStatus

CANCELLED_KIND = "cancelled"


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
        "error_kind": case((cancelled, CANCELLED_KIND), else_=error_kind),
    }


def claim(session: Session, job_id: int, *, now: datetime, lease_s: float) -> Job | None:
    """queued -> running under a new lease; None if the job was not queued (a duplicate or
    stale delivery, a cancelled or finished job)."""
    token = str(uuid.uuid4())
    # One statement: the ORM loads the claimed row from RETURNING (no second SELECT).
    return session.scalars(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_s),
            deliveries=Job.deliveries + 1,
            started_at=now,
        )
        .returning(Job),
        execution_options={"populate_existing": True},
    ).first()


def finish(session: Session, job: Job, *, now: datetime, status: str, **values: Any) -> bool:
    """running (under our lease) -> ``status``. False if our lease was lost meanwhile.

    ``pending`` means "pending unless the batch was cancelled" (:func:`back_to_pending`).
    """
    moved: dict[str, Any] = (
        back_to_pending(now, values.pop("error_kind", None))
        if status == JobStatus.PENDING
        else {"status": status, "finished_at": now if status in JobStatus.FINAL else None}
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
