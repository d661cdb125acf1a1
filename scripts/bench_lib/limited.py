"""The rate-limited scenarios: ``limit``, ``small-limit``, ``loaded``, ``slow-model``,
``misconfigured``, ``scale-out``, ``makespan``.

All are one shape: one to three models, each with a per-model limit at the emulator (the
gateway's real limit) and in ``TBATCH_RATE_LIMITS`` (what tbatch believes), one batch per model
enqueued while the workers are already consuming, and the run judged from the emulator's log
(arrivals per sliding window, 429s) and from the send gate's own log (``attempts.sent_at``:
permits per window, and the send-to-arrival spread the gate's margin must cover).
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis

from bench_lib import measure
from bench_lib.infra import Run, progress

MODELS = ("claude-sonnet-4-6", "gemini-2.5-flash", "gpt-5")
LIVE_FRACTION = 0.85  # the emulator marks some transcripts deleted or not completed


@dataclass(frozen=True)
class LimitedSpec:
    name: str
    jobs: int
    gateway_limit: tuple[int, float]  # (requests, window_s) the emulator enforces
    tbatch_limit: tuple[int, float]  # what TBATCH_RATE_LIMITS says
    latency_ms: tuple[float, float]  # (mean, +-jitter), uniform
    concurrency: int
    workers: int = 1
    timeout_s: float = 600.0
    learned: bool = False  # judge utilization after the last 429 (misconfigured)
    models: tuple[str, ...] = MODELS
    window_kind: str = "fixed"  # the emulator's window: fixed (as observed live) or sliding
    busy_loops: int = 0  # processes spinning on a core for the whole run
    utilization_min: float = 0.975
    makespan: bool = False  # judge first-to-last arrival against the window's ceiling


def transcripts_needed(per_batch: int) -> int:
    return math.ceil(per_batch / LIVE_FRACTION) + 50


def _emulator_args(spec: LimitedSpec, per_model: int) -> list[str]:
    g_requests, g_window_s = spec.gateway_limit
    args = [
        "--transcripts",
        str(transcripts_needed(per_model)),
        "--seed",
        "7",
        "--latency-ms",
        str(spec.latency_ms[0]),
        "--latency-jitter-ms",
        str(spec.latency_ms[1]),
        "--window-kind",
        spec.window_kind,
    ]
    for model in spec.models:
        args += ["--model-limit", f"{model}={g_requests}/{g_window_s:g}"]
    return args


def run_limited(spec: LimitedSpec, redis_db: int, keep: bool) -> dict[str, Any]:
    models = spec.models
    per_model = spec.jobs // len(models)
    t_requests, t_window_s = spec.tbatch_limit
    with Run(spec.name, redis_db, keep) as run:
        emulator = run.start_emulator(*_emulator_args(spec, per_model))
        for _ in range(spec.busy_loops):
            run.start_busy_loop()
        ids = run.live_transcript_ids()[:per_model]
        if len(ids) < per_model:
            raise RuntimeError(f"only {len(ids)} live transcripts for {per_model} jobs per model")
        ids_file = run.write_ids(ids)
        env = run.env(
            TBATCH_RATE_LIMITS=",".join(f"{m}={t_requests}/{t_window_s:g}s" for m in models),
            TBATCH_WORKER_CONCURRENCY=str(spec.concurrency),
        )
        for _ in range(spec.workers):
            run.start_worker(env, spec.concurrency)
        run.wait_consuming(spec.workers)
        progress(f"{spec.name}: {spec.workers} worker(s) up; enqueueing {per_model} x {models}")

        started = time.time()

        # The first enqueue stores the template and schema; the others then only find them.
        # (Concurrent first enqueues race in enqueue._stored_id: UniqueViolation, see docs.)
        def enqueue(model: str) -> dict[str, Any]:
            return run.enqueue(env, ids_file, model, f"{spec.name}-{model}")

        outs = [enqueue(models[0])]
        if len(models) > 1:
            with ThreadPoolExecutor(len(models) - 1) as pool:
                outs += pool.map(enqueue, models[1:])
        jobs = sum(o["jobs"] for o in outs)
        run.wait_all_final(jobs, spec.timeout_s - (time.time() - started))
        cpu_s = run.stop_workers()
        times = measure.job_times(run.pg_url)
        log = emulator.requests()
        if keep:  # the raw material, for a look at what a run did
            (run.tmp / "emulator-requests.json").write_text(json.dumps(log))
        traffic = measure.traffic(log, emulator.stats())
        gate = measure.gate_log(run.pg_url)
        result = _report(spec, jobs, started, cpu_s, times, traffic)
        result["gate_max_in_any_window"] = {
            m: measure.max_in_window(gate.sends.get(m, []), t.window_s) for m, t in traffic.items()
        }
        result["send_to_arrival_ms"] = measure.send_to_arrival_ms(log, gate)
        result["deferred_sends"] = _gate_counters(run.redis_url, models, "deferred")
        result["stale_permits"] = _gate_counters(run.redis_url, models, "stale")
        result["worker_cpu_cores"] = run.worker_cpu_cores()
        if spec.makespan:
            result |= _makespan(spec, traffic)
        result["targets"], result["pass"] = _targets(spec, result)
        return result


def _gate_counters(redis_url: str, models: tuple[str, ...], field: str) -> dict[str, int]:
    """A counter the send gate keeps per lane in Redis (``gate.lua``)."""
    client = redis.Redis.from_url(redis_url)
    return {m: int(client.hget(f"tbatch:rl:{{us:{m}}}:gate", field) or 0) for m in models}


def _makespan(spec: LimitedSpec, traffic: dict[str, measure.ModelTraffic]) -> dict[str, Any]:
    """First to last accepted arrival per model, against what the gateway's window allows:
    a window's worth at once, then a window's worth each window (a sliding window)."""
    limit, window_s = spec.gateway_limit
    out: dict[str, Any] = {"makespan_s": {}, "makespan_ceiling_s": {}, "makespan_ratio": {}}
    for model, t in traffic.items():
        calls = len(t.accepted_ts)
        ceiling_s = (math.ceil(calls / limit) - 1) * window_s
        span_s = max(t.accepted_ts) - min(t.accepted_ts)
        out["makespan_s"][model] = round(span_s, 2)
        out["makespan_ceiling_s"][model] = round(ceiling_s, 2)
        out["makespan_ratio"][model] = round(ceiling_s / span_s, 4) if span_s else None
    return out


def _report(
    spec: LimitedSpec,
    jobs: int,
    started: float,
    cpu_s: float,
    times: measure.JobTimes,
    traffic: dict[str, measure.ModelTraffic],
) -> dict[str, Any]:
    elapsed_s = times.finished_last.timestamp() - started
    util = measure.utilization(traffic, learned=False)
    calls = sum(len(t.accepted_ts) + len(t.rejected_ts) for t in traffic.values())
    http_429 = {m: len(t.rejected_ts) for m, t in traffic.items()}
    result: dict[str, Any] = {
        "scenario": spec.name,
        "jobs": jobs,
        "workers": spec.workers,
        "concurrency": spec.concurrency,
        "latency_ms": f"{spec.latency_ms[0] - spec.latency_ms[1]:g}-"
        f"{spec.latency_ms[0] + spec.latency_ms[1]:g}",
        "gateway_limit": f"{spec.gateway_limit[0]}/{spec.gateway_limit[1]:g}s",
        "tbatch_limit": f"{spec.tbatch_limit[0]}/{spec.tbatch_limit[1]:g}s",
        "elapsed_s": round(elapsed_s, 2),
        "jobs_per_s": round(jobs / elapsed_s, 3),
        "throughput_rps": util["achieved_rps"],
        "limit_rps": util["allowed_rps"],
        "utilization": {
            "overall": util["overall"],
            **{m: row["utilization"] for m, row in util["per_model"].items()},
        },
        "steady_s": {m: row["steady_s"] for m, row in util["per_model"].items()},
        "arrival_gap_ms": {m: t.arrival_gaps_ms() for m, t in traffic.items()},
        "window_excess_ms": {m: t.window_excess_ms() for m, t in traffic.items()},
        "http_429": sum(http_429.values()),
        "http_429_per_model": http_429,
        "http_429_fraction": round(sum(http_429.values()) / calls, 4) if calls else 0.0,
        "max_in_any_window": {m: t.max_in_any_window for m, t in traffic.items()},
        "window_limit": {m: t.limit for m, t in traffic.items()},
        "failed_jobs": times.failed,
        "failed_by_kind": times.failed_by_kind,
        "gateway_calls": calls,
        "gateway_calls_per_job": round(calls / jobs, 4),
        "worker_cpu_ms_per_job": round(cpu_s * 1000 / jobs, 2),
        "worker_cpu_s": round(cpu_s, 2),
        "enqueue_to_result_s": measure.percentiles_s(times.latencies_s),
    }
    if spec.learned:
        learned = measure.utilization(traffic, learned=True)
        result["learned_after_s"] = {
            m: row["learned_after_s"] for m, row in learned["per_model"].items()
        }
        result["utilization_after_learned"] = {
            "overall": learned["overall"],
            **{m: row["utilization"] for m, row in learned["per_model"].items()},
        }
    return result


def _targets(spec: LimitedSpec, r: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    models = list(r["max_in_any_window"])
    targets: dict[str, Any]
    if spec.learned:
        after = r["utilization_after_learned"]
        targets = {
            "failed_jobs": 0,
            "http_429_fraction_max": 0.05,
            "utilization_after_learned_min": 0.9,
        }
        passed = {
            "failed_jobs": r["failed_jobs"] == 0,
            "http_429_fraction_max": r["http_429_fraction"] <= 0.05,
            "utilization_after_learned_min": all((after[m] or 0) >= 0.9 for m in models),
        }
        return targets, passed
    targets = {"http_429": 0, "over_limit_windows": 0, "gate_over_limit": 0}
    passed = {
        "http_429": r["http_429"] == 0,
        "over_limit_windows": all(
            r["max_in_any_window"][m] <= (r["window_limit"][m] or 0) for m in models
        ),
        "gate_over_limit": all(
            r["gate_max_in_any_window"][m] <= (r["window_limit"][m] or 0) for m in models
        ),
    }
    if spec.makespan:
        targets["makespan_ratio_min"] = 0.97
        passed["makespan_ratio_min"] = all((r["makespan_ratio"][m] or 0) >= 0.97 for m in models)
    else:
        targets["utilization_min_every_model"] = spec.utilization_min
        passed["utilization_min_every_model"] = len(models) == len(spec.models) and all(
            (r["utilization"][m] or 0) >= spec.utilization_min for m in models
        )
    return targets, passed


def spec_for(name: str, jobs: int | None, concurrency: int | None, quick: bool) -> LimitedSpec:
    default_jobs = 600 if quick else 1800
    n = jobs or default_jobs
    base: dict[str, Any] = {
        "name": name,
        "jobs": n,
        "gateway_limit": (60, 6.0),
        "tbatch_limit": (60, 6.0),
        "latency_ms": (900.0, 600.0),
        "concurrency": concurrency or 64,
    }
    if name == "slow-model":
        # ~30 calls/s for 4-6 s each: about 180 calls in flight, so threads to spare.
        base |= {"latency_ms": (5000.0, 1000.0), "concurrency": concurrency or 256}
    elif name == "small-limit":
        base |= {
            "gateway_limit": (30, 6.0),
            "tbatch_limit": (30, 6.0),
            "jobs": jobs or n // 2,
            "utilization_min": 0.97,
        }
    elif name == "loaded":
        base |= {"busy_loops": 1}
    elif name == "misconfigured":
        base |= {"gateway_limit": (30, 6.0), "learned": True}
    elif name == "scale-out":
        base |= {"workers": 2}
    elif name == "makespan":
        # A sliding-window gateway at 120 per 60 s: a window's worth at once, then per window.
        base |= {
            "jobs": jobs or (240 if quick else 480),
            "gateway_limit": (120, 60.0),
            "tbatch_limit": (120, 60.0),
            "models": MODELS[:1],
            "window_kind": "sliding",
            "concurrency": concurrency or 128,
            "makespan": True,
        }
    # Time budget: the jobs at the gateway's limit, plus slack for start-up and latency.
    limit, window_s = base["gateway_limit"]
    per_model = base["jobs"] // len(base.get("models", MODELS))
    base["timeout_s"] = 120 + 2.0 * per_model * window_s / limit
    return LimitedSpec(**base)
