"""The loops beside the task threads: dispatcher, reconciler, lease heartbeat.

They are plain threads over the service layer; any number of processes may run them. The
heartbeat must live in the worker process (it renews that process's leases). The dispatcher and
reconciler run in a separate `tbatch dispatch` process whenever the limiter is shared (Redis):
a dispatcher thread inside a busy worker waits for the GIL on every database and Redis round
trip, and at 10 calls/s per model those waits cost a fifth of the gateway's budget (measured
with scripts/bench.py). The embedded mode's in-memory limiter keeps them in-process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celery import bootsteps
from celery.signals import worker_ready

from worker.errors import TbatchError
from worker.publisher import Publisher
from worker.runtime import Runtime, get_runtime, shared_limiter_url
from worker.services.counts import counters_kept, fold
from worker.services.dispatch import Dispatcher
from worker.services.reconcile import reconcile, renew_leases

if TYPE_CHECKING:
    from celery.worker import WorkController

log = logging.getLogger("tbatch.background")
HEARTBEAT = "tbatch-heartbeat"
Publish = Callable[[Sequence[int]], None]


class BackgroundLoops:
    """``publish`` hands released job ids to the broker; only the dispatcher needs it."""

    def __init__(self, runtime: Runtime, publish: Publish | None = None) -> None:
        self._rt = runtime
        self._publish = publish
        self._stop = threading.Event()  # the dispatcher and reconciler stop
        self._draining = threading.Event()  # the heartbeat stops (once no lease is held)
        self._threads: list[threading.Thread] = []

    def start(self, *, dispatch: bool = True, heartbeat: bool = True) -> None:
        settings = self._rt.settings
        if dispatch:
            if self._publish is None:
                raise ValueError("the dispatcher needs a publisher for the jobs it releases")
            dispatcher = Dispatcher(
                self._rt.sessions,
                self._rt.limiter,
                self._publish,
                release_ahead=settings.unlimited_release_ahead,
                now=self._rt.clock,
            )
            self._spawn("tbatch-dispatch", dispatcher.tick)
            self._spawn(
                "tbatch-reconcile", self._reconcile_once, every_s=settings.reconcile_interval_s
            )
        if heartbeat:
            self._spawn_heartbeat(every_s=settings.lease_s / 4)

    def wait(self, alive: Callable[[], bool], poll_s: float = 1.0) -> None:
        """Block until stopped or until ``alive()`` turns false (e.g. the parent worker died)."""
        while not self._stop.wait(poll_s):
            if not alive():
                self.stop()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._draining.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def stop_dispatch(self, timeout_s: float = 5.0) -> None:
        """A warm shutdown: stop releasing and reconciling now, but keep renewing this
        process's leases until its calls in flight have finished (they drain in the pool
        after this returns); only then does the heartbeat end. Stopping it with the
        dispatcher let long calls' leases expire and other machines call them again."""
        self._stop.set()
        for thread in self._threads:
            if thread.name != HEARTBEAT:
                thread.join(timeout_s)

    def _spawn(self, name: str, step: Callable[[], float | None], every_s: float = 0.0) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    wait_s = step()
                except Exception:  # a loop must outlive a database or Redis outage
                    log.exception("background.error", extra={"loop": name})
                    wait_s = 1.0
                self._stop.wait(every_s if every_s else min(float(wait_s or 0), 0.5))

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _spawn_heartbeat(self, every_s: float) -> None:
        def run() -> None:
            while not (self._draining.is_set() or (self._stop.is_set() and self._idle())):
                try:
                    self._heartbeat_once()
                except Exception:  # a database outage must not end the heartbeat
                    log.exception("background.error", extra={"loop": HEARTBEAT})
                # Wakes early once stopping, to end as soon as the last lease is released.
                step = every_s if not self._stop.is_set() else min(every_s, 0.5)
                self._draining.wait(step)

        thread = threading.Thread(target=run, name=HEARTBEAT, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _idle(self) -> bool:
        return not self._rt.deps.leases.snapshot()

    def _reconcile_once(self) -> None:
        settings = self._rt.settings
        with self._rt.sessions.begin() as session:
            moved = reconcile(
                session,
                now=self._rt.clock(),
                requeue_after_s=settings.requeue_after_s,
                max_deliveries=settings.max_deliveries,
            )
        if any(moved.values()):
            log.warning("reconcile", extra={"event": "reconcile", **moved})
        with self._rt.sessions.begin() as session:
            if counters_kept(session):
                fold(session)

    def _heartbeat_once(self) -> None:
        leases = self._rt.deps.leases.snapshot()
        if leases:
            with self._rt.sessions.begin() as session:
                lease_s = self._rt.settings.lease_s
                renew_leases(session, leases, now=self._rt.clock(), lease_s=lease_s)


class BackgroundStep(bootsteps.StartStopStep):
    """Runs the lease heartbeat where the tasks run (this process for the threads pool, each
    child for prefork), and the dispatcher and reconciler in-process (embedded mode) or as a
    `tbatch dispatch` child process (shared Redis limiter; see worker/background.py for why),
    restarted if it dies."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: WorkController, **kwargs: Any) -> None:
        self.loops: BackgroundLoops | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def start(self, worker: WorkController) -> None:
        # The consumer thread must hand a released job to a task thread promptly while other task
        # threads parse and validate: a 1 ms GIL switch interval (default 5 ms) keeps the time
        # from release to gateway call steady, which is what the rate-limit margin is spent on.
        sys.setswitchinterval(0.001)
        settings = get_runtime().settings
        if settings.metrics_port:
            from worker.metrics import serve

            serve(settings.metrics_port)
        _warm_up(get_runtime())
        self.loops = BackgroundLoops(get_runtime(), Publisher(worker.app))
        self.loops.start(dispatch=False, heartbeat=True)
        # Release jobs only once this worker consumes: messages published before that would
        # reach the gateway in one burst when the consumer starts.
        worker_ready.connect(self._start_dispatch, weak=False)

    def _start_dispatch(self, **_: Any) -> None:
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

    def stop(self, worker: WorkController) -> None:
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


def heartbeat_in_child(**_: Any) -> None:
    """A prefork child renews the leases of the tasks it runs (connected by the app factory)."""
    BackgroundLoops(get_runtime()).start(dispatch=False, heartbeat=True)


def _warm_up(runtime: Runtime) -> None:
    """Build the per-process resources and fetch the model catalog before the first job: the
    first jobs would otherwise all wait on that work and then call the gateway in one burst."""
    runtime.deps  # noqa: B018 (builds engine, sessions, client, limiter)
    with contextlib.suppress(TbatchError):  # the first job tries again and records the error
        runtime.gateway.list_models("us")
