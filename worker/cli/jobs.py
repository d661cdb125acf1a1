"""`tbatch enqueue | status | results`."""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import IO, Any, cast

import click

from models.vocabulary import JobStatus
from worker.cli.common import db, print_json, say
from worker.cli.help import examples
from worker.cli.status import read_status, watch_live
from worker.errors import InputError
from worker.gateway.types import Region
from worker.runtime import get_runtime
from worker.services.export import schema_columns, write_results
from worker.services.queries import batch_schemas, iter_results


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", source=path) from None
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text", source=path) from None


@click.command(
    "enqueue",
    epilog=examples(
        "B=$(tbatch enqueue --transcripts ids.txt --template t.j2 --schema s.json "
        "--model claude-sonnet-4-6)",
        "tbatch-list-ids | tbatch enqueue --transcripts - --template t.j2 --schema s.json "
        "--model gpt-5-mini --fallback claude-sonnet-4-6 --json",
    ),
)
@click.option(
    "--transcripts",
    "transcripts_path",
    required=True,
    help="ids, one per line, or JSONL; - reads stdin",
)
@click.option("--template", "template_path", required=True, help="Jinja2 prompt template file")
@click.option("--schema", "schema_path", required=True, help="output JSON Schema file")
@click.option("--model", required=True, help="the gateway model to ask")
@click.option("--fallback", "fallbacks", multiple=True, help="fallback model (at most 2)")
@click.option(
    "--region",
    type=click.Choice(["us", "eu"]),
    default="us",
    show_default=True,
    help="the gateway (and transcripts) region",
)
@click.option("--name", default=None, help="batch name")
@click.option("--batch", "batch_id", type=int, default=None, help="add to an existing batch")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="output token cap  [default: TBATCH_DEFAULT_MAX_TOKENS, fitted to the model]",
)
@click.option(
    "--temperature",
    type=click.FloatRange(0, 2),
    default=None,
    help="sampling temperature (every model of the chain must support it)",
)
@click.option(
    "--reasoning-effort",
    type=click.Choice(["low", "medium", "high"]),
    default=None,
    help="the gateway's reasoning effort (every model of the chain must support reasoning)",
)
@click.option(
    "--reasoning-max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="cap on thinking tokens instead of an effort",
)
@click.option(
    "--priority",
    type=click.IntRange(-4, 4),
    default=0,
    show_default=True,
    help="share of each model against other batches (weight 2**priority)",
)
@click.option("--global-routing", is_flag=True, help='send model_region "global" (cheaper)')
@click.option("--json", "as_json", is_flag=True, help='print {"batch_id", "jobs", "new"} as JSON')
@click.option("--dry-run", is_flag=True, help="estimate instead (tbatch estimate); store nothing")
def enqueue_command(
    transcripts_path: str,
    template_path: str,
    schema_path: str,
    model: str,
    fallbacks: tuple[str, ...],
    region: str,
    name: str | None,
    batch_id: int | None,
    max_tokens: int | None,
    temperature: float | None,
    reasoning_effort: str | None,
    reasoning_max_tokens: int | None,
    priority: int,
    global_routing: bool,
    as_json: bool,
    dry_run: bool = False,
) -> None:
    """Validate a whole input and store it as a batch of pending jobs (or store nothing)."""
    if dry_run:  # `tbatch estimate` with the same options (looked up: it builds on this one)
        ctx = click.get_current_context()
        group = ctx.find_root().command
        assert isinstance(group, click.Group)
        estimate = group.get_command(ctx, "estimate")
        assert estimate is not None
        ctx.forward(estimate)
        return
    from worker.cli.estimator import enqueue_estimator
    from worker.services.enqueue import EnqueueRequest, enqueue, load_schema_text

    req = EnqueueRequest(
        transcripts_source="<stdin>" if transcripts_path == "-" else transcripts_path,
        template_text=_read(template_path, "template"),
        template_source=template_path,
        schema=load_schema_text(_read(schema_path, "schema"), source=schema_path),
        schema_source=schema_path,
        model=model,
        fallbacks=fallbacks,
        region=region,
        name=name,
        max_tokens=max_tokens,
        temperature=temperature,
        priority=priority,
        batch_id=batch_id,
        model_region_global=global_routing,
        reasoning=_reasoning(reasoning_effort, reasoning_max_tokens),
        canary_jobs=get_runtime().settings.canary_calls,
    )
    gateway = get_runtime().gateway
    collector = enqueue_estimator(req) if batch_id is None else None  # kept on new batches only
    with _open_transcripts(transcripts_path) as lines, db() as session:
        out = enqueue(
            session,
            req,
            lines,
            catalog=lambda r: gateway.list_models(cast(Region, r)),
            default_max_tokens=get_runtime().settings.default_max_tokens,
            estimator=collector,
        )
    for note in out.notes:
        say(f"note: {note}")
    if as_json:
        print_json({"batch_id": out.batch_id, "jobs": out.jobs, "new": out.new})
    else:
        say(f"batch {out.batch_id}: {out.jobs} jobs ({out.new} new)")
        click.echo(out.batch_id)  # stdout is the id alone: B=$(tbatch enqueue ...)
    if batch_id is None:
        keep_estimate(out.batch_id, collector)


