"""Shared backend on Redis: every dispatcher and worker on every machine uses the same gates.

Each gate operation is one run of ``gate.lua`` (beside this module) on the server's clock
(``TIME``), so machines with skewed clocks agree. Key layout, per lane key (``region:model``; the
braces are a Redis Cluster hash tag so one script's keys share a slot):

    tbatch:rl:{<key>}:sends    ZSET of sends by expiry       PX: until the last one expires
    tbatch:rl:{<key>}:ghosts   ZSET of reported arrivals     PX: likewise
    tbatch:rl:{<key>}:resv     ZSET of reservation expiries  PX: likewise
    tbatch:rl:{<key>}:gate     hash {epoch, seeded, probe_until, seq, permits, deferred, stale}
                               (PX: one day)
    tbatch:rl:{<key>}:pause    "1" while the model is paused  PX: the pause left
    tbatch:rl:{<key>}:learned  hash {limit, window_s}         PX: the learned limit's TTL

Redis may lose any of these at any time. A lost ``gate`` hash makes the lane untrusted: one probe,
then whatever its answer's ``X-RateLimit-*`` headers say (``window.observe``); a lost pause or
learned limit reads as none, so a loss costs at most one request per model before the gateway's
headers (or a 429) put the lane right again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from typing import Any

import redis

from worker.errors import LimiterUnavailable
from worker.ratelimit.backend import GateSnapshot, Grant, Permit
from worker.ratelimit.window import GateParams

KEY_PREFIX = "tbatch:rl:"


@cache
def _script_text(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def lane_key(key: str, part: str) -> str:
    return f"{KEY_PREFIX}{{{key}}}:{part}"


def _gate_keys(key: str) -> list[str]:
    return [lane_key(key, part) for part in ("sends", "ghosts", "resv", "gate", "pause")]


def _params_args(params: GateParams) -> list[str]:
    return [
        str(params.limit),
        repr(params.window_s),
        repr(params.margin_s),
        repr(params.lead_s),
        repr(params.reservation_ttl_s),
        repr(params.hold_s),
    ]


class RedisBackend:
    """Built from a client the caller owns (one per process; never a module-level client)."""

    def __init__(self, client: redis.Redis[Any]) -> None:
        self._client = client
        # register_script runs EVALSHA and reloads the script on NOSCRIPT (e.g. after a restart).
        self._gate = client.register_script(_script_text("gate.lua"))
        self._pause = client.register_script(_script_text("pause.lua"))
        self._learn = client.register_script(_script_text("learn.lua"))

    def _run(self, op: str, key: str, params: GateParams, *args: str) -> Any:
        with _guard():
            return self._gate(keys=_gate_keys(key), args=[op, *_params_args(params), *args])

    def reserve(self, key: str, params: GateParams, want: int) -> Grant:
        if want < 0:
            raise ValueError(f"want must be >= 0, got {want}")
        granted, wait_s = self._run("reserve", key, params, str(want))
        return Grant(granted=int(granted), wait_s=float(wait_s))

    def give_back(self, key: str, params: GateParams, n: int, *, deferred: bool = False) -> None:
        self._run("give_back", key, params, str(max(0, n)), "1" if deferred else "0")

    def permit(self, key: str, params: GateParams, max_wait_s: float) -> Permit:
        entry_id, slot_or_wait_s, at_s, probe = self._run("permit", key, params, repr(max_wait_s))
        entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        if not entry:
            return Permit(granted=False, at_s=float(at_s), wait_s=float(slot_or_wait_s))
        slot_s = float(slot_or_wait_s)
        return Permit(True, float(at_s), slot_s=slot_s, entry_id=entry, probe=probe == 1)

    def confirm(self, key: str, params: GateParams, entry_id: str, written_s: float) -> None:
        self._run("confirm", key, params, entry_id, repr(written_s))

    def count_stale(self, key: str, params: GateParams) -> None:
        self._run("stale", key, params)

    def record_send(self, key: str, params: GateParams) -> None:
        self._run("record", key, params)

    def observe(
        self,
        key: str,
        params: GateParams,
        *,
        sent_at_s: float,
        counted: int | None,
        reset_s: float | None,
    ) -> int:
        added = self._run(
            "observe",
            key,
            params,
            repr(sent_at_s),
            "" if counted is None else str(counted),
            "" if reset_s is None else repr(reset_s),
        )
        return int(added)

    def pause(self, key: str, seconds: float) -> None:
        ms = math.ceil(seconds * 1000)
        if ms > 0:
            with _guard():
                self._pause(keys=[lane_key(key, "pause")], args=[str(ms)])

    def paused_for(self, key: str) -> float:
        with _guard():
            return _pttl_s(self._client.pttl(lane_key(key, "pause")))

    def learn_limit(self, key: str, limit: int, window_s: float, ttl_s: float) -> None:
        ttl_ms = math.ceil(ttl_s * 1000)
        if ttl_ms > 0:
            with _guard():
                self._learn(
                    keys=[lane_key(key, "learned")],
                    args=[str(limit), repr(window_s), str(ttl_ms)],
                )

    def learned_limit(self, key: str) -> tuple[int, float] | None:
        with _guard():
            values = self._client.hmget(lane_key(key, "learned"), ["limit", "window_s"])
        return _learned(values)

    def snapshot(self, key: str, params: GateParams) -> GateSnapshot:
        in_window, reserved, trusted, paused_s, permits, deferred, stale = self._run(
            "snapshot", key, params
        )
        return GateSnapshot(
            in_window=int(in_window),
            reserved=int(reserved),
            trusted=bool(int(trusted)),
            paused_for_s=float(paused_s),
            learned_limit=self.learned_limit(key),
            permits_total=int(permits),
            deferred_total=int(deferred),
            stale_total=int(stale),
        )


@contextmanager
def _guard() -> Iterator[None]:
    """Redis errors become ``LimiterUnavailable``: callers decide what no answer means."""
    try:
        yield
    except redis.RedisError as exc:
        raise LimiterUnavailable(f"rate-limit store: {type(exc).__name__}: {exc}") from exc


def _pttl_s(pttl_ms: Any) -> float:
    # PTTL is -2 for a missing key and -1 for one without TTL (never written by us).
    return max(0, int(pttl_ms)) / 1000


def _learned(values: Any) -> tuple[int, float] | None:
    limit, window_s = values
    if limit is None or window_s is None:
        return None
    return int(limit), float(window_s)
