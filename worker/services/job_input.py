"""Parsing the transcripts file of `tbatch enqueue`: pure, streaming, with file:line errors.

A line is either a bare transcript id or a JSON object (JSONL) with ``transcript_id`` plus
per-job ``variables`` and overrides. Blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from worker.errors import InputError
from worker.gateway.types import MAX_FALLBACKS

# AssemblyAI transcript ids are UUIDs today (older ones are shorter tokens of the same alphabet).
# Matched whole (``fullmatch``): ``$`` would let an id with a trailing newline through.
TRANSCRIPT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{7,127}")
MAX_TOKENS_LIMIT = 2**31 - 1  # the column is a 32-bit integer
# region -> the model ids that region's gateway host serves (enqueue and reprocess check
# every model of a job against it)
Catalog = Callable[[str], Iterable[str]]
JOB_KEYS = {
    "transcript_id",
    "variables",
    "model",
    "fallbacks",
    "max_tokens",
    "temperature",
    "custom_id",
    "metadata",
}
MAX_CUSTOM_ID_CHARS = 200  # the column
MAX_METADATA_BYTES = 16_384  # as compact JSON: carried on every job and every result


REASONING_EFFORTS = ("low", "medium", "high")


def reasoning_value(effort: str | None, max_tokens: int | None) -> dict[str, Any] | None:
    """The gateway's ``reasoning`` object: an effort or a cap on thinking tokens, not both
    (the documented shapes, gateway-api.md section 2). ``InputError`` names the problem."""
    if effort is not None and max_tokens is not None:
        raise InputError("give a reasoning effort or a reasoning token cap, not both")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise InputError(f"reasoning effort must be one of {', '.join(REASONING_EFFORTS)}")
        return {"effort": effort}
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError("reasoning max_tokens must be a positive integer")
        return {"max_tokens": max_tokens}
    return None


@dataclass(frozen=True)
class JobInput:
    line: int
    transcript_id: str
    variables: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    fallbacks: tuple[str, ...] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    custom_id: str | None = None
    metadata: dict[str, Any] | None = None


def parse_job_lines(lines: Iterable[str], *, source: str) -> Iterator[JobInput | InputError]:
    """Yield one JobInput per job line, or an InputError naming the line; never raises."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield _parse_line(text, number, source)
        except InputError as exc:
            yield exc


def _parse_line(text: str, number: int, source: str) -> JobInput:
    def fail(problem: str) -> InputError:
        return InputError(problem, source=source, line=number)

    if not text.startswith("{"):
        return JobInput(line=number, transcript_id=_check_id(text, fail))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"malformed JSON line ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise fail("a JSONL line must be an object with a transcript_id")
    unknown = sorted(set(obj) - JOB_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(JOB_KEYS))}")
    if "transcript_id" not in obj:
        raise fail("missing transcript_id")
    return JobInput(
        line=number,
        transcript_id=_check_id(obj["transcript_id"], fail),
        variables=_check_variables(obj.get("variables"), fail),
        model=_check_optional_str(obj.get("model"), "model", fail),
        fallbacks=_check_fallbacks(obj.get("fallbacks"), fail),
        max_tokens=_check_max_tokens(obj.get("max_tokens"), fail),
        temperature=_check_temperature(obj.get("temperature"), fail),
        custom_id=_check_custom_id(obj.get("custom_id"), fail),
        metadata=_check_metadata(obj.get("metadata"), fail),
    )


def _check_id(value: object, fail: Any) -> str:
    if not isinstance(value, str) or not TRANSCRIPT_ID_RE.fullmatch(value):
        shown = value if isinstance(value, str) else type(value).__name__
        raise fail(
            f"{str(shown)[:60]!r} is not a plausible transcript id "
            "(8-128 letters, digits, '-' or '_')"
        )
    return value


def _check_variables(value: object, fail: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("variables must be an object")
    return value


def _check_optional_str(value: object, name: str, fail: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{name} must be a non-empty string")
    return value.strip()


def _check_fallbacks(value: object, fail: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise fail("fallbacks must be a list of model ids")
    check_fallback_count(value, fail)
    return tuple(value)


def check_fallback_count(fallbacks: list[str] | tuple[str, ...], fail: Any) -> None:
    if len(fallbacks) > MAX_FALLBACKS:
        raise fail(f"{len(fallbacks)} fallbacks given; the gateway chains at most {MAX_FALLBACKS}")


def _check_max_tokens(value: object, fail: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise fail(f"max_tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}")
    return value


def _check_custom_id(value: object, fail: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CUSTOM_ID_CHARS:
        raise fail(f"custom_id must be a string of 1 to {MAX_CUSTOM_ID_CHARS} characters")
    if "\x00" in value:
        raise fail("custom_id must not contain NUL")
    return value


def _check_metadata(value: object, fail: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("metadata must be an object")
    # One serialisation for both checks: JSON escapes a NUL as \u0000 even without ensure_ascii.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    if size > MAX_METADATA_BYTES:
        raise fail(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
    if "\\u0000" in text:
        raise fail("metadata must not contain NUL (Postgres cannot store it)")
    return value


def _check_temperature(value: object, fail: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise fail("temperature must be a number from 0 to 2")
    return float(value)
