"""The CLI loads a command only when it runs; its table of commands stays true."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from worker.cli import COMMANDS


def test_the_table_names_every_command_with_its_own_help() -> None:
    for name, (module, attr, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command) and command.name == name
        assert command.get_short_help_str(limit=80) == short_help, name


def test_help_loads_no_command_module() -> None:
    probe = (
        "import sys; from click.testing import CliRunner; from worker.cli import main;"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('sqlalchemy', 'celery', 'httpx', 'emulator', 'worker.cli.jobs')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
