"""Human output of `tbatch show`: one job and its attempts as a timeline (rich), for the on-call
engineer with a request_id from a log line. Pure: ``job_history``'s dict in, a renderable out
(``--json`` prints the dict itself)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from worker.humanize import human_count


def job_view(history: dict[str, Any], request_id: str | None = None) -> RenderableType:
    """The job, its attempts oldest first (the one ``request_id`` names marked ``>``), its
    result and the results it replaced."""
    job = history["job"]
    parts: list[RenderableType] = [_header(job), _timeline(history["attempts"], request_id)]
    result = history["result"]
    if result is not None:
        repaired = ", repaired" if result.get("repaired") else ""
        parts.append(
            Text(
                f"result (request_id {result.get('request_id') or '-'}, model "
                f"{result.get('model') or 'unknown'}{repaired}):",
                style="bold",
            )
        )
        parts.append(Text(json.dumps(result.get("data"), indent=2, ensure_ascii=False)))
    for old in history["replaced_results"]:
        parts.append(
            Text(
                f"replaced result: of attempt {old.get('attempt_id')}, created "
                f"{_time(old.get('created_at'))}, replaced {_time(old.get('replaced_at'))}"
            )
        )
    return Group(*parts)


def _header(job: dict[str, Any]) -> Text:
    status = str(job["status"])
    line = Text.assemble(
        (f"job {job['id']}", "bold"),
        f" (batch {job['batch_id']}): ",
        (status, "bold green" if status == "succeeded" else "bold red" if status in _BAD else ""),
    )
    if job.get("error_kind") and status != "succeeded":
        line.append(f" {job['error_kind']}: {job.get('error_message') or ''}")
    chain = " -> ".join([job["model"], *(job.get("fallbacks") or [])])
    line.append(f"\ntranscript {job['transcript_id']}   model {chain}   region {job['region']}")
    if job.get("custom_id"):
        line.append(f"   custom_id {job['custom_id']}")
    line.append(
        f"\ncreated {_time(job.get('created_at'))}   finished {_time(job.get('finished_at'))}"
        f"   deliveries {job.get('deliveries', 0)}   retries {job.get('transport_retries', 0)}"
        f"   re-asks {job.get('reasks', 0)}"
    )
    return line


_BAD = ("failed", "cancelled")


def _timeline(attempts: list[dict[str, Any]], request_id: str | None) -> Table:
    table = Table(title=f"attempts ({len(attempts)})", header_style="bold")
    for name in ("", "started", "request_id", "model asked -> answered", "route", "outcome"):
        table.add_column(name, overflow="fold")
    for name in ("latency", "tokens in/out", "cost"):
        table.add_column(name, justify="right")
    table.add_column("error / repairs", overflow="fold")
    for a in attempts:
        answered = a.get("model_answered") or "?"
        fallback = " (fallback)" if a.get("fallback_used") else ""
        http = f" {a['http_status']}" if a.get("http_status") else ""
        latency = "-" if a.get("latency_ms") is None else f"{a['latency_ms']:,.0f} ms"
        cost = "-" if a.get("cost_usd") is None else f"${a['cost_usd']:.5f}"
        table.add_row(
            ">" if request_id is not None and a.get("request_id") == request_id else "",
            _time(a.get("started_at")),
            a.get("request_id") or "-",
            f"{a['model_requested']} -> {answered}{fallback}",
            a.get("route") or "-",
            f"{a['outcome']}{http}" + (f" ({a['purpose']})" if a.get("purpose") == "reask" else ""),
            latency,
            f"{human_count(a.get('input_tokens'))}/{human_count(a.get('output_tokens'))}",
            cost,
            _problems(a),
        )
    return table


def _problems(attempt: dict[str, Any]) -> str:
    notes = []
    if attempt.get("error_kind"):
        notes.append(f"{attempt['error_kind']}: {attempt.get('error_message') or ''}".strip())
    if attempt.get("repairs"):
        notes.append(f"repairs: {', '.join(str(r) for r in attempt['repairs'])}")
    if attempt.get("validation_errors"):
        notes.append(f"{len(attempt['validation_errors'])} validation error(s)")
    if attempt.get("finish_reason") not in (None, "stop", "tool_calls"):
        notes.append(f"finish: {attempt['finish_reason']}")
    return "; ".join(notes) or "-"


def _time(value: Any) -> str:
    """UTC to the millisecond: attempts a second apart must read apart."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return "-" if value is None else str(value)