def keep_estimate(batch_id: int, collector: Any) -> None:
    """The new batch's estimate, once its jobs are committed and may already run. The batch
    is stored and its id printed whatever happens here, so a failure is a warning, not an
    exit status a script would take for a failed enqueue."""
    from sqlalchemy.exc import SQLAlchemyError

    from worker.errors import TbatchError
    from worker.services.estimating import keep_estimate as store

    try:
        with db() as session:
            store(session, batch_id, collector)
    except (TbatchError, SQLAlchemyError) as exc:
        say(f"warning: batch {batch_id} is stored, but no estimate was kept: {type(exc).__name__}")


def _open_transcripts(path: str) -> AbstractContextManager[IO[str]]:
    """The transcripts file, or stdin for ``-`` (``... | tbatch enqueue --transcripts -``),
    which is left open when the ``with`` ends."""
    if path == "-":
        return nullcontext(sys.stdin)
    try:
        return Path(path).open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read transcripts: {exc.strerror}", source=path) from None


def _reasoning(effort: str | None, max_tokens: int | None) -> dict[str, Any] | None:
    from worker.services.job_input import reasoning_value

    try:
        return reasoning_value(effort, max_tokens)
    except InputError as exc:
        raise InputError(exc.problem, source="--reasoning-effort/--reasoning-max-tokens") from None


@click.command(
    "status",
    epilog=examples(
        "tbatch status 42",
        "tbatch status 42 --watch            # redraws in place until the batch is final",
        "tbatch status 42 --json --watch     # one JSON object per tick (NDJSON)",
    ),
)
@click.argument("batch_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON (ISO 8601 timestamps)")
@click.option("--watch", is_flag=True, help="refresh until the batch is final")
@click.option(
    "--interval-s",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="seconds between two refreshes under --watch",
)
def status_command(batch_id: int | None, as_json: bool, watch: bool, interval_s: float) -> None:
    """Counts per state, progress, throughput, failures by reason, per-model budgets."""
    if watch and not as_json:
        watch_live(batch_id, interval_s)
        return
    while True:
        status = read_status(batch_id)
        if as_json:
            print_json(status)
        else:
            from worker.cli.render import render_status  # rich: only for people, not --json

            render_status(status)
        if not watch or status["final"]:
            return
        time.sleep(interval_s)  # a human's refresh interval, not synchronisation


@click.command(
    "results",
    epilog=examples(
        "tbatch results 42 -o results.jsonl --errors failed.jsonl",
        "tbatch results 42 --format csv --flatten > results.csv",
    ),
)
@click.argument("batch_id", type=int)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON lines or CSV",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="write here  [default: stdout]",
)
@click.option(
    "--status",
    type=click.Choice([str(s) for s in JobStatus]),
    default=None,
    help="only jobs in this state",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="write the jobs that did not succeed here; the main output gets the successes",
)
@click.option("--flatten", is_flag=True, help="CSV: the schema's top-level properties as columns")
def results_command(
    batch_id: int,
    fmt: str,
    output: str | None,
    status: str | None,
    errors_path: str | None,
    flatten: bool,
) -> None:
    """One record per job: job_id, custom_id, transcript_id, status, result, metadata,
    request_id, model (that answered), repaired, attempts, input/output/cached tokens, cost_usd,
    finished_at, error."""
    if flatten and fmt != "csv":
        raise InputError("--flatten needs --format csv (JSON lines carry the whole result)")
    with ExitStack() as stack:
        out: IO[str] = (
            stack.enter_context(open(output, "w", encoding="utf-8", newline=""))
            if output
            else sys.stdout
        )
        errors = (
            stack.enter_context(open(errors_path, "w", encoding="utf-8", newline=""))
            if errors_path
            else None
        )
        session = stack.enter_context(db())
        columns = schema_columns(batch_schemas(session, batch_id)) if flatten else []
        records = iter_results(session, batch_id, status=status)
        write_results(records, fmt, out, errors=errors, flatten=columns)


COMMANDS = [enqueue_command, status_command, results_command]
