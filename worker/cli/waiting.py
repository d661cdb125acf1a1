"""`tbatch wait BATCH`: block until a batch is final, and say how it ended in the exit code.

A script's way to chain on a batch (``tbatch wait "$B" && tbatch results "$B" -o out.jsonl``).
It reads the batch's status counters (a handful of rows however big the batch) every
``--interval-s``, from Postgres only: no Redis, no limiter. Exit codes:

    0  every job succeeded
    1  a job failed or was cancelled, the batch was cancelled, or it is paused (a paused batch
       does not move until ``tbatch resume``, so waiting longer cannot help; its reason is
       printed)
    2  an error (unknown batch, database unreachable, bad settings) or ``--timeout``
  130  interrupted (Ctrl-C): the batch goes on

Progress and the final summary go to stderr; stdout stays empty unless ``--json``, which
prints the last status read (with ``outcome``) as one JSON object.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from worker.cli.common import db, print_json, say
from worker.cli.help import examples

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 1, "paused": 1, "timeout": 2}
#: A non-terminal stderr (a CI log) gets a progress line at most this often.
LOG_EVERY_S = 30.0


@click.command(
    "wait",
    epilog=examples(
        "B=$(tbatch enqueue --transcripts ids.txt --template t.j2 --schema s.json --model M)",
        'tbatch wait "$B" --timeout 3600 && tbatch results "$B" -o results.jsonl',
    ),
)
@click.argument("batch_id", type=int)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0),
    default=None,
    help="give up after this many seconds (exit 2)  [default: wait as long as it takes]",
)
@click.option(
    "--interval-s",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="seconds between two reads of the batch's status",
)
@click.option("--json", "as_json", is_flag=True, help="print the final status as JSON on stdout")
@click.option("-q", "--quiet", is_flag=True, help="no progress lines on stderr, only the summary")
@click.pass_context
def wait_command(
    ctx: click.Context,
    batch_id: int,
    timeout_s: float | None,
    interval_s: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Block until a batch is final: exit 0 all succeeded, 1 any did not, 2 error."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    progress = _Progress(quiet)
    try:
        status, outcome = _poll(batch_id, deadline, interval_s, progress)
    except KeyboardInterrupt:
        progress.clear()
        say(f"tbatch: interrupted; batch {batch_id} goes on (wait again to follow it)")
        ctx.exit(130)  # the shell's code for SIGINT, not one of wait's verdicts
    progress.clear()
    say(_summary(status, outcome, timeout_s))
    if as_json:
        print_json({**status, "outcome": outcome})
    ctx.exit(EXIT_CODES[outcome])


def _poll(
    batch_id: int, deadline: float | None, interval_s: float, progress: _Progress
) -> tuple[dict[str, Any], str]:
    """Read the status until the batch ends or the deadline passes; the last status read."""
    from worker.cli.render import progress_line
    from worker.services.progress import batch_outcome

    while True:
        status = _read(batch_id)
        outcome: str | None = batch_outcome(status)
        if outcome is None and deadline is not None and time.monotonic() >= deadline:
            outcome = "timeout"
        if outcome is not None:
            return status, outcome
        progress.show(progress_line(status))
        pause_s = interval_s if deadline is None else min(interval_s, deadline - time.monotonic())
        time.sleep(max(0.0, pause_s))  # a CLI's poll interval, not synchronisation


def _read(batch_id: int) -> dict[str, Any]:
    from models.base import utcnow
    from worker.ratelimit.config import RateLimitConfig
    from worker.runtime import get_runtime
    from worker.services.progress import with_progress
    from worker.services.queries import batch_status

    with db() as session:
        status = batch_status(session, batch_id)
    # The configured limits (no Redis): enough for the ETA's floor.
    config = RateLimitConfig.from_settings(get_runtime().settings)
    models = []
    for model, region in status.pop("lanes"):
        limit = config.limit_for(model, region)
        models.append(
            {
                "model": model,
                "region": region,
                "limit": None if limit is None else limit.requests,
                "window_s": None if limit is None else limit.window_s,
            }
        )
    status = with_progress(status, models, utcnow())
    status.pop("remaining_by_lane")
    status.pop("models")
    return status


def _summary(status: dict[str, Any], outcome: str, timeout_s: float | None) -> str:
    """The last line on stderr: how the batch ended (or why waiting did)."""
    batch = status["batch_id"]
    counts = ", ".join(f"{n} {state}" for state, n in status["counts"].items() if n)
    if outcome == "timeout":
        return (
            f"tbatch: error: batch {batch} not final after {timeout_s:g} s "
            f"({status['done']} of {status['total']} final: {counts})"
        )
    line = f"batch {batch} {outcome}: {counts or 'no jobs'}"
    if status["failures"]:
        reasons = ", ".join(f"{kind} {n}" for kind, n in sorted(status["failures"].items()))
        line += f" (failures: {reasons})"
    if outcome == "paused":
        line += (
            f"\nbatch {batch} is paused: {status['paused_reason']}\n"
            f"it will not finish until `tbatch resume {batch}` (after the cause is fixed)"
        )
    return line


class _Progress:
    """Progress on stderr: one line redrawn in place on a terminal; a line at most every
    ``LOG_EVERY_S`` when it changed otherwise (a CI log should not get one per second)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_line = ""
        self.last_at = float("-inf")

    def show(self, line: str) -> None:
        if self.quiet or line == self.last_line:
            return
        if self.tty:
            sys.stderr.write(f"\r\x1b[K{line}")
        elif time.monotonic() - self.last_at >= LOG_EVERY_S:
            sys.stderr.write(line + "\n")
            self.last_at = time.monotonic()
        else:
            return
        sys.stderr.flush()
        self.last_line = line

    def clear(self) -> None:
        if self.tty and self.last_line:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


COMMANDS = [wait_command]
