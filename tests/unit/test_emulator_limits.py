"""The emulator's fixed-window limiter and window statistics, with time passed in."""

from __future__ import annotations

import pytest

from emulator.world.limits import FixedWindowLimiter


def test_window_counts_down_goes_negative_and_reopens() -> None:
    limiter = FixedWindowLimiter()
    decisions = [limiter.hit("k", "m", 2, 10.0, now) for now in (100.0, 101.0, 102.0, 103.0)]
    assert [d.allowed for d in decisions] == [True, True, False, False]
    assert [d.remaining for d in decisions] == [1, 0, -1, -2]
    assert decisions[2].reset_s == 8.0  # the window opened at the first request
    headers = decisions[2].headers()
    assert headers["Retry-After"] == "8" and headers["X-RateLimit-Reset"] == "8"
    assert headers["X-RateLimit-Service"] == "llmgw"
    assert "Retry-After" not in decisions[0].headers()
    reopened = limiter.hit("k", "m", 2, 10.0, 110.0)
    assert reopened.allowed and reopened.remaining == 1 and reopened.reset_s == 10.0


def test_keys_and_models_have_their_own_windows() -> None:
    limiter = FixedWindowLimiter()
    assert limiter.hit("k", "a", 1, 60, 0).allowed
    assert not limiter.hit("k", "a", 1, 60, 1).allowed
    assert limiter.hit("k", "b", 1, 60, 1).allowed
    assert limiter.hit("other", "a", 1, 60, 1).allowed


def test_sliding_maximum_is_half_open() -> None:
    limiter = FixedWindowLimiter()
    # fixed windows [0, 10) and [10, 20) hold 3 each; the busiest sliding window [5, 15)
    # holds 5, 6, 10, 11 but not 15 (half-open), so 4, where a closed window would count 5
    for now in (0.0, 5.0, 6.0, 10.0, 11.0, 15.0):
        limiter.hit("k", "m", 100, 10.0, now)
    sliding, fixed = limiter.max_for("m")
    assert fixed == 3
    assert sliding == 4


def test_arrivals_reaching_the_limiter_out_of_order_are_counted_by_arrival() -> None:
    limiter = FixedWindowLimiter()
    for at in (0.0, 2.0, 1.0, 7.5, 6.5):  # 1.0 reaches the limiter after 2.0
        limiter.hit("k", "m", 10, 6.0, at)
    # [1.0, 7.0) and [2.0, 8.0) hold three each; a deque trimmed from its head would have
    # counted 0.0 long after it left.
    assert limiter.max_for("m") == (3, 3)


def test_sliding_window_counts_the_last_window_of_arrivals() -> None:
    limiter = FixedWindowLimiter()
    decisions = [limiter.hit("k", "m", 2, 1.0, at, sliding=True) for at in (0.0, 0.5, 0.9, 1.2)]
    assert [d.allowed for d in decisions] == [True, True, False, False]
    # Rejected arrivals count too: a slot opens once 0.0 and 0.5 have left, at 1.5.
    assert decisions[2].reset_s == pytest.approx(0.6)
