"""Shared rate limits with real worker processes: together they never exceed a model's limit,
a 429 pauses the model in every process, and a lower real limit is learned from the headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from emulator.routes.server import EmulatorProcess
from tests.fixtures.pipeline import E2E_KEY, enqueue_cli, run_cli, tbatch_env, wait_final

pytestmark = pytest.mark.slow
MODEL = "claude-sonnet-4-6"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    args = [
        "--transcripts",
        "200",
        "--seed",
        "9",
        "--api-key",
        E2E_KEY,
        "--latency-ms",
        "150",
        "--latency-jitter-ms",
        "100",
        "--rate-limit",
        "1000",
        "--window-s",
        "60",
    ]
    with EmulatorProcess(*args) as proc:
        yield proc


def test_two_worker_processes_never_exceed_the_limit(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"model_limits": {MODEL: "10/2"}})
    env = tbatch_env(url, rurl, emu.url, TBATCH_RATE_LIMITS=f"{MODEL}=10/2s")
    out = enqueue_cli(env, tmp, ids[:45], "--model", MODEL)
    workers(env, concurrency=8)
    workers(env, concurrency=8)  # a second machine: its own dispatcher, the same Redis buckets
    counts = wait_final(url, out["batch_id"], 90)
    stats = emu.stats()["models"][MODEL]
    assert counts == {"succeeded": 45}
    assert stats["http_429"] == 0 and stats["max_in_any_window"] <= 10, stats


def test_a_429_pauses_the_model_in_every_process(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    victim = ids[5]
    emu.configure(
        {"faults": [{"kind": "429", "transcript_ids": [victim], "times": 1, "retry_after_s": 3}]}
    )
    env = tbatch_env(url, rurl, emu.url, TBATCH_RATE_LIMITS=f"{MODEL}=20/1s")
    out = enqueue_cli(env, tmp, ids[:40], "--model", MODEL)
    workers(env, concurrency=8)
    workers(env, concurrency=8)
    assert wait_final(url, out["batch_id"], 90) == {"succeeded": 40}
    log = [e for e in emu.requests() if e["model"] == MODEL]
    hit = next(e for e in log if e["status"] == 429)
    job = json.loads(run_cli(env, "show", "--request-id", hit["request_id"], "--json").stdout)
    assert job["job"]["status"] == "succeeded" and job["job"]["transport_retries"] == 0
    # The pause starts when a worker has the 429 in hand (its attempt's finish time) and lasts
    # Retry-After = 3 s. Jobs released just before may still arrive within the pickup margin.
    seen = next(a for a in job["attempts"] if a["request_id"] == hit["request_id"])
    paused_from = datetime.fromisoformat(str(seen["finished_at"])).timestamp() + 0.5
    paused = [e for e in log if paused_from < e["ts"] < paused_from + 2.0]
    assert paused == [], f"{len(paused)} calls during the pause"
    assert any(e["ts"] >= paused_from + 2.0 for e in log)  # and work resumed afterwards


def test_a_lower_real_limit_is_learned_from_the_headers(world, emu, workers) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"model_limits": {MODEL: "5/2"}})
    env = tbatch_env(url, rurl, emu.url, TBATCH_RATE_LIMITS=f"{MODEL}=20/2s")
    out = enqueue_cli(env, tmp, ids[:25], "--model", MODEL)
    workers(env, concurrency=8)
    assert wait_final(url, out["batch_id"], 120) == {"succeeded": 25}
    stats = emu.stats()["models"][MODEL]
    assert stats["http_429"] <= 3, stats
    status = json.loads(run_cli(env, "status", str(out["batch_id"]), "--json").stdout)
    assert status["models"][0]["learned_limit"] == 5
