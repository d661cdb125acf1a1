"""Human output of `tbatch batches` (rich): one row per batch, newest first."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from worker.humanize import human_duration
from worker.reports import fmt

_STYLE = {"final": "green", "paused": "bold red", "cancelled": "dim", "running": "cyan"}


def render_batches(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    if not rows:
        console.print("no batches yet (tbatch enqueue makes one)")
        return
    table = Table(show_header=True, header_style="bold")
    for name, justify in (
        ("id", "right"),
        ("name", "left"),
        ("created (UTC)", "left"),
        ("done", "right"),
        ("succeeded", "right"),
        ("failed", "right"),
        ("active", "right"),
        ("state", "left"),
        ("ETA", "right"),
        ("cost", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for b in rows:
        counts = b["counts"]
        share = b["done"] / b["total"] if b["total"] else None
        state = b["state"]
        table.add_row(
            str(b["batch_id"]),
            escape(b["name"] or "-"),
            b["created_at"].strftime("%Y-%m-%d %H:%M"),
            f"{fmt.count(b['done'])}/{fmt.count(b['total'])} ({fmt.pct(share, 0)})",
            fmt.count(counts["succeeded"]),
            fmt.count(counts["failed"]),
            fmt.count(b["remaining"]),
            f"[{_STYLE.get(state, '')}]{state}[/]" if state in _STYLE else state,
            human_duration(b["eta_s"]),
            fmt.usd(b["cost_usd"]),
        )
    console.print(table)
    for b in rows:
        if b["paused_reason"]:
            console.print(
                f"batch {b['batch_id']} [bold red]paused[/]: {escape(b['paused_reason'])}; "
                f"`tbatch resume {b['batch_id']}`",
                soft_wrap=True,
            )
