"""Throughput of the gateway emulator: small completions, latency 0, no rate limits.

Starts the emulator as a subprocess, drives it from ``--procs`` client processes, each running
``--concurrency`` async httpx clients for ``--duration-s`` seconds, and prints ONE JSON line:
``{"rps", "p50_ms", "p95_ms", "p99_ms", "requests", "errors", "server_cpu_ms_per_req", ...}``.
On a small machine the httpx client usually saturates first; ``server_capacity_rps`` (1 / server
CPU per request) says what the emulator alone could sustain on one core.

    .venv/bin/python scripts/bench_emulator.py --duration-s 10 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
from typing import Any

import httpx

from emulator.routes.server import EmulatorProcess

BODY = {
    "model": "gpt-5-mini",
    "messages": [{"role": "user", "content": "Reply with one short sentence about billing."}],
    "max_tokens": 50,
}
SCHEMA_BODY = {
    **BODY,
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "brief",
            "schema": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "sentiment": {"enum": ["positive", "neutral", "negative"]},
                },
                "required": ["summary", "sentiment"],
            },
        },
    },
}


async def _worker(
    url: str, body: dict[str, Any], stop_at: float, lat: list[float], errors: list[int]
) -> None:
    """One client with one keep-alive connection: a shared pool serialises on its lock."""
    payload = json.dumps(body).encode()
    headers = {"Authorization": "bench-key", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/v1/chat/completions", content=payload, headers=headers
                )
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - started)
            if not ok:
                errors.append(1)


async def _drive(url: str, concurrency: int, duration_s: float, schema: bool) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[int] = []
    body = SCHEMA_BODY if schema else BODY
    stop_at = time.perf_counter() + duration_s
    await asyncio.gather(*(_worker(url, body, stop_at, lat, errors) for _ in range(concurrency)))
    return {"lat": lat, "errors": len(errors)}


def _client_proc(url: str, concurrency: int, duration_s: float, schema: bool, out: Any) -> None:
    out.put(asyncio.run(_drive(url, concurrency, duration_s, schema)))


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` (Linux /proc), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64, help="per client process")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--schema", action="store_true", help="ask for a small JSON schema")
    args = parser.parse_args()
    with EmulatorProcess("--no-rate-limit", "--latency-ms", "0", "--seed", "1") as emulator:
        queue: Any = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(
                target=_client_proc,
                args=(emulator.url, args.concurrency, args.duration_s, args.schema, queue),
            )
            for _ in range(args.procs)
        ]
        cpu_before = _cpu_s(emulator.pid)
        started = time.perf_counter()
        for proc in procs:
            proc.start()
        results = [queue.get() for _ in procs]
        elapsed = time.perf_counter() - started
        for proc in procs:
            proc.join()
        cpu_after = _cpu_s(emulator.pid)
        seen = emulator.stats()["requests"]
    lat = sorted(x for r in results for x in r["lat"])
    server_cpu_ms = None
    if cpu_before is not None and cpu_after is not None and lat:
        server_cpu_ms = (cpu_after - cpu_before) * 1000 / len(lat)
    quantiles = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    print(
        json.dumps(
            {
                "rps": round(len(lat) / elapsed, 1),
                "p50_ms": round(quantiles[49] * 1000, 2),
                "p95_ms": round(quantiles[94] * 1000, 2),
                "p99_ms": round(quantiles[98] * 1000, 2),
                "requests": len(lat),
                "server_saw": seen,
                "errors": sum(r["errors"] for r in results),
                # what one server core could do if the client were free
                "server_cpu_ms_per_req": round(server_cpu_ms, 3) if server_cpu_ms else None,
                "server_capacity_rps": round(1000 / server_cpu_ms) if server_cpu_ms else None,
                "concurrency": args.concurrency * args.procs,
                "procs": args.procs,
                "duration_s": round(elapsed, 2),
                "schema": args.schema,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
