"""Nightly runs wired to this process's resources: sessions, gateway catalog, transcript lister,
report builder. The Celery tasks and the CLI call these; the services stay free of globals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy.orm import Session

from models.db import session_scope
from worker.errors import InputError
from worker.gateway.transcripts import TranscriptLister
from worker.gateway.types import ModelInfo, Region
from worker.nightly.config import FieldSpec, NightlyConfig, Pipeline
from worker.nightly.finalize import FinalizedRun, ReportFilesLike, finalize_runs
from worker.nightly.runs import RunOutcome, start_run
from worker.runtime import get_runtime

log = logging.getLogger("tbatch.nightly")


def yesterday_utc(now: datetime | None = None) -> date:
    """The night a scheduled run processes: the UTC day before ``now``."""
    return (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=1)


def run_pipeline(pipeline: Pipeline, run_date: date) -> RunOutcome:
    runtime = get_runtime()
    gateway = runtime.gateway

    def catalog(region: str) -> dict[str, ModelInfo]:
        return gateway.list_models(cast(Region, region))

    with TranscriptLister(runtime.settings) as lister:
        return start_run(
            runtime.sessions,
            pipeline,
            run_date,
            lister=lister,
            catalog=catalog,
            canary_jobs=runtime.settings.canary_calls,
        )


def finalize(config: NightlyConfig | None) -> list[FinalizedRun]:
    pipelines = config.pipelines if config is not None else {}
    with session_scope(get_runtime().sessions) as session:
        return finalize_runs(session, build_nightly_report, pipelines=pipelines)


def build_nightly_report(
    session: Session,
    batch_id: int,
    out_dir: Path,
    *,
    specs: Sequence[FieldSpec] | None,
    previous_reports: list[Path] | None,
    title: str | None,
) -> ReportFilesLike:
    """The report builder of worker.reports, given the pipeline's fields in its own terms."""
    from worker.reports.build import build_report
    from worker.reports.spec import FieldSpec as ReportFieldSpec

    report_specs: list[Any] | None = None
    if specs is not None:
        report_specs = [ReportFieldSpec(**spec.model_dump(exclude_none=True)) for spec in specs]
    files: ReportFilesLike = build_report(
        session,
        batch_id,
        out_dir,
        specs=report_specs,
        previous_reports=_readable(previous_reports or []),
        title=title,
    )
    return files


def _readable(paths: list[Path]) -> list[Path]:
    """Previous reports the builder can read: one damaged file must not block every later night
    (it only costs that night's point in the trend)."""
    from worker.reports.build import load_report

    readable = []
    for path in paths:
        try:
            load_report(path)
        except InputError as exc:
            log.warning("nightly.previous_report_skipped", extra={"error": str(exc)})
            continue
        readable.append(path)
    return readable
