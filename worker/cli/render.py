"""Human output of `tbatch status` and `tbatch wait` (rich): pure functions from the status
dict (``batch_status`` plus ``models``, ``eta_s``, ``elapsed_s``) to text or a renderable, so
`--watch` can redraw the same view in place (rich ``Live``) and tests need no terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from worker.humanize import human_cost, human_count, human_duration, human_tokens


def percent(status: dict[str, Any]) -> float:
    total = int(status["total"])
    return 100.0 if total == 0 else 100.0 * int(status["done"]) / total


def progress_line(status: dict[str, Any]) -> str:
    """One line for `tbatch wait`'s stderr: ``batch 5: 45% (450/1,000 final), 2 failed,
    elapsed 2m 05s, ETA 2m 33s``."""
    title = "all batches" if status["batch_id"] is None else f"batch {status['batch_id']}"
    parts = [
        f"{title}: {percent(status):.0f}% ({human_count(status['done'])}/"
        f"{human_count(status['total'])} final)"
    ]
    failed = status["counts"].get("failed", 0)
    if failed:
        parts.append(f"{human_count(failed)} failed")
    if status.get("elapsed_s") is not None:
        parts.append(f"elapsed {human_duration(status['elapsed_s'])}")
    if not status["final"]:
        parts.append(f"ETA {human_duration(status.get('eta_s'))}")
    return ", ".join(parts)


def status_view(status: dict[str, Any]) -> RenderableType:
    """The whole `tbatch status` view as one renderable (printed once, or redrawn by Live)."""
    title = "all batches" if status["batch_id"] is None else f"batch {status['batch_id']}"
    parts: list[RenderableType] = [
        Text.from_markup(
            f"[bold]{title}[/]: {status['done']}/{status['total']} final ({percent(status):.1f}%)"
        ),
        _bar(status),
        _timing(status),
        _counts(status["counts"]),
    ]
    if status.get("cancelled"):
        parts.append(Text.assemble(("cancelled", "bold red"), ": nothing more of it runs"))
    if status.get("paused_reason"):
        parts.append(Text.assemble(("paused", "bold red"), f": {status['paused_reason']}"))
        parts.append(Text(f"  since {status['paused_at']}; `tbatch resume {status['batch_id']}`"))
    if status.get("canary"):
        canary = status["canary"]
        parts.append(Text(f"canary: {canary['released']} of {canary['jobs']} released"))
    parts.append(_usage(status))
    if status.get("cached_tokens") or status.get("cache_write_tokens"):
        parts.append(
            Text(
                f"cache: {human_tokens(status['cached_tokens'])} tokens read, "
                f"{human_tokens(status['cache_write_tokens'])} written, saved "
                f"{human_cost(status['cache_saved_usd'])}; global routing saved "
                f"{human_cost(status['global_saved_usd'])}"
            )
        )
    estimate = status.get("estimate")
    if estimate and estimate.get("actual"):
        parts.append(Text(estimate_line(estimate["estimated"], estimate["actual"])))
    for kind, held in sorted(status.get("held", {}).items()):
        parts.append(
            Text.assemble(
                ("held", "bold red"),
                f": {held['jobs']} job(s) waiting on a fleet problem ({kind}): "
                f"{held['reason'] or ''}",
            )
        )
    if status["failures"]:
        fails = Table("failure reason", "jobs", title="failures")
        for kind, n in sorted(status["failures"].items(), key=lambda kv: -kv[1]):
            fails.add_row(kind, human_count(n))
        parts.append(fails)
    if status.get("models"):
        parts.append(_budgets(status["models"]))
    return Group(*parts)


def render_status(status: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(status_view(status), soft_wrap=True)


def _bar(status: dict[str, Any]) -> Table:
    # A bare ProgressBar in a Group ends no line; a one-row grid does.
    grid = Table.grid()
    grid.add_row(ProgressBar(total=max(1, status["total"]), completed=status["done"], width=50))
    return grid


def _timing(status: dict[str, Any]) -> Text:
    rate = status["throughput_jobs_per_s"]
    words = [f"elapsed {human_duration(status.get('elapsed_s'))}"]
    if not status["final"]:
        words.append(f"ETA {human_duration(status.get('eta_s'))}")
    words.append(f"throughput {'-' if rate is None else f'{rate:g}'} jobs/s")
    return Text("   ".join(words))


def _counts(counts: dict[str, int]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(human_count(v) for v in counts.values()))
    return table


def _usage(status: dict[str, Any]) -> Text:
    return Text(
        f"attempts: {human_count(status['attempts'])}   429s: {human_count(status['http_429'])}"
        f"   tokens in/out: {human_tokens(status['input_tokens'])}/"
        f"{human_tokens(status['output_tokens'])}   cost: {cost_text(status)}"
    )


def _next_call(row: dict[str, Any]) -> str:
    wait = row.get("next_call_in_s")
    if wait is None:
        return "window full"
    return "now" if wait == 0 else f"in {human_duration(wait)}"


def _budgets(models: list[dict[str, Any]]) -> Table:
    budget = Table(
        "model",
        "region",
        "limit",
        "in window",
        "released",
        "left",
        "next call",
        "learned",
        title="budgets",
    )
    for row in models:
        limit = "none" if row["limit"] is None else f"{row['limit']}/{row['window_s']:g}s"
        sent = "-" if row["in_window"] is None else human_count(row["in_window"])
        if row["trusted"] is False:
            sent += " (probing)"
        budget.add_row(
            row["model"],
            row["region"],
            limit,
            sent,
            "-" if row["reserved"] is None else human_count(row["reserved"]),
            human_count(row.get("remaining")),
            _next_call(row),
            str(row["learned_limit"] or "-"),
        )
    return budget


def cost_text(status: dict[str, Any]) -> str:
    """``$X``, or "unknown" (with what is known) when a price was unknown: never $0."""
    if status.get("cost_usd") is not None:
        return human_cost(status["cost_usd"])
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
