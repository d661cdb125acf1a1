"""The dispatcher and a batch's canary and pause, on Postgres: a canary batch has at most
``canary_jobs`` jobs out until it is decided (also with dispatchers racing), a paused batch
releases nothing (also when the pause lands between a refresh and a release), and a resumed
batch runs its canary again, then the rest."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.jobs import Batch, Job
from models.vocabulary import JobStatus
from tests.fakes import enqueue_lines, ids
from worker.ratelimit.backend import Grant
from worker.services import batch_health
from worker.services.dispatch import Dispatcher
from worker.services.operations import resume_batch

MODEL = "claude-sonnet-4-6"


class OpenLimiter:
    """Every token asked for is granted (the canary, not the budget, is under test)."""

    def acquire(self, model: str, region: str | None, want: int) -> Grant:
        return Grant(granted=want, wait_s=0.0)

    def limit(self, model: str, region: str | None) -> object | None:
        return object()

    def give_back(self, model: str, region: str | None, n: int) -> None:
        pass


class Published:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, job_ids: Sequence[int]) -> None:
        with self._lock:
            self.ids.extend(job_ids)


def _enqueue(sessions: sessionmaker[Session], n: int, canary_jobs: int) -> int:
    lines = [json.dumps({"transcript_id": t, "variables": {"team": "x"}}) for t in ids(n)]
    return enqueue_lines(sessions, lines, canary_jobs=canary_jobs)


def _dispatcher(sessions: sessionmaker[Session], published: Published) -> Dispatcher:
    return Dispatcher(sessions, OpenLimiter(), published, refresh_s=0.0)


def _count(sessions: sessionmaker[Session], batch_id: int, status: str) -> int:
    with sessions() as s:
        query = select(func.count()).where(Job.batch_id == batch_id, Job.status == status)
        return int(s.scalar(query) or 0)


def _finish(
    sessions: sessionmaker[Session], job_ids: Sequence[int], status: str, kind: str | None
) -> None:
    """What a worker's settle does: the job's move and the verdict in one transaction."""
    with sessions.begin() as s:
        for job_id in job_ids:
            s.execute(update(Job).where(Job.id == job_id).values(status=status, error_kind=kind))
            batch_id = s.scalar(select(Job.batch_id).where(Job.id == job_id))
            assert batch_id is not None
            if status == JobStatus.SUCCEEDED:
                batch_health.on_succeeded(s, batch_id)
            elif status == JobStatus.FAILED:
                assert kind is not None
                batch_health.on_failed(
                    s, batch_id, kind, "no access", pause_streak=10, now=utcnow()
                )


def _ticks(dispatcher: Dispatcher, n: int = 5) -> None:
    for _ in range(n):
        dispatcher.tick()


def test_a_canary_batch_has_at_most_its_canary_out_until_decided(
    fresh_sessions: sessionmaker[Session],
) -> None:
    sessions, published = fresh_sessions, Published()
    batch_id = _enqueue(sessions, 30, canary_jobs=5)
    dispatcher = _dispatcher(sessions, published)
    _ticks(dispatcher)
    assert len(published.ids) == 5 and _count(sessions, batch_id, JobStatus.QUEUED) == 5
    first = list(published.ids)
    _finish(sessions, first[:2], JobStatus.FAILED, "bad_request")
    _ticks(dispatcher)
    assert len(published.ids) == 5  # 2 failed + 3 in flight fill the canary
    _finish(sessions, first[2:3], JobStatus.PENDING, None)  # a retry frees its slot ...
    _ticks(dispatcher)
    assert published.ids[5:] == first[2:3]  # ... and runs again, no new job joins
    with sessions() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and (batch.canary_jobs, batch.canary_released) == (5, 5)
    _finish(sessions, first[2:3], JobStatus.SUCCEEDED, None)  # the canary passes
    _ticks(dispatcher)
    assert _count(sessions, batch_id, JobStatus.PENDING) == 0
    assert len(set(published.ids)) == 30


def test_a_paused_batch_releases_nothing_and_a_resumed_one_runs_its_canary_again(
    fresh_sessions: sessionmaker[Session],
) -> None:
    sessions, published = fresh_sessions, Published()
    batch_id = _enqueue(sessions, 30, canary_jobs=3)
    dispatcher = _dispatcher(sessions, published)
    _ticks(dispatcher)
    canary = list(published.ids)
    _finish(sessions, canary, JobStatus.FAILED, "bad_request")
    with sessions() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.paused_reason is not None
    _ticks(dispatcher)
    assert published.ids == canary and _count(sessions, batch_id, JobStatus.PENDING) == 27

    with sessions.begin() as s:
        done = resume_batch(s, batch_id, canary_jobs=3, now=utcnow())
    assert (done["requeued"], done["kind"]) == (3, "bad_request")
    _ticks(dispatcher)
    again = published.ids[3:]
    assert sorted(again) == sorted(canary)  # the failed canary runs first, nothing more
    _finish(sessions, again[:1], JobStatus.SUCCEEDED, None)
    _ticks(dispatcher)
    assert _count(sessions, batch_id, JobStatus.PENDING) == 0


def test_a_pause_between_refresh_and_release_holds(fresh_sessions: sessionmaker[Session]) -> None:
    sessions, published = fresh_sessions, Published()
    plain = _enqueue(sessions, 10, canary_jobs=0)
    dispatcher = Dispatcher(sessions, OpenLimiter(), published, refresh_s=3600.0)
    dispatcher.tick()  # refresh + release
    assert len(published.ids) == 10
    more = [json.dumps({"transcript_id": t, "variables": {"team": "x"}}) for t in ids(14)[10:]]
    enqueue_lines(sessions, more, batch_id=plain)
    dispatcher._refresh()  # the lane sees the 4 new jobs ...
    with sessions.begin() as s:  # ... then the batch is paused
        s.execute(update(Batch).where(Batch.id == plain).values(paused_reason="test pause"))
    dispatcher.tick()
    assert len(published.ids) == 10 and _count(sessions, plain, JobStatus.PENDING) == 4


def test_racing_dispatchers_never_over_release_a_canary(
    fresh_sessions: sessionmaker[Session],
) -> None:
    sessions, published = fresh_sessions, Published()
    batch_id = _enqueue(sessions, 200, canary_jobs=7)
    dispatchers = [_dispatcher(sessions, published) for _ in range(4)]
    start = threading.Barrier(len(dispatchers))

    def run(dispatcher: Dispatcher) -> None:
        start.wait()
        _ticks(dispatcher, 20)

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(published.ids) == 7 == len(set(published.ids))
    assert _count(sessions, batch_id, JobStatus.QUEUED) == 7
