"""Aggregate validated results field by field, streaming, in bounded memory.

``Aggregator(specs)`` takes one result's ``data`` at a time (``add``) and returns the ``fields``
part of the report (``finish``). Job-level facts (statuses, failures, cost) live in
:mod:`worker.reports.facts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

from worker.reports.spec import FieldSpec, enum_key, parse_path, values_at
from worker.reports.stats import NumberSummary, TopCounter

__all__ = ["Aggregator"]

# Distinct free-text items (topics) kept per field; beyond this the counts become approximate.
ITEM_CAPACITY = 2000


class _Field(Protocol):
    def add(self, values: list[Any]) -> None: ...
    def finish(self) -> dict[str, Any]: ...


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


class _Counts:
    """``enum`` and ``boolean``: how often each value was chosen."""

    def __init__(self, spec: FieldSpec) -> None:
        seed = ("true", "false") if spec.kind == "boolean" else spec.values
        self.spec = spec
        self.counter = TopCounter(max(ITEM_CAPACITY // 10, spec.top * 10), seed_keys=seed)

    def add(self, values: list[Any]) -> None:
        for value in values:
            if self.spec.kind == "boolean" and not isinstance(value, bool):
                continue
            if value is not None and not isinstance(value, dict | list):
                self.counter.add(enum_key(value))

    def finish(self) -> dict[str, Any]:
        known = list(self.counter.counts) if self.spec.kind == "boolean" else list(self.spec.values)
        extra = [k for k, _ in self.counter.most_common() if k not in set(known)]
        shown = known + extra[: self.spec.top]
        total = self.counter.total
        counts = {key: self.counter.counts.get(key, 0) for key in shown}
        return {
            "n": total,
            "counts": counts,
            "shares": {key: _share(n, total) for key, n in counts.items()},
            "other": total - sum(counts.values()),
        }


class _Items:
    """``array_items``: the most frequent items, each counted once per result."""

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec
        self.counter = TopCounter(max(ITEM_CAPACITY, spec.top * 10), seed_keys=spec.values)
        self.arrays = 0
        self.items = 0

    def add(self, values: list[Any]) -> None:
        for value in values:
            items = value if isinstance(value, list) else [value]
            self.arrays += 1
            self.items += len(items)
            seen: set[str] = set()
            for item in items:
                if item is None or isinstance(item, dict | list):
                    continue
                label = " ".join(enum_key(item).split())
                key = label.casefold()  # "Billing" and "billing " are one topic
                if key not in seen:
                    seen.add(key)
                    self.counter.add(key, label=label)

    def finish(self) -> dict[str, Any]:
        top = [
            {"item": self.counter.label(key), "count": n, "share": _share(n, self.arrays)}
            for key, n in self.counter.most_common(self.spec.top)
        ]
        return {
            "n": self.arrays,
            "items": self.items,
            "mean_items": round(self.items / self.arrays, 6) if self.arrays else None,
            "distinct": self.counter.distinct,
            "approximate": self.counter.approximate,
            "top": top,
        }


class _Numbers:
    """``number`` (values) and ``count`` (lengths of arrays)."""

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec
        self.summary = NumberSummary(
            bins=spec.bins,
            minimum=spec.minimum,
            maximum=spec.maximum,
            integer=spec.integer or spec.kind == "count",
        )
        self.total = 0

    def add(self, values: list[Any]) -> None:
        for value in values:
            if self.spec.kind == "count":
                if isinstance(value, list):
                    self.total += len(value)
                    self.summary.add(len(value))
            elif _is_number(value) and math.isfinite(value):
                self.summary.add(float(value))

    def finish(self) -> dict[str, Any]:
        out = self.summary.finish()
        out["n"] = out.pop("count")
        if self.spec.kind == "count":
            out["total"] = self.total
        return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _make(spec: FieldSpec) -> _Field:
    if spec.kind in ("enum", "boolean"):
        return _Counts(spec)
    if spec.kind == "array_items":
        return _Items(spec)
    return _Numbers(spec)


class Aggregator:
    """Streams result data into per-field statistics; state is bounded per field."""

    def __init__(self, specs: Iterable[FieldSpec]) -> None:
        self.results = 0
        self._fields: list[tuple[str, FieldSpec, tuple[tuple[str, int], ...], _Field]] = []
        self._present: dict[str, int] = {}
        for spec in specs:
            key = spec.path if spec.path not in self._present else f"{spec.path}:{spec.kind}"
            self._present[key] = 0
            self._fields.append((key, spec, parse_path(spec.path), _make(spec)))

    def add(self, data: Any) -> None:
        self.results += 1
        for key, _spec, steps, field in self._fields:
            values = values_at(data, steps)
            if values:
                self._present[key] += 1
                field.add(values)

    def finish(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for key, spec, _steps, field in self._fields:
            fields[key] = {
                "path": spec.path,
                "kind": spec.kind,
                "title": spec.title,
                "present": self._present[key],
                "missing": self.results - self._present[key],
                **field.finish(),
            }
        return {"results": self.results, "fields": fields}
