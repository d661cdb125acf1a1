"""The send gate's arithmetic: a sliding log of sends per (region, model), time passed in.

The gateway counts *arrivals*: at most ``limit`` per ``window_s``. The gate holds that on the
sends themselves. Each send is one entry of the log, kept until the send can no longer be in the
gateway's window: ``written + window_s + margin_s``, where ``margin_s`` covers the way from the
socket to the gateway. A permit books the first moment (its *slot*) at which fewer than
``limit`` entries are alive, after every slot booked before it; the worker sends at that moment.

When the permit is granted, the bytes have not left yet (the worker writes them at its slot,
but a busy interpreter can take a while). So the entry is first *held* as if written up to
``hold_s`` after the slot; once the request is written, the worker *confirms* it with the write
time (an upper bound, on the store's clock), which shortens the entry to exactly what it must
cover. A worker that could not write within ``hold_s / 2`` of its slot does not send at all.

Why that is exact: suppose ``limit + 1`` arrivals fell in one window of the gateway, and let j be
the one with the latest slot. Slots are booked in order, so every other one, k, was booked before
j; k arrived less than ``window_s`` before j's arrival, so it was written less than
``window_s + margin_s`` before j's slot: its entry was alive at j's slot (held or confirmed)
when j was booked, so ``limit`` entries were, and j could not have that slot. This holds for any
gateway window, fixed or sliding, whatever happened upstream (a slow commit, a broker hop, a
busy CPU) or between the permit and the write.

Beside the log the gate keeps what the dispatcher needs to release a *lead*, not a burst:

- **reservations**: jobs released to the broker that have not taken their permit yet. The
  dispatcher may release only the slots that open within ``lead_s`` minus those already
  reserved; a reservation expires after ``reservation_ttl_s`` (a lost message frees its slot).
- **ghosts**: arrivals the gateway reported (``X-RateLimit-Limit - Remaining``) that the log does
  not hold (another client on the account, or a log that was lost): entries that stay until the
  gateway said its window refills.
- **trust**: a lane whose store is younger than one window (a new or flushed Redis, a restarted
  embedded process) does not know what the gateway still counts. It sends one *probe* and waits
  for the answer's headers, which seed the ghosts; until then nothing else is granted. A lost
  history therefore costs one call's latency, never a burst into a window that is still full.

Every backend (``memory_backend``; ``gate.lua`` for Redis) applies exactly these functions;
``tests/integration/test_ratelimit_contract.py`` checks that they agree.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

PROBE_TTL_S = 10.0  # a probe whose answer never came (worker died) is retried after this
POLL_S = 0.05  # how soon to ask again while waiting for a probe's answer
MAX_WAIT_HINT_S = 0.25  # a dispatcher limited by reservations looks again this soon


@dataclass(frozen=True, slots=True)
class GateParams:
    """One lane's gate: ``limit`` sends alive per ``window_s + margin_s``; release ``lead_s``
    ahead; a permitted send is held ``hold_s`` longer until its write is confirmed."""

    limit: int
    window_s: float
    margin_s: float = 0.05
    lead_s: float = 0.5
    reservation_ttl_s: float = 5.0
    hold_s: float = 2.0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        for name in ("window_s", "reservation_ttl_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive and finite, got {value}")
        for name in ("margin_s", "lead_s", "hold_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value}")

    @property
    def span_s(self) -> float:
        """How long a written send stays in the log: the gateway's window plus the margin."""
        return self.window_s + self.margin_s


@dataclass(slots=True)
class LaneState:
    """What one lane's store holds. ``epoch_s`` is when the store started keeping this lane."""

    epoch_s: float
    entries: list[tuple[float, str]] = field(default_factory=list)  # sends: sorted (expiry, id)
    expiry_of: dict[str, float] = field(default_factory=dict)
    ghosts: list[float] = field(default_factory=list)  # sorted expiries
    reservations: list[float] = field(default_factory=list)  # sorted expiry times
    seeded: bool = False  # a gateway report has told the lane what the gateway counts
    probe_until_s: float = 0.0
    last_slot_s: float = 0.0  # the latest slot booked: later permits book after it
    permits_total: int = 0
    deferred_total: int = 0  # jobs sent back unsent: no permit within the bound
    stale_total: int = 0  # permits granted but not used (the write could not follow in time)
    seq: itertools.count[int] = field(default_factory=itertools.count)


def new_lane(now_s: float) -> LaneState:
    """A lane with no history: it trusts nothing until one window has passed or a report came."""
    return LaneState(epoch_s=now_s)


def _add(state: LaneState, expiry_s: float) -> str:
    entry_id = f"s{next(state.seq)}"
    bisect.insort(state.entries, (expiry_s, entry_id))
    state.expiry_of[entry_id] = expiry_s
    return entry_id


def trim(state: LaneState, now_s: float, params: GateParams) -> None:
    """Forget entries that expired and reservations that did."""
    cut = bisect.bisect_right(state.entries, (now_s, "\uffff"))
    for _expiry, entry_id in state.entries[:cut]:
        del state.expiry_of[entry_id]
    del state.entries[:cut]
    del state.ghosts[: bisect.bisect_right(state.ghosts, now_s)]
    del state.reservations[: bisect.bisect_right(state.reservations, now_s)]


def trusted(state: LaneState, now_s: float, params: GateParams) -> bool:
    """The log covers every send the gateway still counts (or a report said what it counts)."""
    return state.seeded or now_s - state.epoch_s >= params.span_s


def alive_at(state: LaneState, at_s: float) -> int:
    """Entries of the log (sends and ghosts) still alive at ``at_s``."""
    sends = len(state.entries) - bisect.bisect_right(state.entries, (at_s, "\uffff"))
    return sends + len(state.ghosts) - bisect.bisect_right(state.ghosts, at_s)


