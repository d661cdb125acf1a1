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
_USAGE_SUMS = (
    "attempts",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "http_429",
    "cached_tokens",
    "cache_write_tokens",
    "cost_unknown",
    "cache_saved_usd",
    "global_saved_usd",
)
_FOLD_USAGE = text(
    f"""
    WITH moved AS (
      DELETE FROM batch_usage_deltas RETURNING batch_id, {", ".join(_USAGE_SUMS)}
    )
    INSERT INTO batch_usage (batch_id, {", ".join(_USAGE_SUMS)})
    SELECT batch_id, {", ".join(f"sum({c})" for c in _USAGE_SUMS)}
    FROM moved GROUP BY batch_id
    ON CONFLICT (batch_id) DO UPDATE SET
      {", ".join(f"{c} = batch_usage.{c} + excluded.{c}" for c in _USAGE_SUMS)}
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
    cost_usd: float  # of the attempts whose price was known
    http_429: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_unknown: int = 0  # answered attempts whose price was unknown
    cache_saved_usd: float = 0.0
    global_saved_usd: float = 0.0


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
    both = _both(BatchUsage, BatchUsageDelta, batch_id, _USAGE_SUMS)
    row = session.execute(
        select(*(func.coalesce(func.sum(c), 0) for c in both.c)).select_from(both)
    ).one()
    return usage_from(row)


def usage_from(row: Sequence[Any]) -> Usage:
    """A row of the usage sums in ``Usage``'s order, from the counters or a scan alike."""
    n = [int(v or 0) for v in row]
    f = [float(v or 0) for v in row]
    return Usage(n[0], n[1], n[2], f[3], n[4], n[5], n[6], n[7], f[8], f[9])


def _both(
    totals: type[Base], deltas: type[Base], batch_id: int | None, names: tuple[str, ...]
) -> Subquery:
    """The totals and the pending deltas of one batch (or all), as one row set."""
    parts = []
    for table in (totals.__table__.c, deltas.__table__.c):
        where = [] if batch_id is None else [table.batch_id == batch_id]
        parts.append(select(*(table[name] for name in names)).where(*where))
    return union_all(*parts).subquery()
