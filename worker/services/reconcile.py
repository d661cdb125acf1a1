"""The reconciler: Postgres says what should be running; this makes it so.

- ``running`` past its lease (the worker died or hung): back to ``pending``.
- ``queued`` for longer than ``requeue_after_s`` (the broker lost the message, e.g. Redis
  restarted): back to ``pending``; the dispatcher re-releases it with a fresh token.
- a job returned this way after ``max_deliveries`` deliveries fails as ``poison``.
- either way, a job of a cancelled batch becomes ``cancelled`` instead of ``pending``.

Each step is one UPDATE guarded by the state it expects, so several reconcilers are harmless,
and a stale message still in the broker finds the job no longer ``queued`` and is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import tuple_, update
from sqlalchemy.orm import Session

from models.db import rowcount
from models.jobs import Job
from models.vocabulary import FailureKind, JobStatus
from worker.services.claims import back_to_pending, out_of_deliveries


def reconcile(
    session: Session, *, now: datetime, requeue_after_s: float, max_deliveries: int
) -> dict[str, int]:
    expired = (Job.status == JobStatus.RUNNING) & (Job.lease_expires_at < now)
    poison = rowcount(
        session.execute(
            update(Job)
            .where(expired, out_of_deliveries(Job.deliveries, max_deliveries))
            .values(
                status=JobStatus.FAILED,
                lease_token=None,
                lease_expires_at=None,
                finished_at=now,
                error_kind=FailureKind.POISON,
                error_message=f"worker lost the job {max_deliveries} times (crash or hang each "
                "delivery); attempts kept",
            )
            .execution_options(synchronize_session=False)
        )
    )
    lost_leases = rowcount(
        session.execute(
            update(Job)
            .where(expired)
            .values(
                **back_to_pending(now, FailureKind.LEASE_EXPIRED),
                lease_token=None,
                lease_expires_at=None,
                error_message="worker stopped before finishing; requeued",
            )
            .execution_options(synchronize_session=False)
        )
    )
    lost_messages = rowcount(
        session.execute(
            update(Job)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.queued_at < now - timedelta(seconds=requeue_after_s),
            )
            .values(**back_to_pending(now, Job.error_kind))
            .execution_options(synchronize_session=False)
        )
    )
    return {"poison": poison, "lost_leases": lost_leases, "lost_messages": lost_messages}


def renew_leases(session: Session, leases: dict[int, str], *, now: datetime, lease_s: float) -> int:
    """Extend the leases this process holds (a heartbeat), so a long call is not requeued.
    One statement for all of them: a worker may hold hundreds."""
    if not leases:
        return 0
    return rowcount(
        session.execute(
            update(Job)
            .where(
                tuple_(Job.id, Job.lease_token).in_(list(leases.items())),
                Job.status == JobStatus.RUNNING,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
    )
