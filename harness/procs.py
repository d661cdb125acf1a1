"""Long-running ``python -m worker ...`` children (workers, beats) with their output in a log.

Each child runs in its own session (process group), so a stop reaches every thread and child
it started (the dispatcher, prefork children), and Ctrl-C in the parent's terminal does not
reach it behind the parent's back: the parent stops it. A worker also keeps what it cost (CPU
read just before the stop, peak RSS when sampled) for the benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from harness.procstat import cpu_s, rss_mb


class TbatchProcess:
    """One ``python -m worker ARGS`` child; ``stop`` is a SIGTERM (graceful), ``kill`` a SIGKILL."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        stop_timeout_s: float = 20.0,
    ) -> None:
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group, as the kernel's OOM killer or a lost machine would."""
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a warm shutdown); SIGKILL if it is still there after ``stop_timeout_s``."""
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._log.closed:
            self._log.close()

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class WorkerProcess(TbatchProcess):
    """One ``tbatch worker`` (Celery pool plus dispatcher, reconciler, heartbeat)."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        concurrency: int = 16,
        stop_timeout_s: float = 20.0,
    ) -> None:
        self.started_at = time.time()
        super().__init__(
            ["worker", "--concurrency", str(concurrency)], env, log_path, stop_timeout_s
        )
        self.cpu_s_at_stop: float | None = None
        self.lifetime_s: float | None = None
        self.peak_rss_mb = 0.0

    def sample(self) -> None:
        """Track the peak RSS (called by a run's polling loops)."""
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb(self.pid))

    def stop(self) -> None:
        """As ``TbatchProcess.stop``, after reading the CPU seconds the worker used."""
        if self.cpu_s_at_stop is None:
            self.cpu_s_at_stop = cpu_s(self.pid)
            self.lifetime_s = time.time() - self.started_at
        super().stop()
