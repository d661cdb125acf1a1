"""`tbatch show | reprocess | cancel | resume`: the on-call engineer's commands."""

from __future__ import annotations

import click

from models.base import utcnow
from models.vocabulary import FailureKind, JobStatus
from worker.cli.common import db, print_json
from worker.cli.help import examples
from worker.errors import InputError
from worker.runtime import get_runtime
from worker.services.operations import (
    cancel_batch,
    failed_jobs,
    job_for_request_id,
    job_history,
    reprocess,
    resume_batch,
)


@click.command(
    "show",
    epilog=examples(
        "tbatch show --request-id 9f1c2e4a-0b7d-4c38-a2f5-6d1e8b3a7c90",
        "tbatch show --job 1234 --json",
    ),
)
@click.option("--request-id", default=None, help="a request_id from a log line")
@click.option("--job", "job_id", type=int, default=None, help="a job id")
@click.option("--json", "as_json", is_flag=True, help="print the job's whole history as JSON")
def show_command(request_id: str | None, job_id: int | None, as_json: bool) -> None:
    """The job, its attempts as a timeline (request_ids, models, statuses, errors, usage)."""
    if (request_id is None) == (job_id is None):
        raise InputError("give exactly one of --request-id or --job")
    with db() as session:
        jid = job_id if job_id is not None else job_for_request_id(session, str(request_id))
        history = job_history(session, jid)
    if as_json:
        print_json(history)
        return
    from rich.console import Console

    from worker.cli.render_job import job_view  # rich: only for people, not --json

    Console().print(job_view(history, request_id), soft_wrap=True)


@click.command(
    "reprocess",
    epilog=examples(
        "tbatch reprocess --request-id 9f1c2e4a-0b7d-4c38-a2f5-6d1e8b3a7c90 --model gpt-5-mini",
        "tbatch reprocess --batch 42 --reason transcript_not_found",
    ),
)
@click.option("--request-id", default=None, help="rerun the job this request_id belongs to")
@click.option("--batch", "batch_id", type=int, default=None, help="rerun jobs of this batch")
@click.option(
    "--status",
    type=click.Choice(
        [str(s) for s in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SUCCEEDED)]
    ),
    default=JobStatus.FAILED.value,
    show_default=True,
    help="with --batch: rerun the jobs in this state",
)
@click.option(
    "--reason",
    type=click.Choice([str(kind) for kind in FailureKind]),
    default=None,
    help="only jobs that failed for this kind of reason",
)
@click.option("--model", default=None, help="run on another model (same region only)")
@click.option("--force", is_flag=True, help="also rerun succeeded jobs (old result kept)")
def reprocess_command(
    request_id: str | None,
    batch_id: int | None,
    status: str,
    reason: str | None,
    model: str | None,
    force: bool,
) -> None:
    """Run failed jobs again (a new attempt; history kept)."""
    if (request_id is None) == (batch_id is None):
        raise InputError("give exactly one of --request-id or --batch")
    if status == JobStatus.SUCCEEDED and not force:
        raise InputError("rerunning succeeded jobs needs --force")
    gateway = get_runtime().gateway
    with db() as session:
        if request_id is not None:
            ids = [job_for_request_id(session, request_id)]
        else:
            ids = failed_jobs(session, int(batch_id), status, reason)  # type: ignore[arg-type]
        counts = reprocess(
            session,
            ids,
            now=utcnow(),
            force=force,
            model=model,
            catalog=lambda r: gateway.list_models(r).keys(),  # type: ignore[arg-type]
        )
    print_json({"jobs": ids if len(ids) <= 20 else len(ids), **counts})


@click.command("cancel", epilog=examples("tbatch cancel 42"))
@click.argument("batch_id", type=int)
def cancel_command(batch_id: int) -> None:
    """Stop the rest of a batch; finished results stay."""
    with db() as session:
        n = cancel_batch(session, batch_id, now=utcnow())
    click.echo(f"batch {batch_id}: {n} waiting jobs cancelled", err=True)


@click.command("resume", epilog=examples("tbatch resume 42"))
@click.argument("batch_id", type=int)
def resume_command(batch_id: int) -> None:
    """Release a paused batch after a fix: its failed canary runs again first."""
    canary_jobs = get_runtime().settings.canary_calls
    with db() as session:
        done = resume_batch(session, batch_id, canary_jobs=canary_jobs, now=utcnow())
    canary = f"a canary of {canary_jobs} call(s) runs first" if canary_jobs else "no canary"
    click.echo(
        f"batch {batch_id} resumed: {done['requeued']} job(s) that failed with "
        f"{done['kind']} back to pending; {canary}",
        err=True,
    )


COMMANDS = [show_command, reprocess_command, cancel_command, resume_command]
