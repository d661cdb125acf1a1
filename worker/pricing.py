"""What a call cost, to the token, from the catalog's prices and the answer's usage (pure; an
estimate: the gateway bills, and AssemblyAI passes provider prices through).

Per token kind (usage counts cache reads and writes as parts of ``input_tokens``; reasoning as
a part of ``output_tokens`` unless it exceeds it, then beside it):

- fresh input at the input price; cache reads and writes at the catalog's cache prices when it
  has them, else at the provider's multiplier of the input price (``CACHE_RATES``);
- visible output and reasoning ("thinking") at the output price;
- the in-region surcharge: +10% of all of it for calls on or after 2026-07-01 that were not
  sent ``model_region: "global"`` (gateway-api.md 1.4). The catalog's prices are taken as the
  providers' (global) prices, the surcharge added on top; set ``TBATCH_REGION_SURCHARGE=0`` if
  your catalog already lists in-region prices.

An unknown price (no catalog entry, a ``pricing`` tbatch cannot read, no usage) is None, never
zero, and is logged once per model and process.

Cache multipliers of the input price, with where they come from (2026 list prices; override
any of them, or add a model id or id prefix, with ``TBATCH_CACHE_RATES``, JSON such as
``{"anthropic": {"read": 0.1, "write_5m": 1.25}, "gpt-4.1": {"read": 0.25}}``):

- ``anthropic``: read 0.1, 5-minute write 1.25, 1-hour write 2.0 (Anthropic's prompt-caching
  pricing, which the gateway passes through via Bedrock);
- ``openai``: read 0.1 for GPT-5.x (e.g. gpt-5 $1.25 input / $0.125 cached), ``gpt-4.1`` 0.25;
  no write charge (automatic caching);
- ``google``: read 0.25 for Gemini 2.5 implicit caching, ``gemini-3`` 0.1; no write charge;
- ``moonshot`` (Kimi): read 0.1667 (kimi-k2.5: $0.10 cache hit vs $0.60 input); no write charge;
- any other provider (Qwen on Baseten, AssemblyAI-hosted): no discount known, read 1.0 — an
  assumption that over- rather than under-states.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from worker.gateway.types import ModelInfo, Usage

log = logging.getLogger(__name__)

SURCHARGE_SINCE = date(2026, 7, 1)
DEFAULT_SURCHARGE = 0.10
_USD_DIGITS = 8  # every component is rounded to 1e-8 USD, and the total is their sum


@dataclass(frozen=True)
class CacheRates:
    """Multipliers of the input price: a cache read, a 5-minute and a 1-hour cache write."""

    read: float = 1.0
    write_5m: float = 1.0
    write_1h: float = 1.0


CACHE_RATES: dict[str, CacheRates] = {
    "anthropic": CacheRates(read=0.1, write_5m=1.25, write_1h=2.0),
    "openai": CacheRates(read=0.1),
    "gpt-4.1": CacheRates(read=0.25),
    "google": CacheRates(read=0.25),
    "gemini-3": CacheRates(read=0.1),
    "moonshot": CacheRates(read=0.1667),
}
# Model id prefixes -> provider, when the catalog names no creator.
_PREFIXES = {
    "claude": "anthropic",
    "gpt-": "openai",
    "o3": "openai",
    "gemini": "google",
    "kimi": "moonshot",
    "qwen": "alibaba",
}


@dataclass(frozen=True)
class PricingConfig:
    cache_rates: Mapping[str, CacheRates]
    surcharge: float = DEFAULT_SURCHARGE
    surcharge_since: date = SURCHARGE_SINCE

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        surcharge: float = DEFAULT_SURCHARGE,
    ) -> PricingConfig:
        """The default table with ``overrides`` (per provider, model id or id prefix) merged
        in: a key given only ``read`` keeps the default's write rates."""
        rates = dict(CACHE_RATES)
        for key, fields in (overrides or {}).items():
            base = rates.get(key.lower(), CacheRates())
            rates[key.lower()] = CacheRates(**{**asdict(base), **dict(fields)})
        return cls(cache_rates=rates, surcharge=surcharge)


DEFAULT_CONFIG = PricingConfig.build()


def provider_of(info: ModelInfo) -> str:
    if info.creator:
        return info.creator
    for prefix, provider in _PREFIXES.items():
        if info.id.lower().startswith(prefix):
            return provider
    return "unknown"


