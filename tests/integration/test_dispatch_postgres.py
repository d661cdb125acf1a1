"""The dispatcher on Postgres: exactly as many jobs released as tokens granted, even with two
dispatchers racing (SKIP LOCKED), and never a job released twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from sqlalchemy import func, select

from models.db import make_engine, make_session_factory
from models.jobs import Job, JobStatus
from tests.unit.fakes import SCHEMA, TEMPLATE, catalog, ids
from tests.unit.test_dispatch import Clock, _run_for
from worker.ratelimit.config import RateLimitConfig
from worker.ratelimit.limiter import ModelLimiter
from worker.ratelimit.memory_backend import MemoryBackend
from worker.services.dispatch import Dispatcher
from worker.services.enqueue import EnqueueRequest, enqueue


def _enqueue(sessions, n: int) -> None:  # type: ignore[no-untyped-def]
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


def test_postgres_release_matches_tokens_with_racing_dispatchers(fresh_database_url: str) -> None:
    sessions = make_session_factory(make_engine(fresh_database_url))
    _enqueue(sessions, 300)
    clock = Clock()
    limiter = ModelLimiter(
        MemoryBackend(clock=clock), RateLimitConfig.parse("claude-sonnet-4-6=10/1s")
    )
    published: list[int] = []
    lock = threading.Lock()

    def publish(job_ids: Sequence[int]) -> None:
        with lock:
            published.extend(job_ids)

    one = Dispatcher(sessions, limiter, publish, clock=clock, refresh_s=0.0)
    two = Dispatcher(sessions, limiter, publish, clock=clock, refresh_s=0.0)
    for dispatcher in (one, two, one, two):
        _run_for(dispatcher, clock, 1.0)
    with sessions() as s:
        queued = int(
            s.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED))
            or 0
        )
    # 1 token up front, then 9 per second, over 4 s: 37 tokens, shared by both dispatchers.
    assert 36 <= len(published) <= 38
    assert queued == len(published) == len(set(published))
