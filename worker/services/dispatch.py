"""The dispatcher: turns each model's release budget into released jobs.

Jobs wait in Postgres (``pending``), holding no worker slot and no broker message. For every
(model, region) with waiting jobs the dispatcher asks the shared limiter for tokens (the send
slots that open within the lead, less the jobs already released and not yet sent) and moves
exactly that many jobs ``pending -> queued`` (``FOR UPDATE SKIP LOCKED``, so several dispatchers
on several machines never release one job twice), commits, and only then publishes their ids;
tokens it could not use go back. A worker that receives an id takes its send permit (waiting at
most a moment for the slot to open) and calls the gateway.

Fair share: within a model, batches are served by stride scheduling: each release advances the
batch's pass by ``1/weight`` (weight ``2**priority``), and the batch with the lowest pass goes
next; a batch that appears starts at the current minimum pass, so a nightly batch enqueued
behind a 50,000-job bulk batch gets an equal share from its first token, not a turn at the end.

Paused batches and canaries (``worker/services/batch_health.py``): nothing of a paused batch
is released (the lanes query skips it, and the release statement re-checks, so a pause that
lands between a refresh and a release holds). A batch whose canary is open releases only into
its canary's free slots: ``canary_jobs`` less its failures so far (``streak``: while the canary
is open every final outcome is one of those) less its jobs in flight. A job that went back to
``pending`` (a retry, a 429, a deferred send) frees its slot and runs again, so a canary never
waits on a job nobody may release. The slots are counted under a lock of the batch row
(``FOR UPDATE SKIP LOCKED``: a dispatcher never waits for another, it tries the next tick), in
the release's own transaction, so dispatchers in several processes cannot over-release;
``canary_released`` records the slots taken. Batches without a canary never lock the row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Integer, bindparam, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import table_of
from models.jobs import Batch, Job
from models.vocabulary import JobStatus
from worker import metrics
from worker.ratelimit.backend import Grant
from worker.services import canary_slots

log = logging.getLogger("tbatch.dispatch")
ModelKey = tuple[str, str]  # (model, region)


class LimiterPort(Protocol):
    def acquire(self, model: str, region: str | None, want: int) -> Grant: ...

    def limit(self, model: str, region: str | None) -> object | None: ...

    def give_back(self, model: str, region: str | None, n: int) -> None: ...


@dataclass
class _Lane:
    """One (model, region): its active batches and their stride-scheduling passes."""

    weights: dict[int, float] = field(default_factory=dict)
    passes: dict[int, float] = field(default_factory=dict)
    pending: int = 0
    next_try_s: float = 0.0

    def set_batches(self, batches: dict[int, tuple[int, int]]) -> None:
        floor = min(self.passes.values(), default=0.0)
        self.passes = {b: self.passes.get(b, floor) for b in batches}
        self.weights = {b: 2.0 ** max(-4, min(4, prio)) for b, (prio, _n) in batches.items()}
        self.pending = sum(n for _p, n in batches.values())

    def plan(self, tokens: int) -> list[tuple[int, int]]:
        """Split ``tokens`` among batches, lowest pass first; returns (batch_id, count)."""
        counts: dict[int, int] = {}
        for _ in range(tokens):
            if not self.passes:
                break
            batch = min(self.passes, key=lambda b: (self.passes[b], b))
            counts[batch] = counts.get(batch, 0) + 1
            self.passes[batch] += 1.0 / self.weights.get(batch, 1.0)
        return sorted(counts.items(), key=lambda kv: self.passes[kv[0]])

    def drop(self, batch: int) -> None:
        self.passes.pop(batch, None)
        self.weights.pop(batch, None)


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        limiter: LimiterPort,
        publish: Callable[[Sequence[int]], None],
        *,
        release_ahead: int = 512,
        refresh_s: float = 0.5,
        max_per_tick: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._limiter = limiter
        self._publish = publish
        self._release_ahead = release_ahead
        self._refresh_s = refresh_s
        self._max_per_tick = max_per_tick
        self._clock = clock
        self._now = now
        self._lanes: dict[ModelKey, _Lane] = {}
        # Batches whose canary was open at the last refresh: released under the batch lock.
        self._canaries: set[int] = set()
        self._refreshed_at = -1e9

    def tick(self) -> float:
        """Release what the budgets allow now; return seconds until the next useful tick.

        The pending-jobs refresh comes first when it is due, so a batch that just appeared
        shares the very next release (the send permits, not this loop, hold the exact timing;
        releases run a lead ahead of them). Then the tokens of every due lane are taken (a
        Redis round trip each), and all the releases share one transaction and one publish.
        """
        if self._clock() - self._refreshed_at >= self._refresh_s:
            self._refresh()
        now_s = self._clock()
        grants: list[tuple[ModelKey, _Lane, int]] = []
        for key, lane in list(self._lanes.items()):
            if lane.pending > 0 and lane.next_try_s <= now_s:
                granted, lane.next_try_s = self._take(key, lane)
                if granted:
                    grants.append((key, lane, granted))
        if grants:
            self._release_all(grants)
        now_s = self._clock()
        sleep_s = self._refreshed_at + self._refresh_s - now_s
        for lane in self._lanes.values():
            if lane.pending > 0:
                sleep_s = min(sleep_s, lane.next_try_s - now_s)
        return max(0.0, sleep_s)

    def _take(self, key: ModelKey, lane: _Lane) -> tuple[int, float]:
        """Tokens granted for the lane now, and when to try it again."""
        model, region = key
        want = min(lane.pending, self._max_per_tick)
        if self._limiter.limit(model, region) is None:
            want = min(want, self._release_ahead - self._in_flight(key))
            if want <= 0:
                return 0, self._clock() + self._refresh_s / 5
        asked_at = self._clock()
        grant = self._limiter.acquire(model, region, want)
        metrics.BUCKET_WAIT.labels(model, region).set(grant.wait_s)
        metrics.QUEUE_DEPTH.labels(model, region).set(lane.pending)
        return grant.granted, asked_at + (grant.wait_s if grant.granted < want else 0.0)

    def _release_all(self, grants: list[tuple[ModelKey, _Lane, int]]) -> None:
        ids: list[int] = []
        unused: list[tuple[ModelKey, int]] = []
        now = self._now()
        with self._sessions.begin() as session:
            for key, lane, tokens in grants:
                got: list[int] = []
                for batch, count in lane.plan(tokens):
                    canary = batch in self._canaries
                    released = _release_batch(session, key, batch, count, now, canary=canary)
                    if len(released) < count:
                        lane.drop(batch)
                    got.extend(released)
                metrics.RELEASED.labels(key[0]).inc(len(got))
                lane.pending -= len(got)
                if len(got) < tokens:
                    lane.pending = 0  # drained (or held by not_before): the refresh will tell
                    unused.append((key, tokens - len(got)))
                _show_depth(key, lane.pending)
                ids.extend(got)
        if ids:
            self._publish(ids)  # only after the commit made the queued rows visible
        for (model, region), n in unused:
            self._limiter.give_back(model, region, n)

    def _in_flight(self, key: ModelKey) -> int:
        with self._sessions() as session:
            params = {"b_model": key[0], "b_region": key[1]}
            return int(session.execute(_IN_FLIGHT, params).scalar() or 0)

    def _refresh(self) -> None:
        now = self._now()
        with self._sessions() as session:
            rows = _pending_lanes(session, now)
            canaries = canary_slots.free_slots(session, {row[2] for row in rows if row[5] > 0})
        grouped: dict[ModelKey, dict[int, tuple[int, int]]] = {}
        for model, region, batch, prio, n, _canary in rows:
            due = min(int(n), canaries.get(batch, int(n)))
            if due > 0:
                grouped.setdefault((model, region), {})[batch] = (int(prio or 0), due)
        self._canaries = set(canaries)
        for key in list(self._lanes):
            if key not in grouped:
                self._lanes[key].set_batches({})
                _show_depth(key, 0)
        for key, batches in grouped.items():
            self._lanes.setdefault(key, _Lane()).set_batches(batches)
        self._refreshed_at = self._clock()


def _show_depth(key: ModelKey, pending: int) -> None:
    """The lane's gauges; a drained lane reads 0 (not its last depth, forever)."""
    metrics.QUEUE_DEPTH.labels(*key).set(pending)
    if pending == 0:
        metrics.BUCKET_WAIT.labels(*key).set(0)


