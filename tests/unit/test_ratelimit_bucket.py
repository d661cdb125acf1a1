"""Token-bucket maths, including the window guarantee checked by simulation."""

from __future__ import annotations

import bisect
import random

import pytest

from worker.ratelimit.bucket import (
    CAPACITY,
    BucketParams,
    BucketState,
    debit,
    full_bucket,
    params_for_limit,
    refill,
    take,
    utilisation,
)

PARAMS = BucketParams(rate_per_s=2.0, capacity=1.0, max_debt=5.0)


def test_refill_adds_rate_times_elapsed_capped_at_capacity() -> None:
    empty = BucketState(tokens=0.0, updated_at_s=10.0)
    assert refill(empty, 10.25, PARAMS).tokens == pytest.approx(0.5)
    assert refill(empty, 100.0, PARAMS) == BucketState(tokens=1.0, updated_at_s=100.0)


def test_refill_credits_nothing_when_the_clock_goes_backwards() -> None:
    state = BucketState(tokens=0.25, updated_at_s=10.0)
    back = refill(state, 4.0, PARAMS)
    assert back == BucketState(tokens=0.25, updated_at_s=4.0)
    # From the new origin, only real elapsed time counts.
    assert refill(back, 4.25, PARAMS).tokens == pytest.approx(0.75)


def test_take_grants_whole_tokens_and_reports_wait_for_the_next() -> None:
    state, granted, wait_s = take(full_bucket(0.0, PARAMS), 0.0, PARAMS, want=3)
    assert (granted, state.tokens) == (1, 0.0)
    assert wait_s == pytest.approx(0.5)
    state, granted, wait_s = take(state, 0.2, PARAMS, want=1)
    assert granted == 0
    assert wait_s == pytest.approx(0.3)
    state, granted, wait_s = take(state, 0.5, PARAMS, want=1)
    assert (granted, wait_s) == (1, 0.0)


def test_take_with_capacity_above_one_grants_several() -> None:
    params = BucketParams(rate_per_s=1.0, capacity=3.0)
    state, granted, wait_s = take(full_bucket(0.0, params), 0.0, params, want=5)
    assert granted == 3
    assert state.tokens == 0.0
    assert wait_s == pytest.approx(1.0)


def test_take_zero_is_a_no_op_with_no_wait() -> None:
    state = BucketState(tokens=0.0, updated_at_s=0.0)
    assert take(state, 0.0, PARAMS, want=0)[1:] == (0, 0.0)
    with pytest.raises(ValueError):
        take(state, 0.0, PARAMS, want=-1)


def test_debit_goes_into_debt_and_waits_it_off() -> None:
    state = debit(full_bucket(0.0, PARAMS), 0.0, PARAMS, n=3)
    assert state.tokens == -2.0
    _, granted, wait_s = take(state, 0.0, PARAMS, want=1)
    assert granted == 0
    assert wait_s == pytest.approx(1.5)  # (1 - -2) / 2 per s


def test_debit_is_floored_at_max_debt() -> None:
    state = debit(full_bucket(0.0, PARAMS), 0.0, PARAMS, n=1000)
    assert state.tokens == -PARAMS.max_debt


@pytest.mark.parametrize(
    ("limit", "window_s", "rate_per_s"),
    [(30, 60.0, 29 / 60), (2, 1.0, 1.0), (1, 10.0, 1 / 10.5)],
)
def test_params_for_limit(limit: int, window_s: float, rate_per_s: float) -> None:
    params = params_for_limit(limit, window_s)
    assert params.capacity == (1.0 if limit == 1 else CAPACITY) and 1 <= params.capacity < 2
    assert params.rate_per_s == pytest.approx(rate_per_s)
    assert params.max_debt == limit


def test_params_for_limit_rejects_nonsense() -> None:
    for limit, window_s in [(0, 60.0), (5, 0.0), (5, -1.0), (5, float("inf"))]:
        with pytest.raises(ValueError):
            params_for_limit(limit, window_s)


