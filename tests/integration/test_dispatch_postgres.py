"""The dispatcher on Postgres: exactly as many jobs released as the budget grants, even with two
dispatchers racing (SKIP LOCKED), never a job released twice, and the sends within the limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.jobs import Job
from models.vocabulary import JobStatus
from tests.fakes import SCHEMA, TEMPLATE, FakeClock, catalog, ids
from tests.unit.test_dispatch import _run_for
from worker.gateway.types import RateLimitInfo
from worker.ratelimit.config import RateLimitConfig
from worker.ratelimit.limiter import ModelLimiter
from worker.ratelimit.memory_backend import MemoryBackend
from worker.services.dispatch import Dispatcher
from worker.services.enqueue import EnqueueRequest, enqueue


def _enqueue(sessions, n: int) -> None:
    req = EnqueueRequest(
        transcripts_source="ids",
        template_text=TEMPLATE,
        template_source="t",
        schema=SCHEMA,
        schema_source="s",
        model="claude-sonnet-4-6",
    )
    lines = [json.dumps({"transcript_id": t, "variables": {"team": "x"}}) for t in ids(n)]
    with sessions.begin() as s:
        enqueue(s, req, lines, catalog)


def test_postgres_release_matches_tokens_with_racing_dispatchers(
    fresh_sessions: sessionmaker[Session],
) -> None:
    sessions = fresh_sessions
    _enqueue(sessions, 300)
    clock = FakeClock(start_s=1000.0)
    limiter = ModelLimiter(
        MemoryBackend(clock=clock),
        RateLimitConfig.parse("claude-sonnet-4-6=10/1s"),
        sleep=clock.sleep,
        clock=clock,
    )
    published: list[int] = []
    sends: list[float] = []
    lock = threading.Lock()

    def publish(job_ids: Sequence[int]) -> None:  # a worker that sends each job at once
        with lock:
            for job_id in job_ids:
                permit = limiter.permit("claude-sonnet-4-6", "us")
                assert permit is not None
                sent_at = limiter.written(permit)
                limiter.observe("claude-sonnet-4-6", "us", sent_at, RateLimitInfo())
                published.append(job_id)
                sends.append(clock.now_s)

    one = Dispatcher(sessions, limiter, publish, clock=clock, refresh_s=0.0)
    two = Dispatcher(sessions, limiter, publish, clock=clock, refresh_s=0.0)
    for dispatcher in (one, two, one, two):
        _run_for(dispatcher, clock, 1.0)
    with sessions() as s:
        queued = int(
            s.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED))
            or 0
        )
    # 10 sends per 1.05 s, shared by both dispatchers; every release was sent, once.
    assert 38 <= sum(1 for t in sends if t < 1004.0) <= 40
    assert max(sum(1 for t in sends if s <= t < s + 1.0) for s in sends) <= 10
    assert queued == len(published) == len(set(published))


def test_the_lanes_query_finds_every_due_lane_without_counting_every_job(
    fresh_sessions: sessionmaker[Session], monkeypatch
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from models.base import utcnow
    from models.jobs import Batch
    from worker.services import dispatch

    sessions = fresh_sessions
    lines = [json.dumps({"transcript_id": t, "variables": {"team": "x"}}) for t in ids(30)]
    fields: dict[str, Any] = dict(
        transcripts_source="ids",
        template_text=TEMPLATE,
        template_source="t",
        schema=SCHEMA,
        schema_source="s",
    )
    with sessions.begin() as s:
        big = enqueue(s, EnqueueRequest(**fields, model="gpt-5", priority=2), lines, catalog)
        small = enqueue(s, EnqueueRequest(**fields, model="gpt-5"), lines[:5], catalog)
        eu = enqueue(
            s, EnqueueRequest(**fields, model="gemini-2.5-flash", region="eu"), lines[:4], catalog
        )
        held = enqueue(s, EnqueueRequest(**fields, model="claude-sonnet-4-6"), lines[:3], catalog)
        later = utcnow() + timedelta(minutes=5)
        s.execute(update(Job).where(Job.batch_id == held.batch_id).values(not_before=later))
        s.execute(
            update(Job)
            .where(Job.batch_id == small.batch_id, Job.transcript_id == ids(1)[0])
            .values(status=JobStatus.SUCCEEDED)
        )
        big_batch = s.get(Batch, big.batch_id)
        assert big_batch is not None and big_batch.priority == 2
    monkeypatch.setattr(dispatch, "COUNT_CAP", 10)
    with sessions() as s:
        rows = dispatch._pending_lanes(s, utcnow())
        lanes = {(m, r, b): (p, n) for m, r, b, p, n, _canary in rows}
    assert lanes == {
        ("gpt-5", "us", big.batch_id): (2, 10),  # 30 due, counted up to the cap
        ("gpt-5", "us", small.batch_id): (0, 4),
        ("gemini-2.5-flash", "eu", eu.batch_id): (0, 4),
    }  # the held batch has nothing due
