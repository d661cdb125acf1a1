"""Enqueue on Postgres (the array-insert path): every per-job field lands, re-enqueueing into a
batch adds nothing, and concurrent first enqueues of one template both succeed."""

from __future__ import annotations

import json
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.jobs import Job
from tests.fakes import SCHEMA, TEMPLATE, catalog, ids
from worker.services.enqueue import EnqueueRequest, enqueue


def _req(**kw: object) -> EnqueueRequest:
    fields: dict[str, object] = {
        "transcripts_source": "ids",
        "template_text": TEMPLATE,
        "template_source": "t",
        "schema": SCHEMA,
        "schema_source": "s",
        "model": "claude-sonnet-4-6",
        "region": "eu",
        "priority": 2,
        "model_region_global": False,  # an EU job never routes globally (residency)
    }
    fields.update(kw)
    return EnqueueRequest(**fields)  # type: ignore[arg-type]


def test_fields_and_idempotency_on_postgres(fresh_sessions: sessionmaker[Session]) -> None:
    sessions = fresh_sessions
    first, second = ids(2)
    lines = [
        json.dumps(
            {
                "transcript_id": first,
                "variables": {"team": "a"},
                "max_tokens": 77,
                "temperature": 0.3,
                "fallbacks": ["claude-sonnet-4-6"],
            }
        ),
        json.dumps(
            {"transcript_id": second, "variables": {"team": "b"}, "model": "gemini-2.5-flash"}
        ),
    ]
    with sessions.begin() as s:
        out = enqueue(s, _req(), lines, catalog)
    assert (out.jobs, out.new) == (2, 2)
    with sessions.begin() as s:
        again = enqueue(s, _req(batch_id=out.batch_id), lines + lines, catalog)
    assert (again.jobs, again.new) == (2, 0)
    with sessions() as s:
        jobs = {j.transcript_id: j for j in s.scalars(select(Job))}
    a, b = jobs[first], jobs[second]
    assert (a.variables, a.max_tokens, a.temperature, a.fallbacks) == (
        {"team": "a"},
        77,
        0.3,
        ["claude-sonnet-4-6"],
    )
    assert (b.model, b.fallbacks, b.max_tokens, b.variables) == (
        "gemini-2.5-flash",
        [],
        None,
        {"team": "b"},
    )
    assert (a.region, a.priority, a.model_region_global, a.status) == ("eu", 2, False, "pending")


def test_concurrent_first_enqueues_of_one_template_both_succeed(
    fresh_sessions: sessionmaker[Session],
) -> None:
    sessions = fresh_sessions
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        lines = [
            json.dumps({"transcript_id": t, "variables": {"team": "x"}}) for t in ids(50 + n)[n:]
        ]
        try:
            barrier.wait()
            with sessions.begin() as s:
                enqueue(s, _req(), lines, catalog)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
