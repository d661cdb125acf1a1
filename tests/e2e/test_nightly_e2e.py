"""Nightly pipelines end to end: `tbatch nightly run` and `tbatch beat` against the emulator's
transcript list API and gateway over sockets, real worker processes, the machine's Postgres and
Redis, and the report files at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from emulator.routes.server import EmulatorProcess
from harness.procs import TbatchProcess
from models.db import make_engine, make_session_factory
from models.jobs import Batch, Job
from models.nightly import NightlyRun
from models.vocabulary import RunState
from tests.fixtures.pipeline import E2E_KEY, run_cli, tbatch_env, until_in_db, wait_final

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).resolve().parents[2] / "worker" / "assets"
TODAY = date(2026, 3, 10)
NIGHT_1, NIGHT_2 = date(2026, 3, 8), date(2026, 3, 9)
NAME = "support-nightly"


def emulator_args(today: date, transcripts: int, days: int) -> list[str]:
    return [
        "--transcripts",
        str(transcripts),
        "--transcript-days",
        str(days),
        "--today",
        today.isoformat(),
        "--seed",
        "13",
        "--no-rate-limit",
        "--api-key",
        E2E_KEY,
        "--latency-ms",
        "10",
        "--latency-jitter-ms",
        "5",
    ]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """~300 transcripts a day over the five days ending TODAY."""
    with EmulatorProcess(*emulator_args(TODAY, 1500, 5)) as emu:
        yield emu


def oracle(emu: EmulatorProcess, night: date) -> set[str]:
    return {
        t["id"]
        for t in emu.transcripts()
        if t["status"] == "completed" and datetime.fromisoformat(t["created"]).date() == night
    }


def write_config(tmp_path: Path, schedule: str = "30 2 * * *") -> Path:
    path = tmp_path / "pipelines.toml"
    path.write_text(f"""
