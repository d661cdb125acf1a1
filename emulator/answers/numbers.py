"""Numbers within ``minimum``/``maximum`` (inclusive or exclusive) and ``multipleOf``.

When a schema gives no bounds, the property name picks a plausible range (a 1-10 score, a 0-1
confidence, a small count) so answers read like a model's, not like random noise.
"""

from __future__ import annotations

import math
import random
from typing import Any

_HINTS: tuple[tuple[tuple[str, ...], float, float], ...] = (
    (("confidence", "probability", "ratio", "share", "likelihood"), 0.0, 1.0),
    (("percent", "pct"), 0.0, 100.0),
    (("score", "rating"), 1.0, 10.0),
    (("count", "number", "num_", "total", "quantity"), 0.0, 12.0),
    (("minute", "second", "duration"), 1.0, 60.0),
    (("amount", "price", "balance", "cost", "revenue"), 10.0, 5000.0),
)


def _default_range(name: str) -> tuple[float, float]:
    low = name.lower()
    for words, lo, hi in _HINTS:
        if any(w in low for w in words):
            return lo, hi
    return 0.0, 100.0


def _bounds(s: dict[str, Any], name: str) -> tuple[float, float, bool, bool]:
    """(lo, hi, lo_exclusive, hi_exclusive), defaulted by name and clipped to the schema."""
    dlo, dhi = _default_range(name)
    lo, lo_ex = s.get("minimum"), False
    if "exclusiveMinimum" in s and (lo is None or s["exclusiveMinimum"] >= lo):
        lo, lo_ex = s["exclusiveMinimum"], True
    hi, hi_ex = s.get("maximum"), False
    if "exclusiveMaximum" in s and (hi is None or s["exclusiveMaximum"] <= hi):
        hi, hi_ex = s["exclusiveMaximum"], True
    if lo is None and hi is None:
        return dlo, dhi, False, False
    if lo is None:
        assert hi is not None
        lo = min(dlo, float(hi) - (dhi - dlo))
    if hi is None:
        hi = max(dhi, float(lo) + (dhi - dlo))
    return float(lo), float(hi), lo_ex, hi_ex


def _is_multiple(value: float, step: float) -> bool:
    """The same test jsonschema applies (float division must give an integral quotient)."""
    if isinstance(step, float) or isinstance(value, float):
        quotient = value / step
        return math.isfinite(quotient) and int(quotient) == quotient
    return value % step == 0


def make_integer(rng: random.Random, s: dict[str, Any], name: str) -> int:
    lo, hi, lo_ex, hi_ex = _bounds(s, name)
    ilo = math.floor(lo) + 1 if lo_ex else math.ceil(lo)
    ihi = math.ceil(hi) - 1 if hi_ex else math.floor(hi)
    step = s.get("multipleOf")
    if step:
        k_lo, k_hi = math.ceil(ilo / step), math.floor(ihi / step)
        for _ in range(20):
            value = int(rng.randint(k_lo, max(k_lo, k_hi)) * step)
            if _is_multiple(value, step) and ilo <= value <= ihi:
                return value
        return int(k_lo * step)
    return rng.randint(ilo, max(ilo, ihi))


def make_number(rng: random.Random, s: dict[str, Any], name: str) -> float | int:
    lo, hi, lo_ex, hi_ex = _bounds(s, name)
    step = s.get("multipleOf")
    if step:
        k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
        for _ in range(40):
            k = rng.randint(k_lo, max(k_lo, k_hi))
            value = round(k * step, 10)
            if _is_multiple(value, step) and _inside(value, lo, hi, lo_ex, hi_ex):
                return int(value) if value == int(value) else value
        return int(k_lo * step) if float(step).is_integer() else k_lo * step
    for _ in range(10):
        value = round(rng.uniform(lo, hi), 2)
        if _inside(value, lo, hi, lo_ex, hi_ex):
            return value
    return (lo + hi) / 2


def _inside(value: float, lo: float, hi: float, lo_ex: bool, hi_ex: bool) -> bool:
    above = value > lo if lo_ex else value >= lo
    below = value < hi if hi_ex else value <= hi
    return above and below
