"""`tbatch batches` as a script and a person see it: real `python -m worker batches` processes
against the test database holding a batch run through the real pipeline against the emulator
and two pending batches made after it. Ids, names, counts, cost and the newest-first order
are checked against the rows themselves; `--limit` keeps the newest; the table prints a user's
`<script>` verbatim (a terminal runs no markup) and rich's own markup in a name stays text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from emulator.routes.server import EmulatorProcess
from models.jobs import Batch
from tests.fakes import enqueue_lines, ids
from tests.fixtures.pipeline import run_cli, tbatch_env
from tests.fixtures.rows import attempt_totals, job_counts
from tests.fixtures.ui_batch import EVIL, MODEL
from tests.fixtures.ui_world import RATE_LIMITS, seed
from worker.reports import fmt

#: A name rich would read as markup (bold, a link) if render_batches did not escape it.
RICH_MARKUP = "[bold]loud[/bold] [link=file:///etc/passwd]x[/link]"


def _rows(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """Every batch, newest first, with its counts and cost counted from its rows."""
    with sessions() as s:
        batches = s.execute(
            select(Batch.id, Batch.name).order_by(Batch.created_at.desc(), Batch.id.desc())
        ).all()
        out = []
        for batch_id, name in batches:
            counts = job_counts(s, batch_id)
            _, cost, _ = attempt_totals(s, batch_id)
            out.append({"batch_id": batch_id, "name": name, "counts": counts, "cost": cost})
    return out


def _env(database_url: str, redis_url: str, emu: EmulatorProcess) -> dict[str, str]:
    # COLUMNS: rich sizes a table to the terminal; a pipe has none, so give it a wide one.
    return tbatch_env(
        database_url, redis_url, emu.url, TBATCH_RATE_LIMITS=RATE_LIMITS, COLUMNS="220"
    )


def test_batches_json_and_table_equal_the_database(
    gateway: EmulatorProcess,
    fresh_database_url: str,
    fresh_sessions: sessionmaker[Session],
    redis_url: str,
    tmp_path: Path,
) -> None:
    seeded = seed(fresh_sessions, gateway, tmp_path)
    line = json.dumps({"transcript_id": ids(50)[-1], "variables": {"team": "ops"}})
    marked = enqueue_lines(fresh_sessions, [line], name=RICH_MARKUP, model=MODEL)
    env = _env(fresh_database_url, redis_url, gateway)
    expected = _rows(fresh_sessions)
    assert [r["batch_id"] for r in expected] == [
        marked,
        seeded.small,
        seeded.backfill,
        seeded.real.batch_id,
    ]

    listed = json.loads(run_cli(env, "batches", "--json").stdout)
    assert [b["batch_id"] for b in listed] == [r["batch_id"] for r in expected]
    for got, want in zip(listed, expected, strict=True):
        assert got["name"] == want["name"]
        assert {k: v for k, v in got["counts"].items() if v} == want["counts"]
        assert got["total"] == sum(want["counts"].values())
        assert abs(got["cost_usd"] - want["cost"]) < 1e-6
        assert got["created_at"].endswith("+00:00")
    real = next(b for b in listed if b["batch_id"] == seeded.real.batch_id)
    assert real["name"] == f"calls {EVIL}" and real["state"] == "final" and real["cost_usd"] > 0

    newest = json.loads(run_cli(env, "batches", "--json", "--limit", "2").stdout)
    assert [b["batch_id"] for b in newest] == [r["batch_id"] for r in expected[:2]]

    table = run_cli(env, "batches")
    assert table.stderr == ""
    lines = table.stdout.splitlines()
    positions = []
    for want in expected:
        (row,) = [
            n for n, text in enumerate(lines) if text.strip("│ ").startswith(f"{want['batch_id']} ")
        ]
        cells = [c.strip() for c in lines[row].strip("│").split("│")]
        assert cells[0] == str(want["batch_id"])
        assert cells[1] == want["name"]  # verbatim: EVIL, and rich markup not interpreted
        counts = want["counts"]
        done = sum(n for state, n in counts.items() if state in ("succeeded", "failed"))
        assert cells[3].startswith(f"{fmt.count(done)}/{fmt.count(sum(counts.values()))} (")
        assert cells[4] == fmt.count(counts.get("succeeded", 0))
        assert cells[5] == fmt.count(counts.get("failed", 0))
        assert cells[9] == fmt.usd(want["cost"])
        positions.append(row)
    assert positions == sorted(positions)  # newest first, as the rows say

    two = run_cli(env, "batches", "--limit", "2").stdout
    assert str(seeded.backfill) not in [line.strip("│ ").split(" ")[0] for line in two.splitlines()]


def test_no_batches_is_a_sentence_and_an_empty_array(
    gateway: EmulatorProcess, fresh_database_url: str, redis_url: str
) -> None:
    env = _env(fresh_database_url, redis_url, gateway)
    assert json.loads(run_cli(env, "batches", "--json").stdout) == []
    assert run_cli(env, "batches").stdout.strip() == "no batches yet (tbatch enqueue makes one)"
