"""Helpers shared by CLI commands: settings, sessions, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from models.db import session_scope
from worker.runtime import get_runtime


@contextmanager
def db() -> Iterator[Session]:
    with session_scope(get_runtime().sessions) as session:
        yield session


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()
