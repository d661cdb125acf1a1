"""Once-per-night runs: claim the night in the database, enqueue its batch, report when final.

The guarantee lives in ``nightly_runs``' unique (pipeline, run_date). ``start_run`` inserts the
row with ``ON CONFLICT DO NOTHING`` in the same transaction that enqueues the batch and records
its id: a second scheduler's insert waits for the first transaction and then finds the night
taken, so two beat processes, a restart or a manual rerun never enqueue a night twice. A crash
before the commit rolls the claim back with the batch, so a night is never stuck half-claimed.
A night that failed (listing or enqueueing was refused) can be claimed again by a rerun.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.db import insert_ignoring_conflicts, session_scope
from models.nightly import NightlyRun, PipelineTranscript
from models.vocabulary import RunState
from worker.errors import InputError, TbatchError
from worker.nightly.config import Pipeline
from worker.nightly.finalize import ReportBuilder, ReportFilesLike, finalize_runs
from worker.nightly.queries import RunView, list_runs
from worker.nightly.sources import TranscriptListing, transcript_ids
from worker.services.enqueue import EnqueueRequest, enqueue, load_schema_text
from worker.services.job_input import Catalog, reasoning_value

__all__ = [
    "ReportBuilder",
    "ReportFilesLike",
    "RunOutcome",
    "RunStatus",
    "RunView",
    "finalize_runs",
    "list_runs",
    "start_run",
]

log = logging.getLogger("tbatch.nightly")
MAX_ERROR_CHARS = 4000


class RunStatus(StrEnum):
    """What one ``start_run`` call did (the night's state is ``RunState``)."""

    STARTED = "started"  # this call claimed the night and enqueued its batch
    EMPTY = "empty"  # this call claimed the night; the source had no transcripts
    ALREADY_RAN = "already_ran"  # another scheduler (or an earlier run) owns the night
    FAILED = "failed"  # listing or enqueueing failed; the night is recorded as failed


@dataclass(frozen=True)
class RunOutcome:
    status: str
    pipeline: str
    run_date: date
    run_id: int | None = None
    batch_id: int | None = None
    transcripts: int = 0
    state: str | None = None  # the stored state of the night's run
    error: str | None = None


def start_run(
    session_factory: sessionmaker[Session],
    pipeline: Pipeline,
    run_date: date,
    *,
    lister: TranscriptListing,
    catalog: Catalog,
    canary_jobs: int = 0,
) -> RunOutcome:
    """Run one pipeline for one night, at most once per (pipeline, run_date); the night's
    batch gets a canary of ``canary_jobs`` calls."""
    with session_scope(session_factory) as session:
        existing = _find(session, pipeline.name, run_date)
        first_night = session.scalar(
            select(func.min(NightlyRun.run_date)).where(NightlyRun.pipeline == pipeline.name)
        )
    if existing is not None and existing.state != RunState.FAILED:
        return _already_ran(existing)
    since = run_date if first_night is None else min(first_night, run_date)
    try:
        request = build_request(pipeline, run_date, canary_jobs=canary_jobs)
        ids = transcript_ids(pipeline, run_date, lister, since=since)
        with session_scope(session_factory) as session:
            return _claim_and_enqueue(session, pipeline, run_date, request, ids, catalog)
    except TbatchError as exc:
        log.warning(
            "nightly.failed",
            extra={"pipeline": pipeline.name, "run_date": str(run_date), "error": str(exc)},
        )
        return _record_failure(session_factory, pipeline.name, run_date, str(exc))


def build_request(pipeline: Pipeline, run_date: date, *, canary_jobs: int = 0) -> EnqueueRequest:
    template = _read(pipeline.template, "template")
    schema = load_schema_text(
        _read(pipeline.schema_path, "schema"), source=str(pipeline.schema_path)
    )
    return EnqueueRequest(
        transcripts_source=f"pipeline {pipeline.name} ({run_date.isoformat()})",
        template_text=template,
        template_source=str(pipeline.template),
        schema=schema,
        schema_source=str(pipeline.schema_path),
        model=pipeline.model,
        fallbacks=pipeline.fallbacks,
        region=pipeline.region,
        name=f"nightly {pipeline.name} {run_date.isoformat()}",
        max_tokens=pipeline.max_tokens,
        temperature=pipeline.temperature,
        reasoning=reasoning_value(pipeline.reasoning_effort, pipeline.reasoning_max_tokens),
        priority=pipeline.priority,
        model_region_global=pipeline.global_routing,
        canary_jobs=canary_jobs,
    )


def _claim_and_enqueue(
    session: Session,
    pipeline: Pipeline,
    run_date: date,
    request: EnqueueRequest,
    ids: list[str],
    catalog: Catalog,
) -> RunOutcome:
    run_id = _claim(session, pipeline.name, run_date)
    if run_id is None:
        run = _find(session, pipeline.name, run_date)
        assert run is not None  # the claim found it taken
        return _already_ran(run)
    listed = len(ids)
    ids = _take(session, pipeline.name, run_id, ids)
    batch_id = None
    if ids:
        batch_id = enqueue(session, request, _job_lines(ids, pipeline), catalog).batch_id
        state, finished_at = RunState.RUNNING, None
    else:
        state, finished_at = RunState.EMPTY, utcnow()
    session.execute(
        update(NightlyRun)
        .where(NightlyRun.id == run_id)
        .values(state=state, batch_id=batch_id, transcripts=len(ids), finished_at=finished_at)
    )
    log.info(
        "nightly.started",
        extra={
            "pipeline": pipeline.name,
            "run_date": str(run_date),
            "batch_id": batch_id,
            "transcripts": len(ids),
            "already_taken": listed - len(ids),
        },
    )
    return RunOutcome(
        status=RunStatus.STARTED if ids else RunStatus.EMPTY,
        pipeline=pipeline.name,
        run_date=run_date,
        run_id=run_id,
        batch_id=batch_id,
        transcripts=len(ids),
        state=state,
    )


def _take(session: Session, name: str, run_id: int, ids: list[str]) -> list[str]:
    """The ids this pipeline had not taken yet, now taken by ``run_id`` (in the run's
    transaction: a run that fails takes nothing; of two racing runs, one takes each id)."""
    if not ids:
        return []
    now = utcnow()
    taken: set[str] = set()
    insert = insert_ignoring_conflicts(
        session, PipelineTranscript, index_elements=["pipeline", "transcript_id"]
    ).returning(PipelineTranscript.transcript_id)
    for start in range(0, len(ids), _TAKE_CHUNK):
        rows = [
            {"pipeline": name, "transcript_id": id_, "run_id": run_id, "taken_at": now}
            for id_ in ids[start : start + _TAKE_CHUNK]
        ]
        taken.update(session.scalars(insert.values(rows)))
    return [id_ for id_ in ids if id_ in taken]


_TAKE_CHUNK = 1000  # rows per INSERT (SQLite allows 32766 bound values; 4 a row)


def _claim(session: Session, name: str, run_date: date) -> int | None:
    """The run id if this transaction now owns the night, else None (someone else does)."""
    now = utcnow()
    claimed = session.scalar(
        insert_ignoring_conflicts(session, NightlyRun, index_elements=["pipeline", "run_date"])
        .values(
            pipeline=name,
            run_date=run_date,
            state=RunState.ENQUEUING,
            transcripts=0,
            created_at=now,
        )
        .returning(NightlyRun.id)
    )
    if claimed is not None:
        return int(claimed)
    # A failed night may be claimed again; the compare-and-set lets only one rerun win.
    reclaimed = session.scalar(
        update(NightlyRun)
        .where(
            NightlyRun.pipeline == name,
            NightlyRun.run_date == run_date,
            NightlyRun.state == RunState.FAILED,
        )
        .values(state=RunState.ENQUEUING, error=None, created_at=now, finished_at=None)
        .returning(NightlyRun.id)
    )
    return None if reclaimed is None else int(reclaimed)


def _record_failure(
    session_factory: sessionmaker[Session], name: str, run_date: date, error: str
) -> RunOutcome:
    error = error[:MAX_ERROR_CHARS]
    with session_scope(session_factory) as session:
        run_id = _claim(session, name, run_date)
        if run_id is None:  # another scheduler succeeded meanwhile: its night stands
            run = _find(session, name, run_date)
            assert run is not None
            return _already_ran(run)
        session.execute(
            update(NightlyRun)
            .where(NightlyRun.id == run_id)
            .values(state=RunState.FAILED, error=error, finished_at=utcnow())
        )
    return RunOutcome(
        status=RunStatus.FAILED,
        pipeline=name,
        run_date=run_date,
        run_id=run_id,
        state=RunState.FAILED,
        error=error,
    )


def _find(session: Session, name: str, run_date: date) -> NightlyRun | None:
    return session.scalar(
        select(NightlyRun).where(NightlyRun.pipeline == name, NightlyRun.run_date == run_date)
    )


def _already_ran(run: NightlyRun) -> RunOutcome:
    return RunOutcome(
        status=RunStatus.ALREADY_RAN,
        pipeline=run.pipeline,
        run_date=run.run_date,
        run_id=run.id,
        batch_id=run.batch_id,
        transcripts=run.transcripts,
        state=run.state,
        error=run.error,
    )


def _job_lines(ids: Iterable[str], pipeline: Pipeline) -> Iterator[str]:
    if not pipeline.variables:
        yield from ids
        return
    for transcript_id in ids:
        yield json.dumps({"transcript_id": transcript_id, "variables": pipeline.variables})


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text", source=str(path)) from None
