"""One benchmark run's services: a fresh Postgres database, a claimed Redis db, the emulator,
worker processes, a scratch folder. ``Run`` is a context manager and undoes everything on exit,
whether the scenario finished, failed, timed out or was interrupted.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from bench_lib import measure
from bench_lib.procs import run_measured
from emulator.routes.server import EmulatorProcess
from harness.claim import REDIS_BASE, ClaimRefused, Database, claimed_redis_db, migrated_database
from harness.env import child_env, service_settings
from harness.procs import WorkerProcess
from harness.wait import until

API_KEY = "bench-key"
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "worker" / "assets" / "call_analytics.j2"
SCHEMA = ROOT / "worker" / "assets" / "call_analytics.schema.json"
# Settings given with ``bench.py --set``: passed to every worker and CLI child.
EXTRA_ENV: dict[str, str] = {}


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _run_ahead(pid: int) -> None:
    """Let the emulator run before anything of tbatch's whenever it has work.

    The emulator stands for a gateway on machines of its own. On this shared 2-core box, at
    nice -10 it still waited 20-100 ms for a core while the busy loop and the worker held both,
    and stamped arrivals that much late. A real-time policy (it uses about a tenth of a core;
    the kernel's real-time throttling caps it regardless) makes it run as soon as a request
    arrives; its threads started later inherit the policy. Without the privilege: nice -10.
    """
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(10))
    except (PermissionError, FileNotFoundError, OSError):
        with contextlib.suppress(PermissionError, ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, pid, -10)


class Run(contextlib.ExitStack):
    """Everything one scenario uses; ``keep`` leaves the database and scratch folder behind."""

    def __init__(self, scenario: str, redis_db: int, keep: bool = False) -> None:
        super().__init__()
        self.scenario = scenario
        self.keep = keep
        self.redis_db = redis_db
        self.redis_url = f"{REDIS_BASE}/{redis_db}"
        self.database = Database.unique("tbatch_bench")
        self.db_name = self.database.name
        self.database_url = self.database.url
        self.pg_url = self.database.dsn
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tbatch-bench-{scenario}-"))
        self.workers: list[WorkerProcess] = []
        self.emulator: EmulatorProcess | None = None

    def __enter__(self) -> Run:
        super().__enter__()
        try:
            self.callback(self._remove_tmp)
            self._claim_redis()
            self._create_database()
        except BaseException:
            self.close()
            raise
        return self

    # -- services ---------------------------------------------------------------------------

    def _claim_redis(self) -> None:
        claim = claimed_redis_db(f"bench-{os.getpid()}", [self.redis_db], keep=self.keep)
        try:
            self.enter_context(claim)
        except ClaimRefused as exc:
            raise RuntimeError(f"{exc}; use --redis-db") from exc

    def _create_database(self) -> None:
        # Drops retried: the shared Postgres may be restarting (other suites run fault tests).
        self.enter_context(migrated_database(self.database, keep=self.keep, drop_attempts=10))

    def _remove_tmp(self) -> None:
        if self.keep:
            progress(f"kept {self.tmp} and database {self.db_name}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start_emulator(self, *args: str) -> EmulatorProcess:
        emulator = EmulatorProcess("--api-key", API_KEY, "--host", "127.0.0.1", *args)
        self.enter_context(emulator)
        self.emulator = emulator
        if emulator.pid is not None:
            _run_ahead(emulator.pid)
        return emulator

    def env(self, **extra: str) -> dict[str, str]:
        """The worker/CLI environment: this run's Postgres, Redis and emulator."""
        assert self.emulator is not None, "start the emulator first"
        services = service_settings(
            database_url=self.database_url,
            broker_url=self.redis_url,
            redis_url=self.redis_url,
            gateway_url=self.emulator.url,
            api_key=API_KEY,
        )
        return child_env(
            {
                "PYTHONPATH": str(ROOT),
                **services,
                "TBATCH_LOG_LEVEL": "WARNING",
                **extra,
                **EXTRA_ENV,
            }
        )

    def start_busy_loop(self) -> subprocess.Popen[bytes]:
        """One process spinning on a core until the run ends (CPU contention, as on a busy
        machine); ended by the run's cleanup whatever happens."""
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])

        def end() -> None:
            busy.kill()
            busy.wait(10)

        self.callback(end)
        return busy

    def start_worker(self, env: dict[str, str], concurrency: int) -> WorkerProcess:
        log_path = self.tmp / f"worker-{len(self.workers)}.log"
        worker = WorkerProcess(env, log_path, concurrency)
        self.workers.append(worker)
        self.callback(worker.stop)
        return worker

    def wait_consuming(self, count: int = 1, timeout_s: float = 60.0) -> None:
        """Until ``count`` Celery consumers block on this db's queue (BRPOP): workers are up."""
        client = redis.Redis.from_url(self.redis_url)

        def consuming() -> bool:
            self._raise_if_a_worker_is_gone("exited")
            waiting = [
                c
                for c in client.client_list()
                if c.get("db") == str(self.redis_db) and c.get("cmd") == "brpop"
            ]
            return len(waiting) >= count

        until(consuming, timeout_s, f"workers not consuming after {timeout_s:.0f}s", every_s=0.1)

    def _raise_if_a_worker_is_gone(self, how: str) -> None:
        for worker in self.workers:
            if not worker.alive():
                raise RuntimeError(f"worker {worker.pid} {how}:\n{worker.tail()}")

    def stop_workers(self) -> float:
        """Stop every worker; returns their CPU seconds (read just before each stop)."""
        total = 0.0
        for worker in self.workers:
            worker.stop()
            total += worker.cpu_s_at_stop or 0.0
        return total

    def wait_all_final(self, jobs: int, timeout_s: float) -> None:
        """Poll Postgres until ``jobs`` jobs are final; workers must stay alive meanwhile."""
        noted_at = time.monotonic()

        def counts() -> dict[str, int]:
            nonlocal noted_at
            counts = measure.status_counts(self.pg_url)
            for worker in self.workers:
                worker.sample()
            self._raise_if_a_worker_is_gone("died")
            if time.monotonic() - noted_at > 15:
                progress(f"{self.scenario}: {counts}")
                noted_at = time.monotonic()
            return counts

        def not_final(counts: dict[str, int]) -> str:
            return f"{jobs} jobs not final in time: {counts}\n{self.worker_tails()}"

        until(counts, timeout_s, not_final, every_s=0.5, done=lambda c: measure.all_final(c, jobs))

    def worker_cpu_cores(self) -> float:
        """Mean CPU use of the stopped workers, in cores (1.0 = one core busy all along: a
        threads-pool worker is GIL-bound near there)."""
        loads = [(w.cpu_s_at_stop or 0.0) / w.lifetime_s for w in self.workers if w.lifetime_s]
        return round(sum(loads) / len(loads), 3) if loads else 0.0

    def worker_tails(self) -> str:
        return "\n".join(f"--- worker {w.pid}\n{w.tail()}" for w in self.workers)

    # -- jobs -------------------------------------------------------------------------------

    def live_transcript_ids(self) -> list[str]:
        assert self.emulator is not None
        return [
            t["id"]
            for t in self.emulator.transcripts()
            if t["status"] == "completed" and not t["deleted"]
        ]

    def write_ids(self, ids: list[str]) -> Path:
        path = self.tmp / f"ids-{uuid.uuid4().hex[:8]}.txt"
        path.write_text("\n".join(ids) + "\n")
        return path

    def enqueue(
        self, env: dict[str, str], ids_file: Path, model: str, name: str, timeout_s: float = 300
    ) -> dict[str, Any]:
        """`tbatch enqueue ... --json` as a child process; adds its wall time, peak RSS, CPU."""
        args = [
            sys.executable,
            "-m",
            "worker",
            "enqueue",
            "--transcripts",
            str(ids_file),
            "--template",
            str(TEMPLATE),
            "--schema",
            str(SCHEMA),
            "--model",
            model,
            "--name",
            name,
            "--json",
        ]
        child = run_measured(args, env, timeout_s)
        if child.returncode != 0:
            raise RuntimeError(f"tbatch enqueue failed ({child.returncode}):\n{child.stderr}")
        out: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
        out.update(wall_s=child.wall_s, maxrss_mb=child.maxrss_mb, cpu_s=child.cpu_s)
        return out


def source_version() -> str:
    """The commit the run measured, ``+dirty`` if worker/, models/ or migrations/ differ."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "worker", "models", "migrations")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
