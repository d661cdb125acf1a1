"""The storage contract every rate-limit backend meets (Redis shared; in-memory embedded).

A ``key`` names one lane (one model in one region); the backend keeps, per key, the send gate's
state (``window.LaneState``: the log of sends, reservations, trust), a pause deadline and a
learned limit. Callers pass ``GateParams`` on every call, so a changed limit takes effect at once
and no backend stores configuration. Times are the backend's clock (Redis: the server's ``TIME``),
in seconds since the epoch. ``tests/integration/test_ratelimit_contract.py`` runs one suite
against every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.ratelimit.window import GateParams


@dataclass(frozen=True, slots=True)
class Grant:
    """``granted`` jobs may be released now; if fewer than wanted, ask again in ``wait_s``."""

    granted: int
    wait_s: float


@dataclass(frozen=True, slots=True)
class Permit:
    """A send permit asked at ``at_s`` (the backend's clock): if ``granted``, the request may
    leave at ``slot_s`` (``>= at_s``) and its log entry is ``entry_id`` (to confirm once
    written); else no slot opens within the wait asked for, and ``wait_s`` says when one
    might. ``probe``: the lane did not trust its log yet, so this is its one probe, whose
    answer's headers must be observed to seed it; every other answer needs no observing."""

    granted: bool
    at_s: float
    slot_s: float = 0.0
    wait_s: float = 0.0
    entry_id: str = ""
    probe: bool = False


@dataclass(frozen=True, slots=True)
class GateSnapshot:
    in_window: int  # sends (and reported arrivals) inside the window now
    reserved: int  # jobs released that have not taken their permit
    trusted: bool
    paused_for_s: float
    learned_limit: tuple[int, float] | None
    permits_total: int  # since the lane's state was created
    deferred_total: int  # jobs sent back unsent (no permit within the bound), likewise
    stale_total: int  # permits not used: their answer came too late, likewise


class RateLimitBackend(Protocol):
    def reserve(self, key: str, params: GateParams, want: int) -> Grant:
        """Release budget: ``window.reserve``; nothing while the key is paused."""
        ...

    def give_back(self, key: str, params: GateParams, n: int, *, deferred: bool = False) -> None:
        """Drop ``n`` reservations (``window.give_back``)."""
        ...

    def permit(self, key: str, params: GateParams, max_wait_s: float) -> Permit:
        """The send permit (``window.permit``); none while the key is paused."""
        ...

    def confirm(self, key: str, params: GateParams, entry_id: str, written_s: float) -> None:
        """The permitted send was written by ``written_s`` (``window.confirm``)."""
        ...

    def count_stale(self, key: str, params: GateParams) -> None:
        """Count a permit that was granted but not used (it stays in the log)."""
        ...

    def record_send(self, key: str, params: GateParams) -> None:
        """Log a send that took no permit (``window.record_send``)."""
        ...

    def observe(
        self,
        key: str,
        params: GateParams,
        *,
        sent_at_s: float,
        counted: int | None,
        reset_s: float | None,
    ) -> int:
        """A gateway report (``window.observe``); returns the arrivals added to the log."""
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

    def snapshot(self, key: str, params: GateParams) -> GateSnapshot:
        """Read-only view for ``tbatch status``."""
        ...


def is_lower_limit(limit: int, window_s: float, than: tuple[int, float]) -> bool:
    """True if ``limit/window_s`` allows fewer requests per second than ``than``."""
    old_limit, old_window_s = than
    return limit * old_window_s < old_limit * window_s


def is_same_limit(limit: int, window_s: float, than: tuple[int, float]) -> bool:
    old_limit, old_window_s = than
    return limit * old_window_s == old_limit * window_s
