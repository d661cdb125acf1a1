"""The facade the dispatcher uses: per-model limits from config, learned limits, pauses.

Dispatchers call ``acquire`` and release exactly ``granted`` jobs of that model; workers report
what the gateway said through ``on_response``, ``on_429`` and ``debit_fallback``. Nothing here
waits: a caller that got fewer tokens than it wanted comes back after ``wait_s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from worker.ratelimit.backend import Grant, RateLimitBackend
from worker.ratelimit.config import DEFAULT_REGION, Limit, RateLimitConfig, stricter

LIMIT_HEADER = "x-ratelimit-limit"
DEFAULT_LEARNED_TTL_S = 3600.0


def bucket_key(model: str, region: str | None) -> str:
    """One bucket per model per region (the gateway limits each account per model)."""
    return f"{(region or DEFAULT_REGION).lower()}:{model}"


class ModelLimiter:
    def __init__(
        self,
        backend: RateLimitBackend,
        config: RateLimitConfig,
        *,
        learned_ttl_s: float = DEFAULT_LEARNED_TTL_S,
    ) -> None:
        self._backend = backend
        self._config = config
        self._learned_ttl_s = learned_ttl_s

    def limit(self, model: str, region: str | None) -> Limit | None:
        """The limit enforced now: the configured one, or a lower one learned from the gateway."""
        configured = self._config.limit_for(model, region)
        if configured is None:
            return None
        learned = self._backend.learned_limit(bucket_key(model, region))
        return stricter(configured, None if learned is None else Limit(*learned))

    def acquire(self, model: str, region: str | None, want: int) -> Grant:
        """Take up to ``want`` tokens. An unlimited model gets ``want`` unless it is paused."""
        key = bucket_key(model, region)
        limit = self.limit(model, region)
        if limit is None:
            paused_s = self._backend.paused_for(key)
            return Grant(0, paused_s) if paused_s > 0 else Grant(want, 0.0)
        return self._backend.acquire(key, limit.params, want)

    def on_response(
        self, model: str, region: str | None, rate_limit_headers: Mapping[str, str]
    ) -> None:
        """Learn a limit lower than configured from ``X-RateLimit-Limit`` (window: configured)."""
        configured = self._config.limit_for(model, region)
        reported = _header_int(rate_limit_headers, LIMIT_HEADER)
        if configured is None or reported is None or reported < 1:
            return
        if reported < configured.requests:
            self._backend.learn_limit(
                bucket_key(model, region), reported, configured.window_s, self._learned_ttl_s
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
        """Charge one request to the model that answered in place of the one we asked for."""
        limit = self.limit(model_answered, region)
        if limit is not None:
            self._backend.debit(bucket_key(model_answered, region), limit.params, 1)

    def status(self, models: Iterable[str], region: str | None = None) -> list[dict[str, Any]]:
        """One row per model for ``tbatch status``."""
        rows: list[dict[str, Any]] = []
        for model in models:
            key = bucket_key(model, region)
            limit = self.limit(model, region)
            row: dict[str, Any] = {
                "model": model,
                "region": (region or DEFAULT_REGION).lower(),
                "limit": None if limit is None else limit.requests,
                "window_s": None if limit is None else limit.window_s,
                "tokens": None,
                "paused_for_s": self._backend.paused_for(key),
                "learned_limit": None,
                "granted_total": None,
            }
            if limit is not None:
                snap = self._backend.snapshot(key, limit.params)
                row |= {
                    "tokens": snap.tokens,
                    "paused_for_s": snap.paused_for_s,
                    "learned_limit": None if snap.learned_limit is None else snap.learned_limit[0],
                    "granted_total": snap.granted_total,
                }
            rows.append(row)
        return rows


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    """First integer of a header, found case-insensitively (``"30"`` or ``"30;w=60"``)."""
    for header, value in headers.items():
        if header.lower() == name:
            digits = ""
            for char in str(value).strip():
                if not char.isdigit():
                    break
                digits += char
            return int(digits) if digits else None
    return None
