"""End-to-end benchmark of tbatch: the gateway emulator plus the real pipeline (Postgres, Redis,
`tbatch worker` processes), one scenario at a time, one JSON line per scenario on stdout.

    .venv/bin/python scripts/bench.py limit
    .venv/bin/python scripts/bench.py all --quick          # smaller runs, a smoke test
    .venv/bin/python scripts/bench.py fair --jobs 500 --keep

Scenarios: limit, small-limit, loaded, makespan, slow-model, misconfigured, fair, overhead,
scale-out, enqueue, scale, estimate (see
docs/benchmarks.md for what each measures and its targets). Every line carries ``targets`` and
``pass`` (one boolean per target). Each run uses a fresh Postgres database and a flushed Redis
db (``--redis-db``), talks only to 127.0.0.1, and cleans up on success, failure or Ctrl-C.
Progress goes to stderr. Exit status: 0 if every target passed, 1 if one missed, 2 on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

# `python scripts/bench.py` puts scripts/ on sys.path, which is where bench_lib lives.
from bench_lib import estimating, limited, others, scale
from bench_lib.infra import EXTRA_ENV, progress, source_version

Runner = Callable[[argparse.Namespace], dict[str, Any]]


def _limited(name: str) -> Runner:
    def run(args: argparse.Namespace) -> dict[str, Any]:
        spec = limited.spec_for(name, args.jobs, args.concurrency, args.quick)
        return limited.run_limited(spec, args.redis_db, args.keep)

    return run


SCENARIOS: dict[str, Runner] = {
    "limit": _limited("limit"),
    "small-limit": _limited("small-limit"),
    "loaded": _limited("loaded"),
    "makespan": _limited("makespan"),
    "slow-model": _limited("slow-model"),
    "misconfigured": _limited("misconfigured"),
    "fair": lambda a: others.run_fair(a.jobs, a.concurrency, a.quick, a.redis_db, a.keep),
    "overhead": lambda a: others.run_overhead(a.jobs, a.concurrency, a.quick, a.redis_db, a.keep),
    "scale-out": _limited("scale-out"),
    "enqueue": lambda a: others.run_enqueue(a.jobs, a.quick, a.redis_db, a.keep),
    "scale": lambda a: scale.run_scale(a.jobs, a.quick, a.redis_db, a.keep),
    "estimate": lambda a: estimating.run_estimate(a.jobs, a.quick, a.redis_db, a.keep),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--jobs", type=int, default=None, help="override the scenario's size")
    parser.add_argument("--concurrency", type=int, default=None, help="task threads per worker")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis db index (flushed)")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    parser.add_argument("--quick", action="store_true", help="scaled-down runs (smoke test)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TBATCH_X=V",
        help="a setting for the workers (repeatable), e.g. TBATCH_PERMIT_LEAD_S=0.75",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every ExitStack cleanup runs.
    raise KeyboardInterrupt(f"signal {signum}")


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    progress(f"{name}: starting{' (quick)' if args.quick else ''}")
    version = source_version()
    started = time.monotonic()
    try:
        result = SCENARIOS[name](args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one scenario's failure must not hide the others' results
        traceback.print_exc(file=sys.stderr)
        result = {
            "scenario": name,
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "pass": {"completed": False},
        }
    result["quick"] = args.quick
    result["commit"] = version
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    if EXTRA_ENV:
        result["settings"] = dict(EXTRA_ENV)
    print(json.dumps(result), flush=True)
    progress(f"{name}: done in {result['wall_s']}s, pass={result.get('pass')}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("TBATCH_"):
            print(f"bench: --set takes TBATCH_NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        EXTRA_ENV[name] = value
    signal.signal(signal.SIGTERM, _interrupt)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        results = [run_one(name, args) for name in names]
    except KeyboardInterrupt:
        progress("interrupted; cleaned up")
        return 130
    if any("error" in r for r in results):
        return 2
    return 0 if all(all(r["pass"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
