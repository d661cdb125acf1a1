"""The pure parts of the operator's view: the token rule, the JSON times,
and that the charts escape what they show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.errors import ConfigError
from worker.ui.auth import required_token, token_matches
from worker.ui.charts import minute_chart, progress_bar
from worker.ui.jsonout import dumps


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
