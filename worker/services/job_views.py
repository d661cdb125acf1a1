"""Read models of the operator's view for one job and for a search: the job's attempts as a
timeline (with the raw answers `tbatch show` leaves out), its result and replaced results,
and "which job is this request_id / job id / transcript id?".

The job's rows come from :func:`worker.services.operations.job_history` (what `tbatch show`
prints); only the attempts' raw answers are read here in addition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.attempts import Attempt, Result
from models.jobs import Batch, Job
from models.nightly import NightlyRun
from worker.errors import NotFoundError
from worker.nightly.queries import list_runs
from worker.services.operations import job_history

#: At most this many jobs are listed for one search (a transcript id may be in many batches).
SEARCH_LIMIT = 50
_MAX_QUERY_CHARS = 200


def job_detail(session: Session, job_id: int) -> dict[str, Any]:
    """`tbatch show --job` plus each attempt's raw answer and the batch's name."""
    history = job_history(session, job_id)
    texts = select(Attempt.id, Attempt.raw_text).where(Attempt.job_id == job_id)
    raw = dict(session.execute(texts).all())
    for attempt in history["attempts"]:
        attempt["raw_text"] = raw.get(attempt["id"])
    job = history["job"]
    history["batch_name"] = session.scalar(select(Batch.name).where(Batch.id == job["batch_id"]))
    return history


def search(session: Session, query: str) -> list[dict[str, Any]]:
    """Jobs matching ``query`` as a request_id (of an attempt or a result), a job id, a
    transcript id or a custom_id; newest first, each saying what matched."""
    q = query.strip()
    if not q or len(q) > _MAX_QUERY_CHARS:
        return []
    matched: dict[int, str] = {}
    for (job_id,) in session.execute(
        select(Attempt.job_id).where(Attempt.request_id == q).limit(SEARCH_LIMIT)
    ):
        matched.setdefault(int(job_id), "request_id")
    for (job_id,) in session.execute(select(Result.job_id).where(Result.request_id == q)):
        matched.setdefault(int(job_id), "request_id")
    if q.isdigit() and len(q) < 19 and session.get(Job, int(q)) is not None:
        matched.setdefault(int(q), "job_id")
    for job_id, transcript_id in session.execute(
        select(Job.id, Job.transcript_id)
        .where(or_(Job.transcript_id == q, Job.custom_id == q))
        .order_by(Job.id.desc())
        .limit(SEARCH_LIMIT)
    ):
        matched.setdefault(int(job_id), "transcript_id" if transcript_id == q else "custom_id")
    if not matched:
        return []
    rows = session.execute(
        select(Job.id, Job.batch_id, Job.transcript_id, Job.custom_id, Job.status, Job.model)
        .where(Job.id.in_(list(matched)))
        .order_by(Job.id.desc())
        .limit(SEARCH_LIMIT)
    )
    return [
        {
            "job_id": job_id,
            "batch_id": batch_id,
            "transcript_id": transcript_id,
            "custom_id": custom_id,
            "status": status,
            "model": model,
            "matched": matched[job_id],
        }
        for job_id, batch_id, transcript_id, custom_id, status, model in rows
    ]


def nightly_reports(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """The nightly runs, newest first (``tbatch nightly list``'s rows), each saying whether its
    report was built."""
    return [
        {**run.as_dict(), "has_report": run.report_dir is not None}
        for run in list_runs(session, limit=limit)
    ]


def report_dir(session: Session, run_id: int) -> str:
    """Where a nightly run's report files are; NotFoundError when it has none."""
    found = session.scalar(select(NightlyRun.report_dir).where(NightlyRun.id == run_id))
    if found is None:
        raise NotFoundError(f"nightly run {run_id} has no report")
    return str(found)
