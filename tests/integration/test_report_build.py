"""`build_report` and `tbatch report` against real databases: the known batch of
tests/fixtures/reports.py on Postgres (and SQLite), checked through report.json and report.csv."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from tests.fakes import sqlite_sessions
from tests.fixtures.reports import EVIL_TOPIC, FALLBACK, MODEL, seed_batch
from worker.errors import InputError, NotFoundError
from worker.reports import FieldSpec, build_report
from worker.reports import collect as collect_module

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        yield sqlite_sessions(tmp_path)
        return
    engine = make_engine(request.getfixturevalue("database_url"), pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture()
def batch_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return seed_batch(session)


def build(sessions: sessionmaker[Session], batch_id: int, out: Path, **kw: Any) -> dict[str, Any]:
    with sessions() as session:
        files = build_report(session, batch_id, out, now=NOW, **kw)
    assert (files.json_path, files.csv_path, files.html_path) == (
        out / "report.json",
        out / "report.csv",
        out / "report.html",
    )
    return json.loads(files.json_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_report_json_numbers(
    sessions: sessionmaker[Session], batch_id: int, tmp_path: Path
) -> None:
    report = build(sessions, batch_id, tmp_path / "out")
    assert set(report) == {
        "report_version",
        "title",
        "generated_at",
        "batch",
        "jobs",
        "failures",
        "attempts",
        "cost",
        "fields",
        "trends",
    }
    assert report["batch"]["id"] == batch_id and report["batch"]["models"] == [MODEL]
    assert report["title"] == "Batch report: nightly 2026-11-25"
    jobs = report["jobs"]
    assert jobs["by_status"] == {
        "pending": 0,
        "queued": 0,
        "running": 0,
        "succeeded": 16,
        "failed": 3,
        "cancelled": 1,
    }
    assert jobs["complete"] is True and jobs["results"] == 16
    assert jobs["success_rate"] == pytest.approx(16 / 19, abs=1e-6)
    assert (jobs["repaired"], jobs["reasks"], jobs["transport_retries"]) == (2, 1, 1)
    failures = report["failures"]
    assert failures["total"] == 3
    assert [(f["reason"], f["count"]) for f in failures["by_reason"]] == [
        ("timeout", 2),
        ("bad_request", 1),
    ]
    attempts = report["attempts"]
    assert (attempts["total"], attempts["http_429"]) == (21, 1)
    assert attempts["by_outcome"] == {
        "ok": 14,
        "permanent": 3,
        "repaired": 2,
        "invalid": 1,
        "transient": 1,
    }


def test_report_cost_and_fields(
    sessions: sessionmaker[Session], batch_id: int, tmp_path: Path
) -> None:
    report = build(sessions, batch_id, tmp_path / "out")
    cost = report["cost"]
    assert cost["total_usd"] == pytest.approx(16 * 0.006 + 0.0045)
    assert (cost["input_tokens"], cost["output_tokens"]) == (17_000, 3_400)
    assert cost["per_job_usd"] == pytest.approx(0.1005 / 20)
    assert [(m["model"], m["attempts"], m["cost_usd"]) for m in cost["by_model"]] == [
        (MODEL, 20, pytest.approx(0.096)),
        (FALLBACK, 1, pytest.approx(0.0045)),
    ]
    fields = report["fields"]
    assert fields["sentiment"]["counts"] == {"positive": 6, "neutral": 4, "negative": 5, "mixed": 1}
    assert fields["sentiment_score"]["mean"] == pytest.approx(0.140625)
    assert fields["sentiment_score"]["histogram"]["counts"] == [0, 0, 5, 0, 0, 4, 1, 0, 6, 0]
    assert [(t["item"], t["count"]) for t in fields["topics"]["top"]][:2] == [
        ("billing", 12),
        ("Refund", 6),
    ]
    assert fields["resolution"]["counts"]["escalated"] == 3
    assert fields["action_items"]["total"] == 15
    assert fields["compliance_flags.pii_shared"]["counts"] == {"true": 2, "false": 14}


def test_report_csv_rows(sessions: sessionmaker[Session], batch_id: int, tmp_path: Path) -> None:
    build(sessions, batch_id, tmp_path / "out")
    with (tmp_path / "out" / "report.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["section", "field", "key", "value"]
    expected = [
        ["jobs", "status", "succeeded", "16"],
        ["jobs", "status", "failed", "3"],
        ["failures", "timeout", "count", "2"],
        ["attempts", "", "http_429", "1"],
        ["cost", "", "total_usd", "0.1005"],
        ["cost_by_model", FALLBACK, "cost_usd", "0.0045"],
        ["fields", "sentiment", "count:negative", "5"],
        ["fields", "sentiment", "share:negative", "0.3125"],
        ["fields", "sentiment_score", "mean", "0.140625"],
        ["fields", "sentiment_score", "bin:[0.6,0.8)", "6"],
        ["fields", "topics", "top:billing", "12"],
        ["fields", "topics", f"top:{EVIL_TOPIC}", "1"],
        ["fields", "compliance_flags.identity_verified", "count:true", "12"],
    ]
    for row in expected:
        assert row in rows


def test_chunked_streaming_gives_the_same_report(
    sessions: sessionmaker[Session],
    batch_id: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = build(sessions, batch_id, tmp_path / "whole")
    monkeypatch.setattr(collect_module, "CHUNK_JOBS", 3)
    assert build(sessions, batch_id, tmp_path / "chunked") == whole


def test_explicit_specs_and_previous_nights(
    sessions: sessionmaker[Session], batch_id: int, tmp_path: Path
) -> None:
    first = build(sessions, batch_id, tmp_path / "first")
    older = json.loads(json.dumps(first))
    older["batch"]["created_at"] = "2026-11-24T02:00:00+00:00"
    older["jobs"]["success_rate"] = 0.9
    older["fields"]["sentiment"]["shares"]["negative"] = 0.25
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(older))
    specs = [
        FieldSpec("sentiment", "enum", values=("positive", "negative")),
        FieldSpec("sentiment_score", "number", bins=4),  # bounds come from the schema
        FieldSpec("resolution", "enum"),  # values come from the schema
        FieldSpec("x", "number"),
    ]
    report = build(
        sessions,
        batch_id,
        tmp_path / "out",
        specs=specs,
        previous_reports=[previous],
        title="Morning report",
    )
    fields = report["fields"]
    assert list(fields) == ["sentiment", "sentiment_score", "resolution", "x"]
    assert fields["sentiment"]["counts"] == {"positive": 6, "negative": 5, "neutral": 4, "mixed": 1}
    score = fields["sentiment_score"]["histogram"]
    assert (score["edges"], score["counts"]) == ([-1, -0.5, 0, 0.5, 1], [0, 5, 5, 6])
    assert fields["resolution"]["counts"] == {
        "resolved": 9,
        "unresolved": 3,
        "escalated": 3,
        "follow_up": 1,
    }
    assert report["fields"]["x"]["n"] == 0 and report["title"] == "Morning report"
    trends = report["trends"]
    assert trends["nights"] == ["2026-11-24", "2026-11-25"]
    assert trends["metrics"]["jobs.success_rate"]["delta"] == pytest.approx(16 / 19 - 0.9, abs=1e-5)
    negative = trends["metrics"]["share:sentiment=negative"]
    assert negative["delta"] == pytest.approx(5 / 16 - 0.25)


def test_unknown_batch_and_bad_previous_report(
    sessions: sessionmaker[Session], batch_id: int, tmp_path: Path
) -> None:
    with sessions() as session, pytest.raises(NotFoundError, match="unknown batch 999999"):
        build_report(session, 999_999, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with sessions() as session, pytest.raises(InputError, match=r"bad\.json: previous report"):
        build_report(session, batch_id, tmp_path, previous_reports=[bad])
    assert not (tmp_path / "report.json").exists()


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBATCH_")}
    env["TBATCH_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "worker", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_the_report_and_prints_headline_numbers(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url, pool_size=1)
    with make_session_factory(engine).begin() as session:
        batch_id = seed_batch(session, name="cli night")
    engine.dispose()
    out = tmp_path / "night"
    proc = _cli(database_url, str(batch_id), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["html"] == str(out / "report.html") and Path(summary["csv"]).exists()
    assert (summary["jobs"], summary["succeeded"], summary["failed"]) == (20, 16, 3)
    assert summary["cost_usd"] == pytest.approx(0.1005)

    again = _cli(
        database_url, str(batch_id), "--out", str(tmp_path / "two"), "--previous", str(out)
    )
    assert again.returncode == 0, again.stderr
    names = ("report.html", "report.json", "report.csv")
    assert again.stdout.split() == [str(tmp_path / "two" / name) for name in names]
    trends = json.loads((tmp_path / "two" / "report.json").read_text())["trends"]
    assert trends["previous_count"] == 1

    missing = _cli(database_url, "999999", "--out", str(tmp_path / "x"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == "tbatch: error: unknown batch 999999"
