"""Schema ``pattern``s with a time bound, so no user's regular expression can stall a worker.

Python's ``re`` holds the interpreter lock for a whole match: one catastrophic pattern (nested
quantifiers against a long answer) blocks every thread of the worker, the lease heartbeat
included, for as long as it backtracks. The ``regex`` module matches with the lock released
(``concurrent=True``) and gives up after ``timeout``. The keywords that match user patterns
(``pattern``, ``patternProperties``, ``additionalProperties`` next to them) are replaced with
bounded versions; a match that runs out of time is a validation error naming the pattern, so
the answer is re-asked or the job fails with that reason, and the thread is free again.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import regex
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend

MATCH_TIMEOUT_S = 0.25


class PatternTimeout(Exception):
    def __init__(self, pattern: str) -> None:
        super().__init__(
            f"pattern {pattern!r} did not finish within {MATCH_TIMEOUT_S} s on this value "
            "(catastrophic backtracking?); simplify the pattern"
        )


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern, flags=regex.V0)


def search(pattern: str, text: str) -> bool:
    """``re.search(pattern, text)``, bounded in time and without holding the GIL."""
    try:
        return compiled(pattern).search(text, timeout=MATCH_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError:
        raise PatternTimeout(pattern) from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = search(pattern, instance)
    except PatternTimeout as exc:
        yield ValidationError(str(exc))
        return
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _matching(patterns: Any, name: str) -> Iterator[str]:
    for pattern in patterns:
        if search(pattern, name):
            yield pattern


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    try:
        for name, value in instance.items():
            for pattern in _matching(patterns, name):
                yield from validator.descend(
                    value, patterns[pattern], path=name, schema_path=pattern
                )
    except PatternTimeout as exc:
        yield ValidationError(str(exc))


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    try:
        extras = [
            name
            for name in instance
            if name not in named and next(_matching(patterns, name), None) is None
        ]
    except PatternTimeout as exc:
        yield ValidationError(str(exc))
        return
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        # jsonschema's own wording, so messages read the same with or without the bound.
        listed = ", ".join(repr(extra) for extra in sorted(extras, key=str))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {joined}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


BoundedValidator = extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)
