"""Every tbatch command explains itself (issue 13): each option has help text, each command's
``--help`` ends with an example, and ``-h`` is ``--help`` everywhere."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import click
from click.testing import CliRunner

from worker.cli import COMMANDS, main


def _walk() -> Iterator[tuple[str, click.Command]]:
    """Every command of the table, and every subcommand of its groups, with its full name."""
    stack: list[tuple[str, click.Command]] = []
    for name, (module, attr, _) in COMMANDS.items():
        stack.append((name, getattr(importlib.import_module(module), attr)))
    while stack:
        name, command = stack.pop()
        yield name, command
        if isinstance(command, click.Group):
            stack.extend((f"{name} {sub}", cmd) for sub, cmd in command.commands.items())


def test_the_walk_reaches_subcommands() -> None:
    names = {name for name, _ in _walk()}
    assert {"wait", "status", "nightly run", "nightly check", "emulator"} <= names


def test_every_option_has_help_text() -> None:
    missing = [
        f"tbatch {name} {'/'.join(param.opts)}"
        for name, command in _walk()
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert missing == []


def test_every_command_shows_an_example() -> None:
    without = []
    # Under the group's context, as when run: click caches each command's help option.
    parent = click.Context(main, info_name="tbatch", **main.context_settings)
    for name, command in _walk():
        with click.Context(command, info_name=name, parent=parent) as ctx:
            if "Example" not in command.get_help(ctx):
                without.append(name)
    assert without == []


def test_dash_h_is_help_for_the_group_and_each_command() -> None:
    runner = CliRunner()
    for argv in (["-h"], ["wait", "-h"], ["status", "-h"], ["nightly", "run", "-h"]):
        result = runner.invoke(main, argv)
        assert result.exit_code == 0, (argv, result.output)
        assert result.output.startswith("Usage: "), argv
