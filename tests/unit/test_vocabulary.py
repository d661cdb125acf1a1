"""The stored vocabulary is defined once and every writer uses it."""

from __future__ import annotations

import importlib
import inspect

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from models.base import Base
from models.jobs import HELD_WHERE, Batch, Job
from models.vocabulary import FLEET_KINDS, FailureKind, JobStatus
from worker import errors
from worker.services.claims import out_of_deliveries


def _gateway_errors() -> list[type[errors.GatewayError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.GatewayError)
    ]


def test_every_gateway_error_stores_its_own_failure_kind() -> None:
    kinds = [cls.kind for cls in _gateway_errors()]
    assert all(isinstance(kind, FailureKind) for kind in kinds), kinds
    assert len(set(kinds)) == len(kinds), f"two error classes store one kind: {kinds}"


def test_the_held_index_of_migration_0004_is_the_models_predicate() -> None:
    """The migration spells the predicate out; the model derives it from the vocabulary. If a
    fleet kind is added, the partial index no longer covers it: this must then fail."""
    migration = importlib.import_module("migrations.versions.0004_held_jobs_index")
    assert migration.HELD == HELD_WHERE
    assert all(f"'{kind}'" in HELD_WHERE for kind in FLEET_KINDS)


@pytest.mark.parametrize("cap", [1, 3])
def test_the_poison_rule_agrees_in_python_and_in_sql(cap: int) -> None:
    """A worker that claims a job (its own delivery counted) and the reconciler looking at an
    expired lease (that delivery ended unfinished) apply one rule: ``cap`` unfinished
    deliveries, and the job fails instead of being delivered again."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        batch_id = session.execute(insert(Batch).returning(Batch.id)).scalar_one()
        for deliveries in range(6):
            session.add(
                Job(
                    batch_id=batch_id,
                    transcript_id=f"t{deliveries}",
                    template_id=1,
                    schema_id=1,
                    model="m",
                    deliveries=deliveries,
                    region="us",
                    status=JobStatus.RUNNING,
                )
            )
        session.flush()
        in_sql = set(
            session.scalars(select(Job.deliveries).where(out_of_deliveries(Job.deliveries, cap)))
        )
    in_python = {n for n in range(6) if out_of_deliveries(n, cap)}
    assert in_sql == in_python == set(range(cap, 6))
    # The claiming worker sees ``deliveries`` one higher for the same job.
    assert {n + 1 for n in range(6) if out_of_deliveries(n, cap)} == {
        n for n in range(1, 7) if out_of_deliveries(n - 1, cap)
    }


def test_reprocess_lists_the_reasons_and_refuses_an_unknown_one() -> None:
    from worker.cli import main

    runner = CliRunner()
    shown = runner.invoke(main, ["reprocess", "--help"])
    assert shown.exit_code == 0
    assert all(kind.value in shown.output for kind in FailureKind)
    refused = runner.invoke(main, ["reprocess", "--batch", "1", "--reason", "invalid_outptu"])
    assert refused.exit_code == 2
    assert "invalid_outptu" in refused.output and "invalid_output" in refused.output
