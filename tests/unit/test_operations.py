"""The on-call tools on SQLite: find by request_id, rerun failed or (forced) succeeded jobs with
history kept, EU residency on reprocess --model, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.attempts import Result, ResultHistory
from models.base import utcnow
from models.jobs import Job
from models.vocabulary import JobStatus
from tests.fakes import (
    GOOD,
    FakeGateway,
    FakeLimiter,
    answer,
    catalog,
    enqueue_lines,
    ids,
    settings,
    sqlite_sessions,
)
from worker.errors import InputError, NotFoundError
from worker.services.operations import (
    ARCHIVED_COLUMNS,
    cancel_batch,
    job_for_request_id,
    job_history,
    reprocess,
)
from worker.services.pipeline import PipelineDeps, process_job


def _world(tmp_path: Path, **kw: object) -> tuple[sessionmaker[Session], int]:
    sessions = sqlite_sessions(tmp_path)
    lines = [json.dumps({"transcript_id": t, "variables": {"team": "x"}}) for t in ids(3)]
    return sessions, enqueue_lines(sessions, lines, **kw)


def _run_one(sessions: sessionmaker[Session], job_id: int, reply: object) -> str:
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    deps = PipelineDeps(
        sessions=sessions, gateway=FakeGateway([reply]), limiter=FakeLimiter(), settings=settings()
    )
    return process_job(job_id, deps)


def test_reprocess_by_request_id_keeps_history(tmp_path: Path) -> None:
    sessions, _ = _world(tmp_path)
    from worker.errors import TranscriptNotFound

    _run_one(
        sessions, 1, TranscriptNotFound("transcript not found", status=404, request_id="rid-1")
    )
    with sessions.begin() as s:
        assert job_for_request_id(s, "rid-1") == 1
        assert reprocess(s, [1], now=utcnow()) == {"requeued": 1, "skipped": 0}
    assert _run_one(sessions, 1, answer(GOOD)) == "succeeded"
    with sessions() as s:
        history = job_history(s, 1)
    assert history["attempts"][0]["request_id"] == "rid-1"
    assert len(history["attempts"]) == 2
    assert history["result"] is not None


def test_unknown_request_id_is_a_clear_error(tmp_path: Path) -> None:
    sessions, _ = _world(tmp_path)
    with sessions() as s, pytest.raises(NotFoundError, match="no attempt has request_id 'nope'"):
        job_for_request_id(s, "nope")


def test_forced_rerun_archives_the_old_result(tmp_path: Path) -> None:
    sessions, _ = _world(tmp_path)
    _run_one(sessions, 1, answer(GOOD))
    with sessions() as s:
        old = s.execute(select(Result.__table__).where(Result.job_id == 1)).mappings().one()
    assert old["input_tokens"] is not None and old["request_id"] is not None
    with sessions.begin() as s:
        assert reprocess(s, [1], now=utcnow()) == {"requeued": 0, "skipped": 1}  # needs force
        assert reprocess(s, [1], now=utcnow(), force=True) == {"requeued": 1, "skipped": 0}
    with sessions() as s:
        assert s.scalar(select(Result).where(Result.job_id == 1)) is None
        kept = s.execute(select(ResultHistory.__table__).where(ResultHistory.job_id == 1))
        [archived] = kept.mappings().all()
    # Every column of the replaced result is kept as it was (tokens were once dropped).
    assert {name: archived[name] for name in ARCHIVED_COLUMNS} == {
        name: old[name] for name in ARCHIVED_COLUMNS
    }
    assert archived["replaced_at"] is not None
    assert _run_one(sessions, 1, answer(GOOD)) == "succeeded"


def test_result_history_has_a_column_for_every_column_of_results() -> None:
    """The archive copies by name: a column added to ``results`` alone would fail the copy."""
    assert set(ARCHIVED_COLUMNS) == {c.key for c in Result.__table__.columns} - {"id"}
    assert set(ARCHIVED_COLUMNS) <= {c.key for c in ResultHistory.__table__.columns}


def test_reprocess_cannot_move_an_eu_job_to_a_us_only_model(tmp_path: Path) -> None:
    sessions, _ = _world(tmp_path, region="eu")
    with sessions.begin() as s:
        s.execute(update(Job).values(status=JobStatus.FAILED))
    with (
        sessions.begin() as s,
        pytest.raises(InputError, match="'gpt-5' is not served by the EU host"),
    ):
        reprocess(s, [1], now=utcnow(), model="gpt-5", catalog=catalog)
    with sessions.begin() as s:
        assert (
            reprocess(s, [1], now=utcnow(), model="gemini-2.5-flash", catalog=catalog)["requeued"]
            == 1
        )
        assert s.get(Job, 1).model == "gemini-2.5-flash"  # type: ignore[union-attr]


def test_cancel_stops_waiting_jobs_and_keeps_results(tmp_path: Path) -> None:
    sessions, batch = _world(tmp_path)
    _run_one(sessions, 1, answer(GOOD))
    with sessions.begin() as s:
        assert cancel_batch(s, batch, now=utcnow()) == 2
    with sessions() as s:
        statuses = dict(s.execute(select(Job.id, Job.status)).all())
    assert statuses == {1: "succeeded", 2: "cancelled", 3: "cancelled"}


def test_reprocess_to_a_model_the_batch_already_runs_the_transcript_on_is_refused(
    tmp_path: Path,
) -> None:
    sessions, batch = _world(tmp_path)
    # The same transcript also enqueued on gemini into this batch: job 4.
    with sessions() as s:
        transcript = s.get(Job, 1).transcript_id  # type: ignore[union-attr]
    line = json.dumps({"transcript_id": transcript, "variables": {"team": "x"}})
    enqueue_lines(sessions, [line], batch_id=batch, model="gemini-2.5-flash")
    with sessions.begin() as s:
        s.execute(update(Job).values(status=JobStatus.FAILED))
    with (
        pytest.raises(InputError, match=r"job 1 cannot move to it, job 4 of batch"),
        sessions.begin() as s,
    ):
        reprocess(s, [2, 1], now=utcnow(), model="gemini-2.5-flash", catalog=catalog)
    with sessions() as s:  # nothing of the call was stored: job 2 was not moved either
        assert s.get(Job, 2).model == "claude-sonnet-4-6"  # type: ignore[union-attr]
