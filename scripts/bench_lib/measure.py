"""What a run is judged on: job outcomes and latencies from Postgres, and request rates, 429s and
window maxima from the emulator's own log and counters (the gateway's point of view)."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import psycopg

FINAL = ("succeeded", "failed", "cancelled")


# -- Postgres --------------------------------------------------------------------------------


def status_counts(pg_url: str, batch_ids: Iterable[int] | None = None) -> dict[str, int]:
    query = "SELECT status, count(*) FROM jobs"
    params: tuple[Any, ...] = ()
    if batch_ids is not None:
        query += " WHERE batch_id = ANY(%s)"
        params = (list(batch_ids),)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(query + " GROUP BY status", params).fetchall()
    return {str(status): int(n) for status, n in rows}


def all_final(counts: dict[str, int], expected: int) -> bool:
    return sum(n for s, n in counts.items() if s in FINAL) >= expected


@dataclass
class JobTimes:
    """Per batch: first enqueue, last finish, and every job's enqueue -> result seconds."""

    created_first: datetime
    finished_last: datetime
    queued_first: datetime | None
    latencies_s: list[float]
    failed: int
    failed_by_kind: dict[str, int]
    jobs: int


def job_times(pg_url: str, batch_ids: Iterable[int] | None = None) -> JobTimes:
    query = "SELECT created_at, queued_at, finished_at, status, error_kind FROM jobs"
    params: tuple[Any, ...] = ()
    if batch_ids is not None:
        query += " WHERE batch_id = ANY(%s)"
        params = (list(batch_ids),)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(query, params).fetchall()
    done = [(c, f) for c, _q, f, s, _k in rows if f is not None and s in FINAL]
    queued = [q for _c, q, *_ in rows if q is not None]
    failed = Counter(str(k) for *_, s, k in rows if s == "failed")
    return JobTimes(
        created_first=min(c for c, *_ in rows),
        finished_last=max(f for _c, f in done),
        queued_first=min(queued) if queued else None,
        latencies_s=[(f - c).total_seconds() for c, f in done],
        failed=sum(failed.values()),
        failed_by_kind=dict(failed),
        jobs=len(rows),
    )


def percentiles_s(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        only = round(values[0], 3) if values else 0.0
        return {"p50": only, "p95": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3)}


# -- the emulator's log ----------------------------------------------------------------------


def steady_interval(times: list[float], window_s: float) -> tuple[float, float]:
    """[first + W, last - W], the part of the run past one window of ramp-up and before one of
    ramp-down; the whole run if that leaves less than one window."""
    first, last = min(times), max(times)
    if last - window_s - (first + window_s) >= window_s:
        return first + window_s, last - window_s
    return first, last


def rate_in(times: list[float], start: float, end: float) -> float:
    if end <= start:
        return 0.0
    return sum(1 for t in times if start <= t <= end) / (end - start)


@dataclass
class ModelTraffic:
    """One model's requests as the emulator logged them (arrival timestamps)."""

    model: str
    limit: int | None
    window_s: float
    accepted_ts: list[float]
    rejected_ts: list[float]  # 429s
    max_in_any_window: int

    @property
    def allowed_rps(self) -> float | None:
        return None if self.limit is None else self.limit / self.window_s

    def steady(self) -> dict[str, Any]:
        start, end = steady_interval(self.accepted_ts, self.window_s)
        achieved = self._per_window_rate(start, end)
        return {
            "achieved_rps": round(achieved, 3),
            "allowed_rps": None if self.allowed_rps is None else round(self.allowed_rps, 3),
            "utilization": None if not self.allowed_rps else round(achieved / self.allowed_rps, 4),
            "steady_s": round(end - start, 1),
        }

    def _per_window_rate(self, start: float, end: float) -> float:
        """Arrivals per second in the steady state, as the limit sees them: ``limit`` over the
        mean time that ``limit`` consecutive arrivals took (``t[i + limit] - t[i]``, every i in
        ``[start, end]``). A sliding-window gateway lets no ``limit + 1`` arrivals fall in one
        window, so this is exactly what the limit caps. Unlike a plain count of arrivals in
        ``[start, end]`` it does not swing with where a burst falls against the interval's
        edges (bursts of a window's worth, which a full-speed start repeats every window, move
        a plain count by a whole burst)."""
        times = sorted(t for t in self.accepted_ts if start <= t <= end)
        n = self.limit
        if n is None or len(times) <= n:
            return rate_in(self.accepted_ts, start, end)
        spans = [times[i + n] - times[i] for i in range(len(times) - n)]
        mean_s = sum(spans) / len(spans)
        return n / mean_s if mean_s > 0 else 0.0

    def window_excess_ms(self) -> dict[str, float]:
        """How much longer than one window each ``limit`` consecutive steady arrivals took
        (``t[i] - t[i - limit] - W``): the margin plus whatever the pipeline lost."""
        start, end = steady_interval(self.accepted_ts, self.window_s)
        times = sorted(t for t in self.accepted_ts if start <= t <= end)
        if self.limit is None or len(times) <= self.limit + 2:
            return {}
        excess = [
            1000 * (times[i] - times[i - self.limit] - self.window_s)
            for i in range(self.limit, len(times))
        ]
        cuts = statistics.quantiles(excess, n=10, method="inclusive")
        return {"p10": round(cuts[0], 1), "p50": round(cuts[4], 1), "p90": round(cuts[8], 1)}

    def arrival_gaps_ms(self) -> dict[str, float]:
        """Gaps between consecutive accepted arrivals in the steady state: a paced limit of
        N/W shows p50 near W/(N-1); a longer p50 is time the dispatcher lost."""
        start, end = steady_interval(self.accepted_ts, self.window_s)
        times = sorted(t for t in self.accepted_ts if start <= t <= end)
        gaps = [1000 * (b - a) for a, b in pairwise(times)]
        if len(gaps) < 2:
            return {}
        cuts = statistics.quantiles(gaps, n=10, method="inclusive")
        return {"p10": round(cuts[0], 1), "p50": round(cuts[4], 1), "p90": round(cuts[8], 1)}

    def after_last_429(self) -> dict[str, Any]:
        """How long 429s lasted (from the model's first request), and the utilization from the
        last 429 to one window before the end."""
        if not self.rejected_ts:
            return {"learned_after_s": 0.0, **self.steady()}
        first = min(self.accepted_ts + self.rejected_ts)
        last_429 = max(self.rejected_ts)
        end = max(self.accepted_ts) - self.window_s
        if end - last_429 < self.window_s:
            end = max(self.accepted_ts)
        achieved = rate_in(self.accepted_ts, last_429, end)
        allowed = self.allowed_rps or 0.0
        return {
            "learned_after_s": round(last_429 - first, 2),
            "achieved_rps": round(achieved, 3),
            "allowed_rps": round(allowed, 3),
            "utilization": round(achieved / allowed, 4) if allowed else None,
            "steady_s": round(end - last_429, 1),
        }


