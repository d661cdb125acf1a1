"""The status counters (models/counts.py): read a batch's totals plus the deltas not folded
yet, and fold the deltas into the totals (the reconciler does, every tick).

Reads are exact whether or not a fold ran: one statement sums totals and deltas under one
snapshot, and a fold moves rows from one table to the other in one transaction. Folding only
keeps the delta tables short (a few thousand rows between ticks at hundreds of jobs/s)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Subquery, func, select, text, union_all
from sqlalchemy.orm import Session

from models.base import Base
from models.counts import BatchUsage, BatchUsageDelta, JobCount, JobCountDelta

# pg_try_advisory_xact_lock key: one fold at a time (two would be correct, a DELETE waits for
# the other's rows and then skips them, but the second would only wait).
FOLD_LOCK_KEY = 0x7B47C0
KEY = "batch_id, status, error_kind, model, region"

_FOLD_JOBS = text(
    f"""
    WITH moved AS (
      DELETE FROM job_count_deltas
      RETURNING {KEY}, jobs, finished, first_created, last_finished
    )
    INSERT INTO job_counts ({KEY}, jobs, finished, first_created, last_finished)
    SELECT {KEY}, sum(jobs), sum(finished), min(first_created), max(last_finished)
    FROM moved GROUP BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET
      jobs = job_counts.jobs + excluded.jobs,
      finished = job_counts.finished + excluded.finished,
      first_created = LEAST(job_counts.first_created, excluded.first_created),
      last_finished = GREATEST(job_counts.last_finished, excluded.last_finished)
    """
)
_DROP_EMPTY = text("DELETE FROM job_counts WHERE jobs = 0")
_FOLD_USAGE = text(
    """
    WITH moved AS (
      DELETE FROM batch_usage_deltas
      RETURNING batch_id, attempts, input_tokens, output_tokens, cost_usd, http_429
    )
    INSERT INTO batch_usage (batch_id, attempts, input_tokens, output_tokens, cost_usd, http_429)
    SELECT batch_id, sum(attempts), sum(input_tokens), sum(output_tokens), sum(cost_usd),
           sum(http_429)
    FROM moved GROUP BY batch_id
    ON CONFLICT (batch_id) DO UPDATE SET
      attempts = batch_usage.attempts + excluded.attempts,
      input_tokens = batch_usage.input_tokens + excluded.input_tokens,
      output_tokens = batch_usage.output_tokens + excluded.output_tokens,
      cost_usd = batch_usage.cost_usd + excluded.cost_usd,
      http_429 = batch_usage.http_429 + excluded.http_429
    """
)


class Group(NamedTuple):
    """Jobs of one (status, error kind, model, region) of a batch (or of every batch)."""

    status: str
    error_kind: str | None
    model: str
    region: str
    jobs: int
    finished: int
    first_created: datetime | None
    last_finished: datetime | None


class Usage(NamedTuple):
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    http_429: int


def groups_from(rows: Iterable[Sequence[Any]]) -> list[Group]:
    """Rows of (status, error_kind, model, region, jobs, finished, first, last), from the
    counters or from a scan of the jobs alike; '' and NULL both mean "no error kind"."""
    return [
        Group(status, kind or None, model, region, int(n), int(done), first, last)
        for status, kind, model, region, n, done, first, last in rows
    ]


def counters_kept(session: Session) -> bool:
    """The triggers exist on Postgres only (migration 0005)."""
    return session.get_bind().dialect.name == "postgresql"


def fold(session: Session) -> bool:
    """Move every committed delta into the totals; False when another fold holds the lock."""
    if not session.scalar(select(func.pg_try_advisory_xact_lock(FOLD_LOCK_KEY))):
        return False
    session.execute(_FOLD_JOBS)
    session.execute(_DROP_EMPTY)
    session.execute(_FOLD_USAGE)
    return True


def counted_groups(session: Session, batch_id: int | None) -> list[Group]:
    names = ("status", "error_kind", "model", "region", "jobs", "finished")
    both = _both(JobCount, JobCountDelta, batch_id, (*names, "first_created", "last_finished"))
    key = (both.c.status, both.c.error_kind, both.c.model, both.c.region)
    rows = session.execute(
        select(
            *key,
            func.sum(both.c.jobs),
            func.sum(both.c.finished),
            func.min(both.c.first_created),
            func.max(both.c.last_finished),
        )
        .group_by(*key)
        .having(func.sum(both.c.jobs) != 0)
    )
    return groups_from(rows)


def counted_usage(session: Session, batch_id: int | None) -> Usage:
    names = ("attempts", "input_tokens", "output_tokens", "cost_usd", "http_429")
    both = _both(BatchUsage, BatchUsageDelta, batch_id, names)
    row = session.execute(
        select(*(func.coalesce(func.sum(c), 0) for c in both.c)).select_from(both)
    ).one()
    return Usage(int(row[0]), int(row[1]), int(row[2]), float(row[3]), int(row[4]))


def _both(
    totals: type[Base], deltas: type[Base], batch_id: int | None, names: tuple[str, ...]
) -> Subquery:
    """The totals and the pending deltas of one batch (or all), as one row set."""
    parts = []
    for table in (totals.__table__.c, deltas.__table__.c):
        where = [] if batch_id is None else [table.batch_id == batch_id]
        parts.append(select(*(table[name] for name in names)).where(*where))
    return union_all(*parts).subquery()
