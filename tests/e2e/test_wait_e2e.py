"""`tbatch wait` exit codes against real worker processes, Postgres, Redis and the emulator
over sockets (issue 13): 0 when every job succeeded, 1 when one failed (a transcript the
emulator does not have), was cancelled, or the batch paused; 2 for an unknown batch and on
timeout. Each `wait` is a real `python -m worker wait` child process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emulator.routes.server import EmulatorProcess
from models.jobs import Job
from tests.fixtures.pipeline import E2E_KEY, enqueue_cli, run_cli, tbatch_env, until_in_db

pytestmark = pytest.mark.slow
HEALTHY = "claude-sonnet-4-6"
NOT_ENTITLED = "claude-haiku-4-5-20251001"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    args = ["--transcripts", "60", "--seed", "5", "--no-rate-limit", "--api-key", E2E_KEY]
    with EmulatorProcess(*args, "--latency-ms", "20", "--latency-jitter-ms", "10") as proc:
        yield proc


@pytest.fixture()
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes a test starts itself; killed if still running at the end."""
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        child.kill()
        child.wait(timeout=10)


def _counts(database_url: str, batch_id: int) -> dict[str, int]:
    """The batch's jobs per status, read once (the wait has returned: it must be final)."""

    def read(s: Session) -> dict[str, int]:
        query = select(Job.status, func.count()).where(Job.batch_id == batch_id)
        return {str(k): int(v) for k, v in s.execute(query.group_by(Job.status))}

    return until_in_db(database_url, read, lambda _: True, str, 10, every_s=0.1)


def _failed_job(database_url: str, batch_id: int) -> int:
    def read(s: Session) -> int | None:
        query = select(Job.id).where(Job.batch_id == batch_id, Job.status == "failed")
        return s.scalar(query)

    return int(until_in_db(database_url, read, lambda _: True, str, 10, every_s=0.1) or 0)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_wait_exits_by_how_the_batch_ended(
    world, emu: EmulatorProcess, workers, spawned: list[subprocess.Popen[str]]
) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"no_access_models": [NOT_ENTITLED]})
    env = tbatch_env(url, rurl, emu.url, TBATCH_CANARY_CALLS="2")
    good = enqueue_cli(env, tmp, ids[:6], "--model", HEALTHY)["batch_id"]
    missing = str(uuid.uuid4())  # an id the emulator's transcript store does not hold
    bad = enqueue_cli(env, tmp, [*ids[6:9], missing], "--model", HEALTHY)["batch_id"]
    doomed = enqueue_cli(env, tmp, ids[9:13], "--model", NOT_ENTITLED)["batch_id"]
    dropped = enqueue_cli(env, tmp, ids[13:16], "--model", HEALTHY)["batch_id"]

    # Before any worker runs: nothing can finish, so a timeout is the only way out.
    late = run_cli(env, "wait", str(good), "--timeout", "0.5", "--quiet", check=False)
    assert late.returncode == 2 and late.stdout == ""
    assert f"batch {good} not final after 0.5 s (0 of 6 final" in _one_error_line(late.stderr)
    # Without --quiet a log (not a terminal) gets a progress line first.
    noisy = run_cli(env, "wait", str(good), "--timeout", "0.3", check=False)
    assert noisy.returncode == 2 and noisy.stderr.startswith(f"batch {good}: 0% (0/6 final)")
    follower = subprocess.Popen(
        [sys.executable, "-m", "worker", "wait", str(good)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawned.append(follower)
    assert follower.stderr is not None
    assert follower.stderr.readline().startswith(f"batch {good}: 0% (0/6 final)")  # polling
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 130 and out == "" and "interrupted" in err  # not a verdict
    unknown = run_cli(env, "wait", "987654", check=False)
    assert unknown.returncode == 2
    assert _one_error_line(unknown.stderr) == "tbatch: error: unknown batch 987654"
    run_cli(env, "cancel", str(dropped))
    cancelled = run_cli(env, "wait", str(dropped), "--timeout", "30", check=False)
    assert cancelled.returncode == 1 and f"batch {dropped} cancelled: 3 cancelled" in (
        cancelled.stderr
    )

    # A --json --watch started before the workers: an NDJSON stream until the batch is final.
    watch = ["status", str(bad), "--json", "--watch", "--interval-s", "0.2"]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "worker", *watch], env=env, stdout=subprocess.PIPE, text=True
    )
    spawned.append(watcher)
    workers(env, concurrency=8)
    done = run_cli(env, "wait", str(good), "--timeout", "90", "--json", check=False)
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert final["outcome"] == "succeeded" and final["counts"]["succeeded"] == 6
    assert final["at"].count("T") == 1 and final["created_at"].endswith("+00:00")
    assert _counts(url, good) == {"succeeded": 6}
    assert f"batch {good} succeeded: 6 succeeded" in done.stderr
    # --watch on a final batch: one tick (NDJSON under --json, the rich view otherwise).
    ticks = run_cli(env, "status", str(good), "--json", "--watch").stdout.splitlines()
    assert len(ticks) == 1 and json.loads(ticks[0])["final"] is True
    view = run_cli(env, "status", str(good), "--watch").stdout
    assert f"batch {good}: 6/6 final (100.0%)" in view and "elapsed" in view

    failed = run_cli(env, "wait", str(bad), "--timeout", "90", check=False)
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout == ""
    assert "(failures: transcript_not_found 1)" in failed.stderr
    assert _counts(url, bad) == {"succeeded": 3, "failed": 1}
    stream, _ = watcher.communicate(timeout=30)  # it ends by itself once the batch is final
    events: list[dict[str, Any]] = [json.loads(line) for line in stream.splitlines()]
    assert len(events) >= 2 and not events[0]["final"] and events[-1]["final"]
    moments = [datetime.fromisoformat(t["at"]) for t in events]
    assert moments == sorted(moments) and len(set(moments)) == len(moments)
    # The on-call view of that job: its attempt timeline as a table, found by request_id.
    job_id = _failed_job(url, bad)
    history = json.loads(run_cli(env, "show", "--job", str(job_id), "--json").stdout)
    [attempt] = history["attempts"]
    table = run_cli(env, "show", "--request-id", attempt["request_id"]).stdout
    assert f"job {job_id} (batch {bad}): failed transcript_not_found" in table
    assert attempt["request_id"] in table and "404" in table and missing in table

    paused = run_cli(env, "wait", str(doomed), "--timeout", "90", check=False)
    assert paused.returncode == 1, paused.stderr
    assert f"batch {doomed} is paused: paused after 2 permanent failures" in paused.stderr
    assert f"`tbatch resume {doomed}`" in paused.stderr
    assert _counts(url, doomed) == {"failed": 2, "pending": 2}