def cache_rates(info: ModelInfo, config: PricingConfig = DEFAULT_CONFIG) -> CacheRates:
    """The exact model id, then its longest listed prefix, then its provider."""
    table = config.cache_rates
    model = info.id.lower()
    if model in table:
        return table[model]
    prefixes = [key for key in table if model.startswith(key)]
    if prefixes:
        return table[max(prefixes, key=len)]
    return table.get(provider_of(info), CacheRates())


@dataclass(frozen=True)
class CostBreakdown:
    """One call's cost in USD by kind; ``total_usd`` is the sum of the parts. The savings say
    what caching (against every input token at the input price) and global routing (against
    the surcharge) took off; a negative cache saving is writes that were not read back."""

    input_usd: float
    cache_read_usd: float
    cache_write_usd: float
    output_usd: float
    reasoning_usd: float
    surcharge_usd: float
    total_usd: float
    cache_saved_usd: float
    global_saved_usd: float
    global_routing: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(model: str, reason: str) -> None:
    with _warned_lock:
        if model in _warned:
            return
        _warned.add(model)
    log.warning("pricing.unknown", extra={"model": model, "reason": reason})


def unknown_reason(info: ModelInfo | None, model: str | None) -> str | None:
    """Why ``model``'s price is unknown, or None when it is known."""
    if model is None:
        return "the answering model is not known"
    if info is None:
        return "the model is not in the catalog"
    if info.input_usd_per_mtok is None or info.output_usd_per_mtok is None:
        return info.pricing_problem or "the catalog has no price"
    return None


def price_call(
    info: ModelInfo | None,
    usage: Usage,
    *,
    global_routing: bool,
    on: date,
    config: PricingConfig = DEFAULT_CONFIG,
    model: str | None = None,
) -> CostBreakdown | None:
    """The call's cost by kind; None (logged once per model) when a price is unknown."""
    name = model or (info.id if info is not None else None)
    reason = unknown_reason(info, name)
    if reason is None and usage.input_tokens is None and usage.output_tokens is None:
        reason = "the answer carried no usage"
    if reason is not None:
        _warn_once(name or "<unknown model>", reason)
        return None
    assert info is not None and info.input_usd_per_mtok is not None
    assert info.output_usd_per_mtok is not None
    rates = cache_rates(info, config)
    in_price, out_price = info.input_usd_per_mtok / 1e6, info.output_usd_per_mtok / 1e6
    read_price = _per_token(info.cache_read_usd_per_mtok, in_price * rates.read)
    write_price = _per_token(info.cache_write_usd_per_mtok, in_price * rates.write_5m)
    write_1h_price = _per_token(info.cache_write_usd_per_mtok, in_price * rates.write_1h)
    reads, writes = usage.cached_tokens or 0, usage.cache_write_tokens or 0
    writes_1h = min(writes, usage.cache_write_1h_tokens or 0)
    fresh = max(0, (usage.input_tokens or 0) - reads - writes)
    out, reasoning = usage.output_tokens or 0, usage.reasoning_tokens or 0
    visible = out - reasoning if reasoning <= out else out
    parts = {
        "input_usd": fresh * in_price,
        "cache_read_usd": reads * read_price,
        "cache_write_usd": (writes - writes_1h) * write_price + writes_1h * write_1h_price,
        "output_usd": visible * out_price,
        "reasoning_usd": reasoning * out_price,
    }
    base = sum(parts.values())
    surcharged = on >= config.surcharge_since
    surcharge = base * config.surcharge if surcharged else 0.0
    rounded = {k: round(v, _USD_DIGITS) for k, v in parts.items()}
    rounded["surcharge_usd"] = 0.0 if global_routing else round(surcharge, _USD_DIGITS)
    cache_saved = reads * (in_price - read_price) - writes * (write_price - in_price)
    if surcharged and not global_routing:
        cache_saved *= 1 + config.surcharge
    return CostBreakdown(
        **rounded,
        total_usd=round(sum(rounded.values()), _USD_DIGITS),
        cache_saved_usd=round(cache_saved, _USD_DIGITS),
        global_saved_usd=round(surcharge, _USD_DIGITS) if global_routing else 0.0,
        global_routing=global_routing,
    )


def _per_token(catalog_usd_per_mtok: float | None, fallback_per_token: float) -> float:
    return fallback_per_token if catalog_usd_per_mtok is None else catalog_usd_per_mtok / 1e6
