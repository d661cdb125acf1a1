"""JSON for the view's API and `tbatch batches --json`: timestamps as ISO 8601."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    """``json.dumps`` default: datetimes and dates as ISO 8601, decimals as floats."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, default=jsonable, indent=indent, ensure_ascii=False)
