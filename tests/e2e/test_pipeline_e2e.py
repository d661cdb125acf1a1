"""The main job end to end: real worker processes, the machine's Postgres and Redis, and the
gateway emulator over sockets. Each outcome ends in the right state with its evidence."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from emulator.routes.server import EmulatorProcess
from models.attempts import Attempt, Result
from models.db import make_engine, make_session_factory
from models.jobs import Job
from tests.fixtures.pipeline import E2E_KEY, enqueue_cli, run_cli, tbatch_env, wait_final

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    args = [
        "--transcripts",
        "420",
        "--seed",
        "11",
        "--no-rate-limit",
        "--api-key",
        E2E_KEY,
        "--latency-ms",
        "20",
        "--latency-jitter-ms",
        "10",
        "--hang-s",
        "3",
    ]
    with EmulatorProcess(*args) as emu:
        yield emu


def live_ids(emu: EmulatorProcess, n: int) -> list[str]:
    """Completed, not deleted transcript ids from the emulator's transcript API."""
    headers = {"Authorization": E2E_KEY}
    ids: list[str] = []
    # Our filters with each page's cursor: the page URLs carry only limit and before_id.
    params = {"status": "completed", "limit": "200"}
    older: str | None = f"{emu.url}/v2/transcript"
    with httpx.Client(headers=headers) as client:
        while older and len(ids) < n:
            cursor = dict(httpx.URL(older).params)
            page = client.get(f"{emu.url}/v2/transcript", params=cursor | params).json()
            for item in page["transcripts"]:
                if client.get(f"{emu.url}/v2/transcript/{item['id']}").status_code == 200:
                    ids.append(item["id"])
            older = page["page_details"]["prev_url"]
    assert len(ids) >= n, f"emulator has only {len(ids)} live transcripts"
    return ids[:n]


