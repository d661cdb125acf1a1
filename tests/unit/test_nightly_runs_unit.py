"""Nightly runs on SQLite with hand-written fakes: finalize, list, sources, the beat schedule."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models.attempts import Attempt
from models.db import session_scope
from models.jobs import Job
from models.nightly import NightlyRun
from models.vocabulary import RunState
from tests.fakes import catalog, sqlite_sessions
from worker.gateway.transcripts import TranscriptSummary
from worker.nightly.config import FileSource, NightlyConfig, Pipeline, load_config
from worker.nightly.finalize import finalize_runs
from worker.nightly.queries import list_runs
from worker.nightly.runs import RunOutcome, RunStatus, start_run
from worker.nightly.schedule import FINALIZE_TASK, RUN_TASK, beat_schedule, expires_s
from worker.nightly.sources import transcript_ids
from worker.nightly.wiring import yesterday_utc

ASSETS = Path(__file__).resolve().parents[2] / "worker" / "assets"


def config_text(name: str, schedule: str = "30 2 * * *", report: str = "") -> str:
    return f"""
[[pipeline]]
name = "{name}"
schedule = "{schedule}"
source = {{ type = "file", path = "ids-{{date}}.txt" }}
template = "{ASSETS / "call_analytics.j2"}"
schema = "{ASSETS / "call_analytics.schema.json"}"
model = "claude-sonnet-4-6"
variables = {{ team = "billing" }}
{report}
"""


@pytest.fixture()
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    return sqlite_sessions(tmp_path)


@pytest.fixture()
def config(tmp_path: Path) -> NightlyConfig:
    fields = 'report = { fields = [{ path = "sentiment", kind = "enum" }] }'
    path = tmp_path / "pipelines.toml"
    path.write_text(config_text("support", report=fields) + config_text("sales", "0 4 * * 1-5"))
    return load_config(path)


class NoLister:
    def iter_transcripts(self, **kw: Any) -> Iterator[TranscriptSummary]:
        raise AssertionError("file sources do not list")


def night(sessions: sessionmaker[Session], pipeline: Pipeline, day: date, n: int = 3) -> RunOutcome:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    assert isinstance(pipeline.source, FileSource)
    Path(pipeline.source.path.replace("{date}", day.isoformat())).write_text("\n".join(ids))
    return start_run(sessions, pipeline, day, lister=NoLister(), catalog=catalog)


def finish(
    sessions: sessionmaker[Session], batch_id: int | None, status: str = "succeeded"
) -> None:
    with session_scope(sessions) as s:
        s.execute(update(Job).where(Job.batch_id == batch_id).values(status=status))


@dataclass
class FakeFiles:
    json_path: Path


@dataclass
class FakeBuilder:
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: BaseException | None = None

    def __call__(self, session: Session, batch_id: int, out_dir: Path, **kw: Any) -> FakeFiles:
        self.calls.append({"batch_id": batch_id, "out_dir": out_dir, **kw})
        if self.fail_with is not None:
            raise self.fail_with
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text("{}")
        return FakeFiles(out_dir / "report.json")


def test_variables_reach_every_job(sessions: sessionmaker[Session], config: NightlyConfig) -> None:
    outcome = night(sessions, config.get("support"), date(2026, 5, 1))
    with session_scope(sessions) as s:
        jobs = s.query(Job).filter(Job.batch_id == outcome.batch_id).all()
    assert [j.variables for j in jobs] == [{"team": "billing"}] * 3


def test_finalize_reports_only_final_batches_with_previous_reports(
    sessions: sessionmaker[Session], config: NightlyConfig, tmp_path: Path
) -> None:
    support, sales = config.get("support"), config.get("sales")
    days = [date(2026, 5, d) for d in (1, 2, 3)]
    runs = [night(sessions, support, d) for d in days]
    other = night(sessions, sales, days[0])
    builder = FakeBuilder()
    for run in (runs[0], other):
        finish(sessions, run.batch_id)
    with session_scope(sessions) as s:
        done = finalize_runs(s, builder, pipelines=config.pipelines)
    assert sorted((d.pipeline, d.run_date) for d in done) == [
        ("sales", days[0]),
        ("support", days[0]),
    ]
    first = next(c for c in builder.calls if c["batch_id"] == runs[0].batch_id)
    assert first["out_dir"] == tmp_path / "reports" / "support" / "2026-05-01"
    assert [(f.path, f.kind) for f in first["specs"]] == [("sentiment", "enum")]
    assert first["previous_reports"] == []
    assert first["title"] == "support 2026-05-01"
    assert next(c for c in builder.calls if c["batch_id"] == other.batch_id)["specs"] is None

    # Night 3 final (one job failed), night 2 still running: only night 3, with night 1's trend.
    finish(sessions, runs[2].batch_id, "failed")
    builder.calls.clear()
    with session_scope(sessions) as s:
        done = finalize_runs(s, builder, pipelines=config.pipelines)
    assert [d.run_date for d in done] == [days[2]]
    assert builder.calls[0]["previous_reports"] == [
        tmp_path / "reports" / "support" / "2026-05-01" / "report.json"
    ]
    states = {r.run_date: r.state for r in list_runs_of(sessions, "support")}
    assert states == {days[0]: RunState.FINAL, days[1]: RunState.RUNNING, days[2]: RunState.FINAL}


def list_runs_of(sessions: sessionmaker[Session], pipeline: str) -> list[Any]:
    with session_scope(sessions) as s:
        return list_runs(s, pipeline)


def test_a_report_that_fails_keeps_the_night_running_and_is_retried(
    sessions: sessionmaker[Session], config: NightlyConfig
) -> None:
    run = night(sessions, config.get("support"), date(2026, 5, 1))
    finish(sessions, run.batch_id)
    with session_scope(sessions) as s:
        done = finalize_runs(s, FakeBuilder(fail_with=OSError("disk full")), pipelines={})
    assert done[0].report_dir is None and done[0].error == "report: disk full"
    [view] = list_runs_of(sessions, "support")
    assert (view.state, view.error) == (RunState.RUNNING, "report: disk full")
    with session_scope(sessions) as s:
        done = finalize_runs(s, FakeBuilder(), pipelines=config.pipelines)
    [view] = list_runs_of(sessions, "support")
    assert (view.state, view.error, view.report_dir) == (
        RunState.FINAL,
        None,
        str(done[0].report_dir),
    )
    assert view.finished_at is not None


def test_an_unknown_builder_error_is_not_swallowed(
    sessions: sessionmaker[Session], config: NightlyConfig
) -> None:
    run = night(sessions, config.get("support"), date(2026, 5, 1))
    finish(sessions, run.batch_id)
    with pytest.raises(KeyError), session_scope(sessions) as s:
        finalize_runs(s, FakeBuilder(fail_with=KeyError("bug")))
    assert list_runs_of(sessions, "support")[0].state == RunState.RUNNING


def test_list_runs_counts_jobs_and_cost_newest_first(
    sessions: sessionmaker[Session], config: NightlyConfig
) -> None:
    support = config.get("support")
    old = night(sessions, support, date(2026, 5, 1), n=2)
    new = night(sessions, support, date(2026, 5, 2), n=4)
    night(sessions, config.get("sales"), date(2026, 5, 2))
    with session_scope(sessions) as s:
        job_ids = [j.id for j in s.query(Job).filter(Job.batch_id == old.batch_id)]
        s.execute(update(Job).where(Job.id == job_ids[0]).values(status="succeeded"))
        for cost in (0.25, 0.5):
            s.add(
                Attempt(
                    job_id=job_ids[0], model_requested="m", region="us", outcome="ok", cost_usd=cost
                )
            )
    views = list_runs_of(sessions, "support")
    assert [v.run_date for v in views] == [date(2026, 5, 2), date(2026, 5, 1)]
    assert views[0].jobs == {"pending": 4} and views[0].batch_id == new.batch_id
    assert views[1].jobs == {"pending": 1, "succeeded": 1}
    assert (views[1].cost_usd, views[0].cost_usd) == (0.75, 0.0)
    with session_scope(sessions) as s:
        assert len(list_runs(s)) == 3
        assert list_runs(s, limit=1)[0].run_date == date(2026, 5, 2)


def test_a_deleted_batch_fails_the_night(
    sessions: sessionmaker[Session], config: NightlyConfig
) -> None:
    run = night(sessions, config.get("support"), date(2026, 5, 1))
    with session_scope(sessions) as s:
        s.execute(update(NightlyRun).values(batch_id=None))
        assert finalize_runs(s, FakeBuilder()) == []
    assert list_runs_of(sessions, "support")[0].state == RunState.FAILED
    assert run.status == RunStatus.STARTED


@dataclass
class ScriptedLister:
    items: list[TranscriptSummary]
    asked: list[dict[str, Any]] = field(default_factory=list)

    def iter_transcripts(self, **kw: Any) -> Iterator[TranscriptSummary]:
        self.asked.append(kw)
        yield from self.items


def test_listed_ids_are_distinct_and_completed(config: NightlyConfig, tmp_path: Path) -> None:
    path = tmp_path / "eu.toml"
    path.write_text(
        config_text("eu").replace(
            '{ type = "file", path = "ids-{date}.txt" }', '{ type = "assemblyai", region = "eu" }'
        )
    )
    pipeline = load_config(path).get("eu")
    lister = ScriptedLister(
        [
            TranscriptSummary(id="aaaaaaaa-1", status="completed"),
            TranscriptSummary(id="bbbbbbbb-2", status="completed"),
            TranscriptSummary(id="aaaaaaaa-1", status="completed"),  # shifted onto the next page
            TranscriptSummary(id="cccccccc-3", status="error"),
        ]
    )
    night = date(2026, 5, 1)
    assert transcript_ids(pipeline, night, lister, since=night) == ["aaaaaaaa-1", "bbbbbbbb-2"]
    assert lister.asked == [{"created_on": date(2026, 5, 1), "status": "completed", "region": "eu"}]


def test_beat_schedule_has_one_crontab_per_pipeline_and_a_finalizer(config: NightlyConfig) -> None:
    entries = beat_schedule(config)
    path = str(config.path.resolve())
    assert set(entries) == {"nightly:support", "nightly:sales", "nightly:finalize"}
    support = entries["nightly:support"]
    assert (support["task"], support["args"]) == (RUN_TASK, ["support", path])
    assert support["schedule"] == crontab(minute="30", hour="2")
    assert entries["nightly:sales"]["schedule"] == crontab(minute="0", hour="4", day_of_week="1-5")
    assert support["options"]["expires"] == 86400 - (2 * 3600 + 30 * 60)
    fin = entries["nightly:finalize"]
    assert (fin["task"], fin["schedule"], fin["args"]) == (FINALIZE_TASK, 60.0, [path])


def test_sunday_as_7_and_late_schedules() -> None:
    from worker.nightly.cron import parse_cron
    from worker.nightly.schedule import to_crontab

    assert to_crontab(parse_cron("0 6 * * 7")) == crontab(minute="0", hour="6", day_of_week="0")
    assert expires_s(parse_cron("59 23 * * *")) == 60.0
    assert expires_s(parse_cron("0 1,22 * * *")) == 7200.0


def test_the_scheduled_night_is_yesterday_in_utc() -> None:
    assert yesterday_utc(datetime(2026, 3, 1, 0, 5, tzinfo=UTC)) == date(2026, 2, 28)
    local = datetime.fromisoformat("2026-03-01T23:30:00-05:00")  # 04:30 UTC on March 2
    assert yesterday_utc(local) == date(2026, 3, 1)
