"""The `tbatch` console script."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from worker.errors import TbatchError

#: Every command: where it lives, and its one-line help. Commands are imported only when run,
#: so ``tbatch --help`` (and any one command) does not load SQLAlchemy, Celery, httpx and the
#: emulator first; tests/unit/test_cli_lazy.py keeps these lines equal to the commands' own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "enqueue": (
        "worker.cli.jobs",
        "enqueue_command",
        "Validate a whole input and store it as a batch of pending jobs (or store...",
    ),
    "estimate": (
        "worker.cli.estimate",
        "estimate_command",
        "Estimate what enqueueing this input would take and cost (stores nothing).",
    ),
    "status": (
        "worker.cli.jobs",
        "status_command",
        "Counts per state, progress, throughput, failures by reason, per-model budgets.",
    ),
    "wait": (
        "worker.cli.waiting",
        "wait_command",
        "Block until a batch is final: exit 0 all succeeded, 1 any did not, 2 error.",
    ),
    "results": (
        "worker.cli.jobs",
        "results_command",
        "One record per job: job_id, custom_id, transcript_id, status, result,...",
    ),
    "show": (
        "worker.cli.recovery",
        "show_command",
        "The job, its attempts as a timeline (request_ids, models, statuses, errors,...",
    ),
    "reprocess": (
        "worker.cli.recovery",
        "reprocess_command",
        "Run failed jobs again (a new attempt; history kept).",
    ),
    "cancel": (
        "worker.cli.recovery",
        "cancel_command",
        "Stop the rest of a batch; finished results stay.",
    ),
    "resume": (
        "worker.cli.recovery",
        "resume_command",
        "Release a paused batch after a fix: its failed canary runs again first.",
    ),
    "report": (
        "worker.cli.report",
        "report_command",
        "Aggregate a batch's validated results: counts, averages, top items, failures,...",
    ),
    "migrate": (
        "worker.cli.ops",
        "migrate_command",
        "Bring the database to the latest schema (Alembic).",
    ),
    "worker": (
        "worker.cli.ops",
        "worker_command",
        "A Celery worker with tbatch's configuration (plus dispatcher, reconciler,...",
    ),
    "dispatch": (
        "worker.cli.ops",
        "dispatch_command",
        "Run the dispatcher and reconciler alone (one per machine, or as a worker's...",
    ),
    "beat": ("worker.cli.nightly", "beat_command", "Run the pipelines' schedule (Celery beat)."),
    "nightly": (
        "worker.cli.nightly",
        "nightly_group",
        "Nightly pipelines: run a night now, list past nights, build finished reports.",
    ),
    "demo": (
        "worker.cli.demo",
        "demo",
        "Run ~200 synthetic calls through the whole pipeline on this machine.",
    ),
    "ui": (
        "worker.cli.ui",
        "ui_command",
        "A read-only web view of batches, jobs and nightly reports (JSON under /api).",
    ),
    "batches": (
        "worker.cli.ui",
        "batches_command",
        "Every batch, newest first: progress, state, ETA and cost.",
    ),
    "emulator": (
        "emulator.cli",
        "emulator_command",
        "Serve an emulated AssemblyAI LLM Gateway (+ transcript list) on one port.",
    ),
}


class _Group(click.Group):
    """Loads a command only when it runs, and turns tbatch's own errors and problems of the
    environment (database, Redis, settings: worker/cli/failures.py) into a one-line message
    and exit 2, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TbatchError as exc:
            click.echo(f"tbatch: error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            from worker.cli.failures import describe

            line = describe(exc)
            if line is None:
                raise
            click.echo(f"tbatch: error: {line}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tbatch")
def main() -> None:
    """Batch transcript processing through AssemblyAI's LLM Gateway."""
