"""Batches and jobs: the source of truth for what is waiting, running and finished.

A job moves ``pending -> queued -> running -> succeeded | failed`` (or ``cancelled``), and back
to ``pending`` for a transport retry, a re-ask or a lost lease. Every move is a compare-and-set
on ``status`` so duplicate deliveries cannot both act.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONType, UTCDateTime, utcnow
from models.vocabulary import FLEET_KINDS, JobStatus

# The held jobs' predicate (``tbatch status`` lists them; migration 0004 indexes it).
_KINDS_SQL = ", ".join(f"'{kind}'" for kind in FLEET_KINDS)
HELD_WHERE = f"status = '{JobStatus.PENDING}' AND error_kind IN ({_KINDS_SQL})"


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The canary: the first ``canary_jobs`` calls run before the rest are released (0: no
    # canary, or it passed); ``canary_released`` of them are out.
    canary_jobs: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    canary_released: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Permanent failures in a row with one reason (a success resets it).
    streak: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    streak_kind: Mapped[str | None] = mapped_column(String(40))
    # Set: the dispatcher releases nothing more of the batch until ``tbatch resume``.
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What ``tbatch estimate`` predicted when the batch was enqueued (``worker.estimate``).
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# One job per (batch, transcript, template, schema, model): enqueueing it again is a no-op.
JOB_KEY = ("batch_id", "transcript_id", "template_id", "schema_id", "model")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Re-enqueueing the same transcript/template/schema/model into a batch is a no-op.
        UniqueConstraint(*JOB_KEY),
        # The user's own id for a job, unique within its batch (results are keyed by it).
        Index(
            "ux_jobs_batch_custom_id",
            "batch_id",
            "custom_id",
            unique=True,
            postgresql_where=text("custom_id IS NOT NULL"),
            sqlite_where=text("custom_id IS NOT NULL"),
        ),
        Index("ix_jobs_batch_status", "batch_id", "status"),
        # The dispatcher's hot query: pending jobs per model, oldest first.
        Index(
            "ix_jobs_pending",
            "model",
            "region",
            "batch_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # `tbatch status`: jobs held by a problem of the fleet (pipeline._hold), without
        # reading every pending row of a million-job batch.
        Index(
            "ix_jobs_held",
            "batch_id",
            "error_kind",
            postgresql_where=text(HELD_WHERE),
            sqlite_where=text(HELD_WHERE),
        ),
        # The reconciler's query: leases and queue times of jobs in flight.
        Index(
            "ix_jobs_inflight",
            "status",
            "lease_expires_at",
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    transcript_id: Mapped[str] = mapped_column(String(128))
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id"))
    schema_id: Mapped[int] = mapped_column(ForeignKey("schemas.id"))
    model: Mapped[str] = mapped_column(String(100))
    fallbacks: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    region: Mapped[str] = mapped_column(String(8), default="us")
    model_region_global: Mapped[bool] = mapped_column(Boolean, default=False)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    temperature: Mapped[float | None] = mapped_column(Float)
    # The gateway's ``reasoning``: ``{"effort": "low"|"medium"|"high"}`` or ``{"max_tokens": N}``.
    reasoning: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    variables: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Carried for the user, returned with the result: their id, and an object of their own.
    custom_id: Mapped[str | None] = mapped_column(String(200))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # The model the next call goes to instead of ``model`` and its chain (a context overflow
    # rerouted the job to a larger-context model); None: the job's own chain.
    reroute_model: Mapped[str | None] = mapped_column(String(100))

    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    transport_retries: Mapped[int] = mapped_column(Integer, default=0)
    reasks: Mapped[int] = mapped_column(Integer, default=0)
    # The previous answer and its validation errors, shown to the model on a re-ask.
    reask_context: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error_kind: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
