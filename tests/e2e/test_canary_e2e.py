"""A batch whose model is not entitled stops after its canary (issue 11): real worker
processes, Postgres, Redis and the emulator over sockets. Exactly ``canary_calls`` chat
requests reach the emulator, the batch is paused with one line of reason, the rest stays
pending while another batch runs, and ``tbatch resume`` after the fix finishes it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emulator.routes.server import EmulatorProcess
from models.jobs import Batch, Job
from tests.fixtures.pipeline import (
    E2E_KEY,
    enqueue_cli,
    run_cli,
    tbatch_env,
    until_in_db,
    wait_final,
)

pytestmark = pytest.mark.slow
NOT_ENTITLED = "claude-haiku-4-5-20251001"
HEALTHY = "claude-sonnet-4-6"
CANARY = 5


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    args = ["--transcripts", "120", "--seed", "3", "--no-rate-limit", "--api-key", E2E_KEY]
    with EmulatorProcess(*args, "--latency-ms", "20", "--latency-jitter-ms", "10") as proc:
        yield proc


def _calls(emu: EmulatorProcess, model: str) -> int:
    return sum(1 for entry in emu.requests() if entry["model"] == model)


State = tuple[str | None, dict[str, int]]


def _read(s: Session, batch_id: int) -> State:
    """The batch's pause reason and its jobs per status."""
    reason = s.scalar(select(Batch.paused_reason).where(Batch.id == batch_id))
    rows = s.execute(
        select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
    )
    return reason, {str(k): int(v) for k, v in rows}


def _paused_and_idle(state: State) -> bool:
    reason, counts = state
    return reason is not None and not counts.get("queued") and not counts.get("running")


def test_a_batch_whose_model_is_not_entitled_pauses_after_its_canary(
    world, emu: EmulatorProcess, workers
) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"no_access_models": [NOT_ENTITLED]})
    env = tbatch_env(url, rurl, emu.url, TBATCH_CANARY_CALLS=str(CANARY))
    batch = enqueue_cli(env, tmp, ids[:40], "--model", NOT_ENTITLED)["batch_id"]
    workers(env, concurrency=8)

    until_in_db(
        url,
        lambda s: _read(s, batch),
        _paused_and_idle,
        lambda state: f"batch {batch} not paused and idle: {state}",
        60,
        every_s=0.1,
    )
    # Another batch runs to the end meanwhile: the workers and dispatchers are alive, and
    # still nothing more of the paused batch was called.
    other = enqueue_cli(env, tmp, ids[40:50], "--model", HEALTHY)["batch_id"]
    assert wait_final(url, other, 60) == {"succeeded": 10}
    reason, counts = until_in_db(url, lambda s: _read(s, batch), bool, str, 10, every_s=0.1)
    assert counts == {"failed": CANARY, "pending": 40 - CANARY}
    assert _calls(emu, NOT_ENTITLED) == CANARY
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"paused after {CANARY} permanent failures in a row (not_entitled): ")
    assert "Your account does not have access to this LLM Gateway model" in reason

    shown = run_cli(env, "status", str(batch)).stdout
    assert [line for line in shown.splitlines() if line.startswith("paused: ")] == [
        f"paused: {reason}"
    ]
    status = json.loads(run_cli(env, "status", str(batch), "--json").stdout)
    assert status["paused_reason"] == reason and status["paused_at"]
    assert status["canary"] == {"jobs": CANARY, "released": CANARY}

    emu.configure({"no_access_models": []})  # the fix: the account is entitled now
    resumed = run_cli(env, "resume", str(batch))
    assert f"{CANARY} job(s) that failed with not_entitled back to pending" in resumed.stderr
    assert wait_final(url, batch, 90) == {"succeeded": 40}
    assert _calls(emu, NOT_ENTITLED) == 40 + CANARY
    final = json.loads(run_cli(env, "status", str(batch), "--json").stdout)
    assert (final["paused_reason"], final["canary"]) == (None, None)

    again = run_cli(env, "resume", str(batch), check=False)
    assert again.returncode == 2 and f"batch {batch} is not paused" in again.stderr
    unknown = run_cli(env, "resume", "999999", check=False)
    assert unknown.returncode == 2 and "unknown batch 999999" in unknown.stderr
