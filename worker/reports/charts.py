"""Inline SVG charts built in Python: horizontal bars, a histogram, stacked yes/no bars and a
sparkline. Every piece of text is escaped here (results come from an LLM and may hold HTML);
every mark carries ``data-metric`` and ``data-count`` so tests can read the numbers back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from worker.reports import fmt

FONT = 13
ROW_H = 26
LABEL_W = 170
VALUE_W = 110
_LABEL_CHARS = 24

# Colours carry meaning for common words; anything else takes the neutral palette in turn.
_MEANING = {
    "positive": "#2e9d5b",
    "resolved": "#2e9d5b",
    "true": "#2e9d5b",
    "yes": "#2e9d5b",
    "negative": "#d1495b",
    "unresolved": "#d1495b",
    "escalated": "#e07b39",
    "false": "#9aa5b1",
    "neutral": "#8d99ae",
    "mixed": "#e0a800",
    "follow_up": "#e0a800",
    "no": "#9aa5b1",
}
_PALETTE = ("#3d6fb6", "#5a9bd4", "#7a68a6", "#4aa3a2", "#b86f9c", "#6b8e23", "#c47c2b")


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    count: int
    share: float | None


def colour(key: str, index: int) -> str:
    return _MEANING.get(key.casefold(), _PALETTE[index % len(_PALETTE)])


def _attrs(**attrs: object) -> str:
    """`` name="value"`` pairs, values escaped; ``data_metric`` becomes ``data-metric``."""
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for name, v in attrs.items()
    )


def _tag(name: str, *children: str | Markup, **attrs: object) -> Markup:
    """An element whose text children are escaped and whose Markup children are kept."""
    body = "".join(escape(child) for child in children)
    return Markup(f"<{name}{_attrs(**attrs)}>{body}</{name}>")


def _svg(
    width: int, height: int, label: str, body: list[Markup], cls: str, **extra: object
) -> Markup:
    box = f"0 0 {width} {height}"
    return _tag(
        "svg",
        *body,
        viewBox=box,
        width=width,
        height=height,
        role="img",
        aria_label=label,
        class_=cls,
        **extra,
    )


def _clip(text: str, chars: int = _LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _label(text: str, y: float) -> Markup:
    return _tag("text", _clip(text), x=LABEL_W - 8, y=y + 17, text_anchor="end", class_="label")


def _row_bar(y: float, width: float, fill: str) -> Markup:
    """The bar of a horizontal row at ``y`` (bars, yes/no shares)."""
    return _tag("rect", x=LABEL_W, y=y + 4, width=width, height=ROW_H - 8, rx=3, fill=fill)


def bar_chart(bars: Sequence[Bar], *, metric: str, title: str, width: int = 520) -> Markup:
    """One row per value: label, a bar scaled to the largest count, then ``count · share``."""
    top = max((b.count for b in bars), default=0) or 1
    span = width - LABEL_W - VALUE_W
    rows: list[Markup] = []
    for i, bar in enumerate(bars):
        y = i * ROW_H
        length = round(max(bar.count / top * span, 2 if bar.count else 0), 1)
        text = fmt.count(bar.count)
        if bar.share is not None:
            text += f" · {fmt.pct(bar.share)}"
        share = "" if bar.share is None else bar.share
        rows.append(
            _tag(
                "g",
                _tag("title", f"{bar.label}: {text}"),
                _label(bar.label, y),
                _row_bar(y, length, colour(bar.key, i)),
                _tag("text", text, x=LABEL_W + length + 6, y=y + 17, class_="value"),
                class_="bar",
                data_metric=f"{metric}.{bar.key}",
                data_count=bar.count,
                data_share=share,
            )
        )
    return _svg(width, max(len(bars), 1) * ROW_H, title, rows, "chart bars")


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    metric: str,
    title: str,
    integer: bool = False,
    width: int = 520,
    height: int = 190,
) -> Markup:
    """Vertical bars over ``edges``; counts on top, bin edges (or whole values) underneath."""
    n = len(counts)
    top = max(counts, default=0) or 1
    left, base_y, plot_h = 14, height - 36, height - 56
    slot = (width - 2 * left) / max(n, 1)
    whole = integer and all(edges[i + 1] - edges[i] == 1 for i in range(n))
    marks = [_tag("line", x1=left, y1=base_y, x2=width - left, y2=base_y, class_="axis")]
    for i, c in enumerate(counts):
        x, h = left + i * slot, round(c / top * plot_h, 1)
        lo, hi = fmt.edge(edges[i], integer), fmt.edge(edges[i + 1], integer)
        span = lo if whole else f"{lo}\N{EN DASH}{hi}"
        marks.append(
            _tag(
                "g",
                _tag("title", f"{span}: {fmt.count(c)}"),
                _tag(
                    "rect",
                    x=round(x + 2, 1),
                    y=round(base_y - h, 1),
                    width=round(slot - 4, 1),
                    height=h,
                    rx=2,
                    class_="hist",
                ),
                _tag(
                    "text",
                    fmt.count(c) if c else "",
                    x=round(x + slot / 2, 1),
                    y=round(base_y - h - 5, 1),
                    text_anchor="middle",
                    class_="value",
                ),
                class_="bin",
                data_metric=f"{metric}.bin{i}",
                data_count=c,
            )
        )
        if whole or n <= 12 or i % 2 == 0:
            tick_x = round(x + slot / 2 if whole else x, 1)
            marks.append(_tick(lo, tick_x, base_y))
    if not whole and n:
        marks.append(_tick(fmt.edge(edges[n], integer), round(left + n * slot, 1), base_y))
    return _svg(width, height, title, marks, "chart histogram")


def _tick(text: str, x: float, base_y: float) -> Markup:
    return _tag("text", text, x=x, y=base_y + 16, text_anchor="middle", class_="tick")


def yes_no_bars(
    rows: Sequence[tuple[str, str, int, int]], *, title: str, width: int = 520
) -> Markup:
    """One stacked bar per boolean field ``(metric, label, yes, no)``: the share of ``true``."""
    span = width - LABEL_W - VALUE_W - 40  # room for "100.0% yes (12,345)"
    marks: list[Markup] = []
    for i, (metric, label, yes, no) in enumerate(rows):
        y, total = i * ROW_H, yes + no
        share = yes / total if total else None
        yes_w = round(span * (share or 0), 1)
        marks.append(
            _tag(
                "g",
                _tag("title", f"{label}: yes {fmt.count(yes)}, no {fmt.count(no)}"),
                _label(label, y),
                _row_bar(y, span, colour("false", 0)),
                _row_bar(y, yes_w, colour("true", 0)),
                _tag(
                    "text",
                    f"{fmt.pct(share)} yes ({fmt.count(yes)})",
                    x=LABEL_W + span + 6,
                    y=y + 17,
                    class_="value",
                ),
                class_="yesno",
                data_metric=f"{metric}.true",
                data_count=yes,
                data_no=no,
            )
        )
    return _svg(width, max(len(rows), 1) * ROW_H, title, marks, "chart yesno")


def sparkline(
    values: Sequence[float | None], *, metric: str, width: int = 140, height: int = 32
) -> Markup:
    """The series of previous nights ending with this one (a dot); gaps for missing values."""
    known = [v for v in values if v is not None]
    if not known:
        return Markup("")
    low, high = min(known), max(known)
    step = (width - 8) / max(len(values) - 1, 1)

    def point(i: int, v: float) -> tuple[float, float]:
        ratio = 0.5 if high == low else (v - low) / (high - low)
        return round(4 + i * step, 1), round(height - 4 - ratio * (height - 8), 1)

    points = [point(i, v) for i, v in enumerate(values) if v is not None]
    x, y = points[-1]
    marks = [
        _tag("polyline", points=" ".join(f"{px},{py}" for px, py in points), class_="spark"),
        _tag("circle", cx=x, cy=y, r=3, class_="spark-now"),
    ]
    return _svg(
        width, height, f"trend of {metric}", marks, "chart sparkline", data_metric=f"{metric}.trend"
    )
