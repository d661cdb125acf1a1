"""Child processes of a benchmark run: `tbatch worker` processes and one-shot CLI children.

Workers run in their own session (process group) so a stop reaches every thread and child;
CPU time is read from ``/proc/<pid>/stat`` just before the stop.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime (+ reaped children's) of ``pid`` in seconds; 0 if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the ")" that closes the command name: state is field 3, utime field 14.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Current resident set of ``pid`` in MB (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class WorkerProcess:
    """One `python -m worker worker` (Celery threads pool + dispatcher, reconciler, heartbeat)."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int) -> None:
        self.log_path = log_path
        self.started_at = time.time()
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--concurrency", str(concurrency)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.cpu_s_at_stop: float | None = None
        self.lifetime_s: float | None = None
        self.peak_rss_mb = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sample(self) -> None:
        """Track the peak RSS (called by the run's polling loops)."""
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb(self.pid))

    def stop(self) -> None:
        if self.cpu_s_at_stop is None:
            self.cpu_s_at_stop = cpu_s(self.pid)
            self.lifetime_s = time.time() - self.started_at
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    maxrss_mb: float
    cpu_s: float


def run_measured(args: list[str], env: dict[str, str], timeout_s: float) -> ChildRun:
    """Run a child to completion; its own peak RSS and CPU come from ``wait4`` (this child
    only, unlike ``RUSAGE_CHILDREN``, which is the maximum over every child reaped so far)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=_drain, args=(stream, name, out), daemon=True)
        for name, stream in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        status, usage = _reap(proc.pid, time.monotonic() + timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall_s = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    for reader in readers:
        reader.join(10)
    return ChildRun(
        returncode=proc.returncode,
        stdout=out.get("out", b"").decode(errors="replace"),
        stderr=out.get("err", b"").decode(errors="replace"),
        wall_s=wall_s,
        maxrss_mb=usage.ru_maxrss / 1024,  # Linux reports KB
        cpu_s=usage.ru_utime + usage.ru_stime,
    )


def _drain(stream: IO[bytes] | None, name: str, out: dict[str, bytes]) -> None:
    if stream is not None:
        out[name] = stream.read()


def _reap(pid: int, deadline: float) -> tuple[int, resource.struct_rusage]:
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"child {pid} still running at its deadline")
        time.sleep(0.01)
