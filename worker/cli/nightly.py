"""`tbatch beat` and `tbatch nightly run | list | finalize | check`."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

import click
from rich.console import Console
from rich.table import Table

from worker.cli.common import db, print_json
from worker.cli.help import examples
from worker.nightly.config import FileSource, NightlyConfig, load_config
from worker.nightly.finalize import FINALIZE_EVERY_S
from worker.nightly.queries import RunView, list_runs
from worker.nightly.runs import RunOutcome, RunStatus
from worker.settings import get_settings

DEFAULT_CONFIG = "pipelines.toml"

config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="the pipelines file (TOML)",
)


@click.command("beat", epilog=examples("tbatch beat --config pipelines.toml"))
@config_option
@click.option("--schedule-file", default=None, help="beat's state file [.tbatch/beat-schedule]")
@click.option(
    "--finalize-every-s",
    type=click.FloatRange(min=1),
    default=FINALIZE_EVERY_S,
    show_default=True,
    help="how often finished nights are looked for and reported",
)
@click.option(
    "--loglevel",
    default=None,
    help="log level (DEBUG, INFO, WARNING, ...)  [default: TBATCH_LOG_LEVEL]",
)
def beat_command(
    config_path: str, schedule_file: str | None, finalize_every_s: float, loglevel: str | None
) -> None:
    """Run the pipelines' schedule (Celery beat). Workers run the nights it sends; running two
    beats is safe: the database lets one run per pipeline and night through."""
    from worker.celery_app import get_app
    from worker.logs import configure_logging
    from worker.nightly.schedule import beat_schedule

    config = load_config(config_path)
    settings = get_settings()
    level = loglevel or settings.log_level
    configure_logging(level, settings.log_format)  # type: ignore[arg-type]
    app = get_app()
    schedule = beat_schedule(config, finalize_every_s=finalize_every_s)
    app.conf.update(timezone="UTC", enable_utc=True, beat_schedule=schedule)
    state = Path(schedule_file or Path(settings.broker_folder).parent / "beat-schedule")
    state.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"tbatch beat: {len(config.pipelines)} pipeline(s) from {config.path}", err=True)
    app.Beat(schedule=str(state), loglevel=level).run()


@click.group(
    "nightly",
    epilog=examples(
        "tbatch nightly check",
        "tbatch nightly run support-calls --date 2026-12-06",
        "tbatch nightly list --pipeline support-calls",
    ),
)
def nightly_group() -> None:
    """Nightly pipelines: run a night now, list past nights, build finished reports."""


@nightly_group.command("run", epilog=examples("tbatch nightly run support-calls --date 2026-12-06"))
@click.argument("name")
@click.option(
    "--date",
    "run_date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="the night to process, YYYY-MM-DD [yesterday, UTC]",
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="print JSON (ISO 8601 dates)")
def run_command(name: str, run_date: datetime | None, config_path: str, as_json: bool) -> None:
    """Run one pipeline for one night now (at most once per night, whoever asks)."""
    from worker.nightly.wiring import run_pipeline, yesterday_utc

    pipeline = load_config(config_path).get(name)
    outcome = run_pipeline(pipeline, run_date.date() if run_date else yesterday_utc())
    if as_json:
        print_json(outcome.__dict__)
    else:
        click.echo(_describe(outcome))
    if outcome.status == RunStatus.FAILED:
        sys.exit(1)


def _describe(o: RunOutcome) -> str:
    night = f"{o.pipeline} {o.run_date.isoformat()}"
    if o.status == RunStatus.STARTED:
        return f"{night}: batch {o.batch_id}, {o.transcripts} transcripts"
    if o.status == RunStatus.EMPTY:
        return f"{night}: no transcripts; nothing to process"
    if o.status == RunStatus.ALREADY_RAN:
        batch = f", batch {o.batch_id}" if o.batch_id is not None else ""
        return f"{night}: already ran (state {o.state}{batch}); nothing enqueued"
    return f"{night}: failed: {o.error}"


@nightly_group.command(
    "list", epilog=examples("tbatch nightly list --pipeline support-calls --limit 7 --json")
)
@click.option("--pipeline", default=None, help="only this pipeline's nights")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="at most this many nights",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON (ISO 8601 dates)")
def list_command(pipeline: str | None, limit: int, as_json: bool) -> None:
    """Past nights, newest first, with their state, jobs, cost and report."""
    with db() as session:
        runs = list_runs(session, pipeline, limit=limit)
    if as_json:
        print_json([run.as_dict() for run in runs])
    else:
        _render(runs)


def _render(runs: list[RunView]) -> None:
    table = Table(header_style="bold")
    for name in ("pipeline", "date", "state", "batch", "transcripts", "jobs", "cost $"):
        table.add_column(name, no_wrap=True)
    table.add_column("report", overflow="fold")
    for r in runs:
        jobs = " ".join(f"{k}={v}" for k, v in sorted(r.jobs.items())) or "-"
        table.add_row(
            r.pipeline,
            r.run_date.isoformat(),
            r.state,
            "-" if r.batch_id is None else str(r.batch_id),
            str(r.transcripts),
            jobs,
            f"{r.cost_usd:.4f}",
            r.report_dir or (f"error: {r.error}" if r.error else "-"),
        )
    Console().print(table)


@nightly_group.command("finalize", epilog=examples("tbatch nightly finalize"))
@config_option
@click.option("--json", "as_json", is_flag=True, help="print JSON (ISO 8601 dates)")
@click.pass_context
def finalize_command(ctx: click.Context, config_path: str, as_json: bool) -> None:
    """Build the reports of nights whose batch is final (beat does this every minute)."""
    from worker.nightly.wiring import finalize

    config = _optional_config(ctx, config_path)
    done = finalize(config)
    if as_json:
        print_json([run.__dict__ for run in done])
        return
    for run in done:
        where = run.report_dir if run.report_dir else f"report failed: {run.error}"
        click.echo(f"{run.pipeline} {run.run_date.isoformat()}: {where}")
    if not done:
        click.echo("no finished nights waiting for a report", err=True)


def _optional_config(ctx: click.Context, config_path: str) -> NightlyConfig | None:
    """The config, unless the default file is absent (reports then use their defaults)."""
    source = ctx.get_parameter_source("config_path")
    if source == click.core.ParameterSource.DEFAULT and not Path(config_path).exists():
        click.echo(f"note: no {config_path}; reports go to ./reports with default fields", err=True)
        return None
    return load_config(config_path)


@nightly_group.command("check", epilog=examples("tbatch nightly check --count 5"))
@config_option
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="next runs to show per pipeline",
)
def check_command(config_path: str, count: int) -> None:
    """Validate the pipelines file; show each pipeline and its next runs (UTC)."""
    config = load_config(config_path)
    now = datetime.now(UTC)
    click.echo(f"{config.path}: {len(config.pipelines)} pipeline(s) OK")
    for p in config.pipelines.values():
        source = f"file {p.source.path}" if isinstance(p.source, FileSource) else p.source.type
        click.echo(
            f"\n{p.name}: {p.schedule!r} (UTC)  source {source}  model {p.model}"
            f"{' + ' + ', '.join(p.fallbacks) if p.fallbacks else ''}  region {p.region}"
            f"{' (global routing)' if p.global_routing else ''}  priority {p.priority}"
        )
        for moment in p.cron.next_times(now, count):
            night = moment.date() - timedelta(days=1)
            click.echo(f"  {moment:%Y-%m-%d %H:%M} UTC  processes {night.isoformat()}")
    _check_models(config, now.date())


def _check_models(config: NightlyConfig, today: date) -> None:
    """Each pipeline's chain against the gateway's catalog, as enqueue will check it: a problem
    (an unknown model, an unsupported parameter) fails the check; a note (a model retiring
    within 30 days, a fitted max_tokens) is shown. An unreachable catalog is said, not fatal:
    the file itself is valid."""
    from worker.errors import GatewayError
    from worker.gateway.types import Region
    from worker.runtime import get_runtime
    from worker.services.enqueue import DEFAULT_MAX_TOKENS, check_chain
    from worker.services.job_input import reasoning_value

    gateway = get_runtime().gateway
    problems = 0
    for p in config.pipelines.values():
        try:
            problem, notes = check_chain(
                lambda r: gateway.list_models(cast(Region, r)),
                p.region,
                [p.model, *p.fallbacks],
                temperature=p.temperature,
                max_tokens=p.max_tokens or DEFAULT_MAX_TOKENS,
                today=today,
                reasoning=reasoning_value(p.reasoning_effort, p.reasoning_max_tokens),
            )
        except GatewayError as exc:
            click.echo(f"note: models not checked (the gateway's catalog: {exc})", err=True)
            return
        for note in notes:
            click.echo(f"note: {p.name}: {note}", err=True)
        if problem:
            problems += 1
            click.echo(f"error: {p.name}: {problem}", err=True)
    if problems:
        raise SystemExit(1)


COMMANDS = [beat_command, nightly_group]
