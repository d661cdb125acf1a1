"""Human output of `tbatch status` (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table


def render_status(status: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    counts = status["counts"]
    title = "all batches" if status["batch_id"] is None else f"batch {status['batch_id']}"
    console.print(f"[bold]{title}[/]: {status['done']}/{status['total']} final")
    console.print(ProgressBar(total=max(1, status["total"]), completed=status["done"], width=50))
    table = Table(show_header=True, header_style="bold")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(str(v) for v in counts.values()))
    console.print(table)
    if status.get("paused_reason"):
        console.print(f"[bold red]paused[/]: {escape(status['paused_reason'])}", soft_wrap=True)
        console.print(f"  since {status['paused_at']}; `tbatch resume {status['batch_id']}`")
    if status.get("canary"):
        canary = status["canary"]
        console.print(f"canary: {canary['released']} of {canary['jobs']} released")
    rate = status["throughput_jobs_per_s"]
    console.print(
        f"throughput: {rate if rate is not None else '-'} jobs/s   attempts: {status['attempts']}"
        f"   429s: {status['http_429']}   tokens in/out: {status['input_tokens']}/"
        f"{status['output_tokens']}   cost: {cost_text(status)}"
    )
    if status.get("cached_tokens") or status.get("cache_write_tokens"):
        console.print(
            f"cache: {status['cached_tokens']} tokens read, {status['cache_write_tokens']} "
            f"written, saved ${status['cache_saved_usd']:.4f}"
            + (f"; global routing saved ${status['global_saved_usd']:.4f}")
        )
    estimate = status.get("estimate")
    if estimate and estimate.get("actual"):
        console.print(estimate_line(estimate["estimated"], estimate["actual"]))
    for kind, held in sorted(status.get("held", {}).items()):
        console.print(
            f"[bold red]held[/]: {held['jobs']} job(s) waiting on a fleet problem ({kind}): "
            f"{escape(held['reason'] or '')}"
        )
    if status["failures"]:
        fails = Table("failure reason", "jobs", title="failures")
        for kind, n in sorted(status["failures"].items(), key=lambda kv: -kv[1]):
            fails.add_row(kind, str(n))
        console.print(fails)
    if status.get("models"):
        budget = Table(
            "model",
            "region",
            "limit",
            "sent in window",
            "released",
            "paused s",
            "learned",
            title="budgets",
        )
        for row in status["models"]:
            limit = "none" if row["limit"] is None else f"{row['limit']}/{row['window_s']:g}s"
            sent = "-" if row["in_window"] is None else str(row["in_window"])
            if row["trusted"] is False:
                sent += " (probing)"
            budget.add_row(
                row["model"],
                row["region"],
                limit,
                sent,
                "-" if row["reserved"] is None else str(row["reserved"]),
                f"{row['paused_for_s']:.1f}",
                str(row["learned_limit"] or "-"),
            )
        console.print(budget)


def cost_text(status: dict[str, Any]) -> str:
    """``$X``, or "unknown" (with what is known) when a price was unknown: never $0."""
    if status.get("cost_usd") is not None:
        return f"${status['cost_usd']:.4f}"
    unknown = status.get("cost_unknown_attempts", 0)
    return f"unknown ({unknown} attempt(s) unpriced; ${status.get('cost_known_usd', 0):.4f} known)"


def estimate_line(estimated: dict[str, Any], actual: dict[str, Any]) -> str:
    """``estimate vs actual`` once a batch is final: cost, time and tokens side by side."""

    def money(value: Any) -> str:
        return "unknown" if value is None else f"${value:.4f}"

    def seconds(value: Any) -> str:
        return "-" if value is None else f"{value:.0f} s"

    return (
        f"estimate vs actual: cost {money(estimated['cost_usd'])} vs {money(actual['cost_usd'])}"
        f", time {seconds(estimated['wall_clock_s'])} vs {seconds(actual['wall_clock_s'])}"
        f", tokens in {estimated['input_tokens']} vs {actual['input_tokens']}"
        f", out {estimated['output_tokens']} vs {actual['output_tokens']}"
    )