def reserve(state: LaneState, now_s: float, params: GateParams, want: int) -> tuple[int, float]:
    """Release budget for the dispatcher: ``(granted, wait_s)``.

    Grants the slots free within ``lead_s`` less the reservations still out, and reserves
    them. ``wait_s`` (when fewer than ``want``) is when asking again can grant more.
    """
    if want < 0:
        raise ValueError(f"want must be >= 0, got {want}")
    trim(state, now_s, params)
    if not trusted(state, now_s, params):
        probing = state.probe_until_s > now_s or state.reservations
        full = alive_at(state, now_s) >= params.limit
        granted = 0 if probing or full else min(want, 1)
        wait_s = 0.0 if granted == want else POLL_S
    else:
        slots = params.limit - len(state.reservations)
        granted = max(0, min(want, slots - alive_at(state, now_s + params.lead_s)))
        wait_s = 0.0
        if granted < want:
            # Reserve what this grant took too: the next slot is one more entry further back.
            opens_s = _opening_s(state, slots - granted)
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


def permit(
    state: LaneState, now_s: float, params: GateParams, max_wait_s: float
) -> tuple[str | None, float]:
    """The send permit: ``(entry_id, slot_s)``, the send held in the log for the time
    ``slot_s >= now_s`` at which it may leave; or ``(None, wait_s)`` when no slot opens within
    ``max_wait_s`` (nothing is booked then).

    Slots are booked in order, each the first moment fewer than ``limit`` entries are alive
    and no earlier than the last one booked: so every send is checked against all that were
    booked before it, and waiting workers never race for the same opening. An untrusted lane
    grants one probe at a time, and only at once. A grant uses up one reservation.
    """
    trim(state, now_s, params)
    untrusted = not trusted(state, now_s, params)
    if untrusted and state.probe_until_s > now_s:
        return None, POLL_S
    slot_s = max(now_s, state.last_slot_s)
    if alive_at(state, slot_s) >= params.limit:
        opens_s = _opening_s(state, params.limit)
        assert opens_s is not None
        slot_s = max(slot_s, opens_s)
    if slot_s - now_s > max_wait_s or (untrusted and slot_s > now_s):
        return None, slot_s - now_s
    if untrusted:
        state.probe_until_s = now_s + PROBE_TTL_S
    entry_id = _add(state, slot_s + params.hold_s + params.span_s)
    state.last_slot_s = slot_s
    del state.reservations[:1]
    state.permits_total += 1
    return entry_id, slot_s


def confirm(
    state: LaneState, now_s: float, params: GateParams, entry_id: str, written_s: float
) -> None:
    """The permitted send was written by ``written_s`` (store clock): its entry now ends at
    ``written_s + span_s`` (never later than it was held)."""
    trim(state, now_s, params)
    held_s = state.expiry_of.get(entry_id)
    if held_s is None:
        return
    expiry_s = min(held_s, written_s + params.span_s)
    state.entries.remove((held_s, entry_id))
    bisect.insort(state.entries, (expiry_s, entry_id))
    state.expiry_of[entry_id] = expiry_s


def count_stale(state: LaneState) -> None:
    """A permit was granted but not used (the write could not follow in time): its entry stays
    held, and if it was the probe, the lane may probe again at once."""
    state.stale_total += 1
    state.probe_until_s = 0.0


def record_send(state: LaneState, now_s: float, params: GateParams) -> None:
    """Log a send that took no permit (the gateway served a fallback on this model)."""
    trim(state, now_s, params)
    _add(state, now_s + params.span_s)


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
    the request written at ``sent_at_s`` arrived, the window refilling ``reset_s`` from now.

    On an untrusted lane, arrivals the log cannot account for become ghosts that stay until the
    reset, and the lane is seeded (trusted from now on); none (no headers) only ends the probe.
    A trusted lane's log holds every send of the fleet, and it is what counts: comparing it with
    a report cannot be exact (a write time is known only to within its permit's round trip, and
    in a burst many sends share that moment), and a ghost wrongly added holds a slot for a whole
    window. Another client on the account is met by the 429 pause. Returns the ghosts added.
    """
    state.probe_until_s = 0.0
    if counted is None or trusted(state, now_s, params):
        return 0
    trim(state, now_s, params)
    # Sends the gateway could have counted: written in (sent_at - span, sent_at + margin], so
    # alive until some time in (sent_at, sent_at + margin + span]. Later ones (and entries
    # still held) are left out: too few counted means more ghosts, the safe side. Ghosts alive
    # then stand for arrivals an earlier report counted: they are not added twice.
    upper_s = sent_at_s + params.margin_s + params.span_s
    lo = bisect.bisect_right(state.entries, (sent_at_s, "\uffff"))
    hi = bisect.bisect_right(state.entries, (upper_s, "\uffff"))
    ghosts = len(state.ghosts) - bisect.bisect_right(state.ghosts, sent_at_s)
    missing = min(params.limit, counted - (hi - lo) - ghosts)
    # A ghost never outlives one window: a Reset longer than the window is not believed.
    refill_s = params.window_s if reset_s is None else min(max(reset_s, 0.0), params.window_s)
    for _ in range(max(0, missing)):
        bisect.insort(state.ghosts, now_s + refill_s)
    state.seeded = True
    return max(0, missing)


def _opening_s(state: LaneState, slots: int) -> float | None:
    """When fewer than ``slots`` entries will be alive: the expiry of the oldest one that must
    go for that (None if ``slots`` < 1: only reservations expiring can help)."""
    if slots < 1:
        return None
    expiries = sorted([e for e, _ in state.entries] + state.ghosts)
    index = len(expiries) - slots
    if index < 0:
        return -math.inf
    return expiries[index]
