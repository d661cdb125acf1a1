"""User-owned JSON Schemas: check them at the boundary, hash them, and build cached validators.

A batch reuses one schema for tens of thousands of jobs and a validator is costly to build, so
:func:`validator_for` keeps validators keyed by :func:`schema_hash`. Formats are checked
(``date``, ``email``, ...); ``date-time`` is checked even when jsonschema's optional
``rfc3339-validator`` is not installed.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from worker.errors import InputError

MAX_SCHEMA_BYTES = 256 * 1024
MAX_ERRORS = 20
MAX_ERROR_CHARS = 300
_VALIDATOR_CACHE_SIZE = 64
# Keywords whose values are data, not subschemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)

_validators: OrderedDict[str, Draft202012Validator] = OrderedDict()
_validators_lock = threading.Lock()


def schema_hash(schema: object) -> str:
    """sha256 hex over canonical JSON (sorted keys, compact separators)."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def json_path(parts: Iterable[str | int]) -> str:
    """``["items", 2, "due date"]`` -> ``$.items[2]['due date']``."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            path += f".{part}"
        else:
            path += f"[{part!r}]"
    return path


def check_schema(schema: object, *, source: str) -> None:
    """InputError unless ``schema`` is a usable Draft 2020-12 schema (bounded, refs resolvable)."""
    if not isinstance(schema, dict | bool):
        raise InputError(
            f"a JSON Schema must be an object or a boolean, not {type(schema).__name__}",
            source=source,
        )
    try:
        size = len(json.dumps(schema).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"schema is not serialisable JSON: {exc}", source=source) from None
    if size > MAX_SCHEMA_BYTES:
        raise InputError(f"schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}", source=source)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InputError(
            f"invalid JSON Schema at {json_path(exc.absolute_path)}: {exc.message}",
            source=source,
        ) from None
    if isinstance(schema, dict):
        _check_refs(schema, source)


def _check_refs(schema: dict[str, Any], source: str) -> None:
    root_uri = schema.get("$id", "") if isinstance(schema.get("$id"), str) else ""
    resource = DRAFT202012.create_resource(schema)
    try:
        registry: Registry[Any] = SPECIFICATIONS.with_resource(root_uri, resource).crawl()
    except Unresolvable as exc:
        raise InputError(f"schema cannot be loaded: {exc}", source=source) from None
    resolver = registry.resolver(base_uri=root_uri)
    for base, ref, path in _refs(schema, root_uri, []):
        try:
            resolver.lookup(urljoin(base, ref))
        except Unresolvable:
            raise InputError(
                f"$ref {ref!r} at {json_path(path)} cannot be resolved "
                "(tbatch resolves only references inside the schema and to the meta-schemas)",
                source=source,
            ) from None


def _refs(
    node: object, base: str, path: list[str | int]
) -> Iterator[tuple[str, str, list[str | int]]]:
    """Yield ``(base URI, $ref, path)`` for every ``$ref`` string in a schema tree."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _refs(item, base, [*path, index])
    elif isinstance(node, dict):
        if path and isinstance(node.get("$id"), str):
            base = urljoin(base, node["$id"])
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield base, ref, [*path, "$ref"]
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _refs(value, base, [*path, key])


def _is_rfc3339_datetime(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _RFC3339.fullmatch(instance):
        return False
    try:
        datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def _format_checker() -> FormatChecker:
    base = Draft202012Validator.FORMAT_CHECKER
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.checkers)
    if "date-time" not in checker.checkers:
        checker.checkers["date-time"] = (_is_rfc3339_datetime, ())
    return checker


def validator_for(schema: dict[str, Any] | bool) -> Draft202012Validator:
    """A format-checking validator for ``schema``, cached by :func:`schema_hash`."""
    key = schema_hash(schema)
    with _validators_lock:
        validator = _validators.get(key)
        if validator is not None:
            _validators.move_to_end(key)
            return validator
    validator = Draft202012Validator(schema, format_checker=_format_checker())
    with _validators_lock:
        _validators[key] = validator
        while len(_validators) > _VALIDATOR_CACHE_SIZE:
            _validators.popitem(last=False)
    return validator


def validation_errors(instance: object, schema: dict[str, Any] | bool) -> list[str]:
    """Every schema violation as ``"at $.path[2].field: message"``, sorted by path, bounded."""
    errors = sorted(
        validator_for(schema).iter_errors(instance),
        key=lambda error: (_path_key(error.absolute_path), error.message),
    )
    found = [_clip(f"at {json_path(error.absolute_path)}: {error.message}") for error in errors]
    if len(found) > MAX_ERRORS:
        found = [*found[: MAX_ERRORS - 1], f"... and {len(found) - MAX_ERRORS + 1} more errors"]
    return found


def _path_key(parts: Iterable[str | int]) -> tuple[tuple[int, int, str], ...]:
    """Sort key: the root first, then path order, with array indexes in numeric order."""
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in parts)


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
