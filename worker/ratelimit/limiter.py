"""The facade the dispatcher and the workers use: per-model limits, learned limits, pauses, and
the send gate (``window``) that holds each limit at the moment of the call.

The dispatcher calls ``acquire`` and releases exactly ``granted`` jobs of that model (giving back
what it could not release); a worker calls ``permit`` as the last step before its request leaves
and reports every answer's ``X-RateLimit-*`` headers through ``observe``. Nothing here waits for
a window: ``permit`` waits only for the exact moment a slot opens, and at most ``max_wait_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from worker import metrics
from worker.errors import LimiterUnavailable, SendDeferred
from worker.gateway.types import RateLimitInfo
from worker.ratelimit.backend import Grant, RateLimitBackend
from worker.ratelimit.config import DEFAULT_REGION, Limit, RateLimitConfig, stricter
from worker.ratelimit.window import GateParams
from worker.settings import Settings

DEFAULT_LEARNED_TTL_S = 3600.0
# A learned limit is read from the backend at most this often per process (it changes rarely;
# every call asking for it would be a round trip on the hot path).
LEARNED_CACHE_S = 1.0
MIN_RESERVATION_TTL_S = 5.0


def bucket_key(model: str, region: str | None) -> str:
    """One lane per model per region (the gateway limits each account per model)."""
    return f"{(region or DEFAULT_REGION).lower()}:{model}"


@dataclass(frozen=True, slots=True)
class GateTiming:
    """The gate's margins, the same for every model (see ``Settings``)."""

    margin_s: float = 0.05
    lead_s: float = 0.5
    max_wait_s: float = 1.0
    hold_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> GateTiming:
        return cls(
            margin_s=settings.send_margin_ms / 1000,
            lead_s=settings.permit_lead_s,
            max_wait_s=settings.permit_max_wait_s,
        )

    @property
    def stale_after_s(self) -> float:
        """A permit is not used if we are this much past its slot before writing: the write
        must follow within ``hold_s`` of the slot, and this leaves the other half for it."""
        return self.hold_s / 2

    @property
    def reservation_ttl_s(self) -> float:
        # Long enough for any job released to reach a worker and wait its turn.
        return max(MIN_RESERVATION_TTL_S, 2 * (self.lead_s + self.max_wait_s))


@dataclass(frozen=True, slots=True)
class SendPermit:
    """A granted permit: its lane, its log entry, its time on the backend's clock (``at_s``)
    and when we asked for it on ours (``asked_s``)."""

    key: str
    params: GateParams
    entry_id: str
    at_s: float
    asked_s: float
    probe: bool = False


