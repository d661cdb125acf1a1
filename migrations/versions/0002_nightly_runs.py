"""nightly runs: one row per (pipeline, run_date), unique, claimed before any work

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:16:28.841437
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nightly_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transcripts", sa.Integer(), nullable=False),
        sa.Column("report_dir", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_nightly_runs_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nightly_runs")),
        sa.UniqueConstraint("pipeline", "run_date", name=op.f("uq_nightly_runs_pipeline_run_date")),
    )
    with op.batch_alter_table("nightly_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nightly_runs_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nightly_runs_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nightly_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nightly_runs_state"))
        batch_op.drop_index(batch_op.f("ix_nightly_runs_batch_id"))

    op.drop_table("nightly_runs")
