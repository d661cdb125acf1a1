"""Parsing ``TBATCH_RATE_LIMITS`` and choosing the limit for a model and region."""

from __future__ import annotations

import pytest

from worker.errors import ConfigError
from worker.ratelimit.config import Limit, RateLimitConfig, parse_limit, stricter
from worker.settings import Settings


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("30/60s", Limit(30, 60.0)),
        (" 120 / 60s ", Limit(120, 60.0)),
        ("60/6s", Limit(60, 6.0)),
        ("30/1m", Limit(30, 60.0)),
        ("10/500ms", Limit(10, 0.5)),
        ("5/1.5s", Limit(5, 1.5)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_parse_limit(text: str, limit: Limit | None) -> None:
    assert parse_limit(text) == limit


def test_entries_regions_and_default() -> None:
    config = RateLimitConfig.parse(
        "claude-sonnet-4-6=30/60s, gemini-2.5-flash=120/60s,eu:claude-sonnet-4-6=10/1m,gpt-5=off,",
        default="50/60s",
    )
    assert config.limit_for("claude-sonnet-4-6", "us") == Limit(30, 60.0)
    assert config.limit_for("claude-sonnet-4-6", None) == Limit(30, 60.0)
    assert config.limit_for("claude-sonnet-4-6", "eu") == Limit(10, 60.0)
    assert config.limit_for("claude-sonnet-4-6", "EU") == Limit(10, 60.0)
    assert config.limit_for("gemini-2.5-flash", "eu") == Limit(120, 60.0)
    assert config.limit_for("gpt-5", "us") is None
    assert config.limit_for("unnamed-model", "us") == Limit(50, 60.0)


def test_default_may_be_off() -> None:
    config = RateLimitConfig.parse("a=1/1s", default="off")
    assert config.limit_for("b", None) is None
    assert config.limit_for("a", None) == Limit(1, 1.0)


def test_empty_setting_gives_the_default_everywhere() -> None:
    assert RateLimitConfig.parse("", "30/60s").limit_for("any", "eu") == Limit(30, 60.0)


def test_from_settings_reads_both_fields() -> None:
    settings = Settings(rate_limits="m=5/10s", default_rate_limit="7/1m")
    config = RateLimitConfig.from_settings(settings)
    assert config.limit_for("m", None) == Limit(5, 10.0)
    assert config.limit_for("other", None) == Limit(7, 60.0)


@pytest.mark.parametrize(
    ("setting", "entry", "why"),
    [
        ("good=30/60s,bad", "'bad'", "expected model=N/<window>"),
        ("m=30", "'m=30'", "unit of ms, s or m"),
        ("m=30/60h", "'m=30/60h'", "unit of ms, s or m"),
        ("m=0/60s", "'m=0/60s'", "at least 1"),
        ("m=5/0s", "'m=5/0s'", "longer than zero"),
        ("m=-5/60s", "'m=-5/60s'", "expected 'off'"),
        ("ap:m=5/60s", "'ap:m=5/60s'", "unknown region 'ap'"),
        ("=5/60s", "'=5/60s'", "bad model name"),
        ("has space=5/60s", "'has space=5/60s'", "bad model name"),
        ("m=5/60s,m=6/60s", "'m=6/60s'", "duplicate"),
    ],
)
def test_errors_name_the_entry_and_why(setting: str, entry: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RateLimitConfig.parse(setting)
    assert entry in str(caught.value)
    assert why in str(caught.value)


def test_region_and_global_entries_for_one_model_are_not_duplicates() -> None:
    config = RateLimitConfig.parse("m=5/60s,eu:m=6/60s,us:m=7/60s")
    assert [config.limit_for("m", r) for r in ("us", "eu")] == [Limit(7, 60.0), Limit(6, 60.0)]


def test_bad_default_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="default rate limit '30'"):
        RateLimitConfig.parse("", default="30")


def test_learned_lower_limit_overrides_configured_higher_only() -> None:
    configured = Limit(30, 60.0)
    assert stricter(configured, Limit(20, 60.0)) == Limit(20, 60.0)
    assert stricter(configured, Limit(40, 60.0)) == configured
    assert stricter(configured, Limit(1, 1.0)) == configured  # 60/min > 30/min
    assert stricter(configured, None) == configured
    assert stricter(None, Limit(20, 60.0)) is None
