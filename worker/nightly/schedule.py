"""Celery beat entries for the nightly pipelines: one crontab entry per pipeline, one finalizer.

Messages carry the pipeline's name and the config's absolute path, never objects. A run message
expires before the UTC day it was sent on ends, so a message that waited out a worker outage
cannot process the wrong night ("yesterday" is computed when the task runs); a missed night is
run by hand with ``tbatch nightly run NAME --date``.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from worker.nightly.config import NightlyConfig
from worker.nightly.cron import Cron
from worker.nightly.finalize import FINALIZE_EVERY_S

RUN_TASK = "nightly.run"
FINALIZE_TASK = "nightly.finalize"
MIN_EXPIRES_S = 60.0
DAY_S = 86400.0


def beat_schedule(
    config: NightlyConfig, *, finalize_every_s: float = FINALIZE_EVERY_S
) -> dict[str, dict[str, Any]]:
    config_path = str(config.path.resolve())
    entries: dict[str, dict[str, Any]] = {}
    for pipeline in config.pipelines.values():
        cron = pipeline.cron
        entries[f"nightly:{pipeline.name}"] = {
            "task": RUN_TASK,
            "schedule": to_crontab(cron),
            "args": [pipeline.name, config_path],
            "options": {"expires": expires_s(cron)},
        }
    entries["nightly:finalize"] = {
        "task": FINALIZE_TASK,
        "schedule": finalize_every_s,
        "args": [config_path],
        "options": {"expires": finalize_every_s},
    }
    return entries


def to_crontab(cron: Cron) -> crontab:
    return crontab(
        minute=set(cron.minute),
        hour=set(cron.hour),
        day_of_month=set(cron.day_of_month),
        month_of_year=set(cron.month),
        day_of_week=set(cron.day_of_week),
    )


def expires_s(cron: Cron) -> float:
    """Seconds from the day's latest firing to the end of that UTC day."""
    latest_s = max(cron.hour) * 3600 + max(cron.minute) * 60
    return max(MIN_EXPIRES_S, DAY_S - latest_s)
