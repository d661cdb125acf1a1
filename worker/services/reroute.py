"""Where a job goes when its input overflows its model's context (pure: tested without servers).

The gateway answers an input plus ``max_tokens`` that do not fit the model with a 400 ("model
context limit exceeded"), and its own fallbacks do not rescue validation errors; so tbatch
reroutes the job itself, to the largest-context model the job's region serves. A re-route is
one call of its own, to that model alone, with ``max_tokens`` fitted to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date

from worker.gateway.types import ModelInfo


def retired(info: ModelInfo, today: date) -> bool:
    return info.retirement_date is not None and info.retirement_date <= today


def reroute_target(
    catalog: Mapping[str, ModelInfo],
    region: str,
    *,
    overflowed: str,
    allowed: Collection[str],
    today: date,
) -> ModelInfo | None:
    """The eligible model with the largest context above ``overflowed``'s, or None.

    Eligible: in this region's catalog and serving the region, not retired, and in ``allowed``
    when it names any (``TBATCH_OVERFLOW_MODELS``). Among equal contexts the cheaper input wins.
    An unknown context never qualifies: a re-route must be known to be bigger.
    """
    base = catalog.get(overflowed)
    floor = base.context_length if base is not None and base.context_length else 0
    candidates = [
        info
        for info in catalog.values()
        if info.context_length is not None
        and info.context_length > floor
        and info.id != overflowed
        and (not allowed or info.id in allowed)
        and (info.available_regions is None or region in info.available_regions)
        and not retired(info, today)
    ]
    return max(
        candidates,
        key=lambda i: (i.context_length or 0, -(i.input_usd_per_mtok or 0.0), i.id),
        default=None,
    )
