"""The Celery app factory and its configuration for long, I/O-bound gateway calls.

- acks late + prefetch 1: a message is acknowledged only after the job's outcome is stored.
- threads pool: a gateway call is a blocking HTTP wait; threads keep many calls in flight on
  2 cores at a fraction of prefork's memory (see README for the measurement).
- visibility timeout far above the longest task: Redis redelivers unacknowledged messages after
  it, and the reconciler (not redelivery) is what brings back a dead worker's job.
- JSON only; messages carry a job id, nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_process_init, worker_ready

from worker.settings import Settings, get_settings

log = logging.getLogger("tbatch.worker")
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


class BackgroundStep(bootsteps.StartStopStep):
    """Runs the lease heartbeat where the tasks run (this process for the threads pool, each
    child for prefork), and the dispatcher and reconciler in-process (embedded mode) or as a
    `tbatch dispatch` child process (shared Redis limiter; see worker/background.py for why),
    restarted if it dies."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.loops: Any = None
        self.child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def start(self, worker: Any) -> None:
        from worker.background import BackgroundLoops
        from worker.runtime import get_runtime

        # The consumer thread must hand a released job to a task thread promptly while other task
        # threads parse and validate: a 1 ms GIL switch interval (default 5 ms) keeps the time
        # from release to gateway call steady, which is what the rate-limit margin is spent on.
        sys.setswitchinterval(0.001)
        settings = get_runtime().settings
        if settings.metrics_port:
            from worker.metrics import serve

            serve(settings.metrics_port)
        _warm_up(get_runtime())
        self.loops = BackgroundLoops(get_runtime())
        self.loops.start(dispatch=False, heartbeat=True)
        # Release jobs only once this worker consumes: messages published before that would
        # reach the gateway in one burst when the consumer starts.
        worker_ready.connect(self._start_dispatch, weak=False)

    def _start_dispatch(self, **_: Any) -> None:
        from worker.runtime import get_runtime, shared_limiter_url

        settings = get_runtime().settings
        if not settings.run_background or self.loops is None:
            return
        if shared_limiter_url(settings):
            self.child = _spawn_dispatch()
            watch = threading.Thread(target=self._watch_child, name="tbatch-dispatch-watch")
            watch.daemon = True
            watch.start()
        else:
            self.loops.start(dispatch=True, heartbeat=False)

    def _watch_child(self) -> None:
        """A dead dispatcher stops this machine releasing and reconciling in silence: say so
        and start another (at most one restart per ``_RESTART_S``)."""
        while not self._stopping.wait(_RESTART_S):
            child = self.child
            if child is None or child.poll() is None:
                continue
            log.error("dispatch.child_exited", extra={"returncode": child.returncode})
            if not self._stopping.is_set():
                self.child = _spawn_dispatch()

    def stop(self, worker: Any) -> None:
        self._stopping.set()
        if self.loops is not None:
            self.loops.stop_dispatch()  # the heartbeat runs on until the pool has drained
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()


_RESTART_S = 1.0


def _spawn_dispatch() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "dispatch", "--parent-pid", str(os.getpid())]
    )


def _heartbeat_in_child(**_: Any) -> None:
    from worker.background import BackgroundLoops
    from worker.runtime import get_runtime

    BackgroundLoops(get_runtime()).start(dispatch=False, heartbeat=True)


def _warm_up(runtime: Any) -> None:
    """Build the per-process resources and fetch the model catalog before the first job: the
    first jobs would otherwise all wait on that work and then call the gateway in one burst."""
    from worker.errors import TbatchError

    runtime.deps  # noqa: B018 (builds engine, sessions, client, limiter)
    with contextlib.suppress(TbatchError):  # the first job tries again and records the error
        runtime.gateway.list_models("us")


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("tbatch")
    app.conf.update(celery_config(settings))
    app.steps["worker"].add(BackgroundStep)
    # Prefork: a task runs in a child, and so does the lease it holds; each child renews its
    # own (the parent's heartbeat sees none of them). Connected here: the pool forks its
    # children before the bootstep above starts.
    worker_process_init.connect(_heartbeat_in_child, weak=False)
    return app


def get_app() -> Celery:
    global _app
    with _lock:
        if _app is None:
            _app = create_app()
        return _app
