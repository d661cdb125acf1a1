"""Verdicts on a batch: does it keep running, or pause because every job fails the same way?

A batch whose jobs all fail for one shared reason (the key is refused, the model is not
entitled, a parameter is unsupported, the schema is rejected, every answer is invalid) would
spend its whole budget learning the same thing a million times. Two guards stop it:

- **The canary.** A new batch has ``canary_jobs = settings.canary_calls``; the dispatcher
  releases no more than that many of its jobs until the canary is decided
  (``worker/services/canary_slots.py``). One success passes it; so does a failure whose kind
  differs from the streak's (mixed reasons are the jobs' own, not the batch's).
  ``canary_jobs`` failures in a row with one kind pause the batch.
- **The streak.** After the canary, ``settings.pause_streak`` permanent failures in a row
  with one kind pause the batch (a success resets the count; 0 disables it).

Only final failures count: a job moved to ``failed`` with any kind but ``poison`` (lost by
workers, not refused by the gateway) and ``cancelled``. Transient retries, re-asks, holds and
deferrals are not verdicts. A paused batch keeps its reason (one line) until
``tbatch resume`` (:func:`worker.services.operations.resume_batch`).

Each function is one UPDATE of the batch row, run inside the transaction that finishes the
job, so the verdict and the job's move commit together. The success path writes only when
something changes, so a healthy batch's successes take no lock on its row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, and_, case, cast, literal, update
from sqlalchemy.orm import Session

from models.jobs import Batch
from models.vocabulary import FailureKind

#: Failure kinds that say nothing about the batch's requests.
NOT_COUNTED = frozenset({FailureKind.POISON, FailureKind.CANCELLED})
#: How much of the last failure's message the pause reason quotes.
REASON_MESSAGE_CHARS = 300


def on_succeeded(session: Session, batch_id: int) -> None:
    """A job of the batch succeeded: the streak ends and an open canary passes."""
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, (Batch.streak > 0) | (Batch.canary_jobs > 0))
        .values(streak=0, streak_kind=None, canary_jobs=0)
        .execution_options(synchronize_session=False)
    )


def on_failed(
    session: Session,
    batch_id: int,
    kind: str,
    message: str,
    *,
    pause_streak: int,
    now: datetime,
) -> None:
    """A job of the batch failed for good with ``kind``: extend or restart the streak, end a
    canary the failure contradicts, and pause the batch when the streak reaches its threshold
    (``canary_jobs`` while the canary is open, else ``pause_streak``; 0 never pauses)."""
    if kind in NOT_COUNTED:
        return
    same = Batch.streak_kind == kind
    streak = case((same, Batch.streak + 1), else_=1)
    # Another kind than the streak's: the failures are the jobs' own, the canary passes.
    contradicts = and_(Batch.streak > 0, ~same)
    canary = case((contradicts, 0), else_=Batch.canary_jobs)
    threshold = case((canary > 0, canary), else_=pause_streak)
    pauses = and_(Batch.paused_reason.is_(None), threshold > 0, streak >= threshold)
    reason = (
        literal("paused after ")
        + cast(streak, String)
        + literal(f" permanent failures in a row ({kind}): {one_line(message)}")
    )
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(
            streak=streak,
            streak_kind=kind,
            canary_jobs=canary,
            paused_reason=case((pauses, reason), else_=Batch.paused_reason),
            paused_at=case((pauses, now), else_=Batch.paused_at),
        )
        .execution_options(synchronize_session=False)
    )


def one_line(message: str, limit: int = REASON_MESSAGE_CHARS) -> str:
    """The message as one line of at most ``limit`` characters (``tbatch status`` prints
    the reason on one line; a gateway body may carry newlines)."""
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
