"""Nightly runs on the machine's Postgres with the emulator's transcript list API over sockets:
once per night whoever asks (threads, processes, reruns), paging, file sources, failures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from emulator.routes.server import EmulatorProcess
from models.db import make_engine, make_session_factory, session_scope
from models.jobs import Batch, Job
from models.nightly import NightlyRun
from models.vocabulary import JobStatus, RunState
from tests.fixtures.pipeline import tbatch_env
from worker.gateway.transcripts import TranscriptLister, TranscriptSummary
from worker.gateway.types import Region
from worker.nightly.config import Pipeline, load_config
from worker.nightly.finalize import finalize_runs
from worker.nightly.runs import RunOutcome, RunStatus, start_run
from worker.settings import Settings

API_KEY = "nightly-test-key"
TODAY = date(2026, 3, 10)
NIGHT = date(2026, 3, 9)
OTHER_NIGHT = date(2026, 3, 8)
ASSETS = Path(__file__).resolve().parents[2] / "worker" / "assets"
CATALOG = {"us": ["claude-sonnet-4-6", "gemini-2.5-flash", "gpt-5"], "eu": ["claude-sonnet-4-6"]}


def catalog(region: str) -> list[str]:
    return CATALOG[region]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """~300 transcripts a day over three days ending TODAY, so a night spans two list pages."""
    args = [
        "--transcripts",
        "900",
        "--transcript-days",
        "3",
        "--today",
        TODAY.isoformat(),
        "--seed",
        "5",
        "--no-rate-limit",
        "--api-key",
        API_KEY,
    ]
    with EmulatorProcess(*args) as emu:
        yield emu


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url, pool_size=10)
    yield make_session_factory(engine)
    engine.dispose()


def expected_ids(emu: EmulatorProcess, night: date) -> set[str]:
    """The oracle: the emulator's own store, not its list API."""
    return {
        t["id"]
        for t in emu.transcripts()
        if t["status"] == "completed" and datetime.fromisoformat(t["created"]).date() == night
    }


