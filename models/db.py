"""Engine and session factory. Built per process after fork (never at import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import CursorResult, Engine, Pool, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from models import attempts, content, counts, jobs, nightly  # noqa: F401  (register every table on Base)
from models.base import Base

__all__ = [
    "Base",
    "insert_ignoring_conflicts",
    "make_engine",
    "make_session_factory",
    "rowcount",
    "session_scope",
    "table_of",
]


def make_engine(url: str, *, pool_size: int = 10, poolclass: type[Pool] | None = None) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            **({"poolclass": poolclass} if poolclass else {}),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the demo's readers (status) run beside the worker's writer.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if poolclass is not None:
        return create_engine(url, poolclass=poolclass)
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def table_of(model: type[Base]) -> Table:
    """A mapped class's ``Table``: hot-path statements are built on it once, as Core, so each
    execution only binds parameters (no ORM bulk-persistence pass, no statement building)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def insert_ignoring_conflicts(session: Session, table: Any, **conflict: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect (Postgres or SQLite): the
    database's uniqueness, not a check-then-insert, decides who wins a race."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(**conflict)


def rowcount(result: Any) -> int:
    """Rows an UPDATE matched (``Session.execute`` is typed as returning a plain Result)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
