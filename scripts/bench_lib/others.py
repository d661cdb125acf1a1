"""The scenarios that are not about a rate limit: ``fair``, ``overhead``, ``enqueue``."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import redis

from bench_lib import measure
from bench_lib.infra import Run, progress
from bench_lib.limited import MODELS, transcripts_needed

FAIR_MODEL = MODELS[0]
NOOP_TASK = "bench.noop"
BROKER_QUEUE = "tbatch"  # celery_config's task_default_queue
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged


# -- fair ------------------------------------------------------------------------------------


def run_fair(
    jobs: int | None, concurrency: int | None, quick: bool, redis_db: int, keep: bool
) -> dict[str, Any]:
    big = jobs or (300 if quick else 1000)
    small = max(1, big // 10)
    delay_s = 5.0
    with Run("fair", redis_db, keep) as run:
        emulator = run.start_emulator(
            "--transcripts",
            str(transcripts_needed(big)),
            "--seed",
            "7",
            "--latency-ms",
            "900",
            "--latency-jitter-ms",
            "600",
            "--model-limit",
            f"{FAIR_MODEL}=60/6",
        )
        ids = run.live_transcript_ids()[:big]
        if len(ids) < big:
            raise RuntimeError(f"only {len(ids)} live transcripts for a {big}-job batch")
        env = run.env(TBATCH_RATE_LIMITS=f"{FAIR_MODEL}=60/6s")
        a = run.enqueue(env, run.write_ids(ids), FAIR_MODEL, "fair-big")
        worker = run.start_worker(env, concurrency or 64)
        time.sleep(max(0.0, worker.started_at + delay_s - time.time()))
        progress(f"fair: worker up for {delay_s:g}s; enqueueing the {small}-job batch")
        b = run.enqueue(env, run.write_ids(ids[:small]), FAIR_MODEL, "fair-small")
        run.wait_all_final(a["jobs"] + b["jobs"], 120 + 2.0 * big * 6 / 60)
        cpu_s = run.stop_workers()
        ta = measure.job_times(run.pg_url, [a["batch_id"]])
        tb = measure.job_times(run.pg_url, [b["batch_id"]])
        stats = emulator.stats()["models"].get(FAIR_MODEL, {})
    a_s = (ta.finished_last - ta.created_first).total_seconds()
    b_s = (tb.finished_last - tb.created_first).total_seconds()
    b_before_a = tb.finished_last < ta.finished_last
    return {
        "scenario": "fair",
        "jobs": a["jobs"] + b["jobs"],
        "batches": {"big": a["jobs"], "small": b["jobs"]},
        "limit": "60/6s",
        "small_enqueued_after_worker_start_s": delay_s,
        "big_duration_s": round(a_s, 2),
        "small_duration_s": round(b_s, 2),
        "small_over_big": round(b_s / a_s, 4),
        "small_finished_before_big_by_s": round(
            (ta.finished_last - tb.finished_last).total_seconds(), 2
        ),
        "http_429": stats.get("http_429", 0),
        "max_in_any_window": stats.get("max_in_any_window"),
        "gateway_calls_per_job": round(stats.get("requests", 0) / (a["jobs"] + b["jobs"]), 4),
        "failed_jobs": ta.failed + tb.failed,
        "failed_by_kind": dict(Counter(ta.failed_by_kind) + Counter(tb.failed_by_kind)),
        "worker_cpu_ms_per_job": round(cpu_s * 1000 / (a["jobs"] + b["jobs"]), 2),
        "enqueue_to_result_s": {
            "big": measure.percentiles_s(ta.latencies_s),
            "small": measure.percentiles_s(tb.latencies_s),
        },
        "targets": {"small_finishes_first": True, "small_over_big_max": 0.5},
        "pass": {"small_finishes_first": b_before_a, "small_over_big_max": b_s < 0.5 * a_s},
    }


# -- overhead --------------------------------------------------------------------------------


def run_overhead(
    jobs: int | None, concurrency: int | None, quick: bool, redis_db: int, keep: bool
) -> dict[str, Any]:
    n = jobs or (600 if quick else 3000)
    threads = concurrency or 64
    with Run("overhead", redis_db, keep) as run:
        emulator = run.start_emulator(
            "--transcripts",
            str(transcripts_needed(n)),
            "--seed",
            "7",
            "--no-rate-limit",
            "--latency-ms",
            "0",
        )
        ids = run.live_transcript_ids()[:n]
        if len(ids) < n:
            raise RuntimeError(f"only {len(ids)} live transcripts for {n} jobs")
        env = run.env(TBATCH_DEFAULT_RATE_LIMIT="off", TBATCH_RATE_LIMITS="")
        noop = _noop_baseline(run, env, n, threads)
        progress(f"overhead: no-op baseline {noop['per_s_consuming']} tasks/s; now tbatch")

        out = run.enqueue(env, run.write_ids(ids), MODELS[0], "overhead")
        pg_before_s = measure.postgres_cpu_s()
        worker = run.start_worker(env, threads)
        run.wait_all_final(out["jobs"], 300)
        pg_cpu_s = measure.postgres_cpu_s() - pg_before_s  # before the pool's backends exit
        cpu_s = run.stop_workers()
        cpu_cores = run.worker_cpu_cores()
        times = measure.job_times(run.pg_url)
        calls = emulator.stats()["requests"]
    assert times.queued_first is not None
    consuming_s = (times.finished_last - times.queued_first).total_seconds()
    from_start_s = times.finished_last.timestamp() - worker.started_at
    tbatch_rate = out["jobs"] / consuming_s
    ratio = tbatch_rate / noop["per_s_consuming"]
    return {
        "scenario": "overhead",
        "jobs": out["jobs"],
        "concurrency": threads,
        "method": "publish/enqueue everything with the worker stopped, start one worker, time "
        "first consumption -> last completion (noop: broker list + kombu 'unacked' hash empty; "
        "tbatch: min(queued_at) -> max(finished_at))",
        "elapsed_s": round(consuming_s, 3),
        "throughput_rps": round(tbatch_rate, 1),
        "noop_tasks_per_s": noop["per_s_consuming"],
        "tbatch_jobs_per_s": round(tbatch_rate, 1),
        "ratio": round(ratio, 4),
        "incl_worker_start": {
            "noop_tasks_per_s": noop["per_s_from_start"],
            "tbatch_jobs_per_s": round(out["jobs"] / from_start_s, 1),
            "ratio": round(out["jobs"] / from_start_s / noop["per_s_from_start"], 4),
        },
        "http_429": 0,
        "failed_jobs": times.failed,
        "failed_by_kind": times.failed_by_kind,
        "gateway_calls_per_job": round(calls / out["jobs"], 4),
        "worker_cpu_ms_per_job": round(cpu_s * 1000 / out["jobs"], 3),
        "noop_worker_cpu_ms_per_task": noop["cpu_ms_per_task"],
        "postgres_cpu_ms_per_job": round(pg_cpu_s * 1000 / out["jobs"], 3),
        "worker_cpu_cores": cpu_cores,
        "enqueue_to_result_s": measure.percentiles_s(times.latencies_s),
        "targets": {"ratio_min": 0.4, "worker_cpu_ms_per_job_max": 8.0},
        "pass": {
            "ratio_min": ratio >= 0.4,
            "worker_cpu_ms_per_job_max": cpu_s * 1000 / out["jobs"] <= 8.0,
        },
    }


def _noop_baseline(run: Run, env: dict[str, str], n: int, threads: int) -> dict[str, Any]:
    from worker.celery_app import create_app
    from worker.settings import Settings

    app = create_app(Settings(broker_url=run.redis_url, redis_url=run.redis_url))
    with app.producer_or_acquire() as producer:
        for i in range(n):
            app.send_task(NOOP_TASK, args=[i], producer=producer)
    client = redis.Redis.from_url(run.redis_url)
    if client.llen(BROKER_QUEUE) != n:
        raise RuntimeError(f"expected {n} no-op messages, found {client.llen(BROKER_QUEUE)}")
    worker = run.start_worker(env, threads)
    first_s, done_s = _poll_drain(client, n, worker, timeout_s=300)
    run.stop_workers()
    cpu_s = worker.cpu_s_at_stop or 0.0
    run.workers.clear()
    app.close()
    return {
        "per_s_consuming": round(n / (done_s - first_s), 1),
        "per_s_from_start": round(n / (done_s - worker.started_at), 1),
        "cpu_ms_per_task": round(cpu_s * 1000 / n, 3),
    }


def _poll_drain(client: Any, n: int, worker: Any, timeout_s: float) -> tuple[float, float]:
    """(first time the queue shrank, first of two consecutive polls finding it drained)."""
    deadline = time.monotonic() + timeout_s
    first_s: float | None = None
    drained_at: float | None = None
    while time.monotonic() < deadline:
        pipe = client.pipeline(transaction=False)
        pipe.llen(BROKER_QUEUE)
        pipe.hlen(UNACKED_KEY)
        queued, unacked = pipe.execute()
        now = time.time()
        if first_s is None and queued < n:
            first_s = now
        if queued == 0 and unacked == 0:
            if drained_at is not None:
                assert first_s is not None
                return first_s, drained_at
            drained_at = now
        else:
            drained_at = None
        if not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.tail()}")
        time.sleep(0.005)
    raise TimeoutError(f"no-op tasks not drained after {timeout_s:.0f}s")


# -- enqueue ---------------------------------------------------------------------------------


def run_enqueue(jobs: int | None, quick: bool, redis_db: int, keep: bool) -> dict[str, Any]:
    big = jobs or (20_000 if quick else 100_000)
    small = max(1, big // 10)
    with Run("enqueue", redis_db, keep) as run:
        run.start_emulator("--transcripts", "10", "--seed", "7")  # the model catalog only
        env = run.env()
        runs: dict[int, dict[str, Any]] = {}
        for n in (10, small, big):
            ids = [str(uuid.uuid4()) for _ in range(n)]
            path = run.write_ids(ids)
            progress(f"enqueue: {n} jobs")
            runs[n] = run.enqueue(env, path, MODELS[0], f"enqueue-{n}", timeout_s=600)
            stored = measure.status_counts(run.pg_url, [runs[n]["batch_id"]])
            if runs[n]["new"] != n or stored.get("pending") != n:
                raise RuntimeError(f"enqueue of {n}: {runs[n]} stored {stored}")
    startup_s = runs[10]["wall_s"]
    rate = big / runs[big]["wall_s"]
    rss_big, rss_small = runs[big]["maxrss_mb"], runs[small]["maxrss_mb"]
    return {
        "scenario": "enqueue",
        "jobs": big,
        "elapsed_s": round(runs[big]["wall_s"], 3),
        "jobs_per_s": round(rate, 1),
        "jobs_per_s_excl_startup": round(big / (runs[big]["wall_s"] - startup_s), 1),
        "cli_startup_s": round(startup_s, 3),
        "cpu_s": round(runs[big]["cpu_s"], 3),
        "peak_rss_mb": round(rss_big, 1),
        f"peak_rss_mb_{small}": round(rss_small, 1),
        f"jobs_per_s_{small}": round(small / runs[small]["wall_s"], 1),
        "peak_rss_mb_10": round(runs[10]["maxrss_mb"], 1),
        "rss_growth_mb_per_10k_jobs": round((rss_big - rss_small) / ((big - small) / 10_000), 2),
        "method": "`tbatch enqueue --json` child on a fresh database, timed wall-clock; peak RSS "
        "from wait4() of that child (its ru_maxrss)",
        "targets": {"jobs_per_s_min": 5000, "peak_rss_ratio_max": 1.2},
        "pass": {
            "jobs_per_s_min": rate >= 5000,
            "peak_rss_ratio_max": rss_big <= 1.2 * rss_small,
        },
    }
