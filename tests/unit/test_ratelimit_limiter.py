"""The facade over a backend: limits per model and region, the send permit and its bounded
wait, learning from headers, pauses, fallback debits and status rows (fake clock)."""

from __future__ import annotations

import pytest

from tests.fakes import FakeClock
from worker.errors import SendDeferred
from worker.gateway.types import RateLimitInfo
from worker.ratelimit.backend import Grant
from worker.ratelimit.config import Limit, RateLimitConfig
from worker.ratelimit.limiter import GateTiming, ModelLimiter, bucket_key
from worker.ratelimit.memory_backend import MemoryBackend

TIMING = GateTiming(margin_s=0.05, lead_s=0.5, max_wait_s=1.0)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock=clock)


@pytest.fixture()
def limiter(backend: MemoryBackend, clock: FakeClock) -> ModelLimiter:
    config = RateLimitConfig.parse("fast=10/1s,eu:fast=3/1s,free=off", default="30/60s")
    return ModelLimiter(
        backend, config, timing=TIMING, learned_ttl_s=100, sleep=clock.sleep, clock=clock
    )


def _send(limiter: ModelLimiter, model: str, region: str | None = None) -> float:
    """Permit and write at once; returns the write time."""
    permit = limiter.permit(model, region)
    assert permit is not None
    return limiter.written(permit)


def _trust(limiter: ModelLimiter, model: str, region: str | None = None) -> None:
    """The probe and its report: the gateway says its window is empty."""
    sent = _send(limiter, model, region)
    limiter.observe(model, region, sent, RateLimitInfo(limit=None, remaining=None))
    limiter.observe(model, region, sent, RateLimitInfo(limit=10, remaining=9, reset_s=1))


def test_a_fresh_lane_sends_one_probe_then_what_the_gateway_reports(
    limiter: ModelLimiter, clock: FakeClock
) -> None:
    grant = limiter.acquire("fast", None, 10)
    assert grant.granted == 1
    assert grant.wait_s == pytest.approx(0.05)
    assert limiter.acquire("fast", None, 10).granted == 0  # the probe is still out
    sent = _send(limiter, "fast", None)
    assert sent == clock.now_s
    # The answer: the gateway counts 4 (3 from elsewhere): 6 more fit in its window.
    limiter.observe("fast", None, sent, RateLimitInfo(limit=10, remaining=6, reset_s=1))
    assert limiter.acquire("fast", None, 10).granted == 6


def test_permit_waits_for_the_exact_slot_within_the_bound(
    limiter: ModelLimiter, clock: FakeClock
) -> None:
    _trust(limiter, "fast")
    first = clock.now_s
    for _ in range(9):
        _send(limiter, "fast", None)
    clock.now_s += 0.3
    sent = _send(limiter, "fast", None)  # the window is full: wait for the probe to leave
    assert sent == pytest.approx(first + 1.05)
    assert clock.slept == [pytest.approx(0.75)]


def test_a_permit_not_confirmed_holds_its_slot_longer(
    limiter: ModelLimiter, clock: FakeClock
) -> None:
    _trust(limiter, "fast")
    for _ in range(8):
        _send(limiter, "fast", None)
    limiter.permit("fast", None)  # never confirmed: its worker may still be writing
    clock.now_s += 1.1  # every confirmed send has left the window
    params = limiter.params("fast", None)
    assert params is not None
    assert limiter.acquire("fast", None, 10).granted == 9  # the held one still counts
    clock.now_s += TIMING.hold_s
    assert limiter.acquire("fast", None, 10).granted == 1


