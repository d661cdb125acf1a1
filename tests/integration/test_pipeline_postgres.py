"""One delivery of one job against real Postgres, with the gateway and limiter faked: what the
database refuses (NUL, over-long fields), what happened while the call was in flight (a cancel,
a lost lease, a forced reprocess) and what this process's heartbeat keeps."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.attempts import Attempt, Result
from models.base import utcnow
from models.content import Schema
from models.db import make_engine, make_session_factory
from models.jobs import Batch, Job
from models.vocabulary import JobStatus
from tests.fakes import GOOD, FakeGateway, FakeLimiter, answer, enqueue_lines, settings
from worker.errors import InputError, RateLimited, ServerError
from worker.gateway.client import SendGate
from worker.gateway.types import CompletionRequest, CompletionResult
from worker.services.operations import cancel_batch, reprocess
from worker.services.pipeline import PipelineDeps, process_job


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class InFlight(FakeGateway):
    """Runs ``during`` while the call is in flight, after the request left."""

    during: Callable[[], None] = field(default=lambda: None)

    def complete(
        self,
        req: CompletionRequest,
        log_fields: Mapping[str, Any] | None = None,
        gate: SendGate | None = None,
    ) -> CompletionResult:
        self.during()
        return super().complete(req, log_fields, gate)


class BrokenLimiter(FakeLimiter):
    def on_429(
        self, model: str, region: str | None, retry_after_s: float | None, cap_s: float
    ) -> float:
        raise RuntimeError("redis went away")


def _new_job(sessions: sessionmaker[Session]) -> tuple[int, int]:
    line = json.dumps({"transcript_id": str(uuid.uuid4()), "variables": {"team": "ops"}})
    batch = enqueue_lines(sessions, [line])
    with sessions.begin() as s:
        job_id = s.scalar(select(Job.id).where(Job.batch_id == batch))
        assert job_id is not None
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    return batch, job_id


def _deps(sessions: sessionmaker[Session], gateway: FakeGateway, **kw: Any) -> PipelineDeps:
    limiter = kw.pop("limiter", None) or FakeLimiter()
    return PipelineDeps(
        sessions=sessions, gateway=gateway, limiter=limiter, settings=settings(**kw)
    )


def _state(
    sessions: sessionmaker[Session], job_id: int
) -> tuple[Job, list[Attempt], Result | None]:
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        attempts = list(
            s.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id))
        )
        return job, attempts, s.scalar(select(Result).where(Result.job_id == job_id))


def test_nul_characters_in_a_valid_answer_are_removed_and_recorded(sessions) -> None:
    _, job_id = _new_job(sessions)
    content = '{"summary": "Refund\\u0000 asked", "sentiment": "neutral"}'
    reply = answer(content)
    assert process_job(job_id, _deps(sessions, FakeGateway([reply]))) == "succeeded"
    job, [attempt], result = _state(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED and result is not None
    assert result.data["summary"] == "Refund asked" and result.repaired
    assert attempt.repairs == ["nul_removed"] and attempt.request_id == reply.request_id


def test_nul_in_an_invalid_answer_still_gives_a_reask(sessions) -> None:
    _, job_id = _new_job(sessions)
    raw = 'not json \x00 at all {"summary": "\\u0000", "sentiment": "furious\x00"}'
    assert process_job(job_id, _deps(sessions, FakeGateway([answer(raw)]))) == "reask"
    job, [attempt], _ = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and job.reask_context is not None
    assert "\x00" not in (attempt.raw_text or "") and "\ufffd" in (attempt.raw_text or "")


def test_a_number_beyond_a_float_is_invalid_not_a_crash(sessions) -> None:
    _, job_id = _new_job(sessions)
    reply = answer('{"summary": "x", "sentiment": "neutral", "score": 1e999}')
    assert process_job(job_id, _deps(sessions, FakeGateway([reply]))) == "reask"
    _, [attempt], result = _state(sessions, job_id)
    assert result is None and "out of range" in json.dumps(attempt.validation_errors)


def test_gateway_fields_longer_than_their_columns_are_cut_not_lost(sessions) -> None:
    _, job_id = _new_job(sessions)
    reply = answer(GOOD, model="m" * 300).model_copy(
        update={"request_id": "r" * 300, "finish_reason_raw": "stop-" + "x" * 100}
    )
    assert process_job(job_id, _deps(sessions, FakeGateway([reply]))) == "succeeded"
    _, [attempt], result = _state(sessions, job_id)
    assert attempt.request_id == "r" * 64 and attempt.model_answered == "m" * 100
    assert result is not None and result.request_id == "r" * 64


def test_a_limiter_error_on_a_429_still_records_it_and_requeues(sessions) -> None:
    _, job_id = _new_job(sessions)
    limited = RateLimited("rate limited", status=429, request_id="rid-429", retry_after_s=5)
    deps = _deps(sessions, FakeGateway([limited]), limiter=BrokenLimiter())
    assert process_job(job_id, deps) == "rate_limited"
    job, [attempt], _ = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and attempt.request_id == "rid-429"


def test_a_call_in_flight_at_cancel_is_recorded_and_never_called_again(sessions) -> None:
    batch, job_id = _new_job(sessions)

    def cancel() -> None:
        with sessions.begin() as s:
            cancel_batch(s, batch, now=utcnow())

    error = ServerError("upstream model error", status=503, request_id="rid-503")
    deps = _deps(sessions, InFlight([error], during=cancel))
    assert process_job(job_id, deps) == "retry"
    job, [attempt], _ = _state(sessions, job_id)
    assert job.status == JobStatus.CANCELLED and job.error_kind == "cancelled"
    assert attempt.request_id == "rid-503" and job.finished_at is not None


def test_a_job_queued_before_its_batch_paused_is_parked_uncalled(sessions) -> None:
    batch, job_id = _new_job(sessions)
    with sessions.begin() as s:
        s.execute(update(Batch).where(Batch.id == batch).values(paused_reason="paused after 5"))
    gateway = FakeGateway([answer(GOOD)])
    assert process_job(job_id, _deps(sessions, gateway)) == "parked"
    job, attempts, result = _state(sessions, job_id)
    assert gateway.requests == [] and attempts == [] and result is None
    assert job.status == JobStatus.PENDING and job.deliveries == 0
    # Once resumed, the next delivery of a queued job is claimed and called.
    with sessions.begin() as s:
        s.execute(update(Batch).where(Batch.id == batch).values(paused_reason=None))
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    assert process_job(job_id, _deps(sessions, gateway)) == "succeeded"
    assert len(gateway.requests) == 1


def test_a_duplicate_delivery_of_a_paused_batchs_running_job_is_skipped(sessions) -> None:
    batch, job_id = _new_job(sessions)
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.RUNNING))
        s.execute(update(Batch).where(Batch.id == batch).values(paused_reason="paused after 5"))
    assert process_job(job_id, _deps(sessions, FakeGateway([]))) == "skipped"
    assert _state(sessions, job_id)[0].status == JobStatus.RUNNING


@pytest.mark.parametrize("answer_text", ['{"summary": "x", "sentiment": "furious"}', GOOD])
def test_a_cancelled_batch_settles_a_reask_as_cancelled_and_keeps_a_success(
    sessions, answer_text: str
) -> None:
    batch, job_id = _new_job(sessions)

    def cancel() -> None:
        with sessions.begin() as s:
            cancel_batch(s, batch, now=utcnow())

    outcome = process_job(job_id, _deps(sessions, InFlight([answer(answer_text)], during=cancel)))
    job, _, result = _state(sessions, job_id)
    if answer_text == GOOD:  # a call already in flight may finish and keep its result
        assert outcome == "succeeded" and job.status == JobStatus.SUCCEEDED and result is not None
    else:
        assert outcome == "reask" and job.status == JobStatus.CANCELLED


def test_enqueue_into_a_cancelled_batch_and_reprocess_of_its_jobs_are_refused(sessions) -> None:
    batch, job_id = _new_job(sessions)
    with sessions.begin() as s:
        cancel_batch(s, batch, now=utcnow())
    with pytest.raises(InputError, match=f"batch {batch} was cancelled"):
        enqueue_lines(sessions, [json.dumps({"transcript_id": str(uuid.uuid4())})], batch_id=batch)
    with pytest.raises(InputError, match="cancelled"), sessions.begin() as s:
        reprocess(s, [job_id], now=utcnow())
    with sessions() as s:
        assert s.scalar(select(Job.status).where(Job.id == job_id)) == JobStatus.CANCELLED


def test_the_reconciler_cancels_instead_of_requeueing_a_lost_job_of_a_cancelled_batch(
    sessions,
) -> None:
    from worker.services.reconcile import reconcile

    batch, job_id = _new_job(sessions)
    with sessions.begin() as s:
        past = utcnow()
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.RUNNING, lease_token="t", lease_expires_at=past)
        )
        cancel_batch(s, batch, now=past)
    with sessions.begin() as s:
        reconcile(s, now=utcnow(), requeue_after_s=90, max_deliveries=5)
    job, _, _ = _state(sessions, job_id)
    assert job.status == JobStatus.CANCELLED and job.lease_token is None


def test_a_delivery_that_lost_its_lease_records_its_answer_as_an_attempt_only(sessions) -> None:
    _, job_id = _new_job(sessions)
    first = answer(GOOD)
    late = answer('{"summary": "A late answer.", "sentiment": "negative"}')

    def lose_lease_and_reprocess() -> None:
        # The reconciler took the job back; another delivery finished it; then a forced
        # reprocess archived that result and the job waits again.
        with sessions.begin() as s:
            s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
        assert process_job(job_id, _deps(sessions, FakeGateway([first]))) == "succeeded"
        with sessions.begin() as s:
            reprocess(s, [job_id], now=utcnow(), force=True)

    gateway = InFlight([late], during=lose_lease_and_reprocess)
    assert process_job(job_id, _deps(sessions, gateway)) == "lease_lost"
    job, attempts, result = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and result is None  # the reprocess stands
    assert {a.request_id for a in attempts} == {first.request_id, late.request_id}


def test_a_duplicate_delivery_keeps_the_live_calls_lease(sessions) -> None:
    _, job_id = _new_job(sessions)
    seen: dict[str, dict[int, str]] = {}

    def duplicate_arrives() -> None:
        # The broker redelivers the message while this process is still calling.
        assert process_job(job_id, deps) == "skipped"
        seen["leases"] = deps.leases.snapshot()

    deps = _deps(sessions, InFlight([answer(GOOD)], during=duplicate_arrives))
    assert process_job(job_id, deps) == "succeeded"
    assert job_id in seen["leases"]  # the heartbeat still renews the live call
    assert deps.leases.snapshot() == {}


def test_a_schema_that_cannot_be_used_fails_the_job_with_its_reason(sessions) -> None:
    _, job_id = _new_job(sessions)
    with sessions.begin() as s:
        schema_id = s.scalar(select(Job.schema_id).where(Job.id == job_id))
        # Stored content no worker can use (written by hand, not through enqueue).
        bad = Schema(sha256=uuid.uuid4().hex * 2, body={"$ref": "#/$defs/missing"})
        s.add(bad)
        s.flush()
        s.execute(update(Job).where(Job.id == job_id).values(schema_id=bad.id))
    assert schema_id is not None
    gateway = FakeGateway([])
    assert process_job(job_id, _deps(sessions, gateway)) == "failed"
    job, attempts, _ = _state(sessions, job_id)
    assert job.status == JobStatus.FAILED and job.error_kind == "bad_content"
    assert "schema" in (job.error_message or "") and attempts == [] and gateway.requests == []


def test_a_refused_key_holds_the_job_and_halts_this_worker(sessions) -> None:
    from worker.errors import AuthFailed
    from worker.services.queries import batch_status

    batch, job_id = _new_job(sessions)
    refused = AuthFailed("gateway rejected the API key", status=401, request_id="rid-401")
    gateway = FakeGateway([refused])
    deps = _deps(sessions, gateway)
    assert process_job(job_id, deps) == "held"
    job, [attempt], _ = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and job.error_kind == "auth"
    assert (job.deliveries, job.transport_retries) == (0, 0) and job.not_before is not None
    assert attempt.request_id == "rid-401"
    # The next delivery on this machine is held without a call.
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    assert process_job(job_id, deps) == "held" and len(gateway.requests) == 1
    with sessions() as s:
        held = batch_status(s, batch)["held"]
    assert held["auth"]["jobs"] == 1 and "rejected the API key" in held["auth"]["reason"]


def test_no_key_on_this_machine_holds_the_job_without_an_attempt(sessions) -> None:
    from worker.errors import AuthFailed

    _, job_id = _new_job(sessions)
    deps = _deps(sessions, FakeGateway([AuthFailed("ASSEMBLYAI_API_KEY is not set")]))
    assert process_job(job_id, deps) == "held"
    job, attempts, _ = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and attempts == [] and deps.halt.active()


def test_a_model_missing_from_the_catalog_pauses_its_lane_and_holds_the_job(sessions) -> None:
    from worker.errors import ModelUnavailable

    _, job_id = _new_job(sessions)
    limiter = FakeLimiter()
    missing = ModelUnavailable("model 'claude-sonnet-4-6' is not in the US catalog")
    deps = _deps(sessions, FakeGateway([missing]), limiter=limiter, fleet_hold_s=45)
    assert process_job(job_id, deps) == "held"
    job, attempts, _ = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and job.error_kind == "model_unavailable"
    assert attempts == [] and limiter.paused == {"claude-sonnet-4-6": 45}
    assert not deps.halt.active()  # the machine is fine; the model's lane waits


class DownLimiter(FakeLimiter):
    def permit(self, model: str, region: str | None) -> float:
        from worker.errors import LimiterUnavailable

        raise LimiterUnavailable("Redis unreachable: ConnectionError")


def test_a_limiter_outage_before_the_send_holds_the_job_uncalled(sessions) -> None:
    _, job_id = _new_job(sessions)
    gateway = FakeGateway([answer(GOOD)])
    assert process_job(job_id, _deps(sessions, gateway, limiter=DownLimiter())) == "held"
    job, attempts, _ = _state(sessions, job_id)
    assert job.status == JobStatus.PENDING and job.error_kind == "limiter_unavailable"
    assert attempts == [] and gateway.requests == [] and job.transport_retries == 0


class LostDatabase:
    """Content loading that meets a database gone away (Postgres restarting)."""

    def load(self, session: Session, template_id: int, schema_id: int) -> Any:
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT", {}, Exception("server closed the connection"))


def test_a_database_error_while_loading_content_is_not_bad_content(sessions) -> None:
    from sqlalchemy.exc import OperationalError

    _, job_id = _new_job(sessions)
    gateway = FakeGateway([])
    deps = _deps(sessions, gateway)
    deps.content = LostDatabase()  # type: ignore[assignment]
    with pytest.raises(OperationalError):
        process_job(job_id, deps)
    job, attempts, _ = _state(sessions, job_id)
    # Left under its lease for the reconciler, not failed: the content was never the problem.
    assert job.status == JobStatus.RUNNING and job.error_kind is None
    assert attempts == [] and gateway.requests == []


def test_a_database_gone_while_settling_an_answer_is_an_outage_not_unstorable(sessions) -> None:
    from sqlalchemy.exc import OperationalError

    _, job_id = _new_job(sessions)
    # Mid-call the database restarts: the next session meets a refused connection, the one
    # after it finds the database back (where the old code wrote "failed: unstorable").
    refused = make_session_factory(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/gone"))

    class Restarting:
        def __init__(self) -> None:
            self.down = True

        def _pick(self) -> sessionmaker[Session]:
            down, self.down = self.down, False
            return refused if down else sessions

        def __call__(self) -> Session:
            return self._pick()()

        def begin(self) -> Any:
            return self._pick().begin()

    def database_goes_away() -> None:
        deps.sessions = Restarting()  # type: ignore[assignment]

    deps = _deps(sessions, InFlight([answer(GOOD)], during=database_goes_away))
    with pytest.raises(OperationalError):
        process_job(job_id, deps)
    job, attempts, result = _state(sessions, job_id)
    # Left under its lease for the reconciler; not failed as "unstorable".
    assert job.status == JobStatus.RUNNING and job.error_kind is None
    assert attempts == [] and result is None


def test_results_carry_custom_id_metadata_and_what_the_attempts_cost(
    sessions: sessionmaker[Session],
) -> None:
    """The user's keys come back with every result, and so does each job's spend (all its
    attempts: a transient failure first, then the answer)."""
    from worker.services.export import write_results
    from worker.services.queries import iter_results

    first, second = (str(uuid.uuid4()) for _ in range(2))
    lines = [
        json.dumps(
            {
                "transcript_id": first,
                "variables": {"team": "a"},
                "custom_id": "crm-1",
                "metadata": {"account": "A-1", "tier": 3},
            }
        ),
        json.dumps({"transcript_id": second, "variables": {"team": "b"}, "custom_id": "crm-2"}),
    ]
    batch = enqueue_lines(sessions, lines)
    with sessions() as s:
        job_ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch).order_by(Job.id)))
    gateway = FakeGateway([ServerError("boom", status=503), answer(GOOD)])
    deps = PipelineDeps(
        sessions=sessions,
        gateway=gateway,
        limiter=FakeLimiter(),
        settings=settings(retry_backoff_base_s=0.0),
    )
    for _ in range(2):
        with sessions.begin() as s:
            s.execute(update(Job).where(Job.id == job_ids[0]).values(status=JobStatus.QUEUED))
        process_job(job_ids[0], deps)
    with sessions.begin() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_ids[1])
            .values(status=JobStatus.FAILED, error_kind="refused", error_message="no")
        )
    with sessions() as s:
        records = list(iter_results(s, batch))
        only_failed = list(iter_results(s, batch, status=JobStatus.FAILED))
    done, failed = records
    assert (done["custom_id"], json.loads(done["metadata"])) == (
        "crm-1",
        {"account": "A-1", "tier": 3},
    )
    assert (done["status"], done["attempts"], done["input_tokens"]) == ("succeeded", 2, 100)
    assert done["finished_at"] is not None and json.loads(done["result"])["summary"]
    assert (failed["custom_id"], failed["metadata"], failed["attempts"]) == ("crm-2", None, 0)
    assert failed["error"] == "refused: no"
    assert [r["job_id"] for r in only_failed] == [job_ids[1]]
    out, errors = io.StringIO(), io.StringIO()
    assert write_results(records, "jsonl", out, errors=errors) == 1
    assert json.loads(out.getvalue())["custom_id"] == "crm-1"
    assert json.loads(errors.getvalue())["custom_id"] == "crm-2"


def test_a_failed_jobs_record_carries_its_last_calls_request_id(
    sessions: sessionmaker[Session],
) -> None:
    """`tbatch results --errors` is what the on-call engineer greps: a job that ended without
    a result names the request_id of its last call, the one `tbatch show` finds."""
    from worker.errors import TranscriptNotFound
    from worker.services.queries import iter_results

    lines = [
        json.dumps({"transcript_id": str(uuid.uuid4()), "variables": {"team": t}}) for t in "ab"
    ]
    batch = enqueue_lines(sessions, lines)
    with sessions() as s:
        job_ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch).order_by(Job.id)))
    gone = TranscriptNotFound("transcript deleted", status=404, request_id="req-gone-404")
    gateway = FakeGateway([answer(GOOD), gone])
    deps = PipelineDeps(
        sessions=sessions, gateway=gateway, limiter=FakeLimiter(), settings=settings()
    )
    for job_id in job_ids:
        with sessions.begin() as s:
            s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
        process_job(job_id, deps)
    with sessions() as s:
        done, failed = list(iter_results(s, batch))
        answered = s.scalar(select(Result.request_id).where(Result.job_id == job_ids[0]))
    assert (done["status"], done["request_id"]) == ("succeeded", answered)
    assert answered is not None
    assert failed["status"] == "failed" and failed["error"].startswith("transcript_not_found")
    assert (failed["request_id"], failed["attempts"]) == ("req-gone-404", 1)
    assert "last_attempt" not in failed and "last_attempt" not in done


def test_a_custom_id_the_batch_holds_is_refused_and_nothing_is_stored(
    sessions: sessionmaker[Session],
) -> None:
    line = {"transcript_id": str(uuid.uuid4()), "variables": {"team": "a"}, "custom_id": "dup"}
    batch = enqueue_lines(sessions, [json.dumps(line)])
    again = [
        json.dumps({**line, "transcript_id": str(uuid.uuid4())}),
        json.dumps({"transcript_id": str(uuid.uuid4()), "variables": {"team": "a"}}),
    ]
    with pytest.raises(InputError, match="custom_id of this input is already used in batch"):
        enqueue_lines(sessions, again, batch_id=batch)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.batch_id == batch)) == 1