def _greedy_grants(
    params: BucketParams, duration_s: float, rng: random.Random | None, want: int
) -> list[float]:
    """A consumer that comes back exactly when told (plus optional random lateness)."""
    now_s, grants = 0.0, []
    state = full_bucket(now_s, params)
    while now_s < duration_s:
        state, granted, wait_s = take(state, now_s, params, want)
        grants.extend([now_s] * granted)
        step_s = wait_s if granted < want else 0.0
        if rng is not None:
            # Sometimes late, sometimes re-asking early (before the token is due).
            step_s = rng.choice([step_s, step_s * rng.random(), step_s + rng.random() * step_s])
        now_s += max(step_s, 1e-12 if granted == 0 else 0.0)
    return grants


def _max_in_closed_window(times: list[float], window_s: float) -> int:
    return max(bisect.bisect_right(times, t + window_s) - i for i, t in enumerate(times))


CASES = [(1, 1.0), (2, 1.0), (3, 0.7), (10, 1.0), (30, 60.0), (60, 6.0), (120, 60.0), (7, 0.013)]


@pytest.mark.parametrize(("limit", "window_s"), CASES)
@pytest.mark.parametrize("jitter_seed", [None, 1, 2, 3])
@pytest.mark.parametrize("want", [1, 5])
def test_no_window_ever_holds_more_than_limit(
    limit: int, window_s: float, jitter_seed: int | None, want: int
) -> None:
    params = params_for_limit(limit, window_s)
    rng = None if jitter_seed is None else random.Random(jitter_seed)
    grants = _greedy_grants(params, duration_s=window_s * 40, rng=rng, want=want)
    assert _max_in_closed_window(grants, window_s) <= limit
    if limit >= 2 and jitter_seed is None:
        # The bound is tight (up to float rounding of the grant times): `limit` grants do fit.
        assert _max_in_closed_window(grants, window_s * (1 + 1e-9)) == limit


@pytest.mark.parametrize(("limit", "window_s"), [*CASES, (29, 61.0), (13, 0.9), (3, 7.0)])
def test_coming_back_exactly_after_wait_s_finds_the_token(limit: int, window_s: float) -> None:
    params = params_for_limit(limit, window_s)
    now_s = 30 * 86_400 + 0.123456  # time.monotonic() after a month of uptime
    state, granted, wait_s = take(full_bucket(now_s, params), now_s, params, 1)
    for _ in range(500):
        assert (granted, wait_s > 0) == (1, False)
        state, granted, wait_s = take(state, now_s, params, 1)
        assert granted == 0
        now_s += wait_s
        state, granted, wait_s = take(state, now_s, params, 1)


@pytest.mark.parametrize(("limit", "window_s"), CASES)
def test_greedy_consumer_reaches_the_allowed_rate(limit: int, window_s: float) -> None:
    params = params_for_limit(limit, window_s)
    duration_s = window_s * 200
    grants = _greedy_grants(params, duration_s, rng=None, want=1)
    allowed = limit / window_s * duration_s
    assert len(grants) >= utilisation(limit) * 0.99 * allowed


def test_the_bound_fails_for_a_naive_bucket() -> None:
    # Guard against a vacuous window check: capacity = limit, rate = limit/W bursts to 2*limit.
    limit, window_s = 10, 1.0
    naive = BucketParams(rate_per_s=limit / window_s, capacity=float(limit))
    grants = _greedy_grants(naive, duration_s=10.0, rng=None, want=limit)
    assert _max_in_closed_window(grants, window_s) > limit


@pytest.mark.parametrize(("limit", "window_s"), CASES)
def test_jitter_below_the_margin_keeps_the_gateway_window(limit: int, window_s: float) -> None:
    # Grants reach the gateway late by up to (just under) (2 - capacity) spacings, in any order;
    # for a limit of 1, by up to the 5% margin.
    params = params_for_limit(limit, window_s)
    margin = 2 - params.capacity
    max_jitter_s = margin / params.rate_per_s if limit >= 2 else 0.05 * window_s
    rng = random.Random(limit)
    grants = _greedy_grants(params, duration_s=window_s * 40, rng=None, want=1)
    arrivals = sorted(t + rng.random() * max_jitter_s * 0.999 for t in grants)
    assert _max_in_closed_window(arrivals, window_s) <= limit
