"""Thin Celery tasks of the nightly pipelines (names are explicit; messages carry strings)."""

from __future__ import annotations

import logging

from celery import shared_task

from worker.nightly.config import load_config
from worker.nightly.schedule import FINALIZE_TASK, RUN_TASK
from worker.nightly.wiring import finalize, run_pipeline, yesterday_utc

log = logging.getLogger("tbatch.nightly")


@shared_task(name=RUN_TASK, ignore_result=True)
def run_nightly(pipeline_name: str, config_path: str) -> str:
    """Yesterday's (UTC) night of one pipeline; a night already taken is a no-op."""
    pipeline = load_config(config_path).get(pipeline_name)
    outcome = run_pipeline(pipeline, yesterday_utc())
    log.info(
        "nightly.run",
        extra={
            "pipeline": pipeline_name,
            "run_date": str(outcome.run_date),
            "status": outcome.status,
            "batch_id": outcome.batch_id,
        },
    )
    return outcome.status


@shared_task(name=FINALIZE_TASK, ignore_result=True)
def finalize_nightly(config_path: str) -> int:
    """Build the reports of nights whose batch is final; returns how many were reported."""
    done = finalize(load_config(config_path))
    return sum(1 for run in done if run.report_dir is not None)