def _free_port() -> int:
    """A free port whose successor is free too (the dispatcher serves metrics on port + 1)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no pair of free ports")


def _rows(database_url: str, batch_id: int) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=1)
    with make_session_factory(engine)() as s:
        jobs = {j.transcript_id: j for j in s.scalars(select(Job).where(Job.batch_id == batch_id))}
        job_ids = [j.id for j in jobs.values()]
        attempts: dict[int, list[Attempt]] = {}
        for a in s.scalars(select(Attempt).where(Attempt.job_id.in_(job_ids)).order_by(Attempt.id)):
            attempts.setdefault(a.job_id, []).append(a)
        results = {r.job_id: r for r in s.scalars(select(Result).where(Result.job_id.in_(job_ids)))}
        per_job = dict(
            s.execute(
                select(Result.job_id, func.count())
                .where(Result.job_id.in_(job_ids))
                .group_by(Result.job_id)
            ).all()
        )
    engine.dispose()
    return {"jobs": jobs, "attempts": attempts, "results": results, "per_job": per_job}


def test_a_batch_of_300_jobs_succeeds_with_evidence(
    emulator: EmulatorProcess, fresh_database_url: str, redis_url: str, workers, tmp_path: Path
) -> None:
    emulator.reset(config=True)
    port = _free_port()
    env = tbatch_env(fresh_database_url, redis_url, emulator.url, TBATCH_METRICS_PORT=str(port))
    ids = live_ids(emulator, 300)
    out = enqueue_cli(env, tmp_path, ids, "--model", "claude-sonnet-4-6", "--name", "e2e-300")
    assert out["jobs"] == 300 and out["new"] == 300
    worker = workers(env, concurrency=32)
    counts = wait_final(fresh_database_url, out["batch_id"], 180, describe=worker.tail)
    rows = _rows(fresh_database_url, out["batch_id"])
    errors = {(j.error_kind, j.error_message) for j in rows["jobs"].values() if j.error_kind}
    assert counts == {"succeeded": 300}, errors

    assert len(rows["results"]) == 300 and set(rows["per_job"].values()) == {1}
    for job in rows["jobs"].values():
        result = rows["results"][job.id]
        assert result.request_id and any(
            a.request_id == result.request_id for a in rows["attempts"][job.id]
        )
        assert set(result.data) >= {"summary", "sentiment", "topics", "compliance_flags"}

    status = json.loads(run_cli(env, "status", str(out["batch_id"]), "--json").stdout)
    assert status["counts"]["succeeded"] == 300 and status["final"] is True
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'tbatch_gateway_calls_total{model="claude-sonnet-4-6",status="200"} 300.0' in scraped
    dispatcher = httpx.get(f"http://127.0.0.1:{port + 1}/metrics").text  # its own process
    assert 'tbatch_jobs_released_total{model="claude-sonnet-4-6"} 300.0' in dispatcher
    exported = run_cli(env, "results", str(out["batch_id"]), "--format", "csv").stdout
    records = list(csv.DictReader(io.StringIO(exported)))
    assert len(records) == 300 and all(
        r["request_id"] and r["status"] == "succeeded" for r in records
    )
    # Re-enqueueing the same transcripts into the batch adds nothing.
    again = enqueue_cli(
        env, tmp_path, ids[:10], "--model", "claude-sonnet-4-6", "--batch", str(out["batch_id"])
    )
    assert again["new"] == 0


def test_each_outcome_ends_in_its_state_with_its_evidence(
    emulator: EmulatorProcess, fresh_database_url: str, redis_url: str, workers, tmp_path: Path
) -> None:
    emulator.reset(config=True)
    ids = live_ids(emulator, 6)
    repaired, reasked, refused, truncated, flaky, healthy = ids
    unknown = "00000000-dead-4bad-8bad-000000000000"
    emulator.configure(
        {
            "faults": [
                {"kind": "trailing_comma", "transcript_ids": [repaired], "times": 1},
                {"kind": "schema_violation", "transcript_ids": [reasked], "times": 1},
                {"kind": "refusal", "transcript_ids": [refused]},
                {"kind": "truncation", "transcript_ids": [truncated]},
                {"kind": "5xx", "transcript_ids": [flaky], "times": 2},
            ]
        }
    )
    env = tbatch_env(fresh_database_url, redis_url, emulator.url)
    out = enqueue_cli(env, tmp_path, [*ids, unknown], "--model", "claude-sonnet-4-6")
    worker = workers(env, concurrency=8)
    wait_final(fresh_database_url, out["batch_id"], 120, describe=worker.tail)
    rows = _rows(fresh_database_url, out["batch_id"])
    jobs, attempts, results = rows["jobs"], rows["attempts"], rows["results"]

    def state(tid: str) -> tuple[str, str | None]:
        return jobs[tid].status, jobs[tid].error_kind

    assert state(healthy) == ("succeeded", None)
    assert state(repaired) == ("succeeded", None) and results[jobs[repaired].id].repaired
    assert attempts[jobs[repaired].id][0].outcome == "repaired"

    assert state(reasked) == ("succeeded", None)
    tries = attempts[jobs[reasked].id]
    assert [a.outcome for a in tries] == ["invalid", "ok"] and tries[0].validation_errors
    assert tries[1].purpose == "reask" and tries[0].request_id != tries[1].request_id

    assert state(refused) == ("failed", "refused") and jobs[refused].id not in results
    assert [a.outcome for a in attempts[jobs[refused].id]] == ["refused"]
    assert state(truncated) == ("failed", "truncated")
    assert attempts[jobs[truncated].id][0].repairs is None  # never fed to the repairer

    assert state(flaky) == ("succeeded", None)
    flaky_tries = attempts[jobs[flaky].id]
    assert flaky_tries[0].outcome == "transient" and flaky_tries[0].http_status >= 500
    assert flaky_tries[0].request_id and flaky_tries[-1].outcome == "ok"

    # The API key reaches no log line and no stored row (errors included).
    assert E2E_KEY not in worker.log_path.read_text()
    stored = [vars(a) for tries in attempts.values() for a in tries] + [
        vars(j) for j in jobs.values()
    ]
    assert E2E_KEY not in json.dumps(stored, default=str)

    assert state(unknown) == ("failed", "transcript_not_found")
    assert (
        attempts[jobs[unknown].id][0].http_status == 404
        and attempts[jobs[unknown].id][0].request_id
    )
    assert "transcript" in (jobs[unknown].error_message or "")


def test_cli_errors_are_one_line_and_non_zero(
    emulator: EmulatorProcess, fresh_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = tbatch_env(fresh_database_url, redis_url, emulator.url)
    proc = run_cli(env, "status", "987654", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == "tbatch: error: unknown batch 987654"
    bad = tmp_path / "bad.txt"
    bad.write_text("5f0e7a1c-1111-4222-8333-444455556666\nnot an id\n")
    proc = run_cli(
        env,
        "enqueue",
        "--transcripts",
        str(bad),
        "--template",
        "/nonexistent.j2",
        "--schema",
        "/nonexistent.json",
        "--model",
        "claude-sonnet-4-6",
        check=False,
    )
    assert proc.returncode == 2 and "/nonexistent.j2: cannot read template" in proc.stderr
    assert "Traceback" not in proc.stderr
