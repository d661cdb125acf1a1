"""One clock for the fleet: the database's.

Leases, queue ages and backoffs are written by one machine and compared by another (a worker
writes ``lease_expires_at``, another machine's reconciler tests it). With each machine's own
clock, a skew of a minute requeues live calls or holds jobs back. Every process therefore
reads time as the database has it: the local clock plus an offset measured against Postgres's
``now()`` (halfway through the round trip), re-measured every ``refresh_s``. Between
measurements it costs nothing; its error is half a round trip plus the drift since the last
measurement (milliseconds). SQLite (the embedded mode) is one machine: the offset stays zero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow

log = logging.getLogger("tbatch.clock")


class DatabaseClock:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        refresh_s: float = 30.0,
        local: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._refresh_s = refresh_s
        self._local = local
        self._monotonic = monotonic
        self._offset = timedelta(0)
        self._next_sync = float("-inf")
        self._lock = threading.Lock()
        bind = sessions.kw.get("bind")
        self._shared = bind is not None and bind.dialect.name == "postgresql"

    @property
    def offset(self) -> timedelta:
        """The database's time minus this machine's (as last measured)."""
        return self._offset

    def __call__(self) -> datetime:
        if self._shared and self._monotonic() >= self._next_sync:
            self._sync()
        return self._local() + self._offset

    def _sync(self) -> None:
        with self._lock:
            if self._monotonic() < self._next_sync:
                return  # another thread measured meanwhile
            try:
                with self._sessions() as session:
                    before = self._local()
                    db_now = session.scalar(select(func.now()))
                    after = self._local()
            except Exception as exc:  # keep the last offset; try again soon
                log.warning("clock.sync_failed", extra={"error": repr(exc)})
                self._next_sync = self._monotonic() + min(5.0, self._refresh_s)
                return
            if isinstance(db_now, datetime):
                self._offset = db_now - (before + (after - before) / 2)
            self._next_sync = self._monotonic() + self._refresh_s
