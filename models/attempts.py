"""Evidence: one row per gateway call (success or failure) and at most one result per job.

"What happened to job X, with which request_ids, at what cost" is one query over ``attempts``
by ``job_id``; the on-call engineer's question "which job is request_id R" is one index lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONType, UTCDateTime, utcnow


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="call")  # call | reask
    model_requested: Mapped[str] = mapped_column(String(100))
    model_answered: Mapped[str | None] = mapped_column(String(100))
    fallback_used: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the answering model was asked for structured output (``worker.services.routes``),
    # and the shape sent to every model of the request.
    route: Mapped[str | None] = mapped_column(String(24))
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    region: Mapped[str] = mapped_column(String(8))
    http_status: Mapped[int | None] = mapped_column(Integer)
    # ok | repaired | invalid | refused | truncated | transient | permanent
    outcome: Mapped[str] = mapped_column(String(16))
    error_kind: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(40))
    raw_text: Mapped[str | None] = mapped_column(Text)
    repairs: Mapped[list[Any] | None] = mapped_column(JSONType)
    validation_errors: Mapped[list[Any] | None] = mapped_column(JSONType)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)  # cache reads, part of input
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)  # part of input too
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    # None: a price was unknown (never zero). ``cost_breakdown`` (``pricing.CostBreakdown``)
    # holds the parts that add up to it and what caching and global routing saved.
    cost_usd: Mapped[float | None] = mapped_column(Float)
    cost_breakdown: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The send permit's time on the rate limiter's clock: the moment the limit is held on.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class _Answer:
    """The answer a result holds, in ``results`` and, once replaced, in ``result_history``:
    declared once, so a column added here is kept by the archive (which copies by name)."""

    data: Mapped[Any] = mapped_column(JSONType)
    raw_text: Mapped[str] = mapped_column(Text)
    repaired: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str | None] = mapped_column(String(100))  # None: not known (see 0009)
    request_id: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)


class Result(_Answer, Base):
    """The validated answer. ``job_id`` is unique: the database refuses a second result."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResultHistory(_Answer, Base):
    """Results replaced by a forced reprocess, kept so nothing stored is ever lost: every
    column of ``results`` but its ``id`` (``operations`` copies them by name), plus when."""

    __tablename__ = "result_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
