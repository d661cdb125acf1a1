"""The arithmetic behind `tbatch status --watch` and `tbatch wait`: ETA, next call, outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.services.progress import (
    batch_outcome,
    eta_s,
    lane_floor_s,
    next_call_in_s,
    with_progress,
)

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _status(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "batch_id": 7,
        "total": 100,
        "done": 40,
        "final": False,
        "counts": {"pending": 60, "succeeded": 40, "failed": 0, "cancelled": 0},
        "failures": {},
        "throughput_jobs_per_s": None,
        "remaining_by_lane": [{"model": "m", "region": "us", "jobs": 60}],
        "paused_reason": None,
        "cancelled": False,
        "created_at": NOW - timedelta(seconds=90),
        "first_created_at": NOW - timedelta(seconds=90),
        "last_finished_at": NOW - timedelta(seconds=5),
    }
    return base | over


def _lane(**over: Any) -> dict[str, Any]:
    base = {"model": "m", "region": "us", "limit": 30, "window_s": 60.0}
    return base | {"learned_limit": None, "paused_for_s": 0.0, "in_window": 0, "reserved": 0} | over


def test_a_lanes_floor_is_its_remaining_calls_at_its_limit() -> None:
    assert lane_floor_s(60, _lane()) == 120.0
    assert lane_floor_s(60, _lane(learned_limit=15)) == 240.0  # a lower learned limit counts
    assert lane_floor_s(60, _lane(learned_limit=60)) == 120.0  # a higher one does not
    assert lane_floor_s(60, _lane(paused_for_s=10.0)) == 130.0
    assert lane_floor_s(60, _lane(limit=None, window_s=None)) is None
    assert lane_floor_s(0, _lane()) == 0.0


def test_the_eta_is_the_slowest_lane_or_the_observed_rate_whichever_is_later() -> None:
    lanes = [_lane(), _lane(model="fast", limit=600)]
    two = _status(
        remaining_by_lane=[
            {"model": "m", "region": "us", "jobs": 30},
            {"model": "fast", "region": "us", "jobs": 30},
        ]
    )
    assert eta_s(two, lanes) == 60.0  # m: 30 calls at 30/60 s; fast: 3 s; side by side
    assert eta_s(_status(throughput_jobs_per_s=0.25), [_lane()]) == 240.0  # slower than 120
    assert eta_s(_status(throughput_jobs_per_s=10.0), [_lane()]) == 120.0  # the limit bounds


def test_no_eta_when_nothing_says() -> None:
    unlimited = _lane(limit=None, window_s=None)
    assert eta_s(_status(), [unlimited]) is None
    assert eta_s(_status(throughput_jobs_per_s=2.0), [unlimited]) == 30.0
    assert eta_s(_status(paused_reason="paused after 5 ..."), [_lane()]) is None
    assert eta_s(_status(done=100, total=100), [_lane()]) == 0.0


@pytest.mark.parametrize(
    ("lane", "expected"),
    [
        (_lane(in_window=3), 0.0),
        (_lane(in_window=29, reserved=1), None),  # full: when the oldest leaves is unknown
        (_lane(in_window=20, learned_limit=20), None),
        (_lane(paused_for_s=12.5, in_window=0), 12.5),
        (_lane(limit=None, window_s=None, in_window=None), 0.0),
        (_lane(in_window=None), None),
    ],
)
def test_next_call(lane: dict[str, Any], expected: float | None) -> None:
    assert next_call_in_s(lane) == expected


def test_outcomes() -> None:
    assert batch_outcome(_status()) is None
    final = {"total": 10, "done": 10}
    assert batch_outcome(_status(**final, counts={"succeeded": 10})) == "succeeded"
    assert batch_outcome(_status(**final, counts={"succeeded": 9, "failed": 1})) == "failed"
    assert batch_outcome(_status(**final, counts={"succeeded": 9, "cancelled": 1})) == "cancelled"
    assert batch_outcome(_status(cancelled=True)) == "cancelled"  # not final yet: ends at once
    assert batch_outcome(_status(paused_reason="paused after ...")) == "paused"
    # All final and paused (every job was in the failed canary): the failure is the news.
    paused_final = _status(**final, counts={"failed": 10}, paused_reason="x")
    assert batch_outcome(paused_final) == "failed"


def test_with_progress_adds_elapsed_eta_and_each_models_row() -> None:
    out = with_progress(_status(), [_lane(in_window=30)], NOW)
    assert (out["elapsed_s"], out["eta_s"], out["at"]) == (90.0, 120.0, NOW)
    assert out["models"][0]["remaining"] == 60 and out["models"][0]["next_call_in_s"] is None
    done = with_progress(_status(final=True, done=100, remaining_by_lane=[]), [_lane()], NOW)
    assert done["elapsed_s"] == 85.0  # to the last finished job, not to now
