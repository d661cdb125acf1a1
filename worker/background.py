"""The loops beside the task threads: dispatcher, reconciler, lease heartbeat.

They are plain threads over the service layer; any number of processes may run them. The
heartbeat must live in the worker process (it renews that process's leases). The dispatcher and
reconciler run in a separate `tbatch dispatch` process whenever the limiter is shared (Redis):
a dispatcher thread inside a busy worker waits for the GIL on every database and Redis round
trip, and at 10 calls/s per model those waits cost a fifth of the gateway's budget (measured
with scripts/bench.py). The embedded mode's in-memory limiter keeps them in-process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from worker.runtime import Runtime
from worker.services.counts import counters_kept, fold
from worker.services.dispatch import Dispatcher
from worker.services.reconcile import reconcile, renew_leases

log = logging.getLogger("tbatch.background")
HEARTBEAT = "tbatch-heartbeat"


class BackgroundLoops:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._stop = threading.Event()  # the dispatcher and reconciler stop
        self._draining = threading.Event()  # the heartbeat stops (once no lease is held)
        self._threads: list[threading.Thread] = []
        settings = runtime.settings
        self.dispatcher = Dispatcher(
            runtime.sessions,
            runtime.limiter,
            runtime.publish,
            release_ahead=settings.unlimited_release_ahead,
            now=runtime.clock,
        )

    def start(self, *, dispatch: bool = True, heartbeat: bool = True) -> None:
        settings = self._rt.settings
        if dispatch:
            self._spawn("tbatch-dispatch", self.dispatcher.tick)
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
