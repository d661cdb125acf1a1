"""Shared backend on Redis: every dispatcher on every machine draws from the same buckets.

Each write is one Lua script (``*.lua`` beside this module) run on the server's clock
(``TIME``), so dispatchers with skewed clocks agree. Key layout, per bucket key (``region:model``;
the braces are a Redis Cluster hash tag so one script's keys share a slot):

    tbatch:rl:{<key>}:bucket   hash {tokens, ts_us, granted}  PX: refill time from max debt + 1 s
    tbatch:rl:{<key>}:pause    "1" while the model is paused    PX: the pause left
    tbatch:rl:{<key>}:learned  hash {limit, window_s}           PX: the learned limit's TTL

Redis may lose any of these at any time: a lost bucket reads as full (capacity 1, never more), a
lost pause or learned limit as none, so a loss costs at most one extra request per model before
the gateway's 429 pauses it again.
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files
from typing import Any

import redis

from worker.ratelimit import bucket
from worker.ratelimit.backend import BucketSnapshot, Grant
from worker.ratelimit.bucket import BucketParams, BucketState

KEY_PREFIX = "tbatch:rl:"


@cache
def _script_text(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def bucket_key(key: str) -> str:
    return f"{KEY_PREFIX}{{{key}}}:bucket"


def pause_key(key: str) -> str:
    return f"{KEY_PREFIX}{{{key}}}:pause"


def learned_key(key: str) -> str:
    return f"{KEY_PREFIX}{{{key}}}:learned"


def _params_args(params: BucketParams) -> list[str]:
    return [repr(params.rate_per_s), repr(params.capacity), repr(params.max_debt)]


class RedisBackend:
    """Built from a client the caller owns (one per process; never a module-level client)."""

    def __init__(self, client: redis.Redis[Any]) -> None:
        self._client = client
        # register_script runs EVALSHA and reloads the script on NOSCRIPT (e.g. after a restart).
        self._acquire = client.register_script(_script_text("acquire.lua"))
        self._debit = client.register_script(_script_text("debit.lua"))
        self._pause = client.register_script(_script_text("pause.lua"))
        self._learn = client.register_script(_script_text("learn.lua"))

    def acquire(self, key: str, params: BucketParams, want: int) -> Grant:
        if want < 0:
            raise ValueError(f"want must be >= 0, got {want}")
        granted, wait_s = self._acquire(
            keys=[bucket_key(key), pause_key(key)], args=[*_params_args(params), str(want)]
        )
        return Grant(granted=int(granted), wait_s=float(wait_s))

    def debit(self, key: str, params: BucketParams, n: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._debit(keys=[bucket_key(key)], args=[*_params_args(params), str(n)])

    def pause(self, key: str, seconds: float) -> None:
        ms = math.ceil(seconds * 1000)
        if ms > 0:
            self._pause(keys=[pause_key(key)], args=[str(ms)])

    def paused_for(self, key: str) -> float:
        return _pttl_s(self._client.pttl(pause_key(key)))

    def learn_limit(self, key: str, limit: int, window_s: float, ttl_s: float) -> None:
        ttl_ms = math.ceil(ttl_s * 1000)
        if ttl_ms > 0:
            self._learn(keys=[learned_key(key)], args=[str(limit), repr(window_s), str(ttl_ms)])

    def learned_limit(self, key: str) -> tuple[int, float] | None:
        return _learned(self._client.hmget(learned_key(key), ["limit", "window_s"]))

    def snapshot(self, key: str, params: BucketParams) -> BucketSnapshot:
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(bucket_key(key), ["tokens", "ts_us", "granted"])
        pipe.pttl(pause_key(key))
        pipe.hmget(learned_key(key), ["limit", "window_s"])
        pipe.time()
        (tokens, ts_us, granted), pause_ms, learned, (secs, micros) = pipe.execute()
        if tokens is None or ts_us is None:
            state, elapsed_s = bucket.full_bucket(0.0, params), 0.0
        else:
            state = BucketState(tokens=float(tokens), updated_at_s=0.0)
            elapsed_s = (secs * 1_000_000 + micros - int(ts_us)) / 1_000_000
        return BucketSnapshot(
            tokens=bucket.refill(state, elapsed_s, params).tokens,
            paused_for_s=_pttl_s(pause_ms),
            learned_limit=_learned(learned),
            granted_total=int(granted or 0),
        )


def _pttl_s(pttl_ms: Any) -> float:
    # PTTL is -2 for a missing key and -1 for one without TTL (never written by us).
    return max(0, int(pttl_ms)) / 1000


def _learned(values: Any) -> tuple[int, float] | None:
    limit, window_s = values
    if limit is None or window_s is None:
        return None
    return int(limit), float(window_s)
