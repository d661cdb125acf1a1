"""Per-model rate limits from settings: ``"claude-sonnet-4-6=30/60s,eu:gemini-2.5-flash=off"``.

Grammar, entries separated by commas (blank entries ignored):

    entry  := [region ":"] model "=" limit
    limit  := "off" | requests "/" number unit        unit := "ms" | "s" | "m"

An entry with a region applies to that region only and wins over an entry without one; a model
named nowhere gets the default (``settings.default_rate_limit``, which may be ``off``). ``off``
means no limit is enforced (a 429 still pauses the model).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from worker.errors import ConfigError
from worker.gateway.types import REGIONS
from worker.settings import Settings

DEFAULT_REGION = "us"
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0}
_LIMIT_RE = re.compile(r"^(?P<requests>\d+)\s*/\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m)$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@+-]*$")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``requests`` per ``window_s`` (the gateway's fixed window)."""

    requests: int
    window_s: float

    def __str__(self) -> str:
        return f"{self.requests}/{self.window_s:g}s"


def parse_limit(text: str) -> Limit | None:
    """``"30/60s"`` -> ``Limit(30, 60.0)``; ``"off"`` -> None. Raises ``ValueError`` with why."""
    text = text.strip()
    if text.lower() == "off":
        return None
    match = _LIMIT_RE.match(text)
    if match is None:
        raise ValueError("expected 'off' or N/<window> with a unit of ms, s or m (e.g. 30/60s)")
    requests = int(match["requests"])
    window_s = float(match["number"]) * _UNIT_S[match["unit"]]
    if requests < 1:
        raise ValueError("the request count must be at least 1 (use 'off' for no limit)")
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError("the window must be longer than zero")
    return Limit(requests=requests, window_s=window_s)


def stricter(configured: Limit | None, learned: Limit | None) -> Limit | None:
    """The limit to enforce: a learned limit applies only when it is lower than the configured
    one (in requests per second); ``off`` (None) stays off."""
    if configured is None or learned is None:
        return configured
    if learned.requests * configured.window_s < configured.requests * learned.window_s:
        return learned
    return configured


@dataclass(frozen=True)
class RateLimitConfig:
    default: Limit | None
    # (region or None, model) -> limit (None = off)
    entries: Mapping[tuple[str | None, str], Limit | None]

    @classmethod
    def parse(cls, rate_limits: str, default: str = "30/60s") -> RateLimitConfig:
        try:
            default_limit = parse_limit(default)
        except ValueError as exc:
            raise ConfigError(f"default rate limit {default!r}: {exc}") from None
        entries: dict[tuple[str | None, str], Limit | None] = {}
        for raw in rate_limits.split(","):
            if raw.strip():
                scope, limit = _parse_entry(raw.strip())
                if scope in entries:
                    raise ConfigError(f"rate limit entry {raw.strip()!r}: duplicate entry")
                entries[scope] = limit
        return cls(default=default_limit, entries=entries)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitConfig:
        """Build from ``settings.rate_limits`` and ``settings.default_rate_limit``."""
        return cls.parse(settings.rate_limits, settings.default_rate_limit)

    def limit_for(self, model: str, region: str | None = None) -> Limit | None:
        """The configured limit for ``model`` in ``region``; None means unlimited."""
        region = (region or DEFAULT_REGION).lower()
        for scope in ((region, model), (None, model)):
            if scope in self.entries:
                return self.entries[scope]
        return self.default


def _parse_entry(entry: str) -> tuple[tuple[str | None, str], Limit | None]:
    name, sep, spec = entry.partition("=")
    if not sep:
        raise ConfigError(f"rate limit entry {entry!r}: expected model=N/<window> or model=off")
    region: str | None = None
    name = name.strip()
    if ":" in name:
        region, _, name = (part.strip() for part in name.partition(":"))
        region = region.lower()
        if region not in REGIONS:
            raise ConfigError(
                f"rate limit entry {entry!r}: unknown region {region!r} "
                f"(known: {', '.join(REGIONS)})"
            )
    if not _MODEL_RE.match(name):
        raise ConfigError(f"rate limit entry {entry!r}: bad model name {name!r}")
    try:
        limit = parse_limit(spec)
    except ValueError as exc:
        raise ConfigError(f"rate limit entry {entry!r}: {exc}") from None
    return (region, name), limit
