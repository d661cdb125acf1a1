"""The README's worked examples name only commands and options that exist: every `$ tbatch ...`
line of its code blocks (and `B=$(tbatch ...)`), continuation lines joined, is resolved against
the real click commands, and each `--option` it passes must be one of that command's."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click

from worker.cli import COMMANDS

README = Path(__file__).resolve().parents[2] / "README.md"
SHELL_CALL = re.compile(r"^\$ (?:[A-Z]+=\$\()?(tbatch .*?)\)?(?:;.*)?$")


def _invocations(text: str) -> list[str]:
    """The tbatch command lines of the README's fenced blocks, continuations joined, comments,
    pipes and redirections cut."""
    found, in_block, pending = [], False, ""
    for raw in text.splitlines():
        if raw.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        line = pending + raw.strip() if pending else raw
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        match = SHELL_CALL.match(line.split("  #")[0].strip())
        if match:
            found.append(match.group(1).split(" | ")[0].split(" && ")[0])
    return found


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    module, attr, _ = COMMANDS[words[0]]
    command: click.Command = getattr(importlib.import_module(module), attr)
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def test_the_worked_examples_are_there() -> None:
    calls = _invocations(README.read_text())
    names = {shlex.split(c)[1] for c in calls}
    assert {"estimate", "enqueue", "status", "wait", "results", "batches", "nightly"} <= names
    assert {"report", "reprocess", "show"} <= names


def test_every_readme_command_and_option_exists() -> None:
    unknown = []
    for call in _invocations(README.read_text()):
        words = shlex.split(call)[1:]
        if words[0] not in COMMANDS:
            unknown.append(call)
            continue
        command, rest = _command(words)
        options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        options |= {"-h", "--help"}
        unknown += [
            f"{call}: {w}" for w in rest if w.startswith("-") and w.split("=")[0] not in options
        ]
    assert unknown == []
