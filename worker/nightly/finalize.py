"""Build the report of every night whose batch is final, then mark the night final.

The report builder is injected (``ReportBuilder``), so this module and its tests do not depend on
how reports are rendered. Rows are locked with ``FOR UPDATE SKIP LOCKED`` on Postgres, so two
finalizers (two beat processes each schedule one) never build the same night's report at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.jobs import Job
from models.nightly import NightlyRun
from models.vocabulary import FINAL_STATUSES, RunState
from worker.errors import TbatchError
from worker.nightly.config import FieldSpec, Pipeline

log = logging.getLogger("tbatch.nightly")
REPORT_JSON = "report.json"
TREND_NIGHTS = 30  # previous reports handed to the builder for trends
MAX_ERROR_CHARS = 4000
FINALIZE_EVERY_S = 60.0  # how often beat looks for finished nights


class ReportFilesLike(Protocol):
    @property
    def json_path(self) -> Path: ...


class ReportBuilder(Protocol):
    def __call__(
        self,
        session: Session,
        batch_id: int,
        out_dir: Path,
        *,
        specs: Sequence[FieldSpec] | None,
        previous_reports: list[Path] | None,
        title: str | None,
    ) -> ReportFilesLike: ...


@dataclass(frozen=True)
class FinalizedRun:
    run_id: int
    pipeline: str
    run_date: date
    batch_id: int | None
    report_dir: Path | None  # None when the report could not be built (see error)
    error: str | None = None


def finalize_runs(
    session: Session,
    build_report: ReportBuilder,
    *,
    pipelines: Mapping[str, Pipeline] | None = None,
    default_out_dir: Path = Path("reports"),
) -> list[FinalizedRun]:
    """Report every running night whose batch is final; returns what was attempted.

    A night whose report fails to build stays ``running`` with the error stored, so the next
    pass tries again; the other nights are not held up by it.
    """
    pipelines = pipelines or {}
    runs = session.scalars(
        select(NightlyRun)
        .where(NightlyRun.state == RunState.RUNNING)
        .order_by(NightlyRun.run_date, NightlyRun.id)
        .with_for_update(skip_locked=True)
    ).all()
    done: list[FinalizedRun] = []
    for run in runs:
        if run.batch_id is None:  # the batch was deleted under the night
            run.state, run.error, run.finished_at = RunState.FAILED, "batch deleted", utcnow()
            continue
        if batch_is_final(session, run.batch_id):
            pipeline = pipelines.get(run.pipeline)
            out_dir = (
                pipeline.out_dir(run.run_date.isoformat())
                if pipeline
                else (default_out_dir / run.pipeline / run.run_date.isoformat()).resolve()
            )
            done.append(_report(session, run, build_report, pipeline, out_dir))
    return done


def batch_is_final(session: Session, batch_id: int) -> bool:
    counts = dict(
        session.execute(
            select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
        ).all()
    )
    return bool(counts) and all(status in FINAL_STATUSES for status in counts)


def _report(
    session: Session,
    run: NightlyRun,
    build_report: ReportBuilder,
    pipeline: Pipeline | None,
    out_dir: Path,
) -> FinalizedRun:
    assert run.batch_id is not None
    fields = dict(pipeline=run.pipeline, run_date=str(run.run_date), batch_id=run.batch_id)
    try:
        build_report(
            session,
            run.batch_id,
            out_dir,
            specs=pipeline.report.fields if pipeline else None,
            previous_reports=previous_reports(session, run),
            title=f"{run.pipeline} {run.run_date.isoformat()}",
        )
    except (TbatchError, OSError, ValueError) as exc:
        run.error = f"report: {exc}"[:MAX_ERROR_CHARS]
        log.warning("nightly.report_failed", extra={**fields, "error": run.error})
        return FinalizedRun(run.id, run.pipeline, run.run_date, run.batch_id, None, run.error)
    run.state, run.report_dir, run.error = RunState.FINAL, str(out_dir), None
    run.finished_at = utcnow()
    log.info("nightly.final", extra={**fields, "report_dir": str(out_dir)})
    return FinalizedRun(run.id, run.pipeline, run.run_date, run.batch_id, out_dir)


def previous_reports(session: Session, run: NightlyRun) -> list[Path]:
    """The same pipeline's earlier report.json files that still exist, oldest first."""
    dirs = session.scalars(
        select(NightlyRun.report_dir)
        .where(
            NightlyRun.pipeline == run.pipeline,
            NightlyRun.state == RunState.FINAL,
            NightlyRun.run_date < run.run_date,
            NightlyRun.report_dir.is_not(None),
        )
        .order_by(NightlyRun.run_date.desc())
        .limit(TREND_NIGHTS)
    ).all()
    paths = [Path(d) / REPORT_JSON for d in reversed(dirs) if d]
    return [p for p in paths if p.is_file()]
