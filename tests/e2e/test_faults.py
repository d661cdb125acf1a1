"""Fault injection: real worker processes, Postgres, Redis and the emulator. After each fault
every job is final, results == succeeded jobs, no job has two results, every answered call is
recorded with its request_id, and no job that had succeeded is called again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from emulator.routes.server import EmulatorProcess
from harness.procs import WorkerProcess
from harness.wait import until
from models.attempts import Attempt
from models.db import make_engine, make_session_factory
from models.jobs import Job
from models.vocabulary import ACTIVE_STATUSES, JobStatus
from tests.e2e import invariants
from tests.fixtures.pipeline import E2E_KEY, enqueue_cli, run_cli, tbatch_env, wait_final

pytestmark = pytest.mark.slow
FAST_RECOVERY = {
    "TBATCH_LEASE_S": "4",
    "TBATCH_RECONCILE_INTERVAL_S": "0.5",
    "TBATCH_REQUEUE_AFTER_S": "3",
    "TBATCH_GATEWAY_READ_TIMEOUT_S": "1.5",
    "TBATCH_DEFAULT_RATE_LIMIT": "40/1s",
}
RESULTS: list[dict[str, object]] = []


def fast(**overrides: str) -> dict[str, str]:
    return FAST_RECOVERY | overrides


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    args = [
        "--transcripts",
        "300",
        "--seed",
        "5",
        "--no-rate-limit",
        "--api-key",
        E2E_KEY,
        "--latency-ms",
        "200",
        "--latency-jitter-ms",
        "100",
        "--hang-s",
        "4",
    ]
    with EmulatorProcess(*args) as proc:
        yield proc
    Path("fault-suite-results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RESULTS))


def _poll(what: Callable[[], bool], timeout_s: float, message: str) -> None:
    """Wait on a condition of the run, checked every 0.05 s: faults are injected as soon as it
    holds (a worker killed while its calls are in flight, say)."""
    until(what, timeout_s, message, every_s=0.05)


def _count(url: str, *where) -> int:
    engine = make_engine(url, pool_size=1)
    with make_session_factory(engine)() as s:
        n = int(s.scalar(select(func.count()).select_from(Job).where(*where)) or 0)
    engine.dispose()
    return n


def test_worker_killed_mid_call(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"latency_ms": 1500, "latency_jitter_ms": 200})
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_GATEWAY_READ_TIMEOUT_S="5"))
    out = enqueue_cli(env, tmp, ids[:40], "--model", "claude-sonnet-4-6")
    victim = workers(env, concurrency=8)
    _poll(lambda: _count(url, Job.status == JobStatus.RUNNING) >= 4, 30, "no job started")
    victim.kill()
    killed_at = time.monotonic()
    workers(env, concurrency=8)
    wait_final(url, out["batch_id"], 90)
    ev = invariants.check(url, out["batch_id"], emu, env, killed_calls_allowed=True)
    assert ev.counts == {"succeeded": 40}
    assert _count(url, Job.deliveries >= 2) >= 1  # the killed jobs ran again
    RESULTS.append(
        invariants.summary("worker SIGKILL mid-call", ev)
        | {"recovered_in_s": round(time.monotonic() - killed_at, 1)}
    )


def test_broker_loses_every_message(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_DEFAULT_RATE_LIMIT="15/1s"))
    out = enqueue_cli(env, tmp, ids[:60], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=4)
    _poll(lambda: _count(url, Job.status == JobStatus.SUCCEEDED) >= 10, 60, "nothing succeeded")
    redis.Redis.from_url(rurl).flushall()  # Redis restarted with nothing on disk
    wait_final(url, out["batch_id"], 90)
    ev = invariants.check(url, out["batch_id"], emu, env)
    assert ev.counts == {"succeeded": 60}
    RESULTS.append(invariants.summary("broker FLUSHALL mid-batch", ev))


def test_postgres_restarts_mid_batch(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_DEFAULT_RATE_LIMIT="15/1s"))
    out = enqueue_cli(env, tmp, ids[:60], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=4)
    _poll(lambda: _count(url, Job.status == JobStatus.SUCCEEDED) >= 10, 60, "nothing succeeded")
    cluster = subprocess.run(
        ["ls", "/etc/postgresql"], capture_output=True, text=True
    ).stdout.split()[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart", "-m", "fast"],
        check=True,
        timeout=120,
    )
    wait_final(url, out["batch_id"], 120)
    ev = invariants.check(url, out["batch_id"], emu, env, killed_calls_allowed=True)
    assert ev.counts == {"succeeded": 60}
    RESULTS.append(invariants.summary("postgres restart mid-batch", ev))


def test_gateway_storms_and_garbage(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    emu.configure(
        {
            "faults": [
                {"kind": "5xx", "rate": 0.25},
                {"kind": "hang", "rate": 0.05},
                {"kind": "429", "rate": 0.1, "retry_after_s": 1},
                {"kind": "malformed", "rate": 0.2},
                {"kind": "unrepairable", "rate": 0.05},
            ]
        }
    )
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_MAX_TRANSPORT_RETRIES="8"))
    out = enqueue_cli(env, tmp, ids[:80], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=16)
    wait_final(url, out["batch_id"], 180)
    ev = invariants.check(url, out["batch_id"], emu, env, killed_calls_allowed=True)
    engine = make_engine(url, pool_size=1)
    with make_session_factory(engine)() as s:
        kinds = set(s.scalars(select(Attempt.error_kind).distinct()))
        outcomes = set(s.scalars(select(Attempt.outcome).distinct()))
        invalid = [
            (a.raw_text or "")[:80]
            for a in s.scalars(select(Attempt).where(Attempt.outcome == "invalid"))
        ]
    engine.dispose()
    from collections import Counter

    faults = Counter(str(e["fault"]) for e in emu.requests())
    assert {"server_error", "timeout", "rate_limited"} <= kinds and "repaired" in outcomes, (
        faults,
        invalid[:2],
    )
    assert ev.counts.get("succeeded", 0) >= 75
    RESULTS.append(invariants.summary("gateway 5xx/hang/429 storms + garbage", ev))


def test_poison_job_fails_after_delivery_cap(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    poison = ids[0]
    emu.configure({"model_latency": {"claude-sonnet-4-6": {"ms": 2000}}})
    env = tbatch_env(
        url, rurl, emu.url, **fast(TBATCH_MAX_DELIVERIES="3", TBATCH_GATEWAY_READ_TIMEOUT_S="5")
    )
    out = enqueue_cli(env, tmp, [poison], "--model", "claude-sonnet-4-6")
    crashes = 0
    while _count(url, Job.status.in_(ACTIVE_STATUSES)) and crashes < 6:
        proc: WorkerProcess = workers(env, concurrency=2)
        delivered = crashes + 1

        def running_or_done(d: int = delivered) -> bool:
            return _count(
                url, Job.status == JobStatus.RUNNING, Job.deliveries == d
            ) == 1 or not _count(url, Job.status.in_(ACTIVE_STATUSES))

        try:
            _poll(running_or_done, 30, "poison job never ran")
        finally:
            proc.kill()  # the job takes its worker down with it, every time
        crashes += 1
    workers(env, concurrency=2)
    wait_final(url, out["batch_id"], 30)
    ev = invariants.check(url, out["batch_id"], emu, env, killed_calls_allowed=True)
    assert ev.counts == {"failed": 1}
    history = json.loads(run_cli(env, "show", "--job", "1", "--json").stdout)
    assert history["job"]["error_kind"] == "poison" and history["job"]["deliveries"] == 3
    RESULTS.append(invariants.summary("poison job (crashes its worker)", ev) | {"crashes": crashes})


def test_duplicate_deliveries_call_once(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_DEFAULT_RATE_LIMIT="off"))
    out = enqueue_cli(env, tmp, ids[:30], "--model", "claude-sonnet-4-6")
    # Release every job by hand and publish each id three times, as Redis does when it
    # redelivers unacknowledged messages while the first delivery still runs.
    engine = make_engine(url, pool_size=1)
    with make_session_factory(engine).begin() as s:
        from sqlalchemy import update

        s.execute(update(Job).values(status=JobStatus.QUEUED, queued_at=func.now()))
    engine.dispose()
    from worker.celery_app import create_app
    from worker.settings import Settings

    app = create_app(Settings(broker_url=rurl))
    for job_id in range(1, 31):
        for _ in range(3):
            app.send_task("jobs.process", args=[job_id])
    workers(env, concurrency=16)
    wait_final(url, out["batch_id"], 60)
    ev = invariants.check(url, out["batch_id"], emu, env)
    assert ev.counts == {"succeeded": 30} and ev.calls_per_job == 1.0
    RESULTS.append(invariants.summary("each message delivered 3 times", ev))


def test_reprocess_by_request_id_after_garbage(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    target = ids[0]
    emu.configure({"faults": [{"kind": "unrepairable", "transcript_ids": [target]}]})
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_MAX_REASKS="1"))
    out = enqueue_cli(env, tmp, ids[:3], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=4)
    wait_final(url, out["batch_id"], 60)
    failed = json.loads(run_cli(env, "show", "--job", "1", "--json").stdout)
    assert failed["job"]["status"] == "failed" and failed["job"]["error_kind"] == "invalid_output"
    request_id = failed["attempts"][-1]["request_id"]
    assert request_id

    emu.configure({"faults": []})  # the gateway is healthy again
    proc = run_cli(env, "reprocess", "--request-id", request_id)
    assert json.loads(proc.stdout)["requeued"] == 1
    wait_final(url, out["batch_id"], 60)
    after = json.loads(run_cli(env, "show", "--request-id", request_id, "--json").stdout)
    assert after["job"]["status"] == "succeeded" and after["result"] is not None
    assert len(after["attempts"]) == len(failed["attempts"]) + 1  # history kept, one new attempt
    unknown = run_cli(env, "reprocess", "--request-id", "no-such-request", check=False)
    assert (
        unknown.returncode == 2 and "no attempt has request_id 'no-such-request'" in unknown.stderr
    )
    invariants.check(url, out["batch_id"], emu, env)


def test_cancel_stops_the_rest_and_keeps_results(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_DEFAULT_RATE_LIMIT="2/1s"))
    out = enqueue_cli(env, tmp, ids[:60], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=4)
    _poll(lambda: _count(url, Job.status == JobStatus.SUCCEEDED) >= 3, 60, "nothing succeeded")
    run_cli(env, "cancel", str(out["batch_id"]))
    wait_final(url, out["batch_id"], 30)
    ev = invariants.check(url, out["batch_id"], emu, env)
    assert ev.counts.get("cancelled", 0) >= 30 and ev.counts.get("succeeded", 0) >= 3


def _sent_after(url: str, batch_id: int, moment: datetime) -> int:
    engine = make_engine(url, pool_size=1)
    with make_session_factory(engine)() as s:
        n = s.scalar(
            select(func.count())
            .select_from(Attempt)
            .join(Job, Job.id == Attempt.job_id)
            .where(Job.batch_id == batch_id, Attempt.started_at > moment)
        )
    engine.dispose()
    return int(n or 0)


def test_cancel_while_running_calls_nothing_of_the_batch_again(world, emu, workers) -> None:
    """Running jobs at cancel time that then get a 5xx, a 429 or an invalid answer are settled
    as cancelled, never released and called again; calls in flight keep their results."""
    url, rurl, tmp, ids = world
    emu.configure(
        {
            "latency_ms": 1500,
            "latency_jitter_ms": 300,
            "faults": [
                {"kind": "5xx", "rate": 0.3},
                {"kind": "429", "rate": 0.2, "retry_after_s": 1},
                {"kind": "malformed", "rate": 0.3},
            ],
        }
    )
    env = tbatch_env(url, rurl, emu.url, **fast(TBATCH_GATEWAY_READ_TIMEOUT_S="5"))
    out = enqueue_cli(env, tmp, ids[:60], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=12)
    _poll(lambda: _count(url, Job.status == JobStatus.RUNNING) >= 8, 60, "nothing running")
    running_at_cancel = _count(url, Job.status == JobStatus.RUNNING)
    run_cli(env, "cancel", str(out["batch_id"]))
    cancelled_at = datetime.now(UTC)
    wait_final(url, out["batch_id"], 60)
    ev = invariants.check(url, out["batch_id"], emu, env, killed_calls_allowed=True)
    assert _sent_after(url, out["batch_id"], cancelled_at) == 0
    assert ev.counts.get("cancelled", 0) >= 60 - running_at_cancel - ev.counts.get("succeeded", 0)
    assert set(ev.counts) <= {"cancelled", "succeeded", "failed"}
    RESULTS.append(
        invariants.summary("cancel while 5xx/429/invalid answers are in flight", ev)
        | {"running_at_cancel": running_at_cancel, "calls_started_after_cancel": 0}
    )


def test_warm_shutdown_renews_leases_until_its_calls_finish(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"latency_ms": 6000, "latency_jitter_ms": 0})
    env = tbatch_env(
        url, rurl, emu.url, **fast(TBATCH_LEASE_S="2", TBATCH_GATEWAY_READ_TIMEOUT_S="15")
    )
    out = enqueue_cli(env, tmp, ids[:4], "--model", "claude-sonnet-4-6")
    leaving = workers(env, concurrency=4)
    _poll(lambda: _count(url, Job.status == JobStatus.RUNNING) == 4, 30, "calls not started")
    workers(env, concurrency=4)  # another machine: its reconciler requeues expired leases
    leaving.stop()  # SIGTERM: a warm shutdown waits for the calls in flight
    wait_final(url, out["batch_id"], 60)
    ev = invariants.check(url, out["batch_id"], emu, env)
    assert ev.counts == {"succeeded": 4} and ev.emulator_calls == 4  # none paid twice
    assert _count(url, Job.deliveries >= 2) == 0


def test_prefork_children_renew_their_leases(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"latency_ms": 5000, "latency_jitter_ms": 0})
    env = tbatch_env(
        url,
        rurl,
        emu.url,
        **fast(
            TBATCH_LEASE_S="2", TBATCH_GATEWAY_READ_TIMEOUT_S="15", TBATCH_WORKER_POOL="prefork"
        ),
    )
    out = enqueue_cli(env, tmp, ids[:2], "--model", "claude-sonnet-4-6")
    workers(env, concurrency=2)
    wait_final(url, out["batch_id"], 60)
    ev = invariants.check(url, out["batch_id"], emu, env)
    assert ev.counts == {"succeeded": 2} and ev.emulator_calls == 2
    assert _count(url, Job.deliveries >= 2) == 0


def test_a_dead_dispatch_child_is_restarted(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    env = tbatch_env(url, rurl, emu.url, **fast())
    worker = workers(env, concurrency=4)

    def child() -> int | None:
        found = subprocess.run(
            ["pgrep", "-f", f"worker dispatch --parent-pid {worker.proc.pid}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return int(found[0]) if found else None

    _poll(lambda: child() is not None, 30, "no dispatch child")
    first = child()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    _poll(lambda: child() not in (None, first), 30, "dispatch child not restarted")
    out = enqueue_cli(env, tmp, ids[:10], "--model", "claude-sonnet-4-6")
    wait_final(url, out["batch_id"], 60)
    assert invariants.check(url, out["batch_id"], emu, env).counts == {"succeeded": 10}
    assert "dispatch.child_exited" in worker.log_path.read_text(errors="replace")
