"""``scale``: what a dispatcher costs Postgres while a million jobs wait (issue 9's first part).

Pending jobs are written with one ``INSERT ... SELECT generate_series`` (the enqueue path has
its own scenario), then, at ``small`` and at ``big`` pending jobs plus a 1,000-job second batch:
the dispatcher's refresh query (the loose-index-scan lanes, and the old ``GROUP BY`` as the
baseline measured in the same run), and the Postgres CPU used while one ``tbatch dispatch``
runs idle (nothing is released: every lane's model is paused) for ``idle_s``, and
``tbatch status B --json`` on the big batch (median of 3). Also timed: what status imports
(its floor) and ``tbatch --help``. Last, the big batch is
marked succeeded with a result each (a ~300-byte JSON object) and ``tbatch results B`` exports
it to a file: rows per second and the export's peak RSS.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

import psycopg
from sqlalchemy import func, select

from bench_lib import measure
from bench_lib.infra import Run, progress
from models.base import utcnow
from models.db import make_engine, make_session_factory
from models.jobs import Job
from models.vocabulary import JobStatus
from worker.services.dispatch import _due, _pending_lanes

MODEL = "claude-sonnet-4-6"
SMALL_BATCH = 1000


def _fill(pg_url: str, batch: int, count: int, first: int = 1) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO batches (id, name, priority, cancelled, created_at) "
            "VALUES (%s, %s, 0, false, now()) ON CONFLICT (id) DO NOTHING",
            (batch, f"scale-{batch}"),
        )
        conn.execute(
            "INSERT INTO jobs (batch_id, transcript_id, template_id, schema_id, model, fallbacks,"
            " region, model_region_global, priority, status, deliveries, transport_retries,"
            " reasks, created_at) SELECT %s, 'tr-' || %s || '-' || g, 1, 1, %s, '[]', 'us',"
            " false, 0, 'pending', 0, 0, 0, now() FROM generate_series(%s::bigint, %s::bigint) g",
            (batch, batch, MODEL, first, first + count - 1),
        )
        conn.execute("ANALYZE jobs")


def _query_ms(database_url: str) -> dict[str, float]:
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)

    def group_by(session: Any, now: Any) -> Any:
        return session.execute(
            select(Job.model, Job.region, Job.batch_id, func.max(Job.priority), func.count())
            .where(Job.status == JobStatus.PENDING, _due(now))
            .group_by(Job.model, Job.region, Job.batch_id)
        ).all()

    out: dict[str, float] = {}
    for label, query in (("lanes", _pending_lanes), ("group_by_baseline", group_by)):
        times = []
        for _ in range(11):
            with sessions.begin() as session:
                started = time.perf_counter()
                query(session, utcnow())
                times.append((time.perf_counter() - started) * 1000)
        out[f"{label}_ms"] = round(statistics.median(times[1:]), 2)
    engine.dispose()
    return out


def _idle_dispatcher_cores(run: Run, env: dict[str, str], idle_s: float) -> float:
    child = subprocess.Popen([sys.executable, "-m", "worker", "dispatch"], env=env)
    try:
        time.sleep(3)  # start-up and the first refreshes
        before, started = measure.postgres_cpu_s(), time.monotonic()
        time.sleep(idle_s)
        used = measure.postgres_cpu_s() - before
        return round(used / (time.monotonic() - started), 4)
    finally:
        child.terminate()
        child.wait(10)


RESULT = (
    '{"summary": "The caller asked about a late delivery; the agent promised a refund within '
    'five working days and apologised for the delay.", "sentiment": "neutral", "topics": '
    '["delivery", "refund", "apology"], "action_items": ["issue refund"], "escalate": false}'
)


def _succeed_all(pg_url: str, batch: int) -> None:
    """Every job of ``batch`` succeeded with one stored result (all share one attempt row)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        attempt_id = conn.execute(
            "INSERT INTO attempts (job_id, purpose, model_requested, model_answered,"
            " fallback_used, region, outcome, started_at, finished_at) SELECT min(id), 'call',"
            " %s, %s, false, 'us', 'ok', now(), now() FROM jobs WHERE batch_id = %s RETURNING id",
            (MODEL, MODEL, batch),
        ).fetchone()
        assert attempt_id is not None
        conn.execute(
            "INSERT INTO results (job_id, attempt_id, data, raw_text, repaired, model,"
            " request_id, created_at) SELECT id, %s, %s::json, %s, false, %s,"
            " 'req-' || id, now() FROM jobs WHERE batch_id = %s",
            (attempt_id[0], RESULT, RESULT, MODEL, batch),
        )
        conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE batch_id = %s",
            (batch,),
        )
        conn.execute("ANALYZE")


