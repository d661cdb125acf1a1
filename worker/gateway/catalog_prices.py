"""A catalog entry's ``pricing``, read defensively (pure).

The public record names the ``pricing`` key but not its shape or units (gateway-api.md 7.2 and
open question 16), so a price is read only when it is unambiguous, and anything else makes the
model's price *unknown* (None), never zero: a wrong price that looks right is worse than none.

Accepted: an object whose values are numbers or numeric strings, keyed

- input: ``input``, ``prompt``, ``input_per_million_tokens``, ``input_per_mtok``, ...;
- output: ``output``, ``completion``, ``output_per_million_tokens``, ...;
- cache reads (optional): ``cache_read``, ``cached_input``, ``input_cache_read``, ...;
- cache writes (optional): ``cache_write``, ``input_cache_write``, ``cache_creation``, ...;

in the unit its ``unit`` key names (``usd_per_million_tokens``, ``usd_per_1k_tokens``,
``usd_per_token``; any other unit is unknown). Without a ``unit``, OpenRouter-style ``prompt`` /
``completion`` keys are per token and every other key per million tokens. A value may also be an
object ``{"value"|"price"|"usd": N, "unit": ...}``. A negative, non-finite or non-numeric price,
a missing input or output price, or a pricing that is not an object is a *problem*, stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INPUT_KEYS = (
    "input",
    "input_per_million_tokens",
    "input_per_mtok",
    "input_per_million",
    "input_usd_per_mtok",
    "prompt",
)
OUTPUT_KEYS = (
    "output",
    "output_per_million_tokens",
    "output_per_mtok",
    "output_per_million",
    "output_usd_per_mtok",
    "completion",
)
CACHE_READ_KEYS = (
    "cache_read",
    "cached_input",
    "input_cache_read",
    "cache_read_input",
    "cache_hit",
    "cache_read_per_million_tokens",
)
CACHE_WRITE_KEYS = (
    "cache_write",
    "input_cache_write",
    "cache_creation",
    "cache_write_5m",
    "cache_write_per_million_tokens",
)
_PER_TOKEN_KEYS = frozenset({"prompt", "completion", "input_cache_read", "input_cache_write"})
# Multiplier from the unit to USD per million tokens.
_UNITS = {
    "usd_per_million_tokens": 1.0,
    "usd_per_mtok": 1.0,
    "per_million_tokens": 1.0,
    "usd_per_1m_tokens": 1.0,
    "usd_per_1k_tokens": 1_000.0,
    "usd_per_thousand_tokens": 1_000.0,
    "per_1k_tokens": 1_000.0,
    "usd_per_token": 1_000_000.0,
    "per_token": 1_000_000.0,
}
_VALUE_KEYS = ("value", "price", "usd", "amount")


@dataclass(frozen=True)
class CatalogPrices:
    """USD per million tokens; ``problem`` says why the price is unknown (then all are None)."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None
    problem: str | None = None


class _Bad(Exception):
    pass


def _scale(unit: Any, key: str) -> float:
    if unit is None:
        return 1_000_000.0 if key in _PER_TOKEN_KEYS else 1.0
    scale = _UNITS.get(str(unit).strip().lower()) if isinstance(unit, str) else None
    if scale is None:
        raise _Bad(f"unknown pricing unit {unit!r}")
    return scale


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise _Bad(f"{where} is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{where} is {value!r}, not a number") from None
    if not math.isfinite(number) or number < 0:
        raise _Bad(f"{where} is {value!r}, not a price")
    return number


def _read(pricing: dict[str, Any], keys: tuple[str, ...], unit: Any) -> float | None:
    for key in keys:
        if key not in pricing or pricing[key] is None:
            continue
        value = pricing[key]
        if isinstance(value, dict):
            inner = next((value[k] for k in _VALUE_KEYS if k in value), None)
            return _number(inner, f"pricing.{key}") * _scale(value.get("unit", unit), key)
        return _number(value, f"pricing.{key}") * _scale(unit, key)
    return None


def parse_pricing(pricing: Any) -> CatalogPrices:
    """The prices of one catalog entry, or the problem that makes them unknown."""
    if pricing is None:
        return CatalogPrices(problem="the catalog entry has no pricing")
    if not isinstance(pricing, dict):
        return CatalogPrices(problem=f"pricing is a {type(pricing).__name__}, not an object")
    unit = pricing.get("unit")
    try:
        input_price = _read(pricing, INPUT_KEYS, unit)
        output_price = _read(pricing, OUTPUT_KEYS, unit)
        if input_price is None or output_price is None:
            missing = "input" if input_price is None else "output"
            raise _Bad(f"pricing has no {missing} price (keys: {sorted(pricing)})")
        return CatalogPrices(
            input=input_price,
            output=output_price,
            cache_read=_read(pricing, CACHE_READ_KEYS, unit),
            cache_write=_read(pricing, CACHE_WRITE_KEYS, unit),
        )
    except _Bad as bad:
        return CatalogPrices(problem=str(bad))