class CountingTransport(httpx.BaseTransport):
    """Real sockets; counts the list pages fetched."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def lister_for(emu: EmulatorProcess, transport: httpx.BaseTransport | None = None) -> Any:
    settings = Settings(ASSEMBLYAI_API_KEY=API_KEY, transcript_api_url=emu.url)
    return TranscriptLister(settings, transport=transport)


class BarrierLister:
    """Lists for real, then waits until every racer has listed, so all claims start together."""

    def __init__(self, inner: Any, barrier: threading.Barrier) -> None:
        self.inner = inner
        self.barrier = barrier

    def iter_transcripts(
        self, *, created_on: date | None, status: str | None = "completed", region: Region = "us"
    ) -> Iterator[TranscriptSummary]:
        items = list(self.inner.iter_transcripts(created_on=created_on, status=status))
        self.barrier.wait(timeout=30)
        yield from items


def write_config(tmp_path: Path, name: str, source: str, **extra: str) -> Path:
    lines = [
        "[[pipeline]]",
        f'name = "{name}"',
        'schedule = "30 2 * * *"',
        f"source = {source}",
        f'template = "{ASSETS / "call_analytics.j2"}"',
        f'schema = "{ASSETS / "call_analytics.schema.json"}"',
        f'model = "{extra.pop("model", "claude-sonnet-4-6")}"',
        'fallbacks = ["gemini-2.5-flash"]',
        "global_routing = true",
        "priority = 2",
        "max_tokens = 3000",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    path = tmp_path / "pipelines.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_pipeline(
    tmp_path: Path, source: str = '{ type = "assemblyai" }', **extra: str
) -> Pipeline:
    name = f"p-{uuid.uuid4().hex[:10]}"
    return load_config(write_config(tmp_path, name, source, **extra)).get(name)


def night_rows(sessions: sessionmaker[Session], name: str) -> list[NightlyRun]:
    with session_scope(sessions) as s:
        return list(s.scalars(select(NightlyRun).where(NightlyRun.pipeline == name)))


def batches_named(sessions: sessionmaker[Session], name: str, night: date) -> list[int]:
    with session_scope(sessions) as s:
        return list(s.scalars(select(Batch.id).where(Batch.name == f"nightly {name} {night}")))


def batch_jobs(sessions: sessionmaker[Session], batch_id: int) -> list[Job]:
    with session_scope(sessions) as s:
        return list(s.scalars(select(Job).where(Job.batch_id == batch_id)))


def test_racing_schedulers_enqueue_a_night_once(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path)
    racers = 4
    barrier = threading.Barrier(racers)
    outcomes: list[RunOutcome] = []
    errors: list[BaseException] = []

    def schedule() -> None:
        try:
            with lister_for(emulator) as lister:
                outcomes.append(
                    start_run(
                        sessions,
                        pipeline,
                        NIGHT,
                        lister=BarrierLister(lister, barrier),
                        catalog=catalog,
                    )
                )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=schedule) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    statuses = sorted(o.status for o in outcomes)
    assert statuses == [RunStatus.ALREADY_RAN] * (racers - 1) + [RunStatus.STARTED]
    winner = next(o for o in outcomes if o.status == RunStatus.STARTED)
    assert {o.batch_id for o in outcomes} == {winner.batch_id}
    rows = night_rows(sessions, pipeline.name)
    assert len(rows) == 1 and rows[0].state == RunState.RUNNING
    assert rows[0].batch_id == winner.batch_id
    assert batches_named(sessions, pipeline.name, NIGHT) == [winner.batch_id]
    assert winner.batch_id is not None
    jobs = batch_jobs(sessions, winner.batch_id)
    assert {j.transcript_id for j in jobs} == expected_ids(emulator, NIGHT)
    assert len(jobs) == rows[0].transcripts == winner.transcripts
    job = jobs[0]
    assert (job.model, job.fallbacks, job.model_region_global, job.priority, job.max_tokens) == (
        "claude-sonnet-4-6",
        ["gemini-2.5-flash"],
        True,
        2,
        3000,
    )


def test_rerun_and_other_nights(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path)
    transport = CountingTransport()
    with lister_for(emulator, transport) as lister:
        first = start_run(sessions, pipeline, NIGHT, lister=lister, catalog=catalog)
        listed = len(transport.urls)
        again = start_run(sessions, pipeline, NIGHT, lister=lister, catalog=catalog)
        assert len(transport.urls) == listed  # a night already taken is not even listed
        other = start_run(sessions, pipeline, OTHER_NIGHT, lister=lister, catalog=catalog)
    assert first.status == RunStatus.STARTED
    assert (again.status, again.batch_id, again.run_id) == (
        RunStatus.ALREADY_RAN,
        first.batch_id,
        first.run_id,
    )
    assert other.status == RunStatus.STARTED and other.batch_id != first.batch_id
    assert other.batch_id is not None
    got = {j.transcript_id for j in batch_jobs(sessions, other.batch_id)}
    assert got == expected_ids(emulator, OTHER_NIGHT)
    assert got.isdisjoint(expected_ids(emulator, NIGHT))
    assert sorted(r.run_date for r in night_rows(sessions, pipeline.name)) == [OTHER_NIGHT, NIGHT]


def test_list_api_is_walked_through_prev_url_pages(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path)
    expected = expected_ids(emulator, NIGHT)
    assert len(expected) > 200, "the night must need more than one page of 200"
    transport = CountingTransport()
    with lister_for(emulator, transport) as lister:
        outcome = start_run(sessions, pipeline, NIGHT, lister=lister, catalog=catalog)
    assert outcome.transcripts == len(expected)
    assert len(transport.urls) == math.ceil(len(expected) / 200)
    assert "created_on=2026-03-09" in transport.urls[0] and "status=completed" in transport.urls[0]
    assert all("before_id=" in url for url in transport.urls[1:])


def test_file_source_with_date_in_path(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    (tmp_path / "ids").mkdir()
    text = "# exported by the call platform\n" + "\n".join([*ids, "", ids[0]]) + "\n"
    (tmp_path / "ids" / f"calls-{NIGHT}.txt").write_text(text)
    pipeline = make_pipeline(tmp_path, '{ type = "file", path = "ids/calls-{date}.txt" }')
    outcome = start_run(sessions, pipeline, NIGHT, lister=NoLister(), catalog=catalog)
    assert (outcome.status, outcome.transcripts) == (RunStatus.STARTED, 5)
    assert outcome.batch_id is not None
    assert sorted(j.transcript_id for j in batch_jobs(sessions, outcome.batch_id)) == sorted(ids)


class NoLister:
    def iter_transcripts(self, **kw: Any) -> Iterator[TranscriptSummary]:
        raise AssertionError("a file source must not call the list API")


def test_failed_night_is_recorded_and_a_rerun_claims_it(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path, '{ type = "file", path = "ids-{date}.txt" }')
    failed = start_run(sessions, pipeline, NIGHT, lister=NoLister(), catalog=catalog)
    assert failed.status == RunStatus.FAILED
    assert failed.error is not None and f"ids-{NIGHT}.txt" in failed.error
    [row] = night_rows(sessions, pipeline.name)
    assert (row.state, row.batch_id) == (RunState.FAILED, None)
    (tmp_path / f"ids-{NIGHT}.txt").write_text(f"{uuid.uuid4()}\n")
    rerun = start_run(sessions, pipeline, NIGHT, lister=NoLister(), catalog=catalog)
    assert (rerun.status, rerun.run_id, rerun.transcripts) == (RunStatus.STARTED, row.id, 1)
    [row] = night_rows(sessions, pipeline.name)
    assert (row.state, row.error, row.batch_id) == (RunState.RUNNING, None, rerun.batch_id)


def test_enqueue_rejection_fails_the_night_and_stores_no_batch(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path, model="no-such-model")
    with lister_for(emulator) as lister:
        outcome = start_run(sessions, pipeline, NIGHT, lister=lister, catalog=catalog)
    assert outcome.status == RunStatus.FAILED
    assert outcome.error is not None and "unknown model 'no-such-model'" in outcome.error
    assert batches_named(sessions, pipeline.name, NIGHT) == []
    [row] = night_rows(sessions, pipeline.name)
    assert row.state == RunState.FAILED


def test_a_night_without_transcripts_is_empty_and_final(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path)
    quiet = date(2026, 1, 1)
    with lister_for(emulator) as lister:
        outcome = start_run(sessions, pipeline, quiet, lister=lister, catalog=catalog)
        again = start_run(sessions, pipeline, quiet, lister=lister, catalog=catalog)
    assert (outcome.status, outcome.batch_id) == (RunStatus.EMPTY, None)
    assert (again.status, again.state) == (RunStatus.ALREADY_RAN, RunState.EMPTY)
    [row] = night_rows(sessions, pipeline.name)
    assert row.state == RunState.EMPTY and row.finished_at is not None


def test_two_cli_processes_race_for_a_night(
    emulator: EmulatorProcess, database_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    name = f"p-{uuid.uuid4().hex[:10]}"
    config = write_config(tmp_path, name, '{ type = "assemblyai" }')
    env = tbatch_env(database_url, "redis://127.0.0.1:6379/15", emulator.url)
    env["ASSEMBLYAI_API_KEY"] = API_KEY
    cmd = [
        sys.executable,
        "-m",
        "worker",
        "nightly",
        "run",
        name,
        "--date",
        str(NIGHT),
        "--config",
        str(config),
        "--json",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    statuses = sorted(json.loads(out.strip().splitlines()[-1])["status"] for out, _ in outputs)
    assert statuses == [RunStatus.ALREADY_RAN, RunStatus.STARTED]
    assert len(batches_named(sessions, name, NIGHT)) == 1
    assert len(night_rows(sessions, name)) == 1


def test_concurrent_finalizers_build_each_report_once(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path)
    with lister_for(emulator) as lister:
        outcome = start_run(sessions, pipeline, NIGHT, lister=lister, catalog=catalog)
    assert outcome.batch_id is not None
    with session_scope(sessions) as s:  # the workers' part, done by hand
        s.execute(
            update(Job).where(Job.batch_id == outcome.batch_id).values(status=JobStatus.SUCCEEDED)
        )
    building = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def slow_builder(session: Session, batch_id: int, out_dir: Path, **kw: Any) -> Any:
        calls.append(batch_id)
        building.set()
        assert release.wait(timeout=30)
        return None

    pipelines = {pipeline.name: pipeline}

    def first() -> None:
        with session_scope(sessions) as s:
            finalize_runs(s, slow_builder, pipelines=pipelines)

    thread = threading.Thread(target=first)
    thread.start()
    assert building.wait(timeout=30)
    with session_scope(sessions) as s:  # the first finalizer holds the row: skipped, not waited
        second = finalize_runs(s, slow_builder, pipelines=pipelines)
    release.set()
    thread.join(timeout=30)
    assert [r.pipeline for r in second if r.pipeline == pipeline.name] == []
    assert calls.count(outcome.batch_id) == 1
    [row] = night_rows(sessions, pipeline.name)
    assert row.state == RunState.FINAL
    assert row.report_dir == str(pipeline.out_dir(NIGHT.isoformat()))
    with session_scope(sessions) as s:
        total = s.scalar(
            select(func.count()).select_from(NightlyRun).where(NightlyRun.pipeline == pipeline.name)
        )
    assert total == 1


class HidingLister:
    """The real list API, but ``hidden`` ids are still processing (not listed as completed)."""

    def __init__(self, inner: Any, hidden: set[str]) -> None:
        self.inner = inner
        self.hidden = hidden

    def iter_transcripts(
        self, *, created_on: date | None, status: str | None = "completed", region: Region = "us"
    ) -> Iterator[TranscriptSummary]:
        for item in self.inner.iter_transcripts(created_on=created_on, status=status):
            if item.id not in self.hidden:
                yield item


def all_taken(sessions: sessionmaker[Session], name: str) -> list[str]:
    with session_scope(sessions) as s:
        batches = select(NightlyRun.batch_id).where(NightlyRun.pipeline == name)
        return list(s.scalars(select(Job.transcript_id).where(Job.batch_id.in_(batches))))


def test_a_late_transcript_is_taken_the_next_night_and_never_twice(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = make_pipeline(tmp_path)
    first_day, late = OTHER_NIGHT, sorted(expected_ids(emulator, OTHER_NIGHT))[0]
    with lister_for(emulator) as lister:
        first = start_run(
            sessions, pipeline, first_day, lister=HidingLister(lister, {late}), catalog=catalog
        )
        second = start_run(sessions, pipeline, NIGHT, lister=lister, catalog=catalog)
        third = start_run(
            sessions, pipeline, NIGHT + timedelta(days=1), lister=lister, catalog=catalog
        )
    assert first.batch_id is not None and second.batch_id is not None
    on_first = {j.transcript_id for j in batch_jobs(sessions, first.batch_id)}
    assert on_first == expected_ids(emulator, first_day) - {late}  # exactly that date's
    on_second = {j.transcript_id for j in batch_jobs(sessions, second.batch_id)}
    assert on_second == expected_ids(emulator, NIGHT) | {late}  # the late one, a night later
    # The third night looks back over both days again and finds nothing of them left to take.
    later = set(all_taken(sessions, pipeline.name)) - on_first - on_second
    assert later == expected_ids(emulator, NIGHT + timedelta(days=1))
    assert third.transcripts == len(later)
    taken = all_taken(sessions, pipeline.name)
    assert len(taken) == len(set(taken))  # never twice


def test_overlapping_nights_racing_take_each_transcript_once(
    emulator: EmulatorProcess, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A backfill and a night whose look-backs overlap, at the same moment: the database gives
    each transcript to exactly one of them."""
    pipeline = make_pipeline(tmp_path)
    with session_scope(sessions) as s:  # an earlier night, so both look back over shared days
        s.add(
            NightlyRun(
                pipeline=pipeline.name,
                run_date=OTHER_NIGHT - timedelta(days=3),
                state=RunState.EMPTY,
                transcripts=0,
            )
        )
    nights = [NIGHT, NIGHT - timedelta(days=1)]
    barrier = threading.Barrier(len(nights))
    outcomes: list[RunOutcome] = []
    errors: list[BaseException] = []

    def run(night: date) -> None:
        try:
            with lister_for(emulator) as lister:
                racing = BarrierLister(lister, barrier)
                outcomes.append(
                    start_run(sessions, pipeline, night, lister=racing, catalog=catalog)
                )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(night,)) for night in nights]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(o.status for o in outcomes) == [RunStatus.STARTED] * 2
    taken = all_taken(sessions, pipeline.name)
    window = set().union(*(expected_ids(emulator, NIGHT - timedelta(days=n)) for n in range(4)))
    assert len(taken) == len(set(taken)) and set(taken) == window
