"""The send gate's arithmetic: a sliding log of sends per (region, model), time passed in.

The gateway counts *arrivals*: at most ``limit`` per ``window_s``. The gate holds that invariant
on send times, the last thing a worker does before the request leaves: a permit is granted only
if fewer than ``limit`` sends lie in the last ``window_s + margin_s``. Any ``limit + 1``
consecutive permits then span more than ``window_s + margin_s``, so their arrivals span more
than ``window_s`` unless the first one's send-to-arrival time exceeds the last one's by more than
the margin. That holds for any gateway window, fixed or sliding, whatever happened upstream (a
slow commit, a broker hop, a busy CPU): upstream delay only makes sends later, never denser.

Beside the log the gate keeps what the dispatcher needs to release a *lead*, not a burst:

- **reservations**: jobs released to the broker that have not taken their permit yet. The
  dispatcher may release only the slots that open within ``lead_s`` minus those already
  reserved; a reservation expires after ``reservation_ttl_s`` (a lost message frees its slot).
- **ghosts**: arrivals the gateway reported (``X-RateLimit-Limit - Remaining``) that the log does
  not hold (another client on the account, or a log that was lost). Stored as sends at
  ``reset - window`` so they leave the window when the gateway said its window refills.
- **trust**: a lane whose store is younger than one window (a new or flushed Redis, a restarted
  embedded process) does not know what the gateway still counts. It sends one *probe* and waits
  for the answer's headers, which seed the ghosts; until then nothing else is granted. A lost
  history therefore costs one call's latency, never a burst into a window that is still full.

Every backend (``memory_backend``; the ``gate_*.lua`` scripts for Redis) applies exactly these
functions; ``tests/integration/test_ratelimit_contract.py`` checks that they agree.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

PROBE_TTL_S = 10.0  # a probe whose answer never came (worker died) is retried after this
POLL_S = 0.05  # how soon to ask again while waiting for a probe's answer
MAX_WAIT_HINT_S = 0.25  # a dispatcher limited by reservations looks again this soon


@dataclass(frozen=True, slots=True)
class GateParams:
    """One lane's gate: ``limit`` sends per ``window_s + margin_s``; release ``lead_s`` ahead."""

    limit: int
    window_s: float
    margin_s: float = 0.05
    lead_s: float = 0.5
    reservation_ttl_s: float = 5.0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        for name in ("window_s", "reservation_ttl_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive and finite, got {value}")
        for name in ("margin_s", "lead_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value}")

    @property
    def span_s(self) -> float:
        """The window the gate enforces on send times: the gateway's plus the margin."""
        return self.window_s + self.margin_s

    def utilisation(self) -> float:
        """The long-run fraction of the gateway's limit the gate lets through."""
        return self.window_s / self.span_s


@dataclass(slots=True)
class LaneState:
    """What one lane's store holds. ``epoch_s`` is when the store started keeping this lane."""

    epoch_s: float
    sends: list[float] = field(default_factory=list)  # sorted send times (ghosts included)
    reservations: list[float] = field(default_factory=list)  # sorted expiry times
    seeded: bool = False  # a gateway report has told the lane what the gateway counts
    probe_until_s: float = 0.0
    permits_total: int = 0
    deferred_total: int = 0  # jobs sent back unsent: no permit within the bound
    stale_total: int = 0  # permits granted but not used (their answer came too late)


def new_lane(now_s: float) -> LaneState:
    """A lane with no history: it trusts nothing until one window has passed or a report came."""
    return LaneState(epoch_s=now_s)


def trim(state: LaneState, now_s: float, params: GateParams) -> None:
    """Forget sends that left the window and reservations that expired."""
    del state.sends[: bisect.bisect_right(state.sends, now_s - params.span_s)]
    del state.reservations[: bisect.bisect_right(state.reservations, now_s)]


def trusted(state: LaneState, now_s: float, params: GateParams) -> bool:
    """The log covers every send the gateway still counts (or a report said what it counts)."""
    return state.seeded or now_s - state.epoch_s >= params.span_s


def counted_at(state: LaneState, at_s: float, params: GateParams) -> int:
    """Sends of the log that are still inside the window at ``at_s``."""
    return len(state.sends) - bisect.bisect_right(state.sends, at_s - params.span_s)


