"""The CLI as a script sees it (issue 13), in real `python -m worker` processes against the
machine's Postgres, Redis and the emulator: a database, Redis or settings problem is one line
on stderr and exit 2 with no password in it; stdout carries only data; `--transcripts -` reads
stdin; JSON timestamps are ISO 8601."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from emulator.routes.server import EmulatorProcess
from tests.fixtures.pipeline import tbatch_env
from worker.cli.demo import asset

SECRET = "s3cret-pw"


def _tbatch(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert SECRET not in proc.stderr
    return lines[0]


def test_an_unreachable_database_is_one_line_without_its_password(
    gateway: EmulatorProcess, redis_url: str
) -> None:
    port = _dead_port()
    url = f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:{port}/tbatch"
    env = tbatch_env(url, redis_url, gateway.url)
    for args in (("status", "1"), ("wait", "1", "--timeout", "5"), ("show", "--job", "1")):
        line = _one_line_exit_2(_tbatch(env, *args))
        assert line.startswith(
            f"tbatch: error: database unreachable (postgresql+psycopg://127.0.0.1:{port}/tbatch): "
        ), line


def test_an_unreachable_redis_is_one_line_without_its_password(
    gateway: EmulatorProcess, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = tbatch_env(database_url, redis_url, gateway.url)
    batch = _enqueue(env, tmp_path)
    port = _dead_port()
    broken = {**env, "TBATCH_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{port}/0"}
    line = _one_line_exit_2(_tbatch(broken, "status", batch))
    assert (
        line.startswith("tbatch: error: rate-limit store: ConnectionError: ") and str(port) in line
    )
    # wait needs no Redis: it reads Postgres only.
    assert _tbatch(broken, "wait", batch, "--timeout", "0", "-q").returncode == 2


def test_a_bad_setting_is_one_line_naming_it(
    gateway: EmulatorProcess, database_url: str, redis_url: str
) -> None:
    env = {**tbatch_env(database_url, redis_url, gateway.url), "TBATCH_LEASE_S": "soon"}
    line = _one_line_exit_2(_tbatch(env, "status"))
    assert (
        line.startswith("tbatch: error: invalid settings: TBATCH_LEASE_S: ") and "soon" not in line
    )


def test_stdout_is_the_batch_id_alone_and_stdin_is_read(
    gateway: EmulatorProcess, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = tbatch_env(database_url, redis_url, gateway.url)
    ids = [t["id"] for t in gateway.transcripts() if t["status"] == "completed"][:3]
    proc = _tbatch(env, *_enqueue_args(), "--transcripts", "-", stdin="\n".join(ids) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().isdigit() and proc.stdout.count("\n") == 1  # B=$(tbatch enqueue)
    assert f"batch {proc.stdout.strip()}: 3 jobs (3 new)" in proc.stderr

    bad = _tbatch(env, *_enqueue_args(), "--transcripts", "-", stdin="not an id\n")
    assert bad.returncode == 2 and bad.stderr.startswith("tbatch: error: <stdin>:1: ")

    status = json.loads(_tbatch(env, "status", proc.stdout.strip(), "--json").stdout)
    for key in ("created_at", "at", "first_created_at"):
        assert datetime.fromisoformat(status[key]).utcoffset() is not None, key
        assert "T" in status[key], key


def _enqueue_args() -> tuple[str, ...]:
    return (
        "enqueue",
        "--template",
        str(asset("call_analytics.j2")),
        "--schema",
        str(asset("call_analytics.schema.json")),
        "--model",
        "claude-sonnet-4-6",
    )


def _enqueue(env: dict[str, str], tmp: Path) -> str:
    ids = tmp / "ids.txt"
    ids.write_text("5f0e7a1c-1111-4222-8333-444455556666\n")
    proc = _tbatch(env, *_enqueue_args(), "--transcripts", str(ids))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()
