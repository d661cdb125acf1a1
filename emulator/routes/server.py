"""Running the emulator: in this process (a thread) or as a child process.

``run(config)`` serves in the foreground and prints ``tbatch emulator listening on URL`` once
the socket is listening (port 0 picks a free port, and the line tells the parent which).
``EmulatorProcess`` starts ``python -m emulator ... --port 0`` and reads that line;
``serve_in_thread`` is the in-process variant for tests that want no subprocess.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from emulator.config import EmulatorConfig
from emulator.routes.app import ARRIVED_AT, create_app

READY_PREFIX = "tbatch emulator listening on "


class _StampingProtocol(HttpToolsProtocol):
    """Stamps each request with the moment its first bytes were parsed.

    A gateway's limiter counts arrivals at its edge, before any application work. The route
    handler runs only once the event loop reaches its task, which in a burst of sixty requests
    is after the other handlers' first steps (tens of milliseconds on a busy two-core machine);
    stamping there would count a request later than it arrived.
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["state"][ARRIVED_AT] = time.time()


class _Server(uvicorn.Server):
    """A uvicorn server that reports its real address once listening."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_ready(f"http://{host}:{port}")


def _uvicorn_config(config: EmulatorConfig) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        loop="uvloop",
        http=_StampingProtocol,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=1,
    )


def run(config: EmulatorConfig) -> None:
    """Serve in the foreground until interrupted.

    Everything built at start-up (the imported stack, the transcript store) is moved out of the
    garbage collector's reach: a full collection walks every tracked object, and over tens of
    thousands it held the event loop for 30-120 ms on a busy two-core machine, long enough to
    stamp the requests arriving meanwhile that much late.
    """

    def announce(url: str) -> None:
        print(f"{READY_PREFIX}{url}", flush=True)

    server = _Server(_uvicorn_config(config), announce)
    gc.collect()
    gc.freeze()
    server.run()


@contextlib.contextmanager
def serve_in_thread(config: EmulatorConfig, ready_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve ``config`` from a background thread; yields the base URL."""
    urls: queue.Queue[str] = queue.Queue()
    server = _Server(_uvicorn_config(config), urls.put)
    thread = threading.Thread(target=server.run, name="tbatch-emulator", daemon=True)
    thread.start()
    try:
        yield urls.get(timeout=ready_timeout_s)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class EmulatorProcess:
    """The emulator as a child process, with helpers for its control endpoints."""

    def __init__(self, *args: str, ready_timeout_s: float = 30.0) -> None:
        self.args = [sys.executable, "-m", "emulator", *args, "--port", "0"]
        self.ready_timeout_s = ready_timeout_s
        self.url = ""
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._client: httpx.Client | None = None

    def start(self) -> EmulatorProcess:
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            "w+", prefix="tbatch-emulator-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self._proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1
        )
        self.url = self._wait_ready(self._proc)
        self._client = httpx.Client(base_url=self.url, timeout=10.0)
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _wait_ready(self, proc: subprocess.Popen[str]) -> str:
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def pump() -> None:  # keeps draining stdout so the child never blocks on a full pipe
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="emulator-stdout", daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
        self.stop()
        raise RuntimeError(f"emulator did not start; log: {self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text()[-2000:]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._client is None:
            raise RuntimeError("emulator is not running")
        response = self._client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_emulator/stats")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_emulator/requests")["requests"]
        return result

    def transcripts(self) -> list[dict[str, Any]]:
        """Metadata of every transcript (id, status, deleted, created, scenario, minutes)."""
        result: list[dict[str, Any]] = self._call("GET", "/_emulator/transcripts")["transcripts"]
        return result

    def reset(self, config: bool = False) -> None:
        """Clear log, stats, windows and fault counts (and the runtime config if ``config``)."""
        self._call("POST", "/_emulator/reset", {"config": config})

    def configure(self, update: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_emulator/config", update)
        return result

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmulatorProcess:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
