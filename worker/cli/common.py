"""Helpers shared by CLI commands: settings, sessions, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from models.db import session_scope
from worker.runtime import get_runtime


@contextmanager
def db() -> Iterator[Session]:
    with session_scope(get_runtime().sessions) as session:
        yield session


def json_default(value: Any) -> Any:
    """Timestamps as ISO 8601 (``2026-12-07T09:31:37.123456+00:00``); anything else JSON
    cannot hold (Decimal, UUID) as its text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def print_json(obj: Any) -> None:
    """One JSON document on one line of stdout (data; human messages go to stderr)."""
    sys.stdout.write(json.dumps(obj, default=json_default) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    """A message for a person: stderr, so stdout carries only data."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
