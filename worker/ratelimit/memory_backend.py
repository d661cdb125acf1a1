"""In-process backend for the embedded mode (one dispatcher process). Thread-safe.

State lives in dicts under one lock; the clock is injectable so tests control time. Losing the
process loses the state: its lanes start untrusted (``window.trusted``), as after a lost Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from worker.ratelimit import window
from worker.ratelimit.backend import (
    GateSnapshot,
    Grant,
    Permit,
    is_lower_limit,
    is_same_limit,
)
from worker.ratelimit.window import GateParams, LaneState


class MemoryBackend:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._lanes: dict[str, LaneState] = {}
        self._paused_until_s: dict[str, float] = {}
        # key -> (limit, window_s, expires_at_s)
        self._learned: dict[str, tuple[int, float, float]] = {}

    def _lane(self, key: str, now_s: float) -> LaneState:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = window.new_lane(now_s)
        return lane

    def reserve(self, key: str, params: GateParams, want: int) -> Grant:
        with self._lock:
            now_s = self._clock()
            paused_s = self._paused_for(key, now_s)
            if paused_s > 0:
                return Grant(granted=0, wait_s=paused_s)
            granted, wait_s = window.reserve(self._lane(key, now_s), now_s, params, want)
            return Grant(granted=granted, wait_s=wait_s)

    def give_back(self, key: str, params: GateParams, n: int, *, deferred: bool = False) -> None:
        with self._lock:
            now_s = self._clock()
            window.give_back(self._lane(key, now_s), now_s, params, n, deferred=deferred)

    def permit(self, key: str, params: GateParams, max_wait_s: float) -> Permit:
        with self._lock:
            now_s = self._clock()
            paused_s = self._paused_for(key, now_s)
            if paused_s > 0:
                return Permit(granted=False, at_s=now_s, wait_s=paused_s)
            lane = self._lane(key, now_s)
            probe = not window.trusted(lane, now_s, params)
            entry_id, slot_or_wait_s = window.permit(lane, now_s, params, max_wait_s)
            if entry_id is None:
                return Permit(granted=False, at_s=now_s, wait_s=slot_or_wait_s)
            return Permit(
                granted=True, at_s=now_s, slot_s=slot_or_wait_s, entry_id=entry_id, probe=probe
            )

    def confirm(self, key: str, params: GateParams, entry_id: str, written_s: float) -> None:
        with self._lock:
            now_s = self._clock()
            window.confirm(self._lane(key, now_s), now_s, params, entry_id, written_s)

    def count_stale(self, key: str, params: GateParams) -> None:
        with self._lock:
            window.count_stale(self._lane(key, self._clock()))

    def record_send(self, key: str, params: GateParams) -> None:
        with self._lock:
            now_s = self._clock()
            window.record_send(self._lane(key, now_s), now_s, params)

    def observe(
        self,
        key: str,
        params: GateParams,
        *,
        sent_at_s: float,
        counted: int | None,
        reset_s: float | None,
    ) -> int:
        with self._lock:
            now_s = self._clock()
            return window.observe(
                self._lane(key, now_s),
                now_s,
                params,
                sent_at_s=sent_at_s,
                counted=counted,
                reset_s=reset_s,
            )

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

    def snapshot(self, key: str, params: GateParams) -> GateSnapshot:
        with self._lock:
            now_s = self._clock()
            lane = self._lanes.get(key)
            if lane is not None:
                window.trim(lane, now_s, params)
            return GateSnapshot(
                in_window=0 if lane is None else window.alive_at(lane, now_s),
                reserved=0 if lane is None else len(lane.reservations),
                trusted=lane is not None and window.trusted(lane, now_s, params),
                paused_for_s=self._paused_for(key, now_s),
                learned_limit=self._learned_now(key, now_s),
                permits_total=0 if lane is None else lane.permits_total,
                deferred_total=0 if lane is None else lane.deferred_total,
                stale_total=0 if lane is None else lane.stale_total,
            )

    def _paused_for(self, key: str, now_s: float) -> float:
        return max(0.0, self._paused_until_s.get(key, now_s) - now_s)

    def _learned_now(self, key: str, now_s: float) -> tuple[int, float] | None:
        entry = self._learned.get(key)
        if entry is None or entry[2] <= now_s:
            return None
        return entry[0], entry[1]