#: A lane's pending count is read up to this many jobs: it only bounds how many to ask
#: tokens for (at most ``max_per_tick``), so counting a million waiting jobs is waste.
COUNT_CAP = 2000

# Postgres: the (model, region, batch) lanes with pending jobs, found by a loose index scan of
# ix_jobs_pending (one index probe per lane, however many jobs wait), with each batch's
# priority from ``batches``. The plain GROUP BY of the embedded path scanned every pending row
# on every refresh (343 ms and a third of a core at 1M pending).
_LANES_SQL = text(
    """
    WITH RECURSIVE lanes(model, region, batch_id) AS (
        (SELECT model, region, batch_id FROM jobs WHERE status = 'pending'
         ORDER BY model, region, batch_id LIMIT 1)
        UNION ALL
        SELECT nxt.model, nxt.region, nxt.batch_id FROM lanes CROSS JOIN LATERAL (
            SELECT j.model, j.region, j.batch_id FROM jobs j
            WHERE j.status = 'pending'
              AND (j.model, j.region, j.batch_id) > (lanes.model, lanes.region, lanes.batch_id)
            ORDER BY j.model, j.region, j.batch_id LIMIT 1
        ) nxt
    )
    SELECT lanes.model, lanes.region, lanes.batch_id, b.priority, b.canary_jobs
    FROM lanes JOIN batches b ON b.id = lanes.batch_id
    WHERE b.paused_reason IS NULL
    """
)
# One lane's due jobs, counted up to COUNT_CAP. A statement of its own, planned for the lane's
# actual values: inside the query above, a generic plan walked the whole table for a small
# batch behind a big one (120 ms at 1M); planned per lane it takes 0.5-2 ms.
_LANE_DUE_SQL = text(
    """
    SELECT count(*) FROM (
        SELECT 1 FROM jobs
        WHERE status = 'pending' AND model = :model AND region = :region AND batch_id = :batch
          AND (not_before IS NULL OR not_before <= :now)
        LIMIT :cap
    ) AS capped
    """
)


