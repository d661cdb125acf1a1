"""In-process backend for the embedded mode (one dispatcher process). Thread-safe.

State lives in dicts under one lock; the clock is injectable so tests control time. Losing the
process loses the state, which (as with Redis) only ever yields full buckets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from worker.ratelimit import bucket
from worker.ratelimit.backend import BucketSnapshot, Grant, is_lower_limit, is_same_limit
from worker.ratelimit.bucket import BucketParams, BucketState


class MemoryBackend:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, BucketState] = {}
        self._granted_total: dict[str, int] = {}
        self._paused_until_s: dict[str, float] = {}
        # key -> (limit, window_s, expires_at_s)
        self._learned: dict[str, tuple[int, float, float]] = {}

    def acquire(self, key: str, params: BucketParams, want: int) -> Grant:
        with self._lock:
            now_s = self._clock()
            paused_s = self._paused_for(key, now_s)
            if paused_s > 0:
                return Grant(granted=0, wait_s=paused_s)
            state = self._buckets.get(key) or bucket.full_bucket(now_s, params)
            state, granted, wait_s = bucket.take(state, now_s, params, want)
            self._buckets[key] = state
            self._granted_total[key] = self._granted_total.get(key, 0) + granted
            return Grant(granted=granted, wait_s=wait_s)

    def debit(self, key: str, params: BucketParams, n: int) -> None:
        with self._lock:
            now_s = self._clock()
            state = self._buckets.get(key) or bucket.full_bucket(now_s, params)
            self._buckets[key] = bucket.debit(state, now_s, params, n)

    def pause(self, key: str, seconds: float) -> None:
        with self._lock:
            until_s = self._clock() + seconds
            self._paused_until_s[key] = max(until_s, self._paused_until_s.get(key, until_s))

    def paused_for(self, key: str) -> float:
        with self._lock:
            return self._paused_for(key, self._clock())

    def learn_limit(self, key: str, limit: int, window_s: float, ttl_s: float) -> None:
        with self._lock:
            now_s = self._clock()
            old = self._learned_now(key, now_s)
            if old is None or is_lower_limit(limit, window_s, old):
                self._learned[key] = (limit, window_s, now_s + ttl_s)
            elif is_same_limit(limit, window_s, old):
                expires_at_s = max(self._learned[key][2], now_s + ttl_s)
                self._learned[key] = (*old, expires_at_s)

    def learned_limit(self, key: str) -> tuple[int, float] | None:
        with self._lock:
            return self._learned_now(key, self._clock())

    def snapshot(self, key: str, params: BucketParams) -> BucketSnapshot:
        with self._lock:
            now_s = self._clock()
            state = self._buckets.get(key) or bucket.full_bucket(now_s, params)
            return BucketSnapshot(
                tokens=bucket.refill(state, now_s, params).tokens,
                paused_for_s=self._paused_for(key, now_s),
                learned_limit=self._learned_now(key, now_s),
                granted_total=self._granted_total.get(key, 0),
            )

    def _paused_for(self, key: str, now_s: float) -> float:
        return max(0.0, self._paused_until_s.get(key, now_s) - now_s)

    def _learned_now(self, key: str, now_s: float) -> tuple[int, float] | None:
        entry = self._learned.get(key)
        if entry is None or entry[2] <= now_s:
            return None
        return entry[0], entry[1]
