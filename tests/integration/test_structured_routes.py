"""Structured output on every model of a chain, over real sockets: the emulator plays the live
catalog (models without ``response_format``, without tools), the pipeline runs one delivery at
a time against real Postgres, and each attempt records the route its answering model took."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from emulator.routes.server import EmulatorProcess
from models.attempts import Attempt, Result
from models.jobs import Job
from models.vocabulary import JobStatus
from tests.fixtures.gateway_runs import client_settings, drive, usable_ids
from tests.fixtures.gateway_runs import world as world  # the fixture, for this module
from worker.errors import InputError
from worker.gateway import GatewayClient
from worker.services.enqueue import EnqueueRequest, enqueue
from worker.services.pipeline import PipelineDeps

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
        "topics": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "sentiment", "topics"],
    "additionalProperties": False,
}
TEMPLATE = "[system]\nYou analyse support calls.\n[user]\nAnalyse this call:\n{{ transcript }}\n"
PROMPT_ONLY = "qwen3.5-4b-32k-fast"  # no response_format, no tools
FORMAT = "gpt-5-mini"  # response_format
TOOL_ONLY = "gpt-oss-120b"  # tools, no response_format


def _enqueue(
    sessions: sessionmaker[Session],
    client: GatewayClient,
    lines: list[dict[str, Any]],
    template: str = TEMPLATE,
    **fields: Any,
) -> int:
    req = EnqueueRequest(
        transcripts_source="ids.jsonl",
        template_text=template,
        template_source="t.j2",
        schema=SCHEMA,
        schema_source="s.json",
        **{"model": PROMPT_ONLY, **fields},
    )
    with sessions() as s:
        out = enqueue(s, req, [json.dumps(line) for line in lines], client.list_models)  # type: ignore[arg-type]
        s.commit()
    return out.batch_id


def _attempts(sessions: sessionmaker[Session], transcript_id: str) -> list[Attempt]:
    with sessions() as s:
        job_id = s.scalar(select(Job.id).where(Job.transcript_id == transcript_id))
        return list(s.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id)))


def test_a_chain_of_all_three_kinds_gives_valid_results_with_each_calls_route(world) -> None:
    gateway, sessions, client = world
    plain, by_format, by_tool = usable_ids(gateway, 3)
    # The primary fails on two transcripts (and the first fallback on one), so the gateway's
    # own fallbacks answer: each model of the chain serves one job, through its own route.
    gateway.configure(
        {
            "faults": [
                {"kind": "5xx", "model": PROMPT_ONLY, "transcript_ids": [by_format, by_tool]},
                {"kind": "5xx", "model": FORMAT, "transcript_ids": [by_tool]},
            ]
        }
    )
    lines = [
        {"transcript_id": t, "fallbacks": [FORMAT, TOOL_ONLY]} for t in (plain, by_format, by_tool)
    ]
    batch = _enqueue(sessions, client, lines)
    drive(sessions, PipelineDeps(sessions, client, None, client_settings(gateway.url)), batch)

    with sessions() as s:
        results = {r.job_id: r for r in s.scalars(select(Result))}
        jobs = {j.transcript_id: j for j in s.scalars(select(Job).where(Job.batch_id == batch))}
    assert {j.status for j in jobs.values()} == {JobStatus.SUCCEEDED}
    expected = {
        plain: (PROMPT_ONLY, "prompt"),
        by_format: (FORMAT, "json_schema_strict"),
        by_tool: (TOOL_ONLY, "tool"),
    }
    for transcript, (model, route) in expected.items():
        (attempt,) = _attempts(sessions, transcript)
        assert (attempt.model_answered, attempt.route) == (model, route), transcript
        assert attempt.request_id and attempt.plan is not None
        assert [m["route"] for m in attempt.plan["models"]] == [
            "prompt",
            "json_schema_strict",
            "tool",
        ]
        data = results[jobs[transcript].id].data
        assert set(data) == set(SCHEMA["required"]) and data["sentiment"] in (
            "positive",
            "neutral",
            "negative",
        )

    sent = {r["transcript_id"]: r for r in gateway.requests()}
    assert sent[plain]["models_tried"] == [PROMPT_ONLY]
    assert sent[by_tool]["models_tried"] == [PROMPT_ONLY, FORMAT, TOOL_ONLY]


@pytest.mark.parametrize(
    ("chain", "route"),
    [
        ([FORMAT], "json_schema_strict"),
        ([TOOL_ONLY], "tool"),
        ([PROMPT_ONLY], "prompt"),
        ([FORMAT, TOOL_ONLY], "tool"),  # the tool model cannot inherit a response_format
        ([FORMAT, PROMPT_ONLY], "prompt"),
    ],
)
def test_each_chain_gets_a_route_every_model_of_it_takes(
    world, chain: list[str], route: str
) -> None:
    gateway, sessions, client = world
    (tid,) = usable_ids(gateway, 1)
    batch = _enqueue(
        sessions, client, [{"transcript_id": tid}], model=chain[0], fallbacks=tuple(chain[1:])
    )
    drive(sessions, PipelineDeps(sessions, client, None, client_settings(gateway.url)), batch)
    (attempt,) = _attempts(sessions, tid)
    assert attempt.http_status == 200 and attempt.route == route
    assert attempt.outcome in ("ok", "repaired")


def test_a_parameter_a_model_does_not_take_is_refused_at_enqueue(world) -> None:
    gateway, sessions, client = world
    (tid,) = usable_ids(gateway, 1)
    with pytest.raises(InputError, match=f"fallback '{FORMAT}' does not support temperature"):
        _enqueue(
            sessions,
            client,
            [{"transcript_id": tid}],
            model="claude-sonnet-4-6",
            fallbacks=(FORMAT,),
            temperature=0.3,
        )
    with sessions() as s:
        assert s.scalars(select(Job)).first() is None
    assert gateway.requests() == []  # nothing was called


# A static rubric of ~15,700 tokens (the template limit is 64 KiB): with max_tokens fitted to
# half the prompt-only model's 32,768-token context, rubric plus a long call cannot fit.
_RUBRIC = (
    "[system]\n"
    + "Rubric line: weigh the caller's words carefully. " * 1260
    + "\n[user]\nAnalyse this call:\n{{ transcript }}\n"
)


def _longest(gateway: EmulatorProcess) -> str:
    usable = [t for t in gateway.transcripts() if t["status"] == "completed" and not t["deleted"]]
    return str(max(usable, key=lambda t: t["minutes"])["id"])


def test_a_context_overflow_is_rerouted_to_the_largest_context_model(world) -> None:
    gateway, sessions, client = world
    tid = _longest(gateway)
    batch = _enqueue(
        sessions, client, [{"transcript_id": tid}], template=_RUBRIC, max_tokens=30_000
    )
    deps = PipelineDeps(sessions, client, None, client_settings(gateway.url))
    drive(sessions, deps, batch)

    first, second = _attempts(sessions, tid)
    assert (first.model_requested, first.error_kind, first.http_status) == (
        PROMPT_ONLY,
        "context_overflow",
        400,
    )
    catalog = client.list_models("us")
    largest = max(m.context_length or 0 for m in catalog.values())
    assert second.purpose == "reroute" and second.model_requested != PROMPT_ONLY
    assert catalog[second.model_requested].context_length == largest
    assert second.outcome in ("ok", "repaired")
    with sessions() as s:
        job = s.scalars(select(Job).where(Job.batch_id == batch)).one()
    assert job.status == JobStatus.SUCCEEDED and job.reroute_model == second.model_requested


def test_an_overflow_with_nowhere_larger_to_go_fails_with_that_reason(world) -> None:
    gateway, sessions, client = world
    tid = _longest(gateway)
    batch = _enqueue(
        sessions, client, [{"transcript_id": tid}], template=_RUBRIC, max_tokens=30_000
    )
    deps = PipelineDeps(
        sessions, client, None, client_settings(gateway.url, overflow_models=PROMPT_ONLY)
    )
    drive(sessions, deps, batch)
    with sessions() as s:
        job = s.scalars(select(Job).where(Job.batch_id == batch)).one()
    assert job.status == JobStatus.FAILED and job.error_kind == "context_overflow"
    assert "no eligible model of region us has a larger context" in (job.error_message or "")
    assert len(gateway.requests()) == 1
