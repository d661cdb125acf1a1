"""jobs.custom_id (unique within a batch) and jobs.metadata: the user's own keys, returned
with every result

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRESENT = "custom_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("custom_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("metadata", models.base.JSONType, nullable=True))
    op.create_index(
        "ux_jobs_batch_custom_id",
        "jobs",
        ["batch_id", "custom_id"],
        unique=True,
        postgresql_where=sa.text(PRESENT),
        sqlite_where=sa.text(PRESENT),
    )


def downgrade() -> None:
    op.drop_index("ux_jobs_batch_custom_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("metadata")
        batch.drop_column("custom_id")
