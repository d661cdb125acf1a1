"""The batch's verdicts on Postgres (worker/services/batch_health.py): a canary passes on a
success or on mixed reasons, same-kind failures pause it at its size, a success resets the
streak, and after the canary a streak of ``pause_streak`` pauses a running batch."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.jobs import Batch
from worker.services import batch_health

MESSAGE = "Your account does not have access to this LLM Gateway model; HTTP 400"


def _batch(sessions: sessionmaker[Session], canary_jobs: int) -> int:
    with sessions.begin() as s:
        batch = Batch(name="b", canary_jobs=canary_jobs)
        s.add(batch)
        s.flush()
        return batch.id


def _fail(
    sessions: sessionmaker[Session], batch_id: int, kind: str, *, pause_streak: int = 10
) -> None:
    with sessions.begin() as s:
        batch_health.on_failed(s, batch_id, kind, MESSAGE, pause_streak=pause_streak, now=utcnow())


def _succeed(sessions: sessionmaker[Session], batch_id: int) -> None:
    with sessions.begin() as s:
        batch_health.on_succeeded(s, batch_id)


def _state(sessions: sessionmaker[Session], batch_id: int) -> Batch:
    with sessions() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None
        s.expunge(batch)
        return batch


def test_a_success_passes_the_canary(fresh_sessions: sessionmaker[Session]) -> None:
    batch_id = _batch(fresh_sessions, canary_jobs=5)
    _fail(fresh_sessions, batch_id, "bad_request")
    _succeed(fresh_sessions, batch_id)
    batch = _state(fresh_sessions, batch_id)
    assert (batch.canary_jobs, batch.streak, batch.streak_kind) == (0, 0, None)
    assert batch.paused_reason is None


def test_mixed_reasons_pass_the_canary(fresh_sessions: sessionmaker[Session]) -> None:
    batch_id = _batch(fresh_sessions, canary_jobs=3)
    _fail(fresh_sessions, batch_id, "bad_request")
    _fail(fresh_sessions, batch_id, "refused")
    _fail(fresh_sessions, batch_id, "refused")
    batch = _state(fresh_sessions, batch_id)
    assert (batch.canary_jobs, batch.streak, batch.streak_kind) == (0, 2, "refused")
    assert batch.paused_reason is None  # 2 < pause_streak once the canary passed


def test_same_kind_failures_pause_at_the_canary_size(
    fresh_sessions: sessionmaker[Session],
) -> None:
    batch_id = _batch(fresh_sessions, canary_jobs=3)
    for _ in range(2):
        _fail(fresh_sessions, batch_id, "bad_request")
    assert _state(fresh_sessions, batch_id).paused_reason is None
    _fail(fresh_sessions, batch_id, "bad_request")
    batch = _state(fresh_sessions, batch_id)
    assert batch.paused_reason == (
        f"paused after 3 permanent failures in a row (bad_request): {MESSAGE}"
    )
    assert batch.paused_at is not None and batch.canary_jobs == 3
    _fail(fresh_sessions, batch_id, "bad_request")  # a job in flight at the pause
    later = _state(fresh_sessions, batch_id)
    assert (later.paused_reason, later.paused_at) == (batch.paused_reason, batch.paused_at)


def test_poison_and_cancelled_are_not_verdicts(fresh_sessions: sessionmaker[Session]) -> None:
    batch_id = _batch(fresh_sessions, canary_jobs=2)
    _fail(fresh_sessions, batch_id, "bad_request")
    _fail(fresh_sessions, batch_id, "poison")
    _fail(fresh_sessions, batch_id, "cancelled")
    batch = _state(fresh_sessions, batch_id)
    assert (batch.canary_jobs, batch.streak, batch.paused_reason) == (2, 1, None)


def test_a_success_resets_the_streak_and_a_streak_pauses_a_running_batch(
    fresh_sessions: sessionmaker[Session],
) -> None:
    batch_id = _batch(fresh_sessions, canary_jobs=0)
    for _ in range(3):
        _fail(fresh_sessions, batch_id, "invalid_output", pause_streak=4)
    _succeed(fresh_sessions, batch_id)
    assert _state(fresh_sessions, batch_id).streak == 0
    for _ in range(3):
        _fail(fresh_sessions, batch_id, "invalid_output", pause_streak=4)
    _fail(fresh_sessions, batch_id, "truncated", pause_streak=4)  # another reason: restarts
    assert _state(fresh_sessions, batch_id).paused_reason is None
    for _ in range(3):
        _fail(fresh_sessions, batch_id, "truncated", pause_streak=4)
    reason = _state(fresh_sessions, batch_id).paused_reason
    assert reason is not None and reason.startswith(
        "paused after 4 permanent failures in a row (truncated): "
    )


def test_pause_streak_zero_never_pauses(fresh_sessions: sessionmaker[Session]) -> None:
    batch_id = _batch(fresh_sessions, canary_jobs=0)
    for _ in range(20):
        _fail(fresh_sessions, batch_id, "auth", pause_streak=0)
    batch = _state(fresh_sessions, batch_id)
    assert (batch.streak, batch.paused_reason) == (20, None)


def test_the_reason_is_one_short_line() -> None:
    long = "first line\nsecond\tline " + "x" * 1000
    line = batch_health.one_line(long)
    assert "\n" not in line and len(line) == batch_health.REASON_MESSAGE_CHARS
    assert line.startswith("first line second line x")
