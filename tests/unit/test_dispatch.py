"""The dispatcher on SQLite with the in-memory limiter and a fake clock: it releases exactly the
tokens it is granted, shares them fairly between batches, and honours priorities."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from models.jobs import Job
from models.vocabulary import JobStatus
from tests.fakes import FakeClock, enqueue_lines, ids, sqlite_sessions
from worker.gateway.types import RateLimitInfo
from worker.ratelimit.config import RateLimitConfig
from worker.ratelimit.limiter import ModelLimiter
from worker.ratelimit.memory_backend import MemoryBackend
from worker.services.dispatch import Dispatcher


def _lines(n: int, offset: int = 0) -> list[str]:
    return [
        json.dumps({"transcript_id": t, "variables": {"team": "x"}})
        for t in ids(n + offset)[offset:]
    ]


def _setup(tmp_path: Path, limits: str):
    """A dispatcher and a fake worker that takes each job's send permit when it is published
    (waiting on the fake clock for its slot: at most the lead) and gets answers without
    rate-limit headers; ``published`` collects the jobs sent."""
    sessions = sqlite_sessions(tmp_path)
    clock = FakeClock(start_s=1000.0)
    limiter = ModelLimiter(
        MemoryBackend(clock=clock), RateLimitConfig.parse(limits), sleep=clock.sleep, clock=clock
    )
    published: list[int] = []
    MODEL = "claude-sonnet-4-6"

    def publish(job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            permit = limiter.permit(MODEL, "us")
            sent_at = None if permit is None else limiter.written(permit)  # None: unlimited
            limiter.observe(MODEL, "us", sent_at, RateLimitInfo())
            published.append(job_id)
            sends.append(clock.now_s)

    sends: list[float] = []
    dispatcher = Dispatcher(sessions, limiter, publish, clock=clock, refresh_s=0.0)
    dispatcher.sends = sends  # type: ignore[attr-defined]
    return sessions, clock, dispatcher, published


def _run_for(dispatcher: Dispatcher, clock: FakeClock, seconds: float) -> None:
    end = clock.now_s + seconds
    while clock.now_s < end:
        wait = dispatcher.tick()
        clock.now_s += max(wait, 0.001)


def test_releases_at_the_limit_and_publishes_after_commit(tmp_path: Path) -> None:
    sessions, clock, dispatcher, published = _setup(tmp_path, "claude-sonnet-4-6=10/1s")
    enqueue_lines(sessions, _lines(100))
    _run_for(dispatcher, clock, 3.0)
    # The store's history is empty: it probes (headerless answers: one at a time) until its log
    # is a window old, then releases each slot as it opens: 10 sends per 1.05 s.
    sends: list[float] = dispatcher.sends
    assert 28 <= sum(1 for t in sends if t < 1003.0) <= 30
    assert max(sum(1 for t in sends if s <= t < s + 1.0) for s in sends) <= 10
    with sessions() as s:
        queued = set(s.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED)))
    assert queued == set(published) and len(set(published)) == len(published)


def test_small_batch_enqueued_later_gets_an_equal_share(tmp_path: Path) -> None:
    sessions, clock, dispatcher, published = _setup(tmp_path, "claude-sonnet-4-6=20/1s")
    big = enqueue_lines(sessions, _lines(1000))
    _run_for(dispatcher, clock, 2.0)
    small = enqueue_lines(sessions, _lines(100, offset=5000))
    before = len(published)
    _run_for(dispatcher, clock, 5.0)
    with sessions() as s:
        batch_of = dict(s.execute(select(Job.id, Job.batch_id)).all())
    share = Counter(batch_of[j] for j in published[before:])
    assert share[small] >= 0.45 * (share[big] + share[small])
    assert share[big] >= 0.45 * (share[big] + share[small])


def test_priority_batch_gets_a_larger_share(tmp_path: Path) -> None:
    sessions, clock, dispatcher, published = _setup(tmp_path, "claude-sonnet-4-6=30/1s")
    low = enqueue_lines(sessions, _lines(500))
    high = enqueue_lines(sessions, _lines(500, offset=5000), priority=1)
    _run_for(dispatcher, clock, 4.0)
    with sessions() as s:
        batch_of = dict(s.execute(select(Job.id, Job.batch_id)).all())
    share = Counter(batch_of[j] for j in published)
    assert share[high] >= 1.7 * share[low]


def test_unlimited_model_is_released_ahead_up_to_the_cap(tmp_path: Path) -> None:
    sessions, clock, dispatcher, published = _setup(tmp_path, "claude-sonnet-4-6=off")
    dispatcher._release_ahead = 50
    enqueue_lines(sessions, _lines(200))
    _run_for(dispatcher, clock, 1.0)
    assert len(published) == 50


def test_lane_gauges_carry_the_region_and_drop_to_zero_when_drained(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    def gauge(name: str) -> float | None:
        labels = {"model": "claude-sonnet-4-6", "region": "us"}
        return REGISTRY.get_sample_value(name, labels)

    sessions, clock, dispatcher, published = _setup(tmp_path, "claude-sonnet-4-6=2/1s")
    enqueue_lines(sessions, _lines(6))
    dispatcher.tick()
    assert (gauge("tbatch_queue_depth") or 0) > 0  # set while jobs wait
    _run_for(dispatcher, clock, 5.0)
    assert len(published) == 6
    dispatcher.tick()
    assert gauge("tbatch_queue_depth") == 0
    assert gauge("tbatch_bucket_wait_seconds") == 0
