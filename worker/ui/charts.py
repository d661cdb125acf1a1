"""Inline SVG for the view, built like the reports' charts (:mod:`worker.reports.charts`: every
text escaped, every mark with ``data-metric``/``data-count`` so tests read the numbers back):
a batch's progress bar, and one model's calls per minute with its limit and its 429s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup

from worker.reports import fmt
from worker.reports.charts import _svg, _tag  # the reports' escaping element builders

#: Colours per job state (the progress bar and its legend, ui.css uses the same).
STATE_COLOURS = {
    "succeeded": "#2e9d5b",
    "failed": "#d1495b",
    "cancelled": "#9aa5b1",
    "running": "#3d6fb6",
    "queued": "#5a9bd4",
    "pending": "#d9dee5",
}
#: The widest a minute's bar gets (px), however few minutes there are.
MAX_SLOT = 28.0


def progress_bar(counts: Mapping[str, int], *, metric: str, width: int = 260) -> Markup:
    """One stacked bar: each state's share of the batch, final states first."""
    total = sum(counts.values())
    x = 0.0
    marks: list[Markup] = [_tag("rect", x=0, y=0, width=width, height=14, rx=3, class_="track")]
    for state, colour in STATE_COLOURS.items():
        n = counts.get(state, 0)
        if not n or not total:
            continue
        w = round(width * n / total, 2)
        marks.append(
            _tag(
                "rect",
                _tag("title", f"{state}: {fmt.count(n)}"),
                x=round(x, 2),
                y=0,
                width=w,
                height=14,
                fill=colour,
                data_metric=f"{metric}.{state}",
                data_count=n,
            )
        )
        x += w
    return _svg(width, 14, f"{fmt.count(total)} jobs by state", marks, "progress")


def minute_chart(
    model: str,
    minutes: Sequence[Mapping[str, Any]],
    limit_per_min: float | None,
    *,
    width: int = 720,
    height: int = 180,
) -> Markup:
    """Bars of calls per minute (answers used in green, the rest grey), a dashed line at the
    model's limit per minute, and a red mark with the count over each minute that had 429s."""
    left, right, top_pad, base_y = 40, 10, 18, height - 28
    plot_h = base_y - top_pad
    peak = max((int(m["calls"]) for m in minutes), default=0)
    top = max(peak, limit_per_min or 0, 1)
    # A bar per minute, but never wider than MAX_SLOT: a batch of a few minutes shows a few
    # bars at the left rather than one block across the chart.
    slot = min((width - left - right) / max(len(minutes), 1), MAX_SLOT)
    marks: list[Markup] = [
        _tag("line", x1=left, y1=base_y, x2=width - right, y2=base_y, class_="axis"),
        _tag("text", fmt.count(top), x=left - 6, y=top_pad + 4, text_anchor="end", class_="tick"),
        _tag("text", "0", x=left - 6, y=base_y + 4, text_anchor="end", class_="tick"),
    ]
    for i, m in enumerate(minutes):
        marks.append(_minute(i, m, left + i * slot, slot, base_y, plot_h / top, model))
        if i == 0 or i == len(minutes) - 1 or (len(minutes) > 12 and i % 10 == 0):
            marks.append(
                _tag(
                    "text",
                    _hhmm(m["minute"]),
                    x=round(left + i * slot + slot / 2, 1),
                    y=base_y + 16,
                    text_anchor="middle",
                    class_="tick",
                )
            )
    if limit_per_min is not None:
        y = round(base_y - limit_per_min * plot_h / top, 1)
        marks.append(
            _tag(
                "g",
                _tag("line", x1=left, y1=y, x2=width - right, y2=y, class_="limit"),
                _tag(
                    "text",
                    f"limit {fmt.number(limit_per_min)}/min",
                    x=width - right,
                    y=y - 4,
                    text_anchor="end",
                    class_="limit-label",
                ),
                class_="limit-line",
                data_metric=f"limit.{model}",
                data_count=limit_per_min,
            )
        )
    return _svg(width, height, f"{model}: calls per minute", marks, "chart minutes")


def _minute(
    i: int, m: Mapping[str, Any], x: float, slot: float, base_y: float, scale: float, model: str
) -> Markup:
    calls, answered, n429 = int(m["calls"]), int(m["answered"]), int(m["http_429"])
    w = round(max(slot - 2, 1), 1)
    h_all, h_ok = round(calls * scale, 1), round(answered * scale, 1)
    label = f"{_hhmm(m['minute'])}: {calls} calls, {answered} answered, {n429} x 429"
    parts: list[Markup | str] = [
        _tag("title", label),
        _tag(
            "rect",
            x=round(x + 1, 1),
            y=round(base_y - h_all, 1),
            width=w,
            height=h_all,
            class_="calls",
        ),
        _tag(
            "rect",
            x=round(x + 1, 1),
            y=round(base_y - h_ok, 1),
            width=w,
            height=h_ok,
            class_="answered",
        ),
    ]
    if n429:
        parts.append(
            _tag(
                "circle",
                cx=round(x + slot / 2, 1),
                cy=round(base_y - h_all - 7, 1),
                r=4,
                class_="r429",
                data_metric=f"429.{model}.{i}",
                data_count=n429,
            )
        )
    return _tag(
        "g",
        *parts,
        class_="minute",
        data_metric=f"minute.{model}.{i}",
        data_count=calls,
        data_answered=answered,
        data_429=n429,
    )


def _hhmm(value: datetime | str) -> str:
    return value.strftime("%H:%M") if isinstance(value, datetime) else str(value)[11:16]
