"""Structured output per model and batches that stop themselves (issue 11).

- ``attempts.route``: how the answering model was asked for structured output
  (``json_schema``, ``json_schema_strict``, ``tool``, ``prompt``); ``attempts.plan``: the shape
  sent to every model of the request (route, max_tokens), as sent.
- ``results.model`` / ``result_history.model`` nullable: an answer without a top-level
  ``model`` from a request with fallbacks was served by a model nobody knows; it is stored as
  unknown (NULL), never as the primary.
- ``jobs.reasoning`` (``{"effort": ...}`` or ``{"max_tokens": N}``, sent as the gateway's
  ``reasoning``) and ``attempts.reasoning_tokens`` (from the answer's usage).
- ``jobs.reroute_model``: the model a job's next call goes to instead of its own (after a
  context overflow); null = the job's model and chain.
- ``batches`` canary and pause: ``canary_jobs`` calls of a new batch run before the rest are
  released (0 = no canary, or it passed), ``canary_released`` of them are out; ``streak`` /
  ``streak_kind`` count permanent failures in a row with one reason; ``paused_reason`` /
  ``paused_at``: why the dispatcher releases nothing more of the batch (``tbatch resume``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("route", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("plan", models.base.JSONType, nullable=True))
        batch.add_column(sa.Column("reasoning_tokens", sa.Integer(), nullable=True))
    for table in ("results", "result_history"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("model", existing_type=sa.String(length=100), nullable=True)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("reroute_model", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("reasoning", models.base.JSONType, nullable=True))
    zero = sa.text("0")
    with op.batch_alter_table("batches") as batch:
        batch.add_column(
            sa.Column("canary_jobs", sa.Integer(), nullable=False, server_default=zero)
        )
        batch.add_column(
            sa.Column("canary_released", sa.Integer(), nullable=False, server_default=zero)
        )
        batch.add_column(sa.Column("streak", sa.Integer(), nullable=False, server_default=zero))
        batch.add_column(sa.Column("streak_kind", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("paused_at", models.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        for column in (
            "paused_at",
            "paused_reason",
            "streak_kind",
            "streak",
            "canary_released",
            "canary_jobs",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reasoning")
        batch.drop_column("reroute_model")
    for table in ("results", "result_history"):
        op.execute(sa.text(f"UPDATE {table} SET model = 'unknown' WHERE model IS NULL"))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("model", existing_type=sa.String(length=100), nullable=False)
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("reasoning_tokens")
        batch.drop_column("plan")
        batch.drop_column("route")
