"""Compare tonight's report with previous nights' reports (their JSON, as written by tbatch).

Key numbers: jobs, success rate, each enum value's share, each boolean's share of ``true``, each
number field's mean, total cost and cost per job. A number missing from an older report (a field
added since) is ``None`` there and simply has no delta.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare", "headline"]

# Units: "rate" (a 0..1 share; its delta reads as percentage points), "usd", "count", "number".
_RATE = "rate"


def headline(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"label", "unit", "value"}}`` for every number worth following night to night."""
    jobs = report.get("jobs") or {}
    cost = report.get("cost") or {}
    out: dict[str, dict[str, Any]] = {
        "jobs.total": _m("Calls processed", "count", jobs.get("total")),
        "jobs.success_rate": _m("Success rate", _RATE, jobs.get("success_rate")),
        "jobs.repaired_rate": _m("Repaired answers", _RATE, jobs.get("repaired_rate")),
        "cost.total_usd": _m("Total cost", "usd", cost.get("total_usd")),
        "cost.per_job_usd": _m("Cost per call", "usd", cost.get("per_job_usd")),
    }
    for key, field in (report.get("fields") or {}).items():
        title = field.get("title") or key
        if field.get("kind") in ("enum", "boolean"):
            for value, share in (field.get("shares") or {}).items():
                if field["kind"] == "boolean" and value != "true":
                    continue
                label = f"{title}: {value}" if field["kind"] == "enum" else title
                out[f"share:{key}={value}"] = _m(label, _RATE, share)
        elif field.get("kind") in ("number", "count"):
            out[f"mean:{key}"] = _m(f"{title} (mean)", "number", field.get("mean"))
    return out


def _m(label: str, unit: str, value: Any) -> dict[str, Any]:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    return {"label": label, "unit": unit, "value": number}


def night_label(report: dict[str, Any]) -> str:
    batch = report.get("batch") or {}
    when = str(batch.get("created_at") or report.get("generated_at") or "")[:10]
    return when or f"batch {batch.get('id', '?')}"


def compare(current: dict[str, Any], previous: list[dict[str, Any]]) -> dict[str, Any]:
    """Deltas of ``current`` against the last of ``previous`` (ordered by their batch date) and
    the series of every key number over all nights, oldest first, ending with ``current``."""
    ordered = sorted(previous, key=lambda r: str((r.get("batch") or {}).get("created_at") or ""))
    now = headline(current)
    past = [headline(report) for report in ordered]
    metrics: dict[str, Any] = {}
    for key, info in now.items():
        series = [p.get(key, {}).get("value") for p in past]
        value = info["value"]
        last = next((v for v in reversed(series) if v is not None), None)
        known = [v for v in series if v is not None]
        average = sum(known) / len(known) if known else None
        metrics[key] = {
            "label": info["label"],
            "unit": info["unit"],
            "current": value,
            "previous": last,
            "delta": _delta(value, last),
            "delta_pct": _relative(value, last),
            "mean_previous": None if average is None else round(average, 6),
            "delta_vs_mean": _delta(value, average),
            "series": [*series, value],
        }
    return {
        "nights": [night_label(r) for r in ordered] + [night_label(current)],
        "previous_count": len(ordered),
        "metrics": metrics,
    }


def _delta(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else round(value - base, 6)


def _relative(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return round((value - base) / abs(base), 6)
