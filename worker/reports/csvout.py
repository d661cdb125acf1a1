"""The report as CSV: one row per metric, ``section, field, key, value`` (pivot-table friendly)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

HEADER = ("section", "field", "key", "value")
Row = tuple[str, str, str, Any]


def report_rows(report: dict[str, Any]) -> Iterator[Row]:
    batch = report.get("batch") or {}
    for key in ("id", "name", "created_at"):
        yield "batch", "", key, batch.get(key)
    yield "batch", "", "generated_at", report.get("generated_at")
    jobs = report["jobs"]
    yield from _scalars("jobs", "", jobs)
    for status, n in jobs["by_status"].items():
        yield "jobs", "status", status, n
    yield "failures", "", "total", report["failures"]["total"]
    for reason in report["failures"]["by_reason"]:
        yield "failures", reason["reason"], "count", reason["count"]
        yield "failures", reason["reason"], "share", reason["share"]
    attempts = report["attempts"]
    yield from _scalars("attempts", "", attempts)
    for outcome, n in attempts["by_outcome"].items():
        yield "attempts", "outcome", outcome, n
    yield from _scalars("cost", "", report["cost"])
    for model in report["cost"]["by_model"]:
        rest = {k: v for k, v in model.items() if k != "model"}
        yield from _scalars("cost_by_model", model["model"], rest)
    for key, field in report["fields"].items():
        yield from _field_rows(key, field)
    for key, metric in ((report.get("trends") or {}).get("metrics") or {}).items():
        for name in ("current", "previous", "delta", "delta_pct", "mean_previous"):
            yield "trends", key, name, metric[name]


def _scalars(section: str, field: str, values: dict[str, Any]) -> Iterator[Row]:
    for key, value in values.items():
        if not isinstance(value, dict | list):
            yield section, field, key, value


def _field_rows(key: str, field: dict[str, Any]) -> Iterator[Row]:
    yield from _scalars("fields", key, field)
    for value, n in (field.get("counts") or {}).items():
        yield "fields", key, f"count:{value}", n
        yield "fields", key, f"share:{value}", field["shares"][value]
    for item in field.get("top") or []:
        yield "fields", key, f"top:{item['item']}", item["count"]
    for name, value in (field.get("percentiles") or {}).items():
        yield "fields", key, name, value
    histogram = field.get("histogram") or {}
    edges = histogram.get("edges") or []
    for index, n in enumerate(histogram.get("counts") or []):
        yield "fields", key, f"bin:[{edges[index]:g},{edges[index + 1]:g})", n


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (``=HYPERLINK(...)``) is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def write_csv(report: dict[str, Any], out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(HEADER)
    count = 0
    for row in report_rows(report):
        writer.writerow([_cell(v) for v in row])
        count += 1
    return count
