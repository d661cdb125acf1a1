"""The dispatcher's facade over a backend: limits per model and region, learning, pauses."""

from __future__ import annotations

import pytest

from worker.ratelimit.backend import Grant
from worker.ratelimit.bucket import CAPACITY
from worker.ratelimit.config import Limit, RateLimitConfig
from worker.ratelimit.limiter import ModelLimiter, bucket_key
from worker.ratelimit.memory_backend import MemoryBackend

# After one grant from a full bucket, the next whole token is (2 - CAPACITY) spacings away.
HALF = 2 - CAPACITY


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 500.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock=clock)


@pytest.fixture()
def limiter(backend: MemoryBackend) -> ModelLimiter:
    config = RateLimitConfig.parse("fast=11/1s,eu:fast=3/1s,free=off", default="30/60s")
    return ModelLimiter(backend, config, learned_ttl_s=100)


def test_limited_model_gets_one_token_then_the_spacing(limiter: ModelLimiter) -> None:
    grant = limiter.acquire("fast", None, 4)
    assert (grant.granted, grant.wait_s) == (1, pytest.approx(0.1 * HALF))
    assert limiter.acquire("fast", "us", 4).granted == 0


def test_regions_have_separate_buckets_and_limits(limiter: ModelLimiter) -> None:
    assert limiter.acquire("fast", "us", 1).granted == 1
    eu = limiter.acquire("fast", "eu", 2)
    assert eu.granted == 1
    assert eu.wait_s == pytest.approx(0.5 * HALF)  # 3/1s -> 2 tokens/s
    assert bucket_key("fast", None) == "us:fast"


def test_unlimited_model_gets_everything_unless_paused(
    limiter: ModelLimiter, clock: FakeClock
) -> None:
    assert limiter.acquire("free", None, 500) == Grant(500, 0.0)
    limiter.on_429("free", None, retry_after_s=7, cap_s=120)
    assert limiter.acquire("free", None, 500) == Grant(0, 7.0)
    clock.now_s += 7
    assert limiter.acquire("free", None, 500) == Grant(500, 0.0)


def test_learns_a_lower_limit_from_headers_in_the_configured_window(
    limiter: ModelLimiter, backend: MemoryBackend
) -> None:
    limiter.on_response("fast", None, {"X-RateLimit-Limit": "6", "X-RateLimit-Remaining": "2"})
    assert limiter.limit("fast", None) == Limit(6, 1.0)
    assert limiter.acquire("fast", None, 2).wait_s == pytest.approx(0.2 * HALF)  # 5 tokens/s
    assert limiter.limit("fast", "eu") == Limit(3, 1.0)  # another region's bucket


@pytest.mark.parametrize(
    "headers",
    [{"x-ratelimit-limit": "20"}, {"X-RateLimit-Limit": "11"}, {"X-RateLimit-Limit": "abc"}, {}],
)
def test_ignores_headers_that_do_not_lower_the_limit(
    limiter: ModelLimiter, headers: dict[str, str]
) -> None:
    limiter.on_response("fast", None, headers)
    assert limiter.limit("fast", None) == Limit(11, 1.0)


def test_header_with_parameters_and_off_models(limiter: ModelLimiter) -> None:
    limiter.on_response("fast", None, {"x-ratelimit-limit": "4;w=1"})
    assert limiter.limit("fast", None) == Limit(4, 1.0)
    limiter.on_response("free", None, {"x-ratelimit-limit": "4"})
    assert limiter.limit("free", None) is None  # "off" stays off


def test_429_pauses_capped_and_defaults_to_one_window(
    limiter: ModelLimiter, backend: MemoryBackend
) -> None:
    assert limiter.on_429("fast", None, retry_after_s=600, cap_s=120) == 120
    assert backend.paused_for("us:fast") == 120
    assert limiter.on_429("other", None, retry_after_s=None, cap_s=120) == 60  # default 30/60s
    assert limiter.acquire("other", None, 1) == Grant(0, 60.0)
    assert limiter.on_429("free", None, retry_after_s=None, cap_s=90) == 90


def test_debit_fallback_charges_the_model_that_answered(limiter: ModelLimiter) -> None:
    limiter.debit_fallback("fast", None)
    grant = limiter.acquire("fast", None, 1)
    assert grant.granted == 0
    assert grant.wait_s == pytest.approx(0.1 * HALF)
    limiter.debit_fallback("free", None)  # unlimited: nothing to charge
    assert limiter.acquire("free", None, 3) == Grant(3, 0.0)


def test_status_rows(limiter: ModelLimiter) -> None:
    limiter.acquire("fast", None, 1)
    limiter.on_response("fast", None, {"X-RateLimit-Limit": "8"})
    limiter.on_429("free", None, retry_after_s=5, cap_s=120)
    fast, free = limiter.status(["fast", "free"])
    assert fast == {
        "model": "fast",
        "region": "us",
        "limit": 8,
        "window_s": 1.0,
        "tokens": pytest.approx(CAPACITY - 1),
        "paused_for_s": 0.0,
        "learned_limit": 8,
        "granted_total": 1,
    }
    assert (free["limit"], free["tokens"], free["paused_for_s"]) == (None, None, 5.0)