def _pending_lanes(session: Session, now: datetime) -> list[Any]:
    """``(model, region, batch_id, priority, due jobs up to COUNT_CAP, canary_jobs)`` per
    lane with due jobs, paused batches left out. The embedded SQLite mode (small by nature)
    groups the rows directly."""
    if session.get_bind().dialect.name != "postgresql":
        return list(
            session.execute(
                select(
                    Job.model,
                    Job.region,
                    Job.batch_id,
                    func.max(Job.priority),
                    func.count(),
                    func.max(Batch.canary_jobs),
                )
                .join(Batch, Batch.id == Job.batch_id)
                .where(Job.status == JobStatus.PENDING, _due(now), Batch.paused_reason.is_(None))
                .group_by(Job.model, Job.region, Job.batch_id)
            ).all()
        )
    # A prepared statement would switch to one generic plan after five runs: keep them custom.
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    lanes: list[Any] = []
    for model, region, batch, priority, canary_jobs in session.execute(_LANES_SQL).all():
        params = {"model": model, "region": region, "batch": batch, "now": now, "cap": COUNT_CAP}
        due = int(session.scalar(_LANE_DUE_SQL, params) or 0)
        if due:
            lanes.append((model, region, batch, priority, due, int(canary_jobs or 0)))
    return lanes


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return or_(Job.not_before.is_(None), Job.not_before <= now)


_JOBS = table_of(Job)
# The release statements, built once as Core: a tick binds parameters only.
_IN_FLIGHT = (
    select(func.count())
    .select_from(_JOBS)
    .where(
        _JOBS.c.status == JobStatus.QUEUED,
        _JOBS.c.model == bindparam("b_model"),
        _JOBS.c.region == bindparam("b_region"),
    )
)


# A CTE, not ``WHERE id IN (subquery)``: Postgres may re-run a LIMIT ... SKIP LOCKED subquery
# per candidate row, releasing far more jobs than tokens. A CTE runs once.
def _release_statement(*guards: ColumnElement[bool]) -> Any:
    chosen = (
        select(_JOBS.c.id)
        .where(
            _JOBS.c.status == JobStatus.PENDING,
            _JOBS.c.model == bindparam("b_model"),
            _JOBS.c.region == bindparam("b_region"),
            _JOBS.c.batch_id == bindparam("b_batch"),
            or_(_JOBS.c.not_before.is_(None), _JOBS.c.not_before <= bindparam("b_now")),
            *guards,
        )
        .order_by(_JOBS.c.id)
        .limit(bindparam("b_count", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("chosen")
    )
    return (
        update(_JOBS)
        .where(_JOBS.c.id == chosen.c.id, _JOBS.c.status == JobStatus.PENDING)
        .values(status=JobStatus.QUEUED, queued_at=bindparam("b_now"))
        .returning(_JOBS.c.id)
    )


_BATCHES = table_of(Batch)
# The batch of an ordinary release: not paused, no canary open (one probe of its primary key,
# evaluated once per statement). A batch paused, or given a canary by ``tbatch resume``,
# since the last refresh releases nothing; the next refresh finds it as it is now.
_OPEN = exists().where(
    _BATCHES.c.id == bindparam("b_batch"),
    _BATCHES.c.paused_reason.is_(None),
    _BATCHES.c.canary_jobs == 0,
)
_RELEASE = _release_statement(_OPEN)
# A canary batch's release: its row is locked and its slots counted first (canary_slots.allowance).
_RELEASE_CANARY = _release_statement()


def _release_batch(
    session: Session, key: ModelKey, batch: int, count: int, now: datetime, *, canary: bool
) -> list[int]:
    params = {"b_model": key[0], "b_region": key[1], "b_batch": batch, "b_now": now}
    statement, taken = _RELEASE, None
    if canary:
        count, taken = canary_slots.allowance(session, batch, count)
        statement = _RELEASE_CANARY
        if count <= 0:
            return []
    params["b_count"] = count
    rows = session.execute(statement, params).all()
    assert len(rows) <= count, "released more jobs than tokens"
    if taken is not None:
        canary_slots.record_taken(session, batch, taken + len(rows))
    return sorted(int(r[0]) for r in rows)
