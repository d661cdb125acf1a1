"""One read of `tbatch status` (counters, budgets, progress) and its live redraw."""

from __future__ import annotations

import time
from typing import Any

from worker.cli.common import db
from worker.runtime import get_runtime
from worker.services.queries import batch_status


def read_status(batch_id: int | None) -> dict[str, Any]:
    """One read of the batch's counters and its models' budgets, with elapsed time, ETA and
    each model's next call (worker/services/progress.py)."""
    from models.base import utcnow
    from worker.services.progress import with_progress

    with db() as session:
        status = batch_status(session, batch_id)
    models = _budgets(status.pop("lanes"))
    status = with_progress(status, models, utcnow())
    status.pop("remaining_by_lane")  # each model row carries its ``remaining``
    return status


def watch_live(batch_id: int | None, interval_s: float) -> None:
    """The status view redrawn in place (rich ``Live``) until the batch is final."""
    from rich.live import Live

    from worker.cli.render import status_view

    status = read_status(batch_id)
    with Live(status_view(status), auto_refresh=False, redirect_stderr=False) as live:
        while not status["final"]:
            time.sleep(interval_s)  # a human's refresh interval, not synchronisation
            status = read_status(batch_id)
            live.update(status_view(status), refresh=True)


def _budgets(keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    limiter = get_runtime().limiter
    rows: list[dict[str, Any]] = []
    for model, region in keys:
        rows.extend(limiter.status([model], region))
    return rows