class ModelLimiter:
    def __init__(
        self,
        backend: RateLimitBackend,
        config: RateLimitConfig,
        *,
        timing: GateTiming | None = None,
        learned_ttl_s: float = DEFAULT_LEARNED_TTL_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._config = config
        self._timing = timing or GateTiming()
        self._learned_ttl_s = learned_ttl_s
        self._sleep = sleep
        self._clock = clock
        self._learned_cache: dict[str, tuple[float, tuple[int, float] | None]] = {}

    def limit(self, model: str, region: str | None) -> Limit | None:
        """The limit enforced now: the configured one, or a lower one learned from the gateway."""
        configured = self._config.limit_for(model, region)
        if configured is None:
            return None
        learned = self._learned(bucket_key(model, region))
        return stricter(configured, None if learned is None else Limit(*learned))

    def _learned(self, key: str) -> tuple[int, float] | None:
        now_s = self._clock()
        cached = self._learned_cache.get(key)
        if cached is not None and cached[0] > now_s:
            return cached[1]
        learned = self._backend.learned_limit(key)
        self._learned_cache[key] = (now_s + LEARNED_CACHE_S, learned)
        return learned

    def params(self, model: str, region: str | None) -> GateParams | None:
        limit = self.limit(model, region)
        if limit is None:
            return None
        t = self._timing
        return GateParams(
            limit=limit.requests,
            window_s=limit.window_s,
            margin_s=t.margin_s,
            lead_s=t.lead_s,
            reservation_ttl_s=t.reservation_ttl_s,
            hold_s=t.hold_s,
        )

    # -- the dispatcher ------------------------------------------------------------------------

    def acquire(self, model: str, region: str | None, want: int) -> Grant:
        """Release budget for up to ``want`` jobs (reserved until their permits). An unlimited
        model gets ``want`` unless it is paused."""
        key = bucket_key(model, region)
        params = self.params(model, region)
        if params is None:
            paused_s = self._backend.paused_for(key)
            return Grant(0, paused_s) if paused_s > 0 else Grant(want, 0.0)
        return self._backend.reserve(key, params, want)

    def give_back(self, model: str, region: str | None, n: int) -> None:
        """Return ``n`` reservations: jobs granted but not released, or sent back unsent."""
        params = self.params(model, region)
        if params is not None and n > 0:
            self._backend.give_back(bucket_key(model, region), params, n)

    # -- the worker ----------------------------------------------------------------------------

    def permit(self, model: str, region: str | None) -> SendPermit | None:
        """Wait (at most ``max_wait_s``) for the send permit; call ``written`` with it once the
        request is out. None for an unlimited model. Raises ``SendDeferred`` when no permit
        opens in time (the reservation is given back then) or the store does not answer."""
        try:
            return self._permit(model, region)
        except LimiterUnavailable as exc:  # no permit to be had: nothing is sent
            raise SendDeferred(model, region or DEFAULT_REGION, 1.0) from exc

    def written(self, permit: SendPermit) -> float:
        """The permitted request is written: confirm its log entry with the write time, an upper
        bound on the backend's clock (the time the backend answered the permit, plus all that
        passed here since we asked for it). Returns that time."""
        written_s = self._latest_now_s(permit)
        self._backend.confirm(permit.key, permit.params, permit.entry_id, written_s)
        return written_s

    def _permit(self, model: str, region: str | None) -> SendPermit | None:
        key = bucket_key(model, region)
        params = self.params(model, region)
        if params is None:
            paused_s = self._backend.paused_for(key)
            if paused_s > self._timing.max_wait_s:
                raise SendDeferred(model, region or DEFAULT_REGION, paused_s)
            if paused_s > 0:
                self._sleep(paused_s)
            return None
        deadline = self._clock() + self._timing.max_wait_s
        while True:
            asked_s = self._clock()
            permit = self._backend.permit(key, params, max(0.0, deadline - asked_s))
            answered_s = self._clock()
            if not permit.granted:
                if permit.wait_s > deadline - answered_s:
                    self._backend.give_back(key, params, 1, deferred=True)
                    raise SendDeferred(model, region or DEFAULT_REGION, permit.wait_s)
                self._sleep(max(permit.wait_s, 0.0005))  # a probe's answer, or a pause, ends
                continue
            # The answer left the backend at or after ``at_s``: sleeping the slot's distance
            # from now on never wakes before the slot.
            self._sleep_until(answered_s + (permit.slot_s - permit.at_s))
            granted = SendPermit(
                key, params, permit.entry_id, permit.at_s, asked_s, probe=permit.probe
            )
            if self._latest_now_s(granted) <= permit.slot_s + self._timing.stale_after_s:
                return granted
            # Too late to write within the entry's hold: it stays held; book another slot.
            self._backend.count_stale(key, params)
            metrics.STALE_PERMITS.labels(model).inc()

    def _latest_now_s(self, permit: SendPermit) -> float:
        """An upper bound of the backend's clock now."""
        return permit.at_s + (self._clock() - permit.asked_s)

    def _sleep_until(self, when_s: float) -> None:
        left_s = when_s - self._clock()
        if left_s > 0:
            self._sleep(left_s)

    def observe(
        self,
        model: str,
        region: str | None,
        sent_at_s: float | None,
        info: RateLimitInfo,
        *,
        probe: bool = True,
    ) -> None:
        """Take what one answer's ``X-RateLimit-*`` headers say, for the model they name.

        A lower ``Limit`` than configured is learned (window: the configured one). For a
        ``probe``'s answer, ``Limit - Remaining`` arrivals the gate's log cannot account for are
        added to it; a permit granted on a trusted lane needs no report (``window.observe``
        ignores it there), so it costs no store round trip.
        """
        model = info.model or model
        configured = self._config.limit_for(model, region)
        if configured is None:
            return
        key = bucket_key(model, region)
        if info.limit is not None and 1 <= info.limit < configured.requests:
            self._backend.learn_limit(key, info.limit, configured.window_s, self._learned_ttl_s)
            self._learned_cache.pop(key, None)
        if not probe:
            return
        params = self.params(model, region)
        if params is None or sent_at_s is None:
            return
        counted = None
        if info.limit is not None and info.remaining is not None:
            counted = info.limit - info.remaining
        self._backend.observe(
            key, params, sent_at_s=sent_at_s, counted=counted, reset_s=info.reset_s
        )

    def on_429(
        self, model: str, region: str | None, retry_after_s: float | None, cap_s: float
    ) -> float:
        """Pause the model everywhere for ``Retry-After`` (else one window), at most ``cap_s``.
        Returns the pause requested."""
        if retry_after_s is None or retry_after_s <= 0:
            limit = self.limit(model, region)
            retry_after_s = cap_s if limit is None else limit.window_s
        pause_s = min(retry_after_s, cap_s)
        self._backend.pause(bucket_key(model, region), pause_s)
        return pause_s

    def debit_fallback(self, model_answered: str, region: str | None) -> None:
        """Log one send on the model that answered in place of the one we asked for."""
        params = self.params(model_answered, region)
        if params is not None:
            self._backend.record_send(bucket_key(model_answered, region), params)

    def status(self, models: Iterable[str], region: str | None = None) -> list[dict[str, Any]]:
        """One row per model for ``tbatch status``."""
        rows: list[dict[str, Any]] = []
        for model in models:
            key = bucket_key(model, region)
            params = self.params(model, region)
            row: dict[str, Any] = {
                "model": model,
                "region": (region or DEFAULT_REGION).lower(),
                "limit": None if params is None else params.limit,
                "window_s": None if params is None else params.window_s,
                "in_window": None,
                "reserved": None,
                "trusted": None,
                "paused_for_s": self._backend.paused_for(key),
                "learned_limit": None,
                "permits_total": None,
                "deferred_total": None,
                "stale_total": None,
            }
            if params is not None:
                snap = self._backend.snapshot(key, params)
                row |= {
                    "in_window": snap.in_window,
                    "reserved": snap.reserved,
                    "trusted": snap.trusted,
                    "paused_for_s": snap.paused_for_s,
                    "learned_limit": None if snap.learned_limit is None else snap.learned_limit[0],
                    "permits_total": snap.permits_total,
                    "deferred_total": snap.deferred_total,
                    "stale_total": snap.stale_total,
                }
            rows.append(row)
        return rows