def test_permit_past_the_bound_defers_and_gives_the_reservation_back(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    impatient = GateTiming(margin_s=0.05, lead_s=0.5, max_wait_s=0.1)
    limiter = ModelLimiter(
        backend,
        RateLimitConfig.parse("fast=10/1s"),
        timing=impatient,
        sleep=clock.sleep,
        clock=clock,
    )
    _trust(limiter, "fast")
    for _ in range(9):
        _send(limiter, "fast", None)
    clock.now_s += 0.6  # every slot opens within the lead (at +1.05 s)
    assert limiter.acquire("fast", None, 5).granted == 5
    with pytest.raises(SendDeferred, match=r"us:fast"):
        limiter.permit("fast", None)  # 0.45 s to wait, the bound is 0.1 s
    assert clock.slept == []
    params = limiter.params("fast", None)
    assert params is not None
    snap = backend.snapshot("us:fast", params)
    assert (snap.reserved, snap.deferred_total) == (4, 1)


def test_regions_have_separate_lanes_and_limits(limiter: ModelLimiter) -> None:
    _trust(limiter, "fast", "us")
    assert limiter.limit("fast", "eu") == Limit(3, 1.0)
    assert limiter.acquire("fast", "eu", 5).granted == 1  # its own probe
    assert bucket_key("fast", None) == "us:fast"


def test_unlimited_model_gets_everything_unless_paused(
    limiter: ModelLimiter, clock: FakeClock
) -> None:
    assert limiter.acquire("free", None, 500) == Grant(500, 0.0)
    assert limiter.permit("free", None) is None
    limiter.on_429("free", None, retry_after_s=7, cap_s=120)
    assert limiter.acquire("free", None, 500) == Grant(0, 7.0)
    with pytest.raises(SendDeferred):
        limiter.permit("free", None)
    clock.now_s += 7
    assert limiter.acquire("free", None, 500) == Grant(500, 0.0)


def test_learns_a_lower_limit_for_the_model_the_headers_name(limiter: ModelLimiter) -> None:
    limiter.observe("other", None, None, RateLimitInfo(limit=6, model="fast"))
    assert limiter.limit("fast", None) == Limit(6, 1.0)
    assert limiter.limit("other", None) == Limit(30, 60.0)
    assert limiter.limit("fast", "eu") == Limit(3, 1.0)  # another region's lane


def test_only_a_probes_answer_reaches_the_store_but_every_answer_can_lower_the_limit(
    limiter: ModelLimiter, backend: MemoryBackend
) -> None:
    probe = limiter.permit("fast", None)
    assert probe is not None and probe.probe
    sent = limiter.written(probe)
    params = limiter.params("fast", None)
    assert params is not None
    # Not marked a probe: the report is not taken (no ghosts, the lane stays untrusted)...
    limiter.observe("fast", None, sent, RateLimitInfo(limit=8, remaining=0), probe=False)
    assert not backend.snapshot("us:fast", params).trusted
    # ...but the lower limit it names is learned all the same.
    assert limiter.limit("fast", None) == Limit(8, 1.0)
    limiter.observe("fast", None, sent, RateLimitInfo(limit=8, remaining=7), probe=True)
    assert backend.snapshot("us:fast", params).trusted
    after = limiter.permit("fast", None)
    assert after is not None and not after.probe


@pytest.mark.parametrize("reported", [20, 10, None, 0])
def test_ignores_headers_that_do_not_lower_the_limit(
    limiter: ModelLimiter, reported: int | None
) -> None:
    limiter.observe("fast", None, None, RateLimitInfo(limit=reported))
    limiter.observe("free", None, None, RateLimitInfo(limit=4))
    assert limiter.limit("fast", None) == Limit(10, 1.0)
    assert limiter.limit("free", None) is None  # "off" stays off


def test_429_pauses_capped_and_defaults_to_one_window(
    limiter: ModelLimiter, backend: MemoryBackend
) -> None:
    assert limiter.on_429("fast", None, retry_after_s=600, cap_s=120) == 120
    assert backend.paused_for("us:fast") == 120
    assert limiter.on_429("other", None, retry_after_s=None, cap_s=120) == 60  # default 30/60s
    assert limiter.acquire("other", None, 1) == Grant(0, 60.0)
    assert limiter.on_429("free", None, retry_after_s=None, cap_s=90) == 90


def test_debit_fallback_logs_a_send_on_the_model_that_answered(limiter: ModelLimiter) -> None:
    _trust(limiter, "fast")
    for _ in range(8):
        limiter.debit_fallback("fast", None)
    assert limiter.acquire("fast", None, 5).granted == 1  # 10 - probe - 8 fallbacks
    limiter.debit_fallback("free", None)  # unlimited: nothing to log
    assert limiter.acquire("free", None, 3) == Grant(3, 0.0)


def test_status_rows(limiter: ModelLimiter) -> None:
    _trust(limiter, "fast")
    limiter.acquire("fast", None, 2)
    limiter.on_429("free", None, retry_after_s=5, cap_s=120)
    fast, free = limiter.status(["fast", "free"])
    assert fast == {
        "model": "fast",
        "region": "us",
        "limit": 10,
        "window_s": 1.0,
        "in_window": 1,
        "reserved": 2,
        "trusted": True,
        "paused_for_s": 0.0,
        "learned_limit": None,
        "permits_total": 1,
        "deferred_total": 0,
        "stale_total": 0,
    }
    assert (free["limit"], free["in_window"], free["paused_for_s"]) == (None, None, 5.0)


def test_a_permit_whose_answer_came_late_is_not_used(clock: FakeClock) -> None:
    class SlowOnce(MemoryBackend):
        slow = True

        def permit(self, key, params, max_wait_s):
            granted = super().permit(key, params, max_wait_s)
            if self.slow:  # the answer reached us 1.5 s after Redis stamped it
                self.slow = False
                clock.now_s += 1.5
            return granted

    backend = SlowOnce(clock=clock)
    limiter = ModelLimiter(
        backend, RateLimitConfig.parse("fast=10/1s"), timing=TIMING, sleep=clock.sleep, clock=clock
    )
    first = limiter.permit("fast", None)  # the probe: the stale one is skipped, not sent
    params = limiter.params("fast", None)
    assert params is not None
    snap = backend.snapshot("us:fast", params)
    # The stale permit stays in the log; being the probe, it did not block the next one.
    assert (snap.stale_total, snap.in_window) == (1, 2)
    assert first is not None
