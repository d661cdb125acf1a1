"""Spend (issue 12): cost to the token, what caching and global routing saved, estimates.

- ``attempts.cache_write_tokens`` (prompt tokens written to the provider's cache, a part of
  ``input_tokens`` as ``cached_tokens``, the reads, are) and ``attempts.cost_breakdown`` (the
  parts of ``cost_usd``: input, cache reads, cache writes, output, reasoning, surcharge; and
  what caching and ``global`` routing saved).
- ``batch_usage`` / ``batch_usage_deltas``: ``cached_tokens``, ``cache_write_tokens``,
  ``cost_unknown`` (answered attempts whose price was unknown: the batch's cost is then
  unknown, never a partial sum shown as the total), ``cache_saved_usd``, ``global_saved_usd``;
  the usage trigger function is replaced to fill them (same trigger, same statement shape).
- ``batches.estimate``: what ``tbatch estimate`` predicted at enqueue (``tbatch status``
  shows it against the actual once the batch is final).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_USAGE = (
    ("cached_tokens", sa.BigInteger()),
    ("cache_write_tokens", sa.BigInteger()),
    ("cost_unknown", sa.BigInteger()),
    ("cache_saved_usd", sa.Float()),
    ("global_saved_usd", sa.Float()),
)
USAGE_COLUMNS = (
    "batch_id, attempts, input_tokens, output_tokens, cost_usd, http_429, cached_tokens, "
    "cache_write_tokens, cost_unknown, cache_saved_usd, global_saved_usd"
)


def _saved(name: str) -> str:
    return f"coalesce(sum((a.cost_breakdown->>'{name}')::float8), 0)"


USAGE_TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION tbatch_count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO batch_usage_deltas ({USAGE_COLUMNS})
  SELECT j.batch_id, count(*), coalesce(sum(a.input_tokens), 0),
         coalesce(sum(a.output_tokens), 0), coalesce(sum(a.cost_usd), 0),
         count(*) FILTER (WHERE a.http_status = 429),
         coalesce(sum(a.cached_tokens), 0), coalesce(sum(a.cache_write_tokens), 0),
         count(*) FILTER (WHERE a.cost_usd IS NULL AND (a.input_tokens IS NOT NULL
                                                       OR a.output_tokens IS NOT NULL)),
         {_saved("cache_saved_usd")}, {_saved("global_saved_usd")}
  FROM new_attempts AS a JOIN jobs AS j ON j.id = a.job_id
  GROUP BY j.batch_id;
  RETURN NULL;
END $$
"""
OLD_USAGE_TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION tbatch_count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO batch_usage_deltas (batch_id, attempts, input_tokens, output_tokens, cost_usd,
                                  http_429)
  SELECT j.batch_id, count(*), coalesce(sum(a.input_tokens), 0),
         coalesce(sum(a.output_tokens), 0), coalesce(sum(a.cost_usd), 0),
         count(*) FILTER (WHERE a.http_status = 429)
  FROM new_attempts AS a JOIN jobs AS j ON j.id = a.job_id
  GROUP BY j.batch_id;
  RETURN NULL;
END $$
"""
# Existing rows: what the new counters would have counted (no breakdowns existed, so no
# savings), under the same lock as 0005's backfill.
BACKFILL = """
UPDATE batch_usage AS u SET cached_tokens = s.cached, cost_unknown = s.unknown
FROM (
  SELECT j.batch_id, coalesce(sum(a.cached_tokens), 0) AS cached,
         count(*) FILTER (WHERE a.cost_usd IS NULL AND (a.input_tokens IS NOT NULL
                                                       OR a.output_tokens IS NOT NULL)) AS unknown
  FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id GROUP BY j.batch_id
) AS s WHERE s.batch_id = u.batch_id
"""


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("cache_write_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cost_breakdown", models.base.JSONType, nullable=True))
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("estimate", models.base.JSONType, nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("LOCK TABLE jobs, attempts IN SHARE ROW EXCLUSIVE MODE")
    for table in ("batch_usage", "batch_usage_deltas"):
        with op.batch_alter_table(table) as batch:
            for name, kind in NEW_USAGE:
                batch.add_column(sa.Column(name, kind, nullable=False, server_default=sa.text("0")))
    if postgres:
        op.execute(USAGE_TRIGGER_FUNCTION)
        op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(OLD_USAGE_TRIGGER_FUNCTION)
    for table in ("batch_usage_deltas", "batch_usage"):
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(NEW_USAGE):
                batch.drop_column(name)
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("estimate")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("cost_breakdown")
        batch.drop_column("cache_write_tokens")
