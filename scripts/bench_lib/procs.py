"""One-shot CLI children of a benchmark run, measured: wall time, peak RSS and CPU.

Long-running workers are harness.procs.WorkerProcess (shared with the tests and the demo).
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO


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
