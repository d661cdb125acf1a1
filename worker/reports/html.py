"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script and no
URL, so it opens from a file or an e-mail attachment without network access.

Jinja2 autoescapes everything; charts escape their own text (see :mod:`worker.reports.charts`).
A Content-Security-Policy meta tag forbids any fetch even if something slipped through.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import BaseLoader, Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from worker.reports import charts, fmt
from worker.reports.charts import Bar

__all__ = ["escaping_environment", "render_html"]


def escaping_environment(loader: BaseLoader) -> Environment:
    """A Jinja2 environment for pages that show model, user and transcript text: every
    value escaped, an undefined name an error (not an empty string), and the number filters
    of :mod:`worker.reports.fmt` (the report and the web view print numbers alike)."""
    env = Environment(
        loader=loader,
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        n=fmt.count,
        pct=fmt.pct,
        usd=fmt.usd,
        number=fmt.number,
        delta=fmt.delta,
        in_unit=fmt.in_unit,
    )
    return env


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return escaping_environment(PackageLoader("worker.reports", "templates"))


def render_html(report: dict[str, Any]) -> str:
    sections = field_sections(report["fields"])
    trends = report.get("trends") or None
    return (
        _environment()
        .get_template("report.html.j2")
        .render(r=report, sections=sections, trends=_trend_rows(trends), kpis=_kpis(report, trends))
    )


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "field"


def field_sections(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """One section per field, in schema order; sibling booleans share one yes/no chart."""
    sections: list[dict[str, Any]] = []
    for key, field in fields.items():
        kind = field["kind"]
        if kind == "boolean":
            parent = key.rpartition(".")[0]
            last = sections[-1] if sections else None
            if last and last["kind"] == "boolean" and last["parent"] == parent and parent:
                last["rows"].append(_yes_no_row(key, field))
                continue
            sections.append(_boolean_section(key, field, parent))
        elif kind == "enum":
            sections.append(_enum_section(key, field))
        elif kind == "array_items":
            sections.append(_items_section(key, field))
        else:
            sections.append(_number_section(key, field))
    for section in sections:
        if section["kind"] == "boolean":
            section["chart"] = charts.yes_no_bars(section.pop("rows"), title=section["title"])
    return sections


def _base(key: str, field: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"field-{slug(key)}",
        "key": key,
        "kind": field["kind"],
        "title": field["title"],
        "field": field,
        "stats": None,
        **extra,
    }


def _enum_section(key: str, field: dict[str, Any]) -> dict[str, Any]:
    bars = [Bar(value, value, n, field["shares"][value]) for value, n in field["counts"].items()]
    if field.get("other"):
        bars.append(Bar("other", "other values", field["other"], None))
    per_item = "[]" in field["path"]
    note = (
        f"{fmt.count(field['n'])} items in {fmt.count(field['present'])} calls"
        if per_item
        else f"{fmt.count(field['n'])} calls with an answer"
    )
    chart = charts.bar_chart(bars, metric=key, title=field["title"])
    return _base(key, field, note=note, chart=chart)


def _items_section(key: str, field: dict[str, Any]) -> dict[str, Any]:
    bars = [Bar(item["item"], item["item"], item["count"], item["share"]) for item in field["top"]]
    distinct = "many" if field["distinct"] is None else fmt.count(field["distinct"])
    note = (
        f"share of {fmt.count(field['n'])} calls mentioning each; "
        f"{distinct} distinct, {fmt.number(field['mean_items'])} per call"
    )
    chart = charts.bar_chart(bars, metric=key, title=field["title"])
    return _base(key, field, note=note, chart=chart)


def _number_section(key: str, field: dict[str, Any]) -> dict[str, Any]:
    histogram = field.get("histogram")
    chart = Markup("")
    if histogram:
        whole = field["kind"] == "count" or all(float(e).is_integer() for e in histogram["edges"])
        chart = charts.histogram(
            histogram["edges"], histogram["counts"], metric=key, title=field["title"], integer=whole
        )
    pct = field.get("percentiles") or {}
    stats = [
        ("mean", "Mean", field.get("mean")),
        ("p50", "Median", pct.get("p50")),
        ("p10", "10th pct", pct.get("p10")),
        ("p90", "90th pct", pct.get("p90")),
        ("min", "Min", field.get("min")),
        ("max", "Max", field.get("max")),
    ]
    if field["kind"] == "count":
        stats.append(("total", "Total", field.get("total")))
    note = f"{fmt.count(field['n'])} values"
    if histogram and histogram.get("estimated"):
        note += "; histogram estimated from a sample"
    return _base(key, field, note=note, chart=chart, stats=stats)


def _boolean_section(key: str, field: dict[str, Any], parent: str) -> dict[str, Any]:
    title = _humanise(parent.rpartition(".")[2]) if parent else field["title"]
    note = f"{fmt.count(field['n'])} calls with an answer"
    section = _base(key, field, note=note, parent=parent, rows=[_yes_no_row(key, field)])
    section["title"] = title
    return section


def _yes_no_row(key: str, field: dict[str, Any]) -> tuple[str, str, int, int]:
    label = _humanise(key.rpartition(".")[2]) if "." in key else field["title"]
    return key, label, field["counts"].get("true", 0), field["counts"].get("false", 0)


def _humanise(name: str) -> str:
    words = name.replace("[]", "").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


_KPIS = (
    ("jobs.total", "Calls processed", "count"),
    ("jobs.succeeded", "Succeeded", "count"),
    ("jobs.failed", "Failed", "count"),
    ("jobs.repaired", "Repaired answers", "count"),
    ("jobs.reasks", "Re-asks", "count"),
    ("cost.total_usd", "Cost", "usd"),
)
# The trend metric shown under each headline number.
_KPI_TRENDS = {
    "jobs.total": "jobs.total",
    "jobs.succeeded": "jobs.success_rate",
    "jobs.repaired": "jobs.repaired_rate",
    "cost.total_usd": "cost.total_usd",
}


def _kpis(report: dict[str, Any], trends: dict[str, Any] | None) -> list[dict[str, Any]]:
    jobs, cost = report["jobs"], report["cost"]
    success, failure = fmt.pct(jobs["success_rate"]), fmt.pct(jobs["failure_rate"])
    progress = "all finished" if jobs["complete"] else f"{fmt.count(jobs['active'])} in progress"
    values = {
        "jobs.total": (jobs["total"], progress),
        "jobs.succeeded": (jobs["by_status"]["succeeded"], f"{success} success rate"),
        "jobs.failed": (jobs["by_status"]["failed"], f"{failure} failure rate"),
        "jobs.repaired": (jobs["repaired"], f"{fmt.pct(jobs['repaired_rate'])} of results"),
        "jobs.reasks": (jobs["reasks"], f"in {fmt.plural(jobs['jobs_with_reasks'], 'call')}"),
        "cost.total_usd": (cost["total_usd"], f"{fmt.usd(cost['per_job_usd'])} per call"),
    }
    metrics = (trends or {}).get("metrics") or {}
    cards = []
    for key, label, unit in _KPIS:
        value, note = values[key]
        trend = metrics.get(_KPI_TRENDS.get(key, ""))
        change = None
        if trend and trend["delta"] is not None:
            change = f"{fmt.delta(trend['delta'], trend['unit'])} vs previous night"
        cards.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "unit": unit,
                "note": note,
                "change": change,
            }
        )
    return cards


def _trend_rows(trends: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not trends:
        return []
    rows = []
    for key, metric in trends["metrics"].items():
        spark = charts.sparkline(metric["series"], metric=key)
        rows.append({"key": key, **metric, "spark": spark})
    return rows
