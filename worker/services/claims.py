"""Compare-and-set state moves of a job. Each is one UPDATE whose WHERE names the state it
expects, so two deliveries of one message (or a worker and the reconciler) cannot both win."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.jobs import Job, JobStatus


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
    """running (under our lease) -> ``status``. False if our lease was lost meanwhile."""
    done = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.status == JobStatus.RUNNING,
            Job.lease_token == job.lease_token,
        )
        .values(
            status=status,
            lease_token=None,
            lease_expires_at=None,
            finished_at=now if status in JobStatus.FINAL else None,
            **values,
        )
        .returning(Job.id)
    ).first()
    return done is not None