[[pipeline]]
name = "{NAME}"
schedule = "{schedule}"
source = {{ type = "assemblyai", status = "completed" }}
template = "{ASSETS / "call_analytics.j2"}"
schema = "{ASSETS / "call_analytics.schema.json"}"
model = "claude-sonnet-4-6"
fallbacks = ["gemini-2.5-flash"]
global_routing = true
max_tokens = 4000
report = {{ out_dir = "reports" }}
""")
    return path


def cli_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(run_cli(env, *args, "--json").stdout.strip().splitlines()[-1])


def test_nightly_run_then_finalize_builds_the_reports(
    emulator: EmulatorProcess, fresh_database_url: str, redis_url: str, workers, tmp_path: Path
) -> None:
    env = tbatch_env(fresh_database_url, redis_url, emulator.url)
    config = str(write_config(tmp_path))
    expected = oracle(emulator, NIGHT_1)
    assert len(expected) > 200, "a few hundred transcripts, more than one list page"

    first = cli_json(env, "nightly", "run", NAME, "--date", str(NIGHT_1), "--config", config)
    assert (first["status"], first["transcripts"]) == ("started", len(expected))
    batch_1 = int(first["batch_id"])
    assert cli_json(env, "nightly", "finalize", "--config", config) == []  # nothing final yet

    worker = workers(env, concurrency=32)
    counts = wait_final(fresh_database_url, batch_1, 240, describe=worker.tail)
    assert sum(counts.values()) == len(expected)
    assert counts.get("succeeded", 0) >= 0.9 * len(expected), counts

    again = cli_json(env, "nightly", "run", NAME, "--date", str(NIGHT_1), "--config", config)
    assert (again["status"], again["batch_id"]) == ("already_ran", batch_1)

    [done] = cli_json(env, "nightly", "finalize", "--config", config)
    report_dir = tmp_path / "reports" / NAME / NIGHT_1.isoformat()
    assert Path(done["report_dir"]) == report_dir
    report = json.loads((report_dir / "report.json").read_text())
    assert report["batch"]["id"] == batch_1
    assert report["jobs"]["total"] == len(expected)
    assert {k: v for k, v in report["jobs"]["by_status"].items() if v} == counts
    assert report["jobs"]["complete"] is True
    assert report["trends"] is None
    sentiment = report["fields"]["sentiment"]  # fields derived from the schema (none configured)
    assert sum(sentiment["counts"].values()) + sentiment["other"] == counts["succeeded"]
    assert (report_dir / "report.csv").stat().st_size > 0
    assert "<html" in (report_dir / "report.html").read_text().lower()

    second = cli_json(env, "nightly", "run", NAME, "--date", str(NIGHT_2), "--config", config)
    assert second["transcripts"] == len(oracle(emulator, NIGHT_2))
    wait_final(fresh_database_url, int(second["batch_id"]), 240, describe=worker.tail)
    [done] = cli_json(env, "nightly", "finalize", "--config", config)
    report_2 = json.loads((Path(done["report_dir"]) / "report.json").read_text())
    assert report_2["trends"]["previous_count"] == 1

    runs = cli_json(env, "nightly", "list")
    assert [(r["run_date"], r["state"]) for r in runs] == [
        (str(NIGHT_2), RunState.FINAL),
        (str(NIGHT_1), RunState.FINAL),
    ]
    assert runs[1]["jobs"] == counts
    assert runs[1]["cost_usd"] > 0
    engine = make_engine(fresh_database_url, pool_size=1)
    with make_session_factory(engine)() as s:
        flags = set(s.scalars(select(Job.model_region_global).where(Job.batch_id == batch_1)))
    engine.dispose()
    assert flags == {True}


def start_beat(env: dict[str, str], config: str, state: Path, log_path: Path) -> TbatchProcess:
    """One `tbatch beat` sending every night of ``config``, finalizing every 3 s."""
    args = ["beat", "--config", config, "--schedule-file", str(state), "--finalize-every-s", "3"]
    return TbatchProcess(args, env, log_path)


def wait_for_final_night(database_url: str, night: date, timeout_s: float) -> list[NightlyRun]:
    def runs(s: Session) -> list[NightlyRun]:
        return list(s.scalars(select(NightlyRun).where(NightlyRun.run_date == night)))

    return until_in_db(
        database_url,
        runs,
        lambda runs: runs and all(r.state == RunState.FINAL for r in runs),
        lambda runs: f"night {night} not final after {timeout_s}s: {runs}",
        timeout_s,
        every_s=0.5,
    )


def test_two_beats_run_each_night_once_and_report_it(
    fresh_database_url: str, redis_url: str, workers, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    if datetime.now(UTC) + timedelta(minutes=4) > datetime.combine(
        today + timedelta(days=1), datetime.min.time(), UTC
    ):
        pytest.skip("too close to midnight UTC: the scheduled night would change mid-test")
    yesterday = today - timedelta(days=1)
    with EmulatorProcess(*emulator_args(today, 240, 3)) as emu:
        env = tbatch_env(fresh_database_url, redis_url, emu.url, TBATCH_LOG_LEVEL="INFO")
        config = str(write_config(tmp_path, schedule="* * * * *"))  # every minute: fires soon
        worker = workers(env, concurrency=32)
        beats = [
            start_beat(env, config, tmp_path / f"beat-{i}.state", tmp_path / f"beat-{i}.log")
            for i in range(2)
        ]
        try:
            [run] = wait_for_final_night(fresh_database_url, yesterday, 200)
        finally:
            for beat in beats:
                beat.stop()
        expected = oracle(emu, yesterday)
    logs = "\n".join(b.log_path.read_text(errors="replace")[-2000:] for b in beats)
    assert run.pipeline == NAME and run.transcripts == len(expected), logs + worker.tail()
    engine = make_engine(fresh_database_url, pool_size=1)
    with make_session_factory(engine)() as s:
        batches = list(s.scalars(select(Batch.id)))
        jobs = set(s.scalars(select(Job.transcript_id)))
        nights = list(s.scalars(select(NightlyRun)))
    engine.dispose()
    assert batches == [run.batch_id]
    assert jobs == expected
    assert len(nights) == 1
    # Both beats sent the night; the worker ran it once and found it taken the other time.
    for beat in beats:
        assert "Sending due task nightly:support-nightly" in beat.log_path.read_text()
    outcomes = [
        json.loads(line)["status"]
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{") and '"msg": "nightly.run"' in line
    ]
    assert outcomes.count("started") == 1 and outcomes.count("already_ran") >= 1, outcomes
    assert run.report_dir is not None
    assert (Path(run.report_dir) / "report.json").is_file()
    assert Path(run.report_dir) == tmp_path / "reports" / NAME / yesterday.isoformat()
