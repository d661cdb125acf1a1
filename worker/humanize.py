"""Numbers for people: durations, counts, token counts and dollars, shared by the terminal
(`tbatch status`, `wait`, `batches`) and the web view so both say the same thing."""

from __future__ import annotations


def human_duration(seconds: float | None) -> str:
    """``59s``, ``2m 05s``, ``1h 02m``, ``3d 04h``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def human_count(n: int | None) -> str:
    """Thousands separated: ``12,345``."""
    return "-" if n is None else f"{n:,}"


def human_tokens(n: int) -> str:
    """``950``, ``12.3k``, ``4.56M``: token counts are read at a glance, not to the unit."""
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def human_cost(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 1 else f"${usd:.4f}"
