"""A canary batch's release slots: how many of its jobs may be out while its canary is open.

The canary (``worker/services/batch_health.py`` decides it) lets ``canary_jobs`` calls of a new
batch run before the rest are released. Its free slots are ``canary_jobs`` less its failures so
far (the streak) less its jobs in flight; the dispatcher reads them without a lock to plan
(:func:`free_slots`) and counts them again under a lock of the batch row in the release's own
transaction (:func:`allowance`), so dispatchers on several machines never release more.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from models.db import table_of
from models.jobs import Batch, Job
from models.vocabulary import JobStatus

_JOBS = table_of(Job)
_BATCHES = table_of(Batch)
# A canary's jobs in flight (ix_jobs_batch_status: a handful of rows while a canary is open).
_IN_FLIGHT = (
    select(func.count())
    .select_from(_JOBS)
    .where(
        _JOBS.c.batch_id == bindparam("b_batch"),
        _JOBS.c.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
    )
)
_STATE = select(
    _BATCHES.c.canary_jobs,
    _BATCHES.c.streak,
    _IN_FLIGHT.scalar_subquery().label("in_flight"),
).where(_BATCHES.c.id == bindparam("b_batch"))
_LOCK_BATCH = (
    select(_BATCHES.c.canary_jobs, _BATCHES.c.streak, _BATCHES.c.paused_reason)
    .where(_BATCHES.c.id == bindparam("b_batch"))
    .with_for_update(skip_locked=True)
)
_TAKE_SLOTS = (
    update(_BATCHES)
    .where(_BATCHES.c.id == bindparam("b_batch"))
    .values(canary_released=bindparam("b_taken"))
)


def free_slots(session: Session, batches: set[int]) -> dict[int, int]:
    """Free canary slots of the batches whose canary is open (read without a lock: the
    release counts them again under one). Only canary batches pay for the count."""
    slots: dict[int, int] = {}
    for batch in sorted(batches):
        row = session.execute(_STATE, {"b_batch": batch}).first()
        if row is not None and row.canary_jobs > 0:
            slots[batch] = max(0, row.canary_jobs - row.streak - int(row.in_flight))
    return slots


def allowance(session: Session, batch: int, count: int) -> tuple[int, int | None]:
    """How many of ``count`` the batch may release now, and its canary slots already taken
    (None: its canary is closed, no slot to record). Locks the batch row until the release's
    commit; a row another transaction holds releases nothing this tick."""
    row = session.execute(_LOCK_BATCH, {"b_batch": batch}).first()
    if row is None or row.paused_reason is not None:
        return 0, None
    if row.canary_jobs <= 0:
        return count, None  # passed since the refresh
    in_flight = int(session.scalar(_IN_FLIGHT, {"b_batch": batch}) or 0)
    taken = row.streak + in_flight
    return min(count, max(0, row.canary_jobs - taken)), taken


def record_taken(session: Session, batch: int, taken: int) -> None:
    """The canary slots of ``batch`` now taken (in the release's transaction, under its lock)."""
    session.execute(_TAKE_SLOTS, {"b_batch": batch, "b_taken": taken})