def _export(env: dict[str, str], batch: int, path: str, rows: int) -> dict[str, float]:
    """``tbatch results`` into a file: rows/s and the process's peak RSS (``wait4``)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "worker", "results", str(batch), "-o", path],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"tbatch results failed: {child.stderr.read() if child.stderr else ''}")
    with open(path, "rb") as f:
        written = sum(1 for _ in f)
    if written != rows:
        raise RuntimeError(f"tbatch results wrote {written} lines, expected {rows}")
    return {
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
    }


def _timed(env: dict[str, str], *args: str, repeat: int = 1) -> float:
    """Wall time of ``python -m worker ARGS`` (``-c CODE`` for a bare import), median."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        command = list(args) if args[0] == "-c" else ["-m", "worker", *args]
        subprocess.run([sys.executable, *command], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


# What `tbatch status` imports before it reads anything: its floor on this machine.
STATUS_IMPORTS = "import worker.cli.jobs, worker.cli.common, psycopg"


def run_scale(jobs: int | None, quick: bool, redis_db: int, keep: bool) -> dict[str, Any]:
    big = jobs or (100_000 if quick else 1_000_000)
    small = 10_000
    idle_s = 10.0 if quick else 20.0
    with Run("scale", redis_db, keep) as run:
        run.start_emulator("--transcripts", "10", "--seed", "7")
        # Every lane paused: the dispatcher refreshes as always but releases nothing.
        env = run.env(TBATCH_RATE_LIMITS=f"{MODEL}=1/3600s", TBATCH_LOG_LEVEL="ERROR")
        with psycopg.connect(run.pg_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO templates (id, sha256, body, created_at) VALUES "
                "(1, 't', '\"[user]\\n{{ transcript }}\"', now())"
            )
            conn.execute(
                "INSERT INTO schemas (id, sha256, body, created_at) VALUES (1, 's', '{}', now())"
            )
        levels: dict[str, dict[str, float]] = {}
        _fill(run.pg_url, 2, SMALL_BATCH)
        for label, count, already in (("small", small, 0), ("big", big, small)):
            progress(f"scale: {count} pending jobs in batch 1 (+{SMALL_BATCH} in batch 2)")
            _fill(run.pg_url, 1, count - already, first=already + 1)
            levels[label] = _query_ms(run.database_url) | {
                "postgres_cores_idle_dispatcher": _idle_dispatcher_cores(run, env, idle_s),
                "status_json_s": _timed(env, "status", "1", "--json", repeat=3),
            }
        status_s = levels["big"]["status_json_s"]
        imports_s = _timed(env, "-c", STATUS_IMPORTS, repeat=3)
        help_s = _timed(env, "--help")
        progress(f"scale: {big} results, then tbatch results")
        _succeed_all(run.pg_url, 1)
        export = _export(env, 1, str(run.tmp / "results.jsonl"), big)
    ratio = levels["big"]["lanes_ms"] / max(levels["small"]["lanes_ms"], 1e-6)
    pg_cores = levels["big"]["postgres_cores_idle_dispatcher"]
    return {
        "scenario": "scale",
        "pending": {"small": small + SMALL_BATCH, "big": big + SMALL_BATCH},
        "at_small": levels["small"],
        "at_big": levels["big"],
        "lanes_ms_big_over_small": round(ratio, 2),
        "status_json_s_at_big": status_s,
        "status_json_big_over_small": round(status_s / levels["small"]["status_json_s"], 2),
        "status_imports_s": imports_s,
        "cli_help_s": help_s,
        "results_export": export,
        "method": "jobs written with INSERT ... generate_series; refresh query median of 10 "
        "after one warm-up; Postgres CPU = utime+stime of every postgres process over "
        f"{idle_s:g} s while one `tbatch dispatch` runs with every lane paused",
        "targets": {
            "lanes_ratio_max": 1.5,
            "postgres_cores_max": 0.05,
            "status_s_max": 1.0,
            "cli_help_s_max": 0.5,
            "results_rows_per_s_min": 20_000,
        },
        "pass": {
            "lanes_ratio_max": ratio <= 1.5,
            "postgres_cores_max": pg_cores <= 0.05,
            "status_s_max": status_s <= 1.0,
            "cli_help_s_max": help_s <= 0.5,
            "results_rows_per_s_min": export["rows_per_s"] >= 20_000,
        },
    }
