"""Token-bucket arithmetic: pure functions, time passed in (seconds, any fixed origin).

The backends (``memory_backend``, and ``acquire.lua`` for Redis) apply exactly this maths; the
contract suite checks that they agree.

Window guarantee (``params_for_limit``): the gateway allows ``limit`` requests per fixed window of
``window_s`` starting at the first request. We use capacity C = 1 and rate
``(limit - 1) / window_s``. Proof: a closed interval of length W starts with at most C stored
tokens and refills at most ``rate * W = limit - 1`` more, and grants are whole tokens, so it holds
at most ``floor(C + limit - 1) = limit`` grants (any C below 2 keeps this). A sliding-window bound
implies the fixed-window bound for every window start. ``limit + 1`` grants need
``limit + 1 - C`` refilled tokens, so they span at least ``W + (2 - C) * W / (limit - 1)``:
arrival jitter at the gateway below (2 - C) spacings cannot squeeze them into one window. A C
above 1 would let a late dispatcher keep the time it lost, but shrinks that jitter margin: see
``CAPACITY``. The price is the utilisation: ``(limit - 1) / limit`` of the gateway's limit
(59 of 60 per window, 29 of 30 per minute). For ``limit == 1`` the capacity is 1 and the rate
``1 / (1.05 * window_s)``: grants 1.05 windows apart, tolerating jitter of 5% of a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float slack when deciding "is a whole token here?": advancing a clock by exactly the
# ``wait_s`` we returned must find the token despite rounding. The remainder is carried as debt,
# so the slack never accumulates, and the window proof holds for any slack below one token.
WHOLE_TOKEN_SLACK = 1e-6
SINGLE_REQUEST_WINDOW_MARGIN = 1.05


@dataclass(frozen=True, slots=True)
class BucketParams:
    """Refill ``rate_per_s`` up to ``capacity``; ``debit`` may push down to ``-max_debt``."""

    rate_per_s: float
    capacity: float = 1.0
    max_debt: float = 1.0

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate_per_s must be positive and finite, got {self.rate_per_s}")
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")
        if self.max_debt < 0:
            raise ValueError(f"max_debt must be >= 0, got {self.max_debt}")


@dataclass(frozen=True, slots=True)
class BucketState:
    tokens: float
    updated_at_s: float


def full_bucket(now_s: float, params: BucketParams) -> BucketState:
    """A bucket with no history (new key, or state lost): full, never more."""
    return BucketState(tokens=params.capacity, updated_at_s=now_s)


def refill(state: BucketState, now_s: float, params: BucketParams) -> BucketState:
    """Credit the time elapsed since ``updated_at_s``.

    A clock that went backwards credits nothing and restarts from ``now_s``: a server clock jump
    can lose refill time, never invent it.
    """
    elapsed_s = max(0.0, now_s - state.updated_at_s)
    tokens = min(params.capacity, state.tokens + elapsed_s * params.rate_per_s)
    return BucketState(tokens=tokens, updated_at_s=now_s)


def whole_tokens(tokens: float) -> int:
    return max(0, math.floor(tokens + WHOLE_TOKEN_SLACK))


def wait_for_next_token_s(tokens: float, params: BucketParams) -> float:
    """Seconds until ``tokens`` reaches one whole token (0 if it already has)."""
    if whole_tokens(tokens) >= 1:
        return 0.0
    return (1.0 - tokens) / params.rate_per_s


def take(
    state: BucketState, now_s: float, params: BucketParams, want: int
) -> tuple[BucketState, int, float]:
    """Take up to ``want`` whole tokens.

    Returns ``(new_state, granted, wait_s)``; ``wait_s`` is the time until the next whole token
    when ``granted < want``, else 0.
    """
    if want < 0:
        raise ValueError(f"want must be >= 0, got {want}")
    state = refill(state, now_s, params)
    granted = min(want, whole_tokens(state.tokens))
    state = BucketState(tokens=state.tokens - granted, updated_at_s=state.updated_at_s)
    wait_s = 0.0 if granted == want else wait_for_next_token_s(state.tokens, params)
    return state, granted, wait_s


def debit(state: BucketState, now_s: float, params: BucketParams, n: int) -> BucketState:
    """Force-consume ``n`` tokens, into debt if need be, floored at ``-max_debt``.

    Used when a request already happened without a grant from this bucket: the gateway served a
    server-side fallback on another model, which we learn only from the response. The floor
    (``params_for_limit`` sets one window's worth, ``limit``) bounds the silence a burst of
    fallbacks can impose: about one window, after which the gateway's own window has reset.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    state = refill(state, now_s, params)
    tokens = max(-params.max_debt, state.tokens - n)
    return BucketState(tokens=tokens, updated_at_s=state.updated_at_s)


# Any value below 2 keeps the window bound. Measured with scripts/bench.py (limit, 3 models at
# 60/6 s on 2 cores): 1.5 and 1.25 carried late wake-ups (0.975 utilization on some models) but
# arrival jitter at the gateway (p10-p90 spread ~55-70 ms) then exceeded the smaller margin:
# 61 requests in a window and a 429. 1 keeps a full spacing of margin: 0 429s, 0.955-0.978.
CAPACITY = 1.0


def params_for_limit(limit: int, window_s: float) -> BucketParams:
    """Bucket parameters that never put more than ``limit`` grants in any ``window_s`` interval.

    See the module docstring for the proof and the jitter margin.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError(f"window_s must be positive and finite, got {window_s}")
    if limit == 1:
        rate_s = 1.0 / (window_s * SINGLE_REQUEST_WINDOW_MARGIN)
        return BucketParams(rate_per_s=rate_s, capacity=1.0, max_debt=1.0)
    rate_per_s = (limit - 1) / window_s
    return BucketParams(rate_per_s=rate_per_s, capacity=CAPACITY, max_debt=float(limit))


def utilisation(limit: int) -> float:
    """Fraction of the gateway's limit that ``params_for_limit`` lets through in the long run."""
    if limit == 1:
        return 1.0 / SINGLE_REQUEST_WINDOW_MARGIN
    return (limit - 1) / limit
