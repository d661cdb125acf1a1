"""Structured logging: JSON lines (or readable text) with ``extra`` fields, and key redaction.

Log with fields, not prose: ``log.info("gateway.call", extra={"event": "gateway.call",
"request_id": ..., "job_id": ...})``. Every handler ``configure_logging`` installs carries a
``RedactionFilter``, so an API key that slips into a message, a field or a traceback is replaced
before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

REDACTED = "[REDACTED]"
# Attributes every LogRecord has; anything else on a record came from ``extra``.
RESERVED_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)
_HANDLER_MARK = "_tbatch_handler"


def _settings_secrets() -> list[str]:
    from worker.settings import get_settings  # lazy: importing this module reads nothing

    try:
        key = get_settings().api_key
    except ValueError:  # invalid settings must not break logging; the CLI reports them
        return []
    return [key.get_secret_value()] if key is not None else []


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value


class RedactionFilter(logging.Filter):
    """Replaces each secret in a record's message, extra fields and traceback text."""

    def __init__(self, secrets: Iterable[str] | Callable[[], Iterable[str]] | None = None):
        super().__init__()
        self._secrets = secrets if secrets is not None else _settings_secrets

    def _current(self) -> list[str]:
        found = self._secrets() if callable(self._secrets) else self._secrets
        return [s for s in found if s]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._current()
        if not secrets:
            return True
        record.msg = _scrub(record.getMessage(), secrets)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in RESERVED_ATTRS:
                setattr(record, key, _scrub(value, secrets))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _scrub(record.exc_text, secrets)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in RESERVED_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(extra_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger msg key=value ...`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = " ".join(f"{k}={v!r}" for k, v in extra_fields(record).items())
        if not fields:
            return base
        head, sep, tail = base.partition("\n")  # keep a traceback below the fields
        return f"{head} {fields}{sep}{tail}"


def configure_logging(
    level: str = "INFO",
    fmt: Literal["json", "text"] = "json",
    *,
    secrets: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    stream: Any = None,
) -> logging.Handler:
    """Install one stderr handler on the root logger (replacing a previous one of ours).

    ``secrets`` defaults to the API key from settings, read when a record is filtered.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactionFilter(secrets))
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
