"""The emulator's configuration: one pydantic model, built by the CLI or by tests.

Structural fields (host, port, region, seed, transcripts) are fixed at start. The behavioural
fields listed in ``RUNTIME_FIELDS`` can be changed on a running emulator through
``POST /_emulator/config`` so a test can turn faults or limits on and off without a restart.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emulator.world.catalog import Family

FaultKind = Literal[
    "5xx",
    "429",
    "malformed",
    "code_fence",
    "prose",
    "trailing_comma",
    "single_quotes",
    "python_literals",
    "truncated_json",
    "unrepairable",
    "schema_violation",
    "refusal",
    "truncation",
    "hang",
]

#: The concrete malformations ``malformed`` picks from (deterministically per request).
MALFORMED_KINDS: tuple[str, ...] = (
    "code_fence",
    "prose",
    "trailing_comma",
    "single_quotes",
    "python_literals",
    "truncated_json",
)


class Latency(BaseModel):
    """Per-attempt latency: uniform in [ms - jitter_ms, ms + jitter_ms], floored at 0."""

    model_config = ConfigDict(extra="forbid")
    ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)


class ModelLimit(BaseModel):
    """A fixed-window limit: ``limit`` requests per ``window_s`` seconds per (key, model)."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(ge=1)
    window_s: float = Field(gt=0)


class FaultRule(BaseModel):
    """One fault rule. The first rule (in list order) whose dice fall under ``rate`` applies.

    ``times`` limits the rule to the first N requests of each (model, transcript) pair, counted
    per pair so the outcome does not depend on how concurrent requests interleave.
    """

    model_config = ConfigDict(extra="forbid")
    kind: FaultKind
    model: str = "*"
    transcript_ids: list[str] | None = None
    times: int | None = Field(default=None, ge=0)
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    status: int | None = Field(default=None, ge=500, le=599)
    retry_after_s: int | None = Field(default=None, ge=0)

    def matches(self, model: str, transcript_id: str | None) -> bool:
        if self.model not in ("*", model):
            return False
        return self.transcript_ids is None or transcript_id in self.transcript_ids


class EmulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=0, le=65535)
    region: Literal["us", "eu"] = "us"
    seed: int = 0
    transcripts: int = Field(default=200, ge=0)
    transcripts_file: Path | None = None
    transcript_days: int = Field(default=7, ge=1)
    today: date | None = None
    api_key: str | None = None
    rate_limit: int = Field(default=30, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    model_limits: dict[str, ModelLimit] = Field(default_factory=dict)
    # "fixed": a window opens at the first request after the last closed (as observed live);
    # "sliding": at most N arrivals in any window_s (a stricter gateway, for testing clients).
    window_kind: Literal["fixed", "sliding"] = "fixed"
    rate_limit_enabled: bool = True
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)
    model_latency: dict[str, Latency] = Field(default_factory=dict)
    faults: list[FaultRule] = Field(default_factory=list)
    hang_s: float = Field(default=300.0, ge=0)
    retry_delay_s: float = Field(default=0.5, ge=0)
    no_access_models: list[str] = Field(default_factory=list)
    # Families whose non-streamed 200 bodies carry no top-level "model" (the June 2026 Claude
    # recording, gateway-api.md 4.3). Default (): tbatch's tests assert which model answered a
    # Claude fallback, and the worker can only tell from the top-level model.
    omit_model_for: tuple[Family, ...] = ()

    def limit_for(self, model: str) -> ModelLimit:
        # model_construct: the values were validated with this config; this is the hot path
        return self.model_limits.get(model) or ModelLimit.model_construct(
            limit=self.rate_limit, window_s=self.window_s
        )

    def latency_for(self, model: str) -> Latency:
        return self.model_latency.get(model) or Latency.model_construct(
            ms=self.latency_ms, jitter_ms=self.latency_jitter_ms
        )


#: Fields ``POST /_emulator/config`` may change; the rest need a restart.
RUNTIME_FIELDS = frozenset(
    {
        "api_key",
        "rate_limit",
        "window_s",
        "model_limits",
        "window_kind",
        "rate_limit_enabled",
        "latency_ms",
        "latency_jitter_ms",
        "model_latency",
        "faults",
        "hang_s",
        "retry_delay_s",
        "no_access_models",
        "omit_model_for",
    }
)
LIMIT_FIELDS = frozenset(
    {"rate_limit", "window_s", "model_limits", "window_kind", "rate_limit_enabled"}
)


def apply_update(config: EmulatorConfig, update: dict[str, Any]) -> EmulatorConfig:
    """A new config with ``update`` applied; unknown or start-only fields raise ``ValueError``."""
    bad = sorted(set(update) - RUNTIME_FIELDS)
    if bad:
        raise ValueError(f"fields not changeable at runtime: {', '.join(bad)}")
    fixed = dict(update)
    if isinstance(fixed.get("model_limits"), dict):
        fixed["model_limits"] = {
            k: parse_limit(v) if isinstance(v, str) else v for k, v in fixed["model_limits"].items()
        }
    merged = config.model_dump() | fixed
    return EmulatorConfig.model_validate(merged)


def parse_limit(text: str) -> ModelLimit:
    """``"60/6"`` or ``"60/6s"`` -> 60 requests per 6 seconds."""
    count, _, window = text.partition("/")
    if not window:
        raise ValueError(f"limit {text!r} is not N/SECONDS")
    return ModelLimit(limit=int(count), window_s=float(window.rstrip("s")))


def parse_model_limit(text: str) -> tuple[str, ModelLimit]:
    """``"claude-sonnet-4-6=60/6"`` -> (model, limit)."""
    model, _, spec = text.partition("=")
    if not model or not spec:
        raise ValueError(f"model limit {text!r} is not MODEL=N/SECONDS")
    return model, parse_limit(spec)


def parse_model_latency(text: str) -> tuple[str, Latency]:
    """``"gpt-5=800/200"`` -> (model, 800 ms +- 200 ms)."""
    model, _, spec = text.partition("=")
    ms, _, jitter = spec.partition("/")
    if not model or not ms:
        raise ValueError(f"model latency {text!r} is not MODEL=MS[/JITTER_MS]")
    return model, Latency(ms=float(ms), jitter_ms=float(jitter or 0))


def parse_fault(text: str) -> FaultRule:
    """``"5xx=0.1"``, ``"claude-sonnet-4-6:malformed=0.2"``, or a JSON rule object."""
    text = text.strip()
    try:
        if text.startswith("{"):
            return FaultRule.model_validate(json.loads(text))
        head, _, rate = text.rpartition("=")
        if not head:
            head, rate = rate, "1"
        model, _, kind = head.rpartition(":")
        return FaultRule.model_validate({"kind": kind, "model": model or "*", "rate": float(rate)})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"bad fault {text!r}: {problems}") from exc
