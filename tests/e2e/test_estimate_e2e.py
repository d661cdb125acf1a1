"""`tbatch estimate` against the run it predicted, with real worker processes, Postgres, Redis
and the emulator over sockets (issue 12): at the emulator's limit, the estimate's wall-clock
time and cost are within 10% of the run's; a limit learned from the gateway's answers gives the
estimate's second time (``wall_clock_learned_s``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.routes.server import EmulatorProcess
from harness.wait import until
from tests.fixtures.pipeline import E2E_KEY, enqueue_cli, run_cli, tbatch_env, wait_final
from worker.cli.demo import asset

pytestmark = pytest.mark.slow
MODEL = "claude-sonnet-4-6"
LIMIT, WINDOW_S = 20, 4  # the run is limit-bound: 81 calls are 4 windows past the first


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    args = ["--transcripts", "200", "--seed", "12", "--api-key", E2E_KEY]
    args += ["--latency-ms", "150", "--latency-jitter-ms", "100", "--rate-limit", "1000"]
    with EmulatorProcess(*args, "--window-s", "60") as proc:
        yield proc


def _status(env: dict[str, str], batch_id: int) -> dict[str, Any]:
    return json.loads(run_cli(env, "status", str(batch_id), "--json").stdout)  # type: ignore[no-any-return]


def _estimate(env: dict[str, str], tmp: Path, ids: list[str]) -> dict[str, Any]:
    ids_file = tmp / "estimate-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    proc = run_cli(
        env,
        "estimate",
        "--transcripts",
        str(ids_file),
        "--template",
        str(asset("call_analytics.j2")),
        "--schema",
        str(asset("call_analytics.schema.json")),
        "--model",
        MODEL,
        "--sample",
        str(len(ids)),
        "--json",
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _window_empty(env: dict[str, str], batch_id: int) -> None:
    """Until the model's window holds no send (the warm-up's sends have left it): the run
    then starts with a whole window, as the estimate assumes."""
    until(
        lambda: _status(env, batch_id)["models"],
        60,
        lambda rows: f"window never emptied: {rows}",
        every_s=0.2,
        done=lambda rows: all(not row.get("in_window") for row in rows),
    )


def test_an_estimate_matches_the_run_within_ten_percent_on_time_and_cost(
    world, emu, workers
) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"model_limits": {MODEL: f"{LIMIT}/{WINDOW_S}"}})
    env = tbatch_env(url, rurl, emu.url, TBATCH_RATE_LIMITS=f"{MODEL}={LIMIT}/{WINDOW_S}s")
    workers(env, concurrency=16)
    # A first small batch: the estimate learns the model's latency and answer size from it.
    warm = enqueue_cli(env, tmp, ids[:8], "--model", MODEL)["batch_id"]
    assert wait_final(url, warm, 60) == {"succeeded": 8}
    _window_empty(env, warm)

    target = ids[8:89]
    predicted = _estimate(env, tmp, target)
    (lane,) = predicted["by_model"]
    assert lane["latency_source"] == "p90 of recent calls"
    assert lane["output_source"] == "learned from earlier answers"
    assert predicted["transcripts"]["measured"] == len(target) == 81
    batch = enqueue_cli(env, tmp, target, "--model", MODEL)["batch_id"]
    assert wait_final(url, batch, 120) == {"succeeded": 81}
    status = _status(env, batch)
    actual = status["estimate"]["actual"]
    assert emu.stats()["models"][MODEL]["http_429"] == 0
    # 81 calls at 20 per 4 s: four windows after the first, plus the last call's latency.
    assert predicted["wall_clock_s"] == pytest.approx(actual["wall_clock_s"], rel=0.10)
    assert predicted["cost_usd"] == pytest.approx(actual["cost_usd"], rel=0.10)
    # The estimate enqueue kept (20 transcripts sampled) is compared by status as well.
    kept = status["estimate"]["estimated"]
    assert kept["wall_clock_s"] == pytest.approx(actual["wall_clock_s"], rel=0.10)
    assert kept["cost_usd"] == pytest.approx(actual["cost_usd"], rel=0.10)


def test_a_limit_learned_from_the_gateway_gives_the_estimates_second_time(
    world, emu, workers
) -> None:
    url, rurl, tmp, ids = world
    emu.configure({"model_limits": {MODEL: "5/2"}})  # tbatch believes 20/2s
    env = tbatch_env(url, rurl, emu.url, TBATCH_RATE_LIMITS=f"{MODEL}=20/2s")
    workers(env, concurrency=8)
    out = enqueue_cli(env, tmp, ids[:25], "--model", MODEL)
    assert wait_final(url, out["batch_id"], 120) == {"succeeded": 25}
    predicted = _estimate(env, tmp, ids[:101])
    (lane,) = predicted["by_model"]
    assert (lane["limit"], lane["learned_limit"]) == ("20/2s", "5/2s")
    # 101 calls: 5 windows past the first at 20 per window, 20 at 5.
    latency_s, margin_s = lane["latency_s"], 0.05
    assert predicted["wall_clock_s"] == round(5 * (2 + margin_s) + 2 * latency_s, 1)
    assert predicted["wall_clock_learned_s"] == round(20 * (2 + margin_s) + 2 * latency_s, 1)
