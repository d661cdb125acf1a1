"""The `tbatch` console script."""

from __future__ import annotations

import sys
from typing import Any

import click

from worker.errors import TbatchError


class _Group(click.Group):
    """Turns tbatch's own errors into a one-line message and exit 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TbatchError as exc:
            click.echo(f"tbatch: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="tbatch")
def main() -> None:
    """Batch transcript processing through AssemblyAI's LLM Gateway."""


def _register() -> None:
    from worker.cli import demo, jobs, nightly, ops, recovery, report

    for command in (
        *jobs.COMMANDS,
        *ops.COMMANDS,
        *recovery.COMMANDS,
        *nightly.COMMANDS,
        report.report_command,
        demo.demo,
    ):
        main.add_command(command)
    try:
        from emulator.cli import emulator_command
    except ImportError:  # pragma: no cover - the emulator ships with tbatch
        return
    main.add_command(emulator_command)


_register()
