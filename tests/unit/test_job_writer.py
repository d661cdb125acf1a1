"""The Postgres bulk insert spells the jobs table's columns out in SQL, where the model's Python
defaults do not apply: every NOT NULL column must be in it, and nothing that is not a column."""

from __future__ import annotations

import re

from models.jobs import Job
from worker.services.job_writer import UNNEST_INSERT, VARYING_COLUMNS


def _listed(pattern: str) -> list[str]:
    match = re.search(pattern, UNNEST_INSERT.text, re.S)
    assert match is not None
    return [c.strip() for c in match.group(1).split(",")]


def test_the_insert_names_every_required_column_and_only_columns() -> None:
    inserted = _listed(r"INSERT INTO jobs \((.*?)\)")
    columns = {c.name: c for c in Job.__table__.columns}
    assert set(inserted) <= columns.keys()
    required = {
        name
        for name, c in columns.items()
        if not c.nullable and not c.primary_key and c.server_default is None
    }
    assert required <= set(inserted), required - set(inserted)


def test_the_varying_columns_are_the_unnested_ones() -> None:
    assert tuple(_listed(r"AS t\((.*?)\)")) == VARYING_COLUMNS
    assert set(VARYING_COLUMNS) <= set(_listed(r"INSERT INTO jobs \((.*?)\)"))
