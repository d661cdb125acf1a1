"""A problem of the environment (database, Redis, settings) as one line for a person.

The CLI turns these into ``tbatch: error: <line>`` and exit 2 instead of a traceback. Each line
names what failed and where (the URL with its user and password removed), never a secret: a
URL's credentials are stripped from the message too, whatever library wrote it.

The exception classes are looked up in ``sys.modules`` rather than imported: a library that
was never imported cannot have raised, and ``tbatch --help`` must not pay for importing them.
"""

from __future__ import annotations

import re
import sys
from typing import Any

# scheme://user:password@host -> scheme://host (any URL in any message)
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")
# libpq's key=value form (password=... in a DSN)
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def strip_credentials(text: str) -> str:
    """``postgresql://alice:s3cret@db:5432/x`` -> ``postgresql://db:5432/x``, in any text."""
    return _DSN_PASSWORD.sub(r"\1***", _CREDENTIALS.sub(r"\g<scheme>", text))


def describe(exc: BaseException) -> str | None:
    """One line for an environment problem, or None for anything else (a bug keeps its
    traceback)."""
    line = _database(exc) or _redis(exc) or _settings(exc)
    return None if line is None else strip_credentials(" ".join(line.split()))


def _database(exc: BaseException) -> str | None:
    sa = sys.modules.get("sqlalchemy.exc")
    if sa is None or not isinstance(exc, sa.SQLAlchemyError):
        return None
    where = _setting_url("database_url")
    if isinstance(exc, sa.OperationalError):
        return f"database unreachable ({where}): {_first_line(exc.orig)}"
    if isinstance(exc, sa.ProgrammingError) and "does not exist" in str(exc.orig):
        return (
            f"database {where} has no tbatch schema (run `tbatch migrate`): {_first_line(exc.orig)}"
        )
    if isinstance(exc, sa.ArgumentError | sa.NoSuchModuleError):
        return f"TBATCH_DATABASE_URL is not a database URL SQLAlchemy can use: {_first_line(exc)}"
    if isinstance(exc, sa.DBAPIError):
        return f"database error ({where}): {_first_line(exc.orig)}"
    return None


def _redis(exc: BaseException) -> str | None:
    rx = sys.modules.get("redis.exceptions")
    if rx is None or not isinstance(exc, rx.RedisError):
        return None
    return f"Redis unreachable ({_setting_url('redis_url')}): {_first_line(exc)}"


def _settings(exc: BaseException) -> str | None:
    pd = sys.modules.get("pydantic")
    # Only the settings' own errors: a gateway answer's model failing validation is a bug.
    if pd is None or not isinstance(exc, pd.ValidationError) or exc.title != "Settings":
        return None
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        name = "ASSEMBLYAI_API_KEY" if field == "api_key" else f"TBATCH_{field.upper()}"
        problems.append(f"{name}: {error['msg']}")
    return f"invalid settings: {'; '.join(problems)}"


def _setting_url(name: str) -> str:
    """A setting's URL, credentials removed; ``?`` if the settings themselves are broken."""
    try:
        from worker.settings import get_settings

        value = str(getattr(get_settings(), name)) or "-"
    except ValueError:  # pydantic's ValidationError: a broken setting must not hide this error
        return "?"
    return strip_credentials(value)


def _first_line(obj: Any) -> str:
    text = str(obj).strip()
    return text.splitlines()[0] if text else type(obj).__name__
