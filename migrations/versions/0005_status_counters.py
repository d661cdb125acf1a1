"""job_counts, batch_usage and their delta tables, kept by triggers: `tbatch status` without
reading every job (models/counts.py says why deltas)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "batch_id, status, error_kind, model, region"
COUNT_COLUMNS = f"{KEY}, jobs, finished, first_created, last_finished"
USAGE_COLUMNS = "batch_id, attempts, input_tokens, output_tokens, cost_usd, http_429"

# Statement-level triggers with transition tables: one aggregated delta row per key and
# statement (a 5,000-row enqueue chunk or a 100-job release is one row, not 5,000), and an
# update that moves no job between keys (a lease renewal) writes nothing. Column lists
# (`UPDATE OF status`) are not allowed with transition tables, hence the HAVING.
JOB_TRIGGER_FUNCTION = f"""
CREATE FUNCTION tbatch_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_count_deltas ({COUNT_COLUMNS})
    SELECT batch_id, status, coalesce(error_kind, ''), model, region,
           count(*), count(finished_at), min(created_at), max(finished_at)
    FROM new_jobs GROUP BY 1, 2, 3, 4, 5;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO job_count_deltas ({COUNT_COLUMNS})
    SELECT batch_id, status, coalesce(error_kind, ''), model, region,
           -count(*), -count(finished_at), NULL, NULL
    FROM old_jobs GROUP BY 1, 2, 3, 4, 5;
  ELSE
    INSERT INTO job_count_deltas ({COUNT_COLUMNS})
    SELECT batch_id, status, error_kind, model, region,
           sum(jobs), sum(finished), min(first_created), max(last_finished)
    FROM (
      SELECT batch_id, status, coalesce(error_kind, '') AS error_kind, model, region,
             1 AS jobs, (finished_at IS NOT NULL)::int AS finished,
             created_at AS first_created, finished_at AS last_finished
      FROM new_jobs
      UNION ALL
      SELECT batch_id, status, coalesce(error_kind, ''), model, region,
             -1, -(finished_at IS NOT NULL)::int, NULL, NULL
      FROM old_jobs
    ) AS moved
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(jobs) <> 0 OR sum(finished) <> 0;
  END IF;
  RETURN NULL;
END $$
"""

# Attempts are only ever inserted (worker/services/recording.py).
USAGE_TRIGGER_FUNCTION = f"""
CREATE FUNCTION tbatch_count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO batch_usage_deltas ({USAGE_COLUMNS})
  SELECT j.batch_id, count(*), coalesce(sum(a.input_tokens), 0),
         coalesce(sum(a.output_tokens), 0), coalesce(sum(a.cost_usd), 0),
         count(*) FILTER (WHERE a.http_status = 429)
  FROM new_attempts AS a JOIN jobs AS j ON j.id = a.job_id
  GROUP BY j.batch_id;
  RETURN NULL;
END $$
"""

TRIGGERS = [
    "CREATE TRIGGER tbatch_count_jobs_insert AFTER INSERT ON jobs "
    "REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION tbatch_count_jobs()",
    "CREATE TRIGGER tbatch_count_jobs_update AFTER UPDATE ON jobs "
    "REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs "
    "FOR EACH STATEMENT EXECUTE FUNCTION tbatch_count_jobs()",
    "CREATE TRIGGER tbatch_count_jobs_delete AFTER DELETE ON jobs "
    "REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION tbatch_count_jobs()",
    "CREATE TRIGGER tbatch_count_usage_insert AFTER INSERT ON attempts "
    "REFERENCING NEW TABLE AS new_attempts "
    "FOR EACH STATEMENT EXECUTE FUNCTION tbatch_count_usage()",
]

# Existing rows, counted while writers wait (SHARE ROW EXCLUSIVE blocks writes, not reads),
# so no change falls between the count and the triggers.
BACKFILL = [
    "LOCK TABLE jobs, attempts IN SHARE ROW EXCLUSIVE MODE",
    f"""INSERT INTO job_counts ({COUNT_COLUMNS})
    SELECT batch_id, status, coalesce(error_kind, ''), model, region,
           count(*), count(finished_at), min(created_at), max(finished_at)
    FROM jobs GROUP BY 1, 2, 3, 4, 5""",
    f"""INSERT INTO batch_usage ({USAGE_COLUMNS})
    SELECT j.batch_id, count(*), coalesce(sum(a.input_tokens), 0),
           coalesce(sum(a.output_tokens), 0), coalesce(sum(a.cost_usd), 0),
           count(*) FILTER (WHERE a.http_status = 429)
    FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id GROUP BY j.batch_id""",
]


def _key_columns(primary: bool) -> list[sa.Column[object]]:
    return [
        sa.Column("batch_id", sa.BigInteger(), nullable=False, primary_key=primary),
        sa.Column("status", sa.String(16), nullable=False, primary_key=primary),
        sa.Column("error_kind", sa.String(40), nullable=False, primary_key=primary),
        sa.Column("model", sa.String(100), nullable=False, primary_key=primary),
        sa.Column("region", sa.String(8), nullable=False, primary_key=primary),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=False),
        sa.Column("first_created", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_finished", models.base.UTCDateTime(timezone=True), nullable=True),
    ]


def _usage_columns(primary: bool) -> list[sa.Column[object]]:
    return [
        sa.Column("batch_id", sa.BigInteger(), nullable=False, primary_key=primary),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("http_429", sa.BigInteger(), nullable=False),
    ]


def _delta_id() -> sa.Column[object]:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Column("id", big_id, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table("job_counts", *_key_columns(True))
    op.create_table("job_count_deltas", _delta_id(), *_key_columns(False))
    op.create_index("ix_job_count_deltas_batch_id", "job_count_deltas", ["batch_id"])
    op.create_table("batch_usage", *_usage_columns(True))
    op.create_table("batch_usage_deltas", _delta_id(), *_usage_columns(False))
    op.create_index("ix_batch_usage_deltas_batch_id", "batch_usage_deltas", ["batch_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in [BACKFILL[0], JOB_TRIGGER_FUNCTION, USAGE_TRIGGER_FUNCTION, *TRIGGERS]:
        op.execute(statement)
    for statement in BACKFILL[1:]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in [
            ("tbatch_count_jobs_insert", "jobs"),
            ("tbatch_count_jobs_update", "jobs"),
            ("tbatch_count_jobs_delete", "jobs"),
            ("tbatch_count_usage_insert", "attempts"),
        ]:
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        op.execute("DROP FUNCTION tbatch_count_jobs()")
        op.execute("DROP FUNCTION tbatch_count_usage()")
    for table in ["batch_usage_deltas", "batch_usage", "job_count_deltas", "job_counts"]:
        op.drop_table(table)
