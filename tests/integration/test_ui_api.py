"""The web view's JSON API (`tbatch ui`) against real Postgres with a batch run through the real
pipeline and the emulator: the numbers it serves are the database's (counters equal a scan of
the rows), failures come with their rerun command, a job's timeline has its evidence, search
finds a job by request_id, job id and transcript id, and off loopback a token is required."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from emulator.routes.server import EmulatorProcess
from models.attempts import Attempt
from models.jobs import Job
from tests.fakes import enqueue_lines, ids
from tests.fixtures.rows import attempt_totals, job_counts
from tests.fixtures.ui_batch import EVIL, MODEL, RealBatch, run_real_batch
from worker.ratelimit.config import RateLimitConfig
from worker.ui.app import View, create_app

LIMITS = RateLimitConfig.parse(f"{MODEL}=60/60s", "30/60s")
TOKEN = "t0ken-for-the-ui-test-0123456789"


@pytest.fixture()
def world(
    gateway: EmulatorProcess, fresh_sessions: sessionmaker[Session]
) -> Iterator[tuple[sessionmaker[Session], RealBatch, TestClient]]:
    real = run_real_batch(fresh_sessions, gateway)
    with TestClient(create_app(View(fresh_sessions, LIMITS.limit_for))) as client:
        yield fresh_sessions, real, client


def _job_id(sessions: sessionmaker[Session], transcript_id: str) -> int:
    with sessions() as s:
        found = s.scalar(select(Job.id).where(Job.transcript_id == transcript_id))
    assert found is not None
    return int(found)


def _scan(sessions: sessionmaker[Session], batch_id: int) -> dict[str, Any]:
    with sessions() as s:
        counts = job_counts(s, batch_id)
        attempts, cost, n429 = attempt_totals(s, batch_id)
    return {"counts": counts, "attempts": attempts, "cost": float(cost or 0), "429": n429}


def test_the_batch_list_serves_the_databases_numbers(world) -> None:
    sessions, real, client = world
    scan = _scan(sessions, real.batch_id)
    assert scan["counts"] == {"succeeded": 7, "failed": 2}
    (row,) = client.get("/api/batches").json()
    assert row["batch_id"] == real.batch_id and row["name"] == f"calls {EVIL}"
    assert {k: v for k, v in row["counts"].items() if v} == scan["counts"]
    assert row["total"] == 9 and row["done"] == 9 and row["state"] == "final"
    assert row["attempts"] == scan["attempts"] and row["http_429"] == scan["429"] == 1
    assert row["cost_usd"] == pytest.approx(scan["cost"], abs=1e-6) and row["cost_usd"] > 0
    assert row["eta_s"] == 0.0 and row["remaining"] == 0
    assert row["created_at"].endswith("+00:00")  # ISO 8601 with its zone


def test_a_batch_has_failures_with_commands_budgets_and_minutes(world) -> None:
    sessions, real, client = world
    scan = _scan(sessions, real.batch_id)
    b = client.get(f"/api/batches/{real.batch_id}").json()
    groups = {g["reason"]: g for g in b["failure_groups"]}
    assert {k: g["jobs"] for k, g in groups.items()} == {"refused": 1, "transcript_not_found": 1}
    assert (
        groups["refused"]["command"] == f"tbatch reprocess --batch {real.batch_id} --reason refused"
    )
    assert groups["transcript_not_found"]["message"]
    (model,) = b["models"]
    assert (model["model"], model["limit"], model["window_s"], model["limit_per_min"]) == (
        MODEL,
        60,
        60.0,
        60.0,
    )
    assert model["calls"] == scan["attempts"] and model["http_429"] == 1
    assert sum(m["calls"] for m in b["minutes"]) == scan["attempts"]
    assert sum(m["http_429"] for m in b["minutes"]) == 1
    assert sum(m["answered"] for m in b["minutes"]) == 7


def test_a_job_shows_its_attempts_raw_answers_and_result(world) -> None:
    sessions, real, client = world
    job = client.get(f"/api/jobs/{_job_id(sessions, real.reasked)}").json()
    first, last = job["attempts"][0], job["attempts"][-1]
    assert first["outcome"] == "invalid" and first["validation_errors"]
    assert first["raw_text"] and first["request_id"]
    assert last["outcome"] in ("ok", "repaired") and last["purpose"] == "reask"
    assert job["result"]["request_id"] == last["request_id"]
    assert job["result"]["data"]["summary"]
    evil = client.get(f"/api/jobs/{_job_id(sessions, real.ok[0])}").json()
    assert evil["job"]["custom_id"] == f"cust-{EVIL}" and evil["job"]["metadata"] == {"note": EVIL}
    limited = client.get(f"/api/jobs/{_job_id(sessions, real.rate_limited)}").json()
    assert [a["http_status"] for a in limited["attempts"]] == [429, 200]


def test_search_finds_a_job_by_request_id_job_id_and_transcript_id(world) -> None:
    sessions, real, client = world
    job_id = _job_id(sessions, real.refused)
    with sessions() as s:
        rid = s.scalar(select(Attempt.request_id).where(Attempt.job_id == job_id))
    assert rid
    for q, matched in (
        (rid, "request_id"),
        (str(job_id), "job_id"),
        (real.refused, "transcript_id"),
    ):
        found = client.get("/api/search", params={"q": q}).json()["jobs"]
        assert [(j["job_id"], j["matched"]) for j in found] == [(job_id, matched)], q
    assert client.get("/api/search", params={"q": "no-such-thing"}).json()["jobs"] == []
    page = client.get("/search", params={"q": rid}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/jobs/{job_id}"


def test_unknown_ids_are_404_with_a_reason(world) -> None:
    _, _, client = world
    missing = client.get("/api/batches/987654")
    assert missing.status_code == 404 and missing.json() == {"error": "unknown batch 987654"}
    assert client.get("/jobs/987654").status_code == 404


def test_a_running_batchs_eta_comes_from_the_models_limit(fresh_sessions) -> None:
    lines = [json.dumps({"transcript_id": t, "variables": {"team": "ops"}}) for t in ids(90)]
    batch_id = enqueue_lines(fresh_sessions, lines, model=MODEL)
    with TestClient(create_app(View(fresh_sessions, LIMITS.limit_for))) as client:
        (row,) = client.get("/api/batches").json()
    assert row["batch_id"] == batch_id and row["counts"]["pending"] == 90
    assert row["state"] == "pending" and row["remaining"] == 90
    assert row["eta_s"] == 90.0  # 90 jobs at 60 calls per 60 s, one call each so far


def test_off_loopback_every_request_needs_the_token(fresh_sessions, monkeypatch) -> None:
    compared: list[bytes] = []
    real_compare = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return bool(real_compare(a, b))

    monkeypatch.setattr(hmac, "compare_digest", recording)
    app = create_app(View(fresh_sessions, LIMITS.limit_for), token=TOKEN)
    with TestClient(app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = client.get("/api/batches", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["content-security-policy"].startswith("default-src 'none'")
            assert TOKEN not in refused.text
        assert client.get("/api/batches", params={"token": "wrong"}).status_code == 401
        ok = client.get("/api/batches", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json() == []
        assert b"wrong" in compared and TOKEN.encode() in compared  # hmac.compare_digest
        entry = client.get("/", params={"token": TOKEN}, follow_redirects=False)
        assert entry.status_code == 303 and entry.headers["location"] == "/"
        cookie = entry.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/").status_code == 200  # the cookie the redirect set
