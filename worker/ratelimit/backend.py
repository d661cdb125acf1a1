"""The storage contract every rate-limit backend meets (Redis shared; in-memory embedded).

A ``key`` names one bucket (one model in one region); the backend keeps, per key, the bucket
state, a pause deadline and a learned limit. Callers pass ``BucketParams`` on every call, so a
changed limit takes effect at once and no backend stores configuration. ``tests/integration/
test_ratelimit_contract.py`` runs one suite against every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.ratelimit.bucket import BucketParams


@dataclass(frozen=True, slots=True)
class Grant:
    """``granted`` tokens taken now; if fewer than wanted, ``wait_s`` until the next one (or the
    rest of a pause)."""

    granted: int
    wait_s: float


@dataclass(frozen=True, slots=True)
class BucketSnapshot:
    tokens: float
    paused_for_s: float
    learned_limit: tuple[int, float] | None
    granted_total: int  # since the bucket's state was created (it expires once idle and full)


class RateLimitBackend(Protocol):
    def acquire(self, key: str, params: BucketParams, want: int) -> Grant:
        """Atomically take up to ``want`` tokens; grant nothing while the key is paused."""
        ...

    def debit(self, key: str, params: BucketParams, n: int) -> None:
        """Force-consume ``n`` tokens (into debt); see ``bucket.debit``."""
        ...

    def pause(self, key: str, seconds: float) -> None:
        """Stop the key everywhere for ``seconds``; extends a pause, never shortens one."""
        ...

    def paused_for(self, key: str) -> float:
        """Seconds of pause left (0 if none)."""
        ...

    def learn_limit(self, key: str, limit: int, window_s: float, ttl_s: float) -> None:
        """Remember a limit reported by the gateway for ``ttl_s``. Only lowers: a higher limit
        than the one remembered is ignored; an equal one refreshes the TTL."""
        ...

    def learned_limit(self, key: str) -> tuple[int, float] | None:
        """``(limit, window_s)`` learned and not expired, else None."""
        ...

    def snapshot(self, key: str, params: BucketParams) -> BucketSnapshot:
        """Read-only view for ``tbatch status`` (tokens refilled to now, nothing taken)."""
        ...


def is_lower_limit(limit: int, window_s: float, than: tuple[int, float]) -> bool:
    """True if ``limit/window_s`` allows fewer requests per second than ``than``."""
    old_limit, old_window_s = than
    return limit * old_window_s < old_limit * window_s


def is_same_limit(limit: int, window_s: float, than: tuple[int, float]) -> bool:
    old_limit, old_window_s = than
    return limit * old_window_s == old_limit * window_s
