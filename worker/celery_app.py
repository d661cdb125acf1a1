"""The Celery app factory and its configuration for long, I/O-bound gateway calls.

- acks late + prefetch 1: a message is acknowledged only after the job's outcome is stored.
- threads pool: a gateway call is a blocking HTTP wait; threads keep many calls in flight on
  2 cores at a fraction of prefork's memory (see README for the measurement).
- visibility timeout far above the longest task: Redis redelivers unacknowledged messages after
  it, and the reconciler (not redelivery) is what brings back a dead worker's job.
- JSON only; messages carry a job id, nothing else.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_shutdown

from worker.background import BackgroundStep, heartbeat_in_child
from worker.runtime import reset_runtime
from worker.settings import Settings, get_settings

_lock = threading.Lock()
_app: Celery | None = None


def celery_config(settings: Settings) -> dict[str, Any]:
    longest_task_s = (
        settings.gateway_connect_timeout_s
        + settings.gateway_write_timeout_s
        + settings.gateway_read_timeout_s
        + settings.gateway_pool_timeout_s
    )
    transport: dict[str, Any] = {"visibility_timeout": max(7200.0, 4 * longest_task_s)}
    broker_url = settings.broker_url
    if broker_url.startswith("filesystem"):
        from worker import broker_fs

        broker_fs.register()
        broker_url = broker_url.replace("filesystem", broker_fs.ALIAS, 1)
        folder = Path(settings.broker_folder).resolve()
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport |= {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        }
    return {
        "broker_url": broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "tbatch",
        "task_soft_time_limit": longest_task_s + 15,
        "task_time_limit": longest_task_s + 30,
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "include": ["worker.tasks", "worker.nightly.tasks"],
    }


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("tbatch")
    app.conf.update(celery_config(settings))
    app.steps["worker"].add(BackgroundStep)
    # Prefork: a task runs in a child, and so does the lease it holds; each child renews its
    # own (the parent's heartbeat sees none of them). Connected here: the pool forks its
    # children before the bootstep above starts.
    worker_process_init.connect(heartbeat_in_child, weak=False)
    # After the pool has drained (not in the bootstep's stop, which runs before the pool's:
    # closing the gateway client there would cut the calls still in flight).
    worker_shutdown.connect(_close_runtime, weak=False)
    return app


def _close_runtime(**_: Any) -> None:
    reset_runtime()


def get_app() -> Celery:
    global _app
    with _lock:
        if _app is None:
            _app = create_app()
        return _app
