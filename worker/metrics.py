"""Prometheus metrics of workers and dispatchers.

Metric objects live in prometheus_client's default registry (defining them does no I/O);
``serve(port)`` exposes them over HTTP from the worker process when ``TBATCH_METRICS_PORT`` is
set. Workers run a threads pool, so one process holds every count (no multiprocess mode needed).
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from worker.services.attempt import AttemptRecord

CALLS = Counter(
    "tbatch_gateway_calls_total",
    "Gateway calls by model asked and result (HTTP status, or error kind without one)",
    ["model", "status"],
)
RATE_LIMITED = Counter("tbatch_gateway_429_total", "Gateway 429 answers", ["model"])
LATENCY = Histogram(
    "tbatch_gateway_latency_seconds",
    "Gateway call latency seen by the worker",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
TOKENS = Counter("tbatch_tokens_total", "Tokens used, by model answered", ["model", "direction"])
COST = Counter("tbatch_cost_usd_total", "Estimated cost in USD, by model answered", ["model"])
OUTCOMES = Counter(
    "tbatch_attempt_outcomes_total",
    "Attempts by outcome (ok, repaired, invalid, refused, truncated, transient, permanent)",
    ["model", "outcome"],
)
REPAIRS = Counter("tbatch_repairs_total", "Answers repaired client-side", ["model"])
REASKS = Counter("tbatch_reasks_total", "Re-asks sent after validation failures", ["model"])
VALIDATION_FAILURES = Counter(
    "tbatch_validation_failures_total", "Answers that failed schema validation", ["model"]
)
BUCKET_WAIT = Gauge(
    "tbatch_bucket_wait_seconds",
    "Time until the lane's next release slot opens (0 once the lane has drained)",
    ["model", "region"],
)
STALE_PERMITS = Counter(
    "tbatch_stale_permits_total",
    "Send permits not used because their answer came too late (half the send margin)",
    ["model"],
)
DEFERRED = Counter(
    "tbatch_sends_deferred_total",
    "Jobs sent back to pending unsent: no send permit within the bound",
    ["model"],
)
QUEUE_DEPTH = Gauge(
    "tbatch_queue_depth",
    "Jobs waiting for their lane's budget (pending, counted up to 2000 a batch; 0 when drained)",
    ["model", "region"],
)
FINISHED = Counter(
    "tbatch_jobs_finished_total",
    "Jobs a worker finished, by status and failure kind (the reconciler's poison and cancels "
    "are counted by `tbatch status`)",
    ["model", "status", "kind"],
)
BUILD_INFO = Gauge("tbatch_build_info", "The running tbatch (value 1)", ["version", "python"])
RELEASED = Counter("tbatch_jobs_released_total", "Jobs released to workers", ["model"])


def observe_finished(model: str, status: str, kind: str | None) -> None:
    FINISHED.labels(model, status, kind or "").inc()


def observe_attempt(rec: AttemptRecord) -> None:
    """Count the attempt in the Prometheus"""
    model = rec.job.model
    CALLS.labels(model, str(rec.http_status or rec.error_kind or "none")).inc()
    OUTCOMES.labels(model, rec.outcome).inc()
    if rec.http_status == 429:
        RATE_LIMITED.labels(model).inc()
    if rec.latency_ms is not None:
        LATENCY.labels(model).observe(rec.latency_ms / 1000)
    answered = rec.model_answered or model
    for direction in ("input", "output"):
        tokens = rec.usage.get(f"{direction}_tokens")
        if tokens:
            TOKENS.labels(answered, direction).inc(tokens)
    if rec.cost_usd:
        COST.labels(answered).inc(rec.cost_usd)
    if rec.repairs:
        REPAIRS.labels(model).inc()
    if rec.validation_errors:
        VALIDATION_FAILURES.labels(model).inc()
    if rec.purpose == "reask":
        REASKS.labels(model).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:
    BUILD_INFO.labels(_version(), platform.python_version()).set(1)
    start_http_server(port, addr=addr)


def _version() -> str:
    try:
        return importlib.metadata.version("tbatch")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"
