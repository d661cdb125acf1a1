"""The job pipeline's service layer with hand-written fakes of the gateway and limiter, on a
real SQLite database (the embedded backend). Each test follows one job through one delivery."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.attempts import Attempt, Result
from models.jobs import Job
from models.vocabulary import JobStatus
from tests.fakes import (
    GOOD,
    FakeGateway,
    FakeLimiter,
    answer,
    enqueue_lines,
    ids,
    settings,
    sqlite_sessions,
)
from worker.errors import RateLimited, ServerError, TranscriptNotFound
from worker.services.pipeline import PipelineDeps, process_job


@pytest.fixture()
def world(tmp_path: Path) -> tuple[sessionmaker[Session], int]:
    sessions = sqlite_sessions(tmp_path)
    enqueue_lines(sessions, [f'{{"transcript_id": "{ids(1)[0]}", "variables": {{"team": "ops"}}}}'])
    with sessions.begin() as s:
        job_id = s.scalar(select(Job.id))
        assert job_id is not None
    return sessions, job_id


def _queue(sessions: sessionmaker[Session], job_id: int) -> None:
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))


def _run(
    world: tuple[sessionmaker[Session], int], script: list[object], **kw: object
) -> tuple[str, PipelineDeps]:
    sessions, job_id = world
    _queue(sessions, job_id)
    deps = PipelineDeps(
        sessions=sessions,
        gateway=FakeGateway(list(script)),
        limiter=FakeLimiter(),
        settings=settings(**kw),
    )
    return process_job(job_id, deps), deps


def _job(world: tuple[sessionmaker[Session], int]) -> tuple[Job, list[Attempt], Result | None]:
    sessions, job_id = world
    with sessions() as s:
        job = s.get(Job, job_id)
        attempts = list(
            s.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id))
        )
        result = s.scalar(select(Result).where(Result.job_id == job_id))
        assert job is not None
        return job, attempts, result


def test_valid_answer_succeeds_with_result_and_request_id(world) -> None:
    reply = answer(GOOD)
    outcome, deps = _run(world, [reply])
    job, attempts, result = _job(world)
    assert outcome == "succeeded" and job.status == JobStatus.SUCCEEDED
    assert result is not None and result.data["sentiment"] == "neutral" and not result.repaired
    assert result.request_id == reply.request_id == attempts[0].request_id
    assert attempts[0].outcome == "ok" and attempts[0].cost_usd and attempts[0].cost_usd > 0
    req = deps.gateway.requests[0]  # type: ignore[attr-defined]
    assert req.transcript_id == job.transcript_id
    assert "{{ transcript }}" in str(req.messages[1].content) and "ops" in str(
        req.messages[1].content
    )
    assert req.response_format_schema is not None


def test_malformed_answer_is_repaired_and_marked(world) -> None:
    outcome, _ = _run(
        world, [answer("```json\n{'summary': 'Refund asked', 'sentiment': 'neutral',}\n```")]
    )
    _, attempts, result = _job(world)
    assert outcome == "succeeded" and result is not None and result.repaired
    assert attempts[0].outcome == "repaired" and attempts[0].repairs


def test_invalid_answer_is_reasked_with_errors_then_succeeds(world) -> None:
    sessions, job_id = world
    outcome, deps = _run(world, [answer('{"summary": "x", "sentiment": "furious"}')])
    job, attempts, _ = _job(world)
    assert outcome == "reask" and job.status == JobStatus.PENDING and job.reasks == 1
    assert attempts[0].outcome == "invalid" and attempts[0].validation_errors
    _queue(sessions, job_id)
    deps.gateway.script.append(answer(GOOD))  # type: ignore[attr-defined]
    assert process_job(job_id, deps) == "succeeded"
    reask = deps.gateway.requests[1]  # type: ignore[attr-defined]
    assert "furious" in str(reask.messages[-1].content) or "furious" in str(
        reask.messages[-2].content
    )
    job, attempts, result = _job(world)
    assert [a.purpose for a in attempts] == ["call", "reask"] and result is not None


def test_reask_budget_is_bounded(world) -> None:
    sessions, job_id = world
    bad = '{"summary": "x"}'
    _outcome, deps = _run(world, [answer(bad)], max_reasks=1)
    _queue(sessions, job_id)
    deps.gateway.script.append(answer(bad))  # type: ignore[attr-defined]
    assert process_job(job_id, deps) == "failed"
    job, attempts, result = _job(world)
    assert job.status == JobStatus.FAILED and job.error_kind == "invalid_output"
    assert result is None and len(attempts) == 2


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (answer('{"summary": "cut', finish="length"), "truncated"),
        (answer(None, refusal="I can't help with that."), "refused"),
        (answer("I'm sorry, I can't help.", finish="refusal"), "refused"),
    ],
)
def test_refusal_and_truncation_fail_without_repair(world, reply, kind: str) -> None:
    outcome, _ = _run(world, [reply])
    job, attempts, result = _job(world)
    assert outcome == "failed" and job.error_kind == kind and result is None
    assert attempts[0].outcome == kind and not attempts[0].repairs


def test_transient_error_backs_off_in_postgres(world) -> None:
    outcome, _ = _run(world, [ServerError("upstream", status=503, request_id="r-503")])
    job, attempts, _ = _job(world)
    assert outcome == "retry" and job.status == JobStatus.PENDING
    assert job.transport_retries == 1 and job.not_before is not None
    assert attempts[0].request_id == "r-503" and attempts[0].outcome == "transient"


def test_rate_limit_pauses_model_and_keeps_retry_budget(world) -> None:
    outcome, deps = _run(world, [RateLimited("slow down", status=429, retry_after_s=7.0)])
    job, attempts, _ = _job(world)
    assert outcome == "rate_limited" and job.status == JobStatus.PENDING
    assert job.transport_retries == 0
    assert deps.limiter.paused == {"claude-sonnet-4-6": 7.0}  # type: ignore[union-attr]
    assert attempts[0].error_kind == "rate_limited"


def test_transport_retries_are_bounded(world) -> None:
    sessions, job_id = world
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(transport_retries=3))
    outcome, _ = _run(world, [ServerError("upstream", status=502)], max_transport_retries=3)
    job, _, _ = _job(world)
    assert outcome == "failed" and job.error_kind == "server_error"


def test_permanent_error_fails_with_actionable_reason(world) -> None:
    outcome, _ = _run(
        world, [TranscriptNotFound("transcript not found", status=404, request_id="r4")]
    )
    job, attempts, _ = _job(world)
    assert outcome == "failed" and job.error_kind == "transcript_not_found"
    assert "transcript not found" in (job.error_message or "")
    assert attempts[0].request_id == "r4"


def test_fallback_answer_debits_fallback_budget(world) -> None:
    outcome, deps = _run(world, [answer(GOOD, model="gemini-2.5-flash")])
    _, attempts, result = _job(world)
    assert outcome == "succeeded" and result is not None and result.model == "gemini-2.5-flash"
    assert attempts[0].fallback_used and deps.limiter.debits == ["gemini-2.5-flash"]  # type: ignore[union-attr]


def test_duplicate_delivery_is_skipped_without_a_call(world) -> None:
    _outcome, deps = _run(world, [answer(GOOD)])
    _sessions, job_id = world
    assert process_job(job_id, deps) == "skipped"
    assert len(deps.gateway.requests) == 1  # type: ignore[attr-defined]


def test_poison_job_fails_after_delivery_cap(world) -> None:
    sessions, job_id = world
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(deliveries=6))
    outcome, deps = _run(world, [], max_deliveries=6)
    job, _, _ = _job(world)
    assert outcome == "poison" and job.status == JobStatus.FAILED and job.error_kind == "poison"
    assert deps.gateway.requests == []  # type: ignore[attr-defined]


def test_content_cache_is_safe_under_concurrent_first_loads(world) -> None:
    """Regression: a thread that found the schema cached by another mid-load stored None."""
    import threading

    from worker.services.content_cache import ContentCache

    sessions, job_id = world
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        template_id, schema_id = job.template_id, job.schema_id
    for _ in range(20):
        cache = ContentCache()
        got: list[object] = []

        def load(cache: ContentCache = cache, got: list[object] = got) -> None:
            with sessions() as s:
                got.append(cache.load(s, template_id, schema_id)[1])

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(schema, dict) for schema in got)


def test_attempts_are_counted_in_prometheus_metrics(world) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_ok = value(
        "tbatch_attempt_outcomes_total", model="claude-sonnet-4-6", outcome="repaired"
    )
    before_calls = value("tbatch_gateway_calls_total", model="claude-sonnet-4-6", status="200")
    before_tokens = value("tbatch_tokens_total", model="claude-sonnet-4-6", direction="input")
    _run(world, [answer("{'summary': 'Refund asked', 'sentiment': 'neutral',}")])
    assert (
        value("tbatch_attempt_outcomes_total", model="claude-sonnet-4-6", outcome="repaired")
        == before_ok + 1
    )
    assert (
        value("tbatch_gateway_calls_total", model="claude-sonnet-4-6", status="200")
        == before_calls + 1
    )
    assert (
        value("tbatch_tokens_total", model="claude-sonnet-4-6", direction="input")
        == before_tokens + 100
    )


def test_finished_jobs_are_counted_by_status_and_kind(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    def finished(status: str, kind: str) -> float:
        labels = {"model": "claude-sonnet-4-6", "status": status, "kind": kind}
        return REGISTRY.get_sample_value("tbatch_jobs_finished_total", labels) or 0.0

    before = finished("succeeded", ""), finished("failed", "transcript_not_found")
    sessions = sqlite_sessions(tmp_path)
    enqueue_lines(
        sessions, [f'{{"transcript_id": "{t}", "variables": {{"team": "x"}}}}' for t in ids(2)]
    )
    with sessions() as s:
        first, second = s.scalars(select(Job.id).order_by(Job.id))
    assert _run((sessions, first), [answer(GOOD)])[0] == "succeeded"
    missing = TranscriptNotFound("transcript not found", status=404, request_id="r9")
    assert _run((sessions, second), [missing])[0] == "failed"
    after = finished("succeeded", ""), finished("failed", "transcript_not_found")
    assert after == (before[0] + 1, before[1] + 1)


def test_rate_limits_and_reasks_never_make_a_job_poison(world) -> None:
    """Regression: every 429 used to count as a delivery, so 6 of them failed a job as poison."""
    sessions, job_id = world
    deps = PipelineDeps(
        sessions=sessions,
        gateway=FakeGateway(),
        limiter=FakeLimiter(),
        settings=settings(max_deliveries=3),
    )
    for _ in range(8):
        _queue(sessions, job_id)
        deps.gateway.script.append(RateLimited("slow down", status=429, retry_after_s=1.0))  # type: ignore[attr-defined]
        assert process_job(job_id, deps) == "rate_limited"
    _queue(sessions, job_id)
    deps.gateway.script.append(answer(GOOD))  # type: ignore[attr-defined]
    assert process_job(job_id, deps) == "succeeded"


def test_heartbeat_renews_only_the_leases_this_process_holds(world) -> None:
    from datetime import timedelta

    from models.base import utcnow
    from worker.services.reconcile import renew_leases

    sessions, job_id = world
    now = utcnow()
    with sessions.begin() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.RUNNING, lease_token="mine", lease_expires_at=now)
        )
    with sessions.begin() as s:
        assert renew_leases(s, {job_id: "not-mine"}, now=now, lease_s=60) == 0
        assert renew_leases(s, {job_id: "mine", 999: "x"}, now=now, lease_s=60) == 1
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.lease_expires_at == now + timedelta(seconds=60)


def test_no_permit_in_time_sends_nothing_and_spends_nothing(world) -> None:
    sessions, job_id = world
    _queue(sessions, job_id)
    limiter = FakeLimiter(refuse_permits=1)
    gateway = FakeGateway([answer(GOOD)])
    deps = PipelineDeps(sessions=sessions, gateway=gateway, limiter=limiter, settings=settings())
    assert process_job(job_id, deps) == "deferred"
    job, attempts, _ = _job(world)
    assert gateway.requests == [] and attempts == []
    assert job.status == JobStatus.PENDING and job.transport_retries == 0 and job.reasks == 0
    assert job.deliveries == 0 and job.lease_token is None
    _queue(sessions, job_id)
    assert process_job(job_id, deps) == "succeeded"  # released again, it runs


def test_every_answer_reports_its_headers_with_the_send_time(world) -> None:
    outcome, deps = _run(world, [answer(GOOD)])
    _, attempts, _ = _job(world)
    limiter = deps.limiter
    assert isinstance(limiter, FakeLimiter)
    assert outcome == "succeeded" and limiter.permits == ["claude-sonnet-4-6"]
    [(model, sent_at_s, info)] = limiter.observed
    assert (model, info.limit) == ("claude-sonnet-4-6", 30)
    assert sent_at_s is not None and attempts[0].sent_at is not None
    assert attempts[0].sent_at.timestamp() == pytest.approx(sent_at_s)


def test_a_429_pauses_the_model_the_gateway_names(world) -> None:
    limited = RateLimited("slow down", status=429, retry_after_s=5.0, limit_model="gpt-5")
    outcome, deps = _run(world, [limited])
    assert outcome == "rate_limited"
    assert deps.limiter.paused == {"gpt-5": 5.0}  # type: ignore[union-attr]
