"""The results table of docs/benchmarks.md from `scripts/bench.py` output (JSON lines on stdin):
one markdown row per scenario, the numbers copied, never retyped.

    .venv/bin/python scripts/bench.py all > bench.jsonl
    .venv/bin/python scripts/bench_table.py < bench.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"  # the docs write "0 <times> 429"
LIMITED = ("limit", "small-limit", "loaded", "slow-model", "scale-out")


def _per_model(values: dict[str, Any]) -> str:
    return " / ".join(str(v) for k, v in values.items() if k != "overall")


def _limited(r: dict[str, Any]) -> str:
    send = r["send_to_arrival_ms"]
    arrivals = max(r["max_in_any_window"].values())
    sends = max(r["gate_max_in_any_window"].values())
    return (
        f"utilization {_per_model(r['utilization'])}; {r['http_429']} {TIMES} 429; most "
        f"arrivals in any window (emulator) {arrivals}, most sends (gate log) {sends}; "
        f"send→arrival p99 {send['p99']} ms, max {send['max']} ms; deferred "
        f"{sum(r['deferred_sends'].values())}; worker CPU {r['worker_cpu_ms_per_job']} ms/job"
    )


def _makespan(r: dict[str, Any]) -> str:
    model = next(iter(r["makespan_s"]))
    return (
        f"{r['gateway_calls']} calls, first to last arrival {r['makespan_s'][model]} s against a "
        f"ceiling of {r['makespan_ceiling_s'][model]:g} s (ratio {r['makespan_ratio'][model]}); "
        f"{r['http_429']} {TIMES} 429; most in any window {max(r['max_in_any_window'].values())}"
    )


def _misconfigured(r: dict[str, Any]) -> str:
    return (
        f"{r['failed_jobs']} failed; {r['http_429']} {TIMES} 429; utilization of the real "
        f"limit after learning {_per_model(r['utilization_after_learned'])}"
    )


def _fair(r: dict[str, Any]) -> str:
    return (
        f"small batch {r['small_duration_s']} s, big {r['big_duration_s']} s (ratio "
        f"{r['small_over_big']}); {r['http_429']} {TIMES} 429"
    )


def _overhead(r: dict[str, Any]) -> str:
    return (
        f"{r['tbatch_jobs_per_s']} jobs/s vs {r['noop_tasks_per_s']} no-op tasks/s: ratio "
        f"{r['ratio']}; worker CPU {r['worker_cpu_ms_per_job']} ms/job (no-op "
        f"{r['noop_worker_cpu_ms_per_task']}), Postgres {r['postgres_cpu_ms_per_job']} ms/job"
    )


def _enqueue(r: dict[str, Any]) -> str:
    return f"{r['jobs']:,} jobs, {r['jobs_per_s']:,} jobs/s, peak RSS {r['peak_rss_mb']} MB"


def _scale(r: dict[str, Any]) -> str:
    small, big, export = r["at_small"], r["at_big"], r["results_export"]
    return (
        f"dispatcher refresh {small['lanes_ms']} ms at {r['pending']['small'] // 1000}k, "
        f"{big['lanes_ms']} ms at 1M (old query {big['group_by_baseline_ms']} ms); idle "
        f"dispatcher {big['postgres_cores_idle_dispatcher']} Postgres cores; `status --json` "
        f"{big['status_json_s']} s at 1M, {small['status_json_s']} s at "
        f"{r['pending']['small'] // 1000}k (imports alone {r['status_imports_s']} s); `--help` "
        f"{r['cli_help_s']} s; `results` over 1M: {export['rows_per_s']:,} rows/s, peak RSS "
        f"{export['peak_rss_mb']} MB"
    )


def _estimate(r: dict[str, Any]) -> str:
    rows = r["by_model"].values()

    def span(key: str) -> str:
        values = [row[key] for row in rows if row[key] is not None]
        return f"{min(values)}-{max(values)}" if values else "none"

    return (
        f"time estimated/actual {span('time_ratio')}, cost {span('cost_ratio')} (every "
        f"transcript measured); default sample: time {span('sampled_time_ratio')}, cost "
        f"{span('sampled_cost_ratio')} (stated size margin {span('sampled_size_margin')}); "
        f"kept at enqueue: time {span('kept_time_ratio')}, cost {span('kept_cost_ratio')}; "
        f"{sum(row['http_429'] for row in rows)} {TIMES} 429"
    )


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    **dict.fromkeys(LIMITED, _limited),
    "makespan": _makespan,
    "misconfigured": _misconfigured,
    "fair": _fair,
    "overhead": _overhead,
    "enqueue": _enqueue,
    "scale": _scale,
    "estimate": _estimate,
}


def row(r: dict[str, Any]) -> str:
    name = r["scenario"]
    if "error" in r:
        return f"| `{name}` | error: {r['error'][:200]} | error |"
    missed = [k for k, ok in r["pass"].items() if not ok]
    verdict = "pass" if not missed else "miss: " + ", ".join(missed)
    return f"| `{name}` | {FORMATS[name](r)}; load {r['load_avg_1m']} | {verdict} |"


def main() -> int:
    results = [json.loads(line) for line in sys.stdin if line.startswith("{")]
    print("| scenario | result | targets |\n|---|---|---|")
    for r in results:
        print(row(r))
    commits = sorted({r.get("commit", "?") for r in results})
    print(f"\ncommit(s): {', '.join(commits)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