def traffic(log: list[dict[str, Any]], stats: dict[str, Any]) -> dict[str, ModelTraffic]:
    """Group the emulator's request log by model, with its configured limit and window."""
    out: dict[str, ModelTraffic] = {}
    for model, row in stats["models"].items():
        out[model] = ModelTraffic(
            model=model,
            limit=row["limit"],
            window_s=float(row["window_s"]),
            accepted_ts=[],
            rejected_ts=[],
            max_in_any_window=int(row["max_in_any_window"]),
        )
    for entry in log:
        found = out.get(entry.get("model") or "")
        if found is not None:
            (found.rejected_ts if entry["status"] == 429 else found.accepted_ts).append(entry["ts"])
    return {m: t for m, t in out.items() if t.accepted_ts}


def utilization(models: dict[str, ModelTraffic], learned: bool = False) -> dict[str, Any]:
    """Per model and overall (sum achieved / sum allowed) utilization of the gateway's limit."""
    per_model = {m: (t.after_last_429() if learned else t.steady()) for m, t in models.items()}
    achieved = sum(row["achieved_rps"] for row in per_model.values())
    allowed = sum(row["allowed_rps"] or 0.0 for row in per_model.values())
    return {
        "overall": round(achieved / allowed, 4) if allowed else None,
        "achieved_rps": round(achieved, 3),
        "allowed_rps": round(allowed, 3),
        "per_model": per_model,
    }


# -- the send gate's own log (attempts.sent_at) ----------------------------------------------


@dataclass
class GateLog:
    """Per model: the permit times the gate granted, and request_id -> permit time."""

    sends: dict[str, list[float]]
    by_request_id: dict[str, float]


def gate_log(pg_url: str) -> GateLog:
    query = (
        "SELECT model_requested, request_id, extract(epoch FROM sent_at) FROM attempts "
        "WHERE sent_at IS NOT NULL"
    )
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(query).fetchall()
    sends: dict[str, list[float]] = {}
    by_rid: dict[str, float] = {}
    for model, rid, at in rows:
        sends.setdefault(str(model), []).append(float(at))
        if rid:
            by_rid[str(rid)] = float(at)
    return GateLog({m: sorted(ts) for m, ts in sends.items()}, by_rid)


def max_in_window(times: list[float], window_s: float) -> int:
    """Most timestamps in any half-open interval [t, t + window_s)."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def send_to_arrival_ms(log: list[dict[str, Any]], gate: GateLog) -> dict[str, float]:
    """Emulator arrival minus the gate's permit, per request the two both know (same clock:
    one machine): the spread the gate's margin must cover."""
    deltas = sorted(
        1000 * (e["ts"] - gate.by_request_id[e["request_id"]])
        for e in log
        if e.get("request_id") in gate.by_request_id
    )
    if len(deltas) < 2:
        return {}
    cuts = statistics.quantiles(deltas, n=100, method="inclusive")
    return {
        "n": len(deltas),
        "min": round(deltas[0], 2),
        "p50": round(cuts[49], 2),
        "p99": round(cuts[98], 2),
        "max": round(deltas[-1], 2),
        "spread_max_minus_min": round(deltas[-1] - deltas[0], 2),
    }


def postgres_cpu_s() -> float:
    """utime + stime of every live postgres process (the server and its backends); a
    backend that exited took its share with it, so read it while the clients still run."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
