"""Number formats for people: ``12,345``, ``45.6%``, ``$0.0123``, ``+2.1 pts``."""

from __future__ import annotations

from typing import Any

NONE = "\N{EN DASH}"  # shown where there is no number
_MINUS = "\N{MINUS SIGN}"


def count(value: Any) -> str:
    return NONE if value is None else f"{int(value):,}"


def plural(n: int, noun: str) -> str:
    return f"{count(n)} {noun}{'' if n == 1 else 's'}"


def pct(share: Any, digits: int = 1) -> str:
    return NONE if share is None else f"{share * 100:.{digits}f}%"


def number(value: Any) -> str:
    if value is None:
        return NONE
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    digits = 3 if magnitude < 10 else 2 if magnitude < 1000 else 0
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if digits else text


def usd(value: Any) -> str:
    if value is None:
        return NONE
    if value == 0:
        return "$0.00"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def edge(value: float, integer: bool) -> str:
    return f"{int(value)}" if integer else f"{value:g}"


def delta(value: Any, unit: str) -> str:
    """A signed change: points for rates, dollars for cost, plain otherwise."""
    if value is None:
        return NONE
    sign = "+" if value > 0 else _MINUS if value < 0 else "±"
    magnitude = abs(value)
    if unit == "rate":
        return f"{sign}{magnitude * 100:.1f} pts"
    if unit == "usd":
        return f"{sign}{usd(magnitude)}"
    if unit == "count":
        return f"{sign}{int(magnitude):,}"
    return f"{sign}{number(magnitude)}"


def in_unit(value: Any, unit: str) -> str:
    if unit == "rate":
        return pct(value)
    if unit == "usd":
        return usd(value)
    if unit == "count":
        return count(value)
    return number(value)
