"""Spend over real sockets: prompt caching on a Claude model (marked only above the model's
minimum), a cost breakdown per attempt that adds up to the batch total, and ``global`` routing
per model of a chain, never on an EU job, as the emulator received it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models.attempts import Attempt
from models.jobs import Job
from models.vocabulary import JobStatus
from tests.fixtures.gateway_runs import client_settings, drive, usable_ids
from tests.fixtures.gateway_runs import world as world  # the fixture, for this module
from worker.services.enqueue import EnqueueRequest, enqueue
from worker.services.estimating import keep_estimate
from worker.services.pipeline import PipelineDeps, process_job
from worker.services.queries import batch_status

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}
RUBRIC = (
    "Rate the agent on empathy, accuracy and resolution, citing the call. " * 300
)  # ~5.2k tokens
SHORT_RUBRIC = "Rate the agent on empathy and accuracy. " * 300  # ~3k tokens
BREAKDOWN_PARTS = (
    "input_usd",
    "cache_read_usd",
    "cache_write_usd",
    "output_usd",
    "reasoning_usd",
    "surcharge_usd",
)


def _run(
    world: Any, template: str, n: int | list[str], estimator: Any = None, **fields: Any
) -> tuple[int, list[Attempt]]:
    """Enqueue ``n`` transcripts (or these ids) and deliver them one at a time (the first call
    writes the cache, the later ones read it); the batch id and its attempts in order."""
    gateway, sessions, client = world
    ids = n if isinstance(n, list) else usable_ids(gateway, n)
    req = EnqueueRequest(
        transcripts_source="ids.txt",
        template_text=template,
        template_source="t.j2",
        schema=SCHEMA,
        schema_source="s.json",
        **{"model": "claude-sonnet-4-6", **fields},
    )
    with sessions.begin() as s:
        batch = enqueue(s, req, ids, client.list_models, estimator=estimator).batch_id
    if estimator is not None:  # as `tbatch enqueue` does: after the jobs are committed
        with sessions.begin() as s:
            keep_estimate(s, batch, estimator)
    deps = PipelineDeps(sessions, client, None, client_settings(gateway.url))
    drive(sessions, deps, batch, rounds=10)
    with sessions() as s:
        attempts = list(
            s.scalars(
                select(Attempt)
                .join(Job, Job.id == Attempt.job_id)
                .where(Job.batch_id == batch)
                .order_by(Attempt.id)
            )
        )
    return batch, attempts


def test_a_long_static_prefix_on_claude_is_written_once_then_read(world) -> None:
    gateway, sessions, _ = world
    batch, attempts = _run(world, f"[system]\n{RUBRIC}\n[user]\nThe call:\n{{{{ transcript }}}}", 4)
    assert len(attempts) == 4 and all(a.http_status == 200 for a in attempts)
    sent = gateway.requests()
    assert [r["cache_control"] for r in sent] == [True] * 4
    first, *rest = attempts
    assert first.cache_write_tokens and first.cache_write_tokens > 2048 and not first.cached_tokens
    for attempt in rest:
        assert attempt.cached_tokens == first.cache_write_tokens and not attempt.cache_write_tokens
        assert attempt.input_tokens and attempt.input_tokens > attempt.cached_tokens
    # Reads cost a tenth of input, so the batch saved money over paying the prefix in full.
    breakdowns = [a.cost_breakdown for a in attempts]
    assert all(b is not None for b in breakdowns)
    assert breakdowns[0]["cache_saved_usd"] < 0 < breakdowns[1]["cache_saved_usd"]  # type: ignore[index]
    with sessions() as s:
        status = batch_status(s, batch)
    assert status["cached_tokens"] == sum(a.cached_tokens or 0 for a in attempts)
    assert status["cache_write_tokens"] == first.cache_write_tokens
    expected_saving = sum(b["cache_saved_usd"] for b in breakdowns)  # type: ignore[index]
    assert status["cache_saved_usd"] == pytest.approx(expected_saving, abs=1e-6)
    assert status["cache_saved_usd"] > 0


def test_every_attempts_breakdown_adds_up_to_the_batch_total(world) -> None:
    gateway, sessions, _ = world
    gateway.configure({"faults": [{"kind": "schema_violation", "rate": 0.5}]})
    batch, attempts = _run(world, f"{RUBRIC}{{{{ transcript }}}}", 6)
    assert len(attempts) > 6  # re-asks: more than one paid attempt for some jobs
    for attempt in attempts:
        breakdown = attempt.cost_breakdown
        assert breakdown is not None and attempt.cost_usd is not None
        parts = sum(breakdown[name] for name in BREAKDOWN_PARTS)
        assert parts == pytest.approx(attempt.cost_usd, abs=1e-9)
        assert breakdown["total_usd"] == attempt.cost_usd
        assert breakdown["surcharge_usd"] > 0 and not breakdown["global_routing"]
    with sessions() as s:
        status = batch_status(s, batch)
        scanned = batch_status(s, batch, scan=True)
    total = sum(a.cost_usd or 0 for a in attempts)
    assert status["cost_usd"] == pytest.approx(total, abs=1e-6)
    assert scanned["cost_usd"] == pytest.approx(total, abs=1e-6)
    assert status["cost_unknown_attempts"] == 0


def test_a_prefix_below_the_models_minimum_carries_no_cache_control(world) -> None:
    gateway, _, _ = world
    # ~3,000 tokens: above Sonnet 4.6's 2,048 but below Haiku 4.5's 4,096.
    _, attempts = _run(
        world, f"{SHORT_RUBRIC}{{{{ transcript }}}}", 2, model="claude-haiku-4-5-20251001"
    )
    assert [r["cache_control"] for r in gateway.requests()] == [False, False]
    assert all(not a.cached_tokens and not a.cache_write_tokens for a in attempts)
    assert all(a.cost_breakdown and a.cost_breakdown["cache_saved_usd"] == 0 for a in attempts)


def test_global_goes_only_to_models_that_list_it_and_is_priced_without_surcharge(world) -> None:
    gateway, _, _ = world
    # gpt-4.1 lists no "global"; Claude does: the fallback adds it by override.
    gateway.configure({"faults": [{"kind": "5xx", "model": "gpt-4.1"}]})
    _, attempts = _run(
        world,
        "{{ transcript }}",
        1,
        model="gpt-4.1",
        fallbacks=("claude-sonnet-4-6",),
        model_region_global=True,
    )
    (sent,) = gateway.requests()
    assert sent["model_regions"] == [None, "global"]
    (attempt,) = attempts
    assert attempt.model_answered == "claude-sonnet-4-6"
    assert attempt.plan is not None and attempt.plan["global"] == ["claude-sonnet-4-6"]
    breakdown = attempt.cost_breakdown
    assert breakdown is not None and breakdown["global_routing"]
    assert breakdown["surcharge_usd"] == 0 < breakdown["global_saved_usd"]


def test_global_is_never_sent_on_an_eu_job(world) -> None:
    gateway, sessions, client = world
    _, attempts = _run(world, "{{ transcript }}", 2, region="eu", fallbacks=("gemini-2.5-flash",))
    assert all(r["model_regions"] == [None, None] for r in gateway.requests())
    assert all(a.cost_breakdown and not a.cost_breakdown["global_routing"] for a in attempts)
    # A stored EU job that asks for global anyway (written by hand) is refused before sending.
    gateway.reset()
    with sessions.begin() as s:
        job = s.scalars(select(Job).where(Job.region == "eu")).first()
        assert job is not None
        job.model_region_global, job.status = True, JobStatus.QUEUED
        job_id = job.id
    process_job(job_id, PipelineDeps(sessions, client, None, client_settings(gateway.url)))
    assert gateway.requests() == []
    with sessions() as s:
        refused = s.get(Job, job_id)
        assert refused is not None and "global routing" in (refused.error_message or "")
