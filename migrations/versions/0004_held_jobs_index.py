"""ix_jobs_held: pending jobs held by a problem of the fleet, for `tbatch status`

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out (a migration never changes with the code): models.jobs.HELD_WHERE of 0004.
HELD = "status = 'pending' AND error_kind IN ('auth', 'model_unavailable', 'limiter_unavailable')"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_held",
        "jobs",
        ["batch_id", "error_kind"],
        postgresql_where=sa.text(HELD),
        sqlite_where=sa.text(HELD),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_held", table_name="jobs")
