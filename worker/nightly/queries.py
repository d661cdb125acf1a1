"""`tbatch nightly list`: past nights with their batch's progress and cost."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.attempts import Attempt
from models.jobs import Job
from models.nightly import NightlyRun


@dataclass(frozen=True)
class RunView:
    id: int
    pipeline: str
    run_date: date
    state: str
    batch_id: int | None
    transcripts: int
    jobs: dict[str, int] = field(default_factory=dict)  # job status -> count
    cost_usd: float = 0.0  # estimated, summed over every attempt of the batch
    report_dir: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_runs(session: Session, pipeline: str | None = None, *, limit: int = 100) -> list[RunView]:
    """The most recent nights first (all pipelines, or one)."""
    query = select(NightlyRun).order_by(NightlyRun.run_date.desc(), NightlyRun.pipeline)
    if pipeline is not None:
        query = query.where(NightlyRun.pipeline == pipeline)
    runs = session.scalars(query.limit(limit)).all()
    batch_ids = [r.batch_id for r in runs if r.batch_id is not None]
    jobs = _job_counts(session, batch_ids)
    costs = _costs(session, batch_ids)
    return [
        RunView(
            id=r.id,
            pipeline=r.pipeline,
            run_date=r.run_date,
            state=r.state,
            batch_id=r.batch_id,
            transcripts=r.transcripts,
            jobs=jobs.get(r.batch_id, {}) if r.batch_id is not None else {},
            cost_usd=round(costs.get(r.batch_id, 0.0), 6) if r.batch_id is not None else 0.0,
            report_dir=r.report_dir,
            error=r.error,
            created_at=r.created_at,
            finished_at=r.finished_at,
        )
        for r in runs
    ]


def _job_counts(session: Session, batch_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if batch_ids:
        rows = session.execute(
            select(Job.batch_id, Job.status, func.count())
            .where(Job.batch_id.in_(batch_ids))
            .group_by(Job.batch_id, Job.status)
        ).all()
        for batch_id, status, count in rows:
            counts[int(batch_id)][str(status)] = int(count)
    return counts


def _costs(session: Session, batch_ids: list[int]) -> dict[int, float]:
    if not batch_ids:
        return {}
    rows = session.execute(
        select(Job.batch_id, func.coalesce(func.sum(Attempt.cost_usd), 0.0))
        .join(Attempt, Attempt.job_id == Job.id)
        .where(Job.batch_id.in_(batch_ids))
        .group_by(Job.batch_id)
    ).all()
    return {int(batch_id): float(cost or 0.0) for batch_id, cost in rows}
