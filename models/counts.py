"""Counters for `tbatch status`: jobs per (batch, status, error kind, model, region) and usage
per batch, kept in step with ``jobs`` and ``attempts`` by Postgres triggers (migration 0005).

Why counters: reading a million-job batch's states with ``GROUP BY`` costs a scan of every
row (about a second at 1M); these tables hold a handful of rows per batch however big it is.

Why two tables each: a trigger that updated one counter row per state would make every
worker's commit wait on the same hot row (every success moves ``running -> succeeded`` of
the same batch). So the triggers only *append* signed deltas (``*_deltas``, no row is ever
updated, no lock is shared), and the reconciler folds them into the totals now and then
(``worker/services/counts.py``). A reader sums totals and pending deltas in one statement,
so it is exact at every moment, folded or not.

SQLite (the embedded mode) has the tables but no triggers: status there reads the jobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime


class _JobKey:
    """``error_kind`` is '' rather than NULL, so the key can be a primary key."""

    batch_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    error_kind: Mapped[str] = mapped_column(String(40), default="")
    model: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(8))
    jobs: Mapped[int] = mapped_column(BigInteger)
    finished: Mapped[int] = mapped_column(BigInteger)  # jobs of the key with a finished_at
    # Earliest created_at and latest finished_at of the jobs that entered the key (a
    # watermark: it is not lowered when a job leaves).
    first_created: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobCount(_JobKey, Base):
    __tablename__ = "job_counts"

    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    error_kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    region: Mapped[str] = mapped_column(String(8), primary_key=True)


class JobCountDelta(_JobKey, Base):
    __tablename__ = "job_count_deltas"
    __table_args__ = (Index("ix_job_count_deltas_batch_id", "batch_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class _Usage:
    batch_id: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float] = mapped_column(Float)
    http_429: Mapped[int] = mapped_column(BigInteger)
    # Migration 0010: cache tokens, attempts whose price was unknown, what was saved.
    cached_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cost_unknown: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cache_saved_usd: Mapped[float] = mapped_column(Float, server_default=text("0"))
    global_saved_usd: Mapped[float] = mapped_column(Float, server_default=text("0"))


class BatchUsage(_Usage, Base):
    __tablename__ = "batch_usage"

    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class BatchUsageDelta(_Usage, Base):
    __tablename__ = "batch_usage_deltas"
    __table_args__ = (Index("ix_batch_usage_deltas_batch_id", "batch_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
