"""`tbatch status` from the trigger-kept counters (models/counts.py) says exactly what a scan of
the jobs and attempts says, through every kind of move, folded or not; the migration counts
the rows that were already there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.counts import BatchUsageDelta, JobCount, JobCountDelta
from models.db import make_engine, make_session_factory
from models.jobs import Job
from models.migrate import upgrade
from models.vocabulary import JobStatus
from tests.fakes import GOOD, FakeGateway, FakeLimiter, answer, enqueue_lines, settings
from tests.fixtures.services import new_database
from worker.errors import ServerError, TranscriptNotFound
from worker.services.counts import fold
from worker.services.operations import cancel_batch, reprocess
from worker.services.pipeline import PipelineDeps, process_job
from worker.services.queries import batch_status


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _batch(sessions: sessionmaker[Session], n: int, **overrides: Any) -> list[int]:
    lines = [
        json.dumps({"transcript_id": str(uuid.uuid4()), "variables": {"team": "ops"}})
        for _ in range(n)
    ]
    batch = enqueue_lines(sessions, lines, **overrides)
    with sessions() as s:
        return list(s.scalars(select(Job.id).where(Job.batch_id == batch).order_by(Job.id)))


def _queue(sessions: sessionmaker[Session], job_ids: list[int]) -> None:
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id.in_(job_ids)).values(status=JobStatus.QUEUED))


def _run(sessions: sessionmaker[Session], job_id: int, *outcomes: Any) -> str:
    deps = PipelineDeps(
        sessions=sessions,
        gateway=FakeGateway(list(outcomes)),
        limiter=FakeLimiter(),
        settings=settings(),
    )
    return process_job(job_id, deps)


def _statuses(sessions: sessionmaker[Session], batch_id: int | None) -> dict[str, Any]:
    with sessions() as s:
        counted = batch_status(s, batch_id)
        scanned = batch_status(s, batch_id, scan=True)
    assert counted == scanned
    return counted


def _deltas(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        jobs = s.scalar(select(func.count()).select_from(JobCountDelta))
        usage = s.scalar(select(func.count()).select_from(BatchUsageDelta))
    return int(jobs or 0) + int(usage or 0)


def test_counters_agree_with_a_scan_through_every_kind_of_move(sessions) -> None:
    jobs = _batch(sessions, 6)
    other = _batch(sessions, 3, model="gemini-2.5-flash")
    batch = _batch_of(sessions, jobs[0])
    _queue(sessions, jobs[:5])
    assert _run(sessions, jobs[0], answer(GOOD)) == "succeeded"
    assert _run(sessions, jobs[1], answer(GOOD)) == "succeeded"
    missing = TranscriptNotFound("transcript not found", status=404, request_id="rid-404")
    assert _run(sessions, jobs[2], missing) == "failed"
    assert _run(sessions, jobs[3], ServerError("boom", status=500, request_id="rid-500")) in {
        "retry",
        "pending",
    }
    with sessions.begin() as s:
        cancel_batch(s, _batch_of(sessions, other[0]), now=utcnow())

    status = _statuses(sessions, batch)
    assert status["counts"][JobStatus.SUCCEEDED] == 2 and status["failures"] == {
        "transcript_not_found": 1
    }
    assert status["attempts"] == 4 and status["throughput_jobs_per_s"] is not None
    assert _statuses(sessions, _batch_of(sessions, other[0]))["counts"]["cancelled"] == 3
    _statuses(sessions, None)

    with sessions.begin() as s:
        reprocess(s, [jobs[2]], now=utcnow())
    # A reprocessed job's finished_at is cleared; the counters keep the latest finish seen
    # (a watermark), so only the throughput may differ from a scan here.
    with sessions() as s:
        counted, scanned = batch_status(s, batch), batch_status(s, batch, scan=True)
    counted.pop("throughput_jobs_per_s"), scanned.pop("throughput_jobs_per_s")
    assert counted == scanned and counted["counts"][JobStatus.PENDING] == 3

    assert _deltas(sessions) > 0
    with sessions.begin() as s:
        assert fold(s)
    assert _deltas(sessions) == 0
    with sessions() as s:
        folded = batch_status(s, batch)
        folded.pop("throughput_jobs_per_s")
        keys = s.scalar(
            select(func.count()).select_from(JobCount).where(JobCount.batch_id == batch)
        )
        groups = s.execute(
            select(Job.status, Job.error_kind).where(Job.batch_id == batch).distinct()
        ).all()
    assert folded == counted
    assert keys == len(groups) < len(jobs)  # one row per state and reason, not per job


def test_an_update_that_moves_no_job_writes_no_delta(sessions) -> None:
    jobs = _batch(sessions, 2)
    with sessions.begin() as s:
        fold(s)
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id.in_(jobs)).values(lease_expires_at=utcnow()))
    assert _deltas(sessions) == 0


def test_one_fold_at_a_time(sessions) -> None:
    with sessions.begin() as first, sessions.begin() as second:
        assert fold(first)
        assert not fold(second)


def test_the_migration_counts_the_jobs_already_there() -> None:
    database = new_database()
    database.create()
    url = database.url
    engine = make_engine(url)
    try:
        upgrade(url, "0004")
        with engine.begin() as conn:
            conn.execute(text(_OLD_ROWS))
        upgrade(url)
        sessions = make_session_factory(engine)
        status = _statuses(sessions, None)
        assert status["counts"][JobStatus.PENDING] == 2 and status["failures"] == {"auth": 1}
        assert status["attempts"] == 1 and status["http_429"] == 1
    finally:
        engine.dispose()
        database.drop()


def _batch_of(sessions: sessionmaker[Session], job_id: int) -> int:
    with sessions() as s:
        batch = s.scalar(select(Job.batch_id).where(Job.id == job_id))
    assert batch is not None
    return batch


# Written against the 0004 schema, before the counters existed.
_OLD_ROWS = """
INSERT INTO batches (id, priority, cancelled, created_at) VALUES (1, 0, false, now());
INSERT INTO templates (id, sha256, body, created_at) VALUES (1, 't', 'x', now());
INSERT INTO schemas (id, sha256, body, created_at) VALUES (1, 's', '{}', now());
INSERT INTO jobs (batch_id, transcript_id, template_id, schema_id, model, fallbacks, region,
                  model_region_global, priority, status, deliveries, transport_retries, reasks,
                  error_kind, created_at, finished_at)
VALUES (1, 'a', 1, 1, 'm', '[]', 'us', false, 0, 'pending', 0, 0, 0, NULL, now(), NULL),
       (1, 'b', 1, 1, 'm', '[]', 'us', false, 0, 'pending', 0, 0, 0, NULL, now(), NULL),
       (1, 'c', 1, 1, 'm', '[]', 'us', false, 0, 'failed', 1, 0, 0, 'auth', now(), now());
INSERT INTO attempts (job_id, purpose, model_requested, fallback_used, region, http_status,
                      outcome, started_at, finished_at)
SELECT id, 'call', 'm', false, 'us', 429, 'transient', now(), now()
FROM jobs WHERE transcript_id = 'c';
"""
