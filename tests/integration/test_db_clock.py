"""Every machine reads time as the database has it, whatever its own clock says."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from models.base import utcnow
from models.clock import DatabaseClock
from models.db import make_engine, make_session_factory
from tests.fakes import sqlite_sessions


def test_a_machine_an_hour_fast_still_reads_the_database_time(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)
    ticks = [0.0]
    clock = DatabaseClock(
        sessions,
        refresh_s=30,
        local=lambda: utcnow() + timedelta(hours=1),
        monotonic=lambda: ticks[0],
    )
    read = clock()
    with sessions() as s:
        db_now = s.scalar(select(func.now()))
    assert db_now is not None
    assert abs((read - db_now).total_seconds()) < 2
    assert abs(clock.offset + timedelta(hours=1)) < timedelta(seconds=2)
    engine.dispose()


def test_the_embedded_database_is_this_machine(tmp_path: Path) -> None:
    clock = DatabaseClock(sqlite_sessions(tmp_path))
    assert abs((clock() - utcnow()).total_seconds()) < 1 and clock.offset == timedelta(0)
