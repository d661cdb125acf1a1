"""Released job ids to the broker: the one thing the dispatcher needs from Celery.

A module of its own, handed to whoever dispatches (the worker's bootstep, `tbatch dispatch`):
when the runtime published through the Celery app itself, the app, the loops it starts and
the runtime imported one another in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

PROCESS_TASK = "jobs.process"


class Publisher:
    """One ``jobs.process`` message per job id, all over one producer connection."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def __call__(self, job_ids: Sequence[int]) -> None:
        with self._app.producer_or_acquire() as producer:
            for job_id in job_ids:
                self._app.send_task(PROCESS_TASK, args=[job_id], producer=producer)
