"""`tbatch estimate` (and `tbatch enqueue --dry-run`): the same input and options as enqueue,
validated exactly as enqueue validates them, nothing stored; prints jobs, wall-clock time,
tokens and cost per model and in total, and what caching and global routing save."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from worker.cli.common import db, print_json
from worker.cli.estimator import transcript_lister
from worker.cli.help import examples
from worker.cli.jobs import _read, _reasoning, enqueue_command
from worker.errors import InputError
from worker.gateway.types import Region


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "jobs", "limit", "time", "input tok", "output tok", "cached tok", "cost")
    for lane in result["by_model"]:
        learned = lane["learned_limit"]
        table.add_row(
            lane["model"],
            str(lane["jobs"]),
            (lane["limit"] or "off") + (f" (learned {learned})" if learned else ""),
            _duration(lane["wall_clock_s"])
            + (f" ({_duration(lane['wall_clock_learned_s'])} learned)" if learned else ""),
            f"{lane['input_tokens']:,}",
            f"{lane['output_tokens']:,} ({lane['output_source']})",
            f"{lane['cached_tokens']:,}",
            _money(lane["cost_usd"]),
        )
    console = Console()
    console.print(table)
    console.print(
        f"total: {result['jobs']} jobs, about {_duration(result['wall_clock_s'])} at the "
        "configured limits"
        + (
            f" ({_duration(result['wall_clock_learned_s'])} at the limits learned so far)"
            if result["wall_clock_learned_s"] != result["wall_clock_s"]
            else ""
        )
        + f", {result['input_tokens']:,} input / {result['output_tokens']:,} "
        f"output tokens, {_money(result['cost_usd'])}"
    )
    console.print(
        f"caching saves {_money(result['cache_saved_usd'])}; global routing saves "
        f"{_money(result['global_saved_usd'])}"
        + (
            f" (would save {_money(result['global_would_save_usd'])} with --global-routing)"
            if result["global_would_save_usd"]
            else ""
        )
    )
    for assumption in result["assumptions"]:
        console.print(f"assumed: {assumption}", style="dim")


def _callback(**options: Any) -> None:
    """Estimate what enqueueing this input would take and cost (stores nothing)."""
    from models.base import utcnow
    from worker.runtime import get_runtime
    from worker.services.enqueue import EnqueueRequest, load_schema_text
    from worker.services.estimating import estimate_input

    runtime = get_runtime()
    req = EnqueueRequest(
        transcripts_source=options["transcripts_path"],
        template_text=_read(options["template_path"], "template"),
        template_source=options["template_path"],
        schema=load_schema_text(
            _read(options["schema_path"], "schema"), source=options["schema_path"]
        ),
        schema_source=options["schema_path"],
        model=options["model"],
        fallbacks=options["fallbacks"],
        region=options["region"],
        name=options["name"],
        max_tokens=options["max_tokens"],
        temperature=options["temperature"],
        priority=options["priority"],
        batch_id=options["batch_id"],
        model_region_global=options["global_routing"],
        reasoning=_reasoning(options["reasoning_effort"], options["reasoning_max_tokens"]),
    )
    path = options["transcripts_path"]
    try:
        lines = Path(path).open(encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise InputError(f"cannot read transcripts: {exc.strerror}", source=path) from None
    gateway = runtime.gateway
    lister = transcript_lister(runtime.settings) if options["sample"] > 0 else None
    region = cast(Region, options["region"])
    fetch = None if lister is None else (lambda t: lister.get_transcript(t, region=region))
    with lines, db() as session:
        result = estimate_input(
            req,
            lines,
            lambda r: gateway.list_models(cast(Region, r)),
            settings=runtime.settings,
            get_transcript=fetch,
            session=session,
            sample=options["sample"],
            latency_s=options["latency_s"],
            limit_now=runtime.limiter.limit,
            today=utcnow().date(),
        )
        session.rollback()  # nothing is stored
    if options["as_json"]:
        print_json(result)
    else:
        render(result)


estimate_command = click.Command(
    "estimate",
    callback=_callback,
    help=(
        "Estimate what enqueueing this input would take and cost (stores nothing).\n\n"
        "Takes enqueue's options and validates exactly as enqueue does; prints per model and "
        "in total: jobs, wall-clock time at the configured limits and at the limits learned "
        "so far, input/output tokens, "
        "cost, and what caching and global routing save."
    ),
    short_help="Estimate what enqueueing this input would take and cost (stores nothing).",
    epilog=examples(
        "tbatch estimate --transcripts ids.txt --template t.j2 --schema s.json "
        "--model claude-sonnet-4-6 --fallback gpt-5-mini",
        "tbatch enqueue --transcripts ids.txt --template t.j2 --schema s.json "
        "--model claude-sonnet-4-6 --dry-run --json",
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    params=[
        *(p for p in enqueue_command.params if p.name != "dry_run"),
        click.Option(
            ["--sample"],
            type=click.IntRange(min=0),
            default=200,
            show_default=True,
            help="transcripts whose size is read from the transcript API (0: assume)",
        ),
        click.Option(
            ["--latency-s"],
            type=click.FloatRange(min=0),
            default=None,
            help="seconds per call (default: the model's recent calls' 90th percentile, else 3)",
        ),
    ],
)
