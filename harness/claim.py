"""A private Postgres database and Redis db for one run, so concurrent runs cannot collide.

Tests, benchmarks and the CI loop share one Postgres and one Redis on a machine. A run creates
a database of its own (a unique name, migrated to head) and claims a Redis db index with
``SET NX`` on a key in db 0, so no two runs flush each other's queues or count each other's
rows. Both are undone on exit, whether the run passed, failed or was interrupted.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import redis

from models.migrate import upgrade

PG_ADMIN = "postgresql://127.0.0.1:5432/postgres"
REDIS_BASE = "redis://127.0.0.1:6379"
#: The key in Redis db 0 that holds one db index for one run.
REDIS_CLAIM_KEY = "tbatch:testdb:{index}"
#: A claim left by a run that died lapses after this long.
CLAIM_TTL_S = 3600


class ClaimRefused(RuntimeError):
    """Every Redis db index asked for is held by another run."""


@dataclass(frozen=True)
class Database:
    """One Postgres database, and the admin connection (libpq form) that creates and drops it."""

    name: str
    admin_dsn: str = PG_ADMIN

    @classmethod
    def unique(cls, prefix: str, admin_dsn: str = PG_ADMIN) -> Database:
        return cls(f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}", admin_dsn)

    @property
    def dsn(self) -> str:
        """For psycopg and libpq tools."""
        return f"{self.admin_dsn.rsplit('/', 1)[0]}/{self.name}"

    @property
    def url(self) -> str:
        """For SQLAlchemy and tbatch's settings."""
        return self.dsn.replace("postgresql://", "postgresql+psycopg://", 1)

    def create(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self, attempts: int = 1, pause_s: float = 3.0) -> None:
        """Drop it, connections and all; ``attempts`` > 1 rides out a Postgres restart (fault
        tests restart the shared server while other runs are finishing)."""
        for attempt in range(1, attempts + 1):
            try:
                with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                return
            except psycopg.OperationalError:
                if attempt == attempts:
                    raise
                time.sleep(pause_s)


@contextmanager
def migrated_database(
    database: Database, *, keep: bool = False, drop_attempts: int = 1
) -> Iterator[Database]:
    """Create ``database`` at the latest schema; drop it on exit unless ``keep``."""
    database.create()
    try:
        upgrade(database.url)
        yield database
    finally:
        if not keep:
            database.drop(drop_attempts)


@dataclass(frozen=True)
class RedisDb:
    index: int
    url: str


@contextmanager
def claimed_redis_db(
    holder: str,
    candidates: Iterable[int] = range(1, 16),
    *,
    base_url: str = REDIS_BASE,
    keep: bool = False,
) -> Iterator[RedisDb]:
    """The first free db index of ``candidates``, flushed; on exit flushed (unless ``keep``)
    and released. ``holder`` is stored in the claim, for the message of a refused one."""
    admin = redis.Redis.from_url(f"{base_url}/0")
    index = _claim(admin, holder, list(candidates))
    try:
        url = f"{base_url}/{index}"
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield RedisDb(index, url)
        finally:
            if not keep:
                client.flushdb()
    finally:
        admin.delete(REDIS_CLAIM_KEY.format(index=index))


def _claim(admin: redis.Redis[bytes], holder: str, candidates: list[int]) -> int:
    for index in candidates:
        if admin.set(REDIS_CLAIM_KEY.format(index=index), holder, nx=True, ex=CLAIM_TTL_S):
            return index
    held = {i: admin.get(REDIS_CLAIM_KEY.format(index=i)) for i in candidates}
    raise ClaimRefused(f"no free Redis db among {candidates}: claimed by {held}")
