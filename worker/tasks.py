"""Thin Celery tasks: decode the id, call one service function, done.

Retries never use Celery's machinery: a job that needs another call goes back to ``pending`` in
Postgres and the dispatcher releases it when its model has budget.
"""

from __future__ import annotations

import logging

from celery import shared_task

from worker.publisher import PROCESS_TASK
from worker.runtime import get_runtime
from worker.services.pipeline import process_job

log = logging.getLogger("tbatch.tasks")


@shared_task(name=PROCESS_TASK, ignore_result=True)
def process(job_id: int) -> str:
    outcome = process_job(int(job_id), get_runtime().deps)
    log.debug("job.processed", extra={"job_id": job_id, "outcome": outcome})
    return outcome


@shared_task(name="bench.noop", ignore_result=True)
def noop(job_id: int) -> int:
    """A no-op of the same message shape, the baseline of the overhead benchmark."""
    return job_id
