"""pipeline_transcripts: each transcript taken once per pipeline (look-back nights, backfills)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipeline_transcripts",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("transcript_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("taken_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["nightly_runs.id"],
            name=op.f("fk_pipeline_transcripts_run_id_nightly_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline", "transcript_id", name=op.f("pk_pipeline_transcripts")),
    )
    with op.batch_alter_table("pipeline_transcripts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pipeline_transcripts_run_id"), ["run_id"])


def downgrade() -> None:
    with op.batch_alter_table("pipeline_transcripts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_transcripts_run_id"))
    op.drop_table("pipeline_transcripts")
