"""``tbatch emulator``: run the local LLM Gateway emulator (wired into the CLI group elsewhere)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from emulator.config import (
    EmulatorConfig,
    parse_fault,
    parse_model_latency,
    parse_model_limit,
)


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise click.BadParameter("expected YYYY-MM-DD") from exc


@click.command(
    "emulator",
    epilog="\b\nExamples:\n  tbatch emulator --port 8600 --transcripts 500\n"
    "  tbatch emulator --no-rate-limit --fault 5xx=0.1 --latency-ms 200",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8600, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--region",
    type=click.Choice(["us", "eu"]),
    default="us",
    show_default=True,
    help="Region whose model catalog is served.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of transcripts and answers."
)
@click.option(
    "--transcripts",
    "transcript_count",
    default=200,
    show_default=True,
    type=int,
    help="How many transcripts to generate.",
)
@click.option(
    "--transcripts-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL: id, text, status, created, optional deleted.",
)
@click.option(
    "--transcript-days",
    default=7,
    show_default=True,
    type=int,
    help="Spread the generated transcripts over this many days.",
)
@click.option("--today", callback=_date, help="YYYY-MM-DD; default: the real today.")
@click.option("--api-key", default=None, help="Accept only this key (default: any non-empty).")
@click.option("--rate-limit", default=30, show_default=True, type=int, help="Requests per window.")
@click.option(
    "--window-s", default=60.0, show_default=True, type=float, help="Rate-limit window (s)."
)
@click.option("--model-limit", multiple=True, help="MODEL=N/SECONDS, e.g. gpt-5=60/6.")
@click.option(
    "--window-kind",
    type=click.Choice(["fixed", "sliding"]),
    default="fixed",
    show_default=True,
    help="fixed: a window opens at the first request (as observed live); sliding: at most N "
    "arrivals in any window.",
)
@click.option("--no-rate-limit", is_flag=True, help="Disable the limiter (stats still count).")
@click.option(
    "--latency-ms", default=0.0, show_default=True, type=float, help="Latency of each answer."
)
@click.option(
    "--latency-jitter-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Random extra latency, up to this.",
)
@click.option("--model-latency", multiple=True, help="MODEL=MS[/JITTER_MS].")
@click.option(
    "--fault",
    multiple=True,
    help="[MODEL:]KIND=RATE (5xx=0.1, gpt-5:malformed=0.2) or a JSON rule.",
)
@click.option(
    "--hang-s",
    default=300.0,
    show_default=True,
    type=float,
    help="How long a 'hang' fault holds the request.",
)
@click.option(
    "--omit-model-for",
    multiple=True,
    type=click.Choice(["anthropic", "google", "openai"]),
    help="Family whose 200 bodies have no top-level model (June 2026 Claude); repeatable.",
)
def emulator_command(
    host: str,
    port: int,
    region: str,
    seed: int,
    transcript_count: int,
    transcripts_file: Path | None,
    transcript_days: int,
    today: date | None,
    api_key: str | None,
    rate_limit: int,
    window_s: float,
    model_limit: tuple[str, ...],
    window_kind: str,
    no_rate_limit: bool,
    latency_ms: float,
    latency_jitter_ms: float,
    model_latency: tuple[str, ...],
    fault: tuple[str, ...],
    hang_s: float,
    omit_model_for: tuple[str, ...],
) -> None:
    """Serve an emulated AssemblyAI LLM Gateway (+ transcript list) on one port."""
    try:
        config = EmulatorConfig(
            host=host,
            port=port,
            region=region,
            seed=seed,
            transcripts=transcript_count,
            transcripts_file=transcripts_file,
            transcript_days=transcript_days,
            today=today,
            api_key=api_key,
            rate_limit=rate_limit,
            window_s=window_s,
            model_limits=dict(parse_model_limit(x) for x in model_limit),
            window_kind=window_kind,
            rate_limit_enabled=not no_rate_limit,
            latency_ms=latency_ms,
            latency_jitter_ms=latency_jitter_ms,
            model_latency=dict(parse_model_latency(x) for x in model_latency),
            faults=[parse_fault(x) for x in fault],
            hang_s=hang_s,
            omit_model_for=omit_model_for,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    from emulator.routes.server import run  # uvicorn is only needed once we actually serve

    run(config)