def reserve(state: LaneState, now_s: float, params: GateParams, want: int) -> tuple[int, float]:
    """Release budget for the dispatcher: ``(granted, wait_s)``.

    Grants the slots that open within ``lead_s`` less the reservations still out, and reserves
    them. ``wait_s`` (when fewer than ``want``) is when asking again can grant more.
    """
    if want < 0:
        raise ValueError(f"want must be >= 0, got {want}")
    trim(state, now_s, params)
    if not trusted(state, now_s, params):
        probing = state.probe_until_s > now_s or state.reservations
        full = counted_at(state, now_s, params) >= params.limit
        granted = 0 if probing or full else min(want, 1)
        wait_s = 0.0 if granted == want else POLL_S
    else:
        slots = params.limit - len(state.reservations)
        horizon_s = now_s + params.lead_s
        granted = max(0, min(want, slots - counted_at(state, horizon_s, params)))
        wait_s = 0.0
        if granted < want:
            # Reserve what this grant took too: the next slot is one more send further back.
            opens_s = _opening_s(state, params, slots - granted)
            wait_s = MAX_WAIT_HINT_S if opens_s is None else opens_s - params.lead_s - now_s
            wait_s = min(max(wait_s, 0.001), MAX_WAIT_HINT_S)
    expiry_s = now_s + params.reservation_ttl_s
    state.reservations.extend([expiry_s] * granted)  # the latest expiry: the list stays sorted
    return granted, wait_s


def give_back(
    state: LaneState, now_s: float, params: GateParams, n: int, *, deferred: bool = False
) -> None:
    """Drop ``n`` reservations: the dispatcher released fewer jobs than reserved, or
    (``deferred``) a job went back to pending unsent, which is counted."""
    trim(state, now_s, params)
    del state.reservations[: max(0, n)]
    if deferred:
        state.deferred_total += max(0, n)


def permit(state: LaneState, now_s: float, params: GateParams) -> tuple[bool, float]:
    """The send permit: ``(True, 0)`` and the send logged, or ``(False, wait_s)``.

    Grants while fewer than ``limit`` sends lie in the last ``span_s``; an untrusted lane
    besides grants one probe at a time. A grant uses up one reservation.
    """
    trim(state, now_s, params)
    untrusted = not trusted(state, now_s, params)
    if untrusted and state.probe_until_s > now_s:
        return False, POLL_S
    if counted_at(state, now_s, params) >= params.limit:
        opens_s = _opening_s(state, params, params.limit)
        assert opens_s is not None
        return False, max(0.0, opens_s - now_s)
    if untrusted:
        state.probe_until_s = now_s + PROBE_TTL_S
    bisect.insort(state.sends, now_s)
    del state.reservations[:1]
    state.permits_total += 1
    return True, 0.0


def count_stale(state: LaneState) -> None:
    """A permit was granted but not used (its answer came too late to send on): it stays in
    the log, and if it was the probe, the lane may probe again at once."""
    state.stale_total += 1
    state.probe_until_s = 0.0


def record_send(state: LaneState, now_s: float, params: GateParams) -> None:
    """Log a send that took no permit (the gateway served a fallback on this model)."""
    trim(state, now_s, params)
    bisect.insort(state.sends, now_s)


def observe(
    state: LaneState,
    now_s: float,
    params: GateParams,
    *,
    sent_at_s: float,
    counted: int | None,
    reset_s: float | None,
) -> int:
    """Take a gateway report: ``counted`` arrivals in its window (``Limit - Remaining``) when
    the request sent at ``sent_at_s`` arrived, the window refilling ``reset_s`` from now.

    Arrivals the log cannot account for become ghosts that leave the window at the reset. A
    report seeds the lane (it is trusted from now on); none (no headers) only ends the probe.
    Returns the number of ghosts added.
    """
    state.probe_until_s = 0.0
    if counted is None:
        return 0
    trim(state, now_s, params)
    # Sends after the request's (+ the margin) had not reached the gateway when it counted.
    lo = bisect.bisect_right(state.sends, sent_at_s - params.span_s)
    hi = bisect.bisect_right(state.sends, min(sent_at_s + params.margin_s, now_s))
    missing = min(params.limit, counted - (hi - lo))
    # A ghost never outlives one window (a Reset longer than the window is not believed), so
    # ghosts always lie in the past and the log stays a log of sends.
    refill_s = params.window_s if reset_s is None else min(max(reset_s, 0.0), params.window_s)
    at_s = now_s + refill_s - params.span_s
    for _ in range(max(0, missing)):
        bisect.insort(state.sends, at_s)
    state.seeded = True
    return max(0, missing)


def _opening_s(state: LaneState, params: GateParams, slots: int) -> float | None:
    """When the log will hold fewer than ``slots`` sends: the expiry of the oldest send that
    must leave for that (None if ``slots`` < 1: only reservations expiring can help)."""
    if slots < 1:
        return None
    index = len(state.sends) - slots
    if index < 0:
        return -math.inf
    return state.sends[index] + params.span_s
