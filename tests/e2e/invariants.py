"""What must hold after any fault, checked against Postgres and the emulator's own log."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from emulator.routes.server import EmulatorProcess
from models.attempts import Attempt, Result
from models.db import make_engine, make_session_factory
from models.jobs import Job
from models.vocabulary import FINAL_STATUSES, JobStatus
from tests.fixtures.pipeline import run_cli


@dataclass
class Evidence:
    counts: dict[str, int]
    results: int
    max_results_per_job: int
    attempts: int
    attempts_missing_request_id: int
    calls_after_success: int
    emulator_calls: int
    emulator_ids_not_recorded: int
    calls_per_job: float
    failures: dict[str, int]


def check(
    database_url: str,
    batch_id: int,
    emu: EmulatorProcess,
    env: dict[str, str],
    *,
    killed_calls_allowed: bool = False,
) -> Evidence:
    """Assert the invariants of issue 5 and return the numbers (for the README)."""
    engine = make_engine(database_url, pool_size=1)
    with make_session_factory(engine)() as s:
        jobs = list(s.scalars(select(Job).where(Job.batch_id == batch_id)))
        job_ids = [j.id for j in jobs]
        counts = Counter(j.status for j in jobs)
        per_job = dict(
            s.execute(
                select(Result.job_id, func.count())
                .where(Result.job_id.in_(job_ids))
                .group_by(Result.job_id)
            ).all()
        )
        done_at = {
            j.transcript_id: r.created_at.timestamp()
            for j, r in s.execute(
                select(Job, Result)
                .join(Result, Result.job_id == Job.id)
                .where(Job.batch_id == batch_id)
            )
        }
        attempts = list(s.scalars(select(Attempt).where(Attempt.job_id.in_(job_ids))))
    engine.dispose()
    log = [e for e in emu.requests() if e["transcript_id"] in {j.transcript_id for j in jobs}]
    recorded = {a.request_id for a in attempts}
    answered = [e for e in log if e["status"] != 0]
    evidence = Evidence(
        counts=dict(counts),
        results=len(per_job),
        max_results_per_job=max(per_job.values(), default=0),
        attempts=len(attempts),
        attempts_missing_request_id=sum(
            1 for a in attempts if a.http_status is not None and not a.request_id
        ),
        calls_after_success=sum(
            1
            for e in log
            if e["transcript_id"] in done_at and e["ts"] > done_at[e["transcript_id"]]
        ),
        emulator_calls=len(log),
        emulator_ids_not_recorded=sum(1 for e in answered if e["request_id"] not in recorded),
        calls_per_job=round(len(log) / max(1, len(jobs)), 3),
        failures=dict(
            Counter(
                f"{j.error_kind}: {(j.error_message or '')[:120]}"
                for j in jobs
                if j.status == JobStatus.FAILED
            )
        ),
    )
    assert set(counts) <= set(FINAL_STATUSES), f"not all final: {counts}"
    assert evidence.results == counts[JobStatus.SUCCEEDED], evidence
    assert evidence.max_results_per_job <= 1, evidence
    assert evidence.attempts_missing_request_id == 0, evidence
    assert evidence.calls_after_success == 0, evidence
    if not killed_calls_allowed:
        assert evidence.emulator_ids_not_recorded == 0, evidence
    status = json.loads(run_cli(env, "status", str(batch_id), "--json").stdout)
    assert {k: v for k, v in status["counts"].items() if v} == dict(counts), status
    return evidence


def summary(name: str, ev: Evidence) -> dict[str, Any]:
    return {"fault": name, **ev.__dict__}
