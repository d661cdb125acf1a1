"""The gateway's per (API key, model) fixed-window limiter, and the counters tests read.

A window opens at the first request after the previous one closed (the live ``X-RateLimit-Reset``
read 60 right after use, so windows are not aligned to the clock). Every request that reaches the
limiter counts, including rejected ones, which is why ``Remaining`` goes negative as observed
live. Time is passed in, so the arithmetic is testable without sleeping.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

SERVICE = "llmgw"
MAX_EXACT_SCAN = 512  # arrivals in one window up to which an out-of-order maximum is exact


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    model: str

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(max(0, math.ceil(self.reset_s))),
            "X-RateLimit-Model": self.model,
            "X-RateLimit-Service": SERVICE,
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_s)))
        return headers


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class _Arrivals:
    """Arrival times (sorted) of the last two window lengths, for the sliding maximum. Requests
    reach the limiter a little out of arrival order (each awaits its body first), so arrivals
    are inserted in order rather than appended."""

    times: list[float] = field(default_factory=list)
    max_sliding: int = 0
    max_fixed: int = 0


@dataclass
class FixedWindowLimiter:
    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    arrivals: dict[tuple[str, str], _Arrivals] = field(default_factory=dict)

    def hit(
        self,
        key: str,
        model: str,
        limit: int,
        window_s: float,
        now: float,
        *,
        sliding: bool = False,
    ) -> Decision:
        """Count one request for (key, model) at ``now`` and say whether it may proceed.

        ``sliding``: allowed while fewer than ``limit`` requests arrived in the last
        ``window_s`` (a sliding log, the strictest reading of "N per window"); ``Reset`` is then
        the time until every arrival counted now has left (``window_s``), and a 429's
        ``Retry-After`` the time until the oldest leaves and a slot opens.
        """
        window = self.windows.get((key, model))
        if window is None or now >= window.start + window_s:
            window = self.windows[(key, model)] = _Window(start=now)
        window.count += 1
        seen = self._observe(key, model, window.count, window_s, now)
        if sliding:
            times = seen.times
            hi = bisect.bisect_right(times, now)
            count = hi - bisect.bisect_right(times, now - window_s)
            reset_s = window_s if count <= limit else times[hi - limit] + window_s - now
            return Decision(count <= limit, limit, limit - count, reset_s, model)
        return Decision(
            allowed=window.count <= limit,
            limit=limit,
            remaining=limit - window.count,
            reset_s=window.start + window_s - now,
            model=model,
        )

    def _observe(
        self, key: str, model: str, fixed_count: int, window_s: float, now: float
    ) -> _Arrivals:
        seen = self.arrivals.setdefault((key, model), _Arrivals())
        times = seen.times
        bisect.insort(times, now)
        del times[: bisect.bisect_right(times, times[-1] - 2 * window_s)]
        # The half-open windows [s, s + W) that hold ``now`` start at arrivals in (now - W, now].
        # In arrival order, the busiest is the one ending at ``now``: one bisect. Out of order,
        # later arrivals may share a window with it: each start is counted, up to a bound (the
        # limits tests and benchmarks use are far below it; past it, the window ending at the
        # latest arrival stands in, so an unlimited high-rate run stays cheap).
        lo = bisect.bisect_right(times, now - window_s)
        hi = bisect.bisect_right(times, now)
        if hi == len(times) or hi - lo > MAX_EXACT_SCAN:
            best = len(times) - bisect.bisect_right(times, times[-1] - window_s)
            best = max(best, hi - lo)
        else:
            best = max(bisect.bisect_left(times, times[i] + window_s) - i for i in range(lo, hi))
        seen.max_sliding = max(seen.max_sliding, best)
        seen.max_fixed = max(seen.max_fixed, fixed_count)
        return seen

    def max_for(self, model: str) -> tuple[int, int]:
        """(max in any sliding window, max in any fixed window) over all keys, for ``model``."""
        sliding = fixed = 0
        for (_, m), seen in self.arrivals.items():
            if m == model:
                sliding = max(sliding, seen.max_sliding)
                fixed = max(fixed, seen.max_fixed)
        return sliding, fixed

    def clear(self) -> None:
        self.windows.clear()
        self.arrivals.clear()
