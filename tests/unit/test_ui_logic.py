"""The pure parts of the operator's view: the ETA arithmetic, the token rule, the JSON times,
and that the charts escape what they show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.errors import ConfigError
from worker.services.batch_eta import Lane, calls_per_job, eta_s, humanise_s, lanes_from
from worker.ui.auth import required_token, token_matches
from worker.ui.charts import minute_chart, progress_bar
from worker.ui.jsonout import dumps


def test_the_slowest_lane_sets_the_eta() -> None:
    lanes = lanes_from(
        {("a", "us"): 120, ("b", "us"): 30, ("c", "eu"): 0},
        {("a", "us"): (60, 60.0), ("b", "us"): (10, 60.0), ("c", "eu"): None},
    )
    assert [lane.calls_per_s for lane in lanes] == [1.0, 10 / 60, None]
    assert eta_s(lanes) == 180.0  # b: 30 jobs at 10/min; a: 120 jobs at 60/min
    assert eta_s(lanes, calls_per_job=1.5) == 270.0  # retries and re-asks cost calls too


def test_a_lane_without_a_limit_runs_at_the_observed_rate_or_is_unknown() -> None:
    free = [Lane("a", "us", remaining=50, limit=None, window_s=None)]
    assert eta_s(free, observed_jobs_per_s=5.0) == 10.0
    assert eta_s(free) is None
    assert eta_s([Lane("a", "us", 0, None, None)]) == 0.0


def test_calls_per_job_is_at_least_one() -> None:
    assert calls_per_job(0, 0) == 1.0
    assert calls_per_job(5, 10) == 1.0
    assert calls_per_job(15, 10) == 1.5


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "\N{EN DASH}"),
        (42.4, "42s"),
        (425, "7m 05s"),
        (3 * 3600 + 720, "3h 12m"),
        (52 * 3600, "2d 4h"),
    ],
)
def test_durations_for_people(seconds: float | None, text: str) -> None:
    assert humanise_s(seconds) == text


def test_loopback_needs_no_token_anything_else_does() -> None:
    assert required_token("127.0.0.1", None) is None
    assert required_token("127.0.0.1", "  ") is None
    with pytest.raises(ConfigError, match="set TBATCH_UI_TOKEN"):
        required_token("0.0.0.0", None)
    with pytest.raises(ConfigError, match="shorter than 16"):
        required_token("0.0.0.0", "short")
    assert required_token("0.0.0.0", " a-long-enough-token-123 ") == "a-long-enough-token-123"


def test_tokens_compare_whatever_is_given() -> None:
    assert token_matches("a-long-enough-token-123", "a-long-enough-token-123")
    for given in (None, "", "a-long-enough-token-12", "a-long-enough-token-1234", "ünïcode"):
        assert not token_matches(given, "a-long-enough-token-123")


def test_json_times_are_iso_8601() -> None:
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert dumps({"at": at}) == '{"at": "2026-12-07T09:30:00+00:00"}'


def test_charts_escape_their_text_and_carry_their_numbers() -> None:
    minutes = [
        {
            "minute": datetime(2026, 12, 7, 9, m, tzinfo=UTC),
            "calls": c,
            "answered": a,
            "http_429": r,
        }
        for m, c, a, r in ((0, 60, 58, 0), (1, 61, 50, 3))
    ]
    svg = str(minute_chart("<b>m</b>", minutes, 60.0))
    assert "<b>" not in svg and "&lt;b&gt;m&lt;/b&gt;" in svg
    assert 'data-metric="429.&lt;b&gt;m&lt;/b&gt;.1" data-count="3"' in svg
    assert 'data-metric="limit.&lt;b&gt;m&lt;/b&gt;" data-count="60.0"' in svg
    bar = str(progress_bar({"succeeded": 3, "failed": 1, "pending": 0}, metric="p"))
    assert 'data-metric="p.succeeded" data-count="3"' in bar and "p.pending" not in bar
