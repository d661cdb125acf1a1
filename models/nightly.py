"""Nightly pipeline runs: one row per (pipeline, run_date), enforced by a unique constraint.

The row is inserted *before* any work, so the database decides which scheduler owns a night:
two beat processes, a restart or a manual rerun that reach the same night find the row taken.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow
from models.vocabulary import RunState


class NightlyRun(Base):
    __tablename__ = "nightly_runs"
    __table_args__ = (UniqueConstraint("pipeline", "run_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(100))
    run_date: Mapped[date] = mapped_column(Date)
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default=RunState.ENQUEUING, index=True)
    transcripts: Mapped[int] = mapped_column(Integer, default=0)
    report_dir: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PipelineTranscript(Base):
    """A transcript a pipeline has taken: the primary key makes "each transcript once per
    pipeline" the database's rule, across nights, look-backs, reruns and backfills (two runs
    racing for one transcript: the second insert conflicts and that run skips it)."""

    __tablename__ = "pipeline_transcripts"

    pipeline: Mapped[str] = mapped_column(String(100), primary_key=True)
    transcript_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("nightly_runs.id", ondelete="CASCADE"), index=True
    )
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
