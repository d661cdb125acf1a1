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

import regex
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from worker import schema_regex
from worker.errors import InputError
from worker.schema_regex import BoundedValidator

MAX_SCHEMA_BYTES = 256 * 1024
MAX_ERRORS = 20
MAX_ERROR_CHARS = 300
_VALIDATOR_CACHE_SIZE = 64
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)

_validators: OrderedDict[str, Any] = OrderedDict()
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
    if schema is False:
        raise InputError(
            "the schema false accepts no value: every answer would fail validation",
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
        _check_patterns(schema, source)


def _check_refs(schema: dict[str, Any], source: str) -> None:
    registry = _registry(schema, source)
    resolver = registry.resolver(base_uri=_root_uri(schema))
    for base, keyword, ref, path in _refs(schema):
        try:
            resolver.lookup(urljoin(base, ref))
        except Unresolvable:
            raise InputError(
                f"{keyword} {ref!r} at {json_path(path)} cannot be resolved (tbatch resolves "
                "only references inside the schema and to the meta-schemas, and never fetches "
                "one over the network)",
                source=source,
            ) from None


def _root_uri(schema: dict[str, Any] | bool) -> str:
    root = schema.get("$id") if isinstance(schema, dict) else None
    return root if isinstance(root, str) else ""


def _registry(schema: dict[str, Any] | bool, source: str = "schema") -> Registry[Any]:
    """The schema and the meta-schemas, crawled; nothing else. A registry without a
    ``retrieve`` cannot fetch: a remote reference is unresolvable, never a network request."""
    resource = DRAFT202012.create_resource(schema)
    try:
        registry: Registry[Any] = SPECIFICATIONS.with_resource(_root_uri(schema), resource)
        return registry.crawl()
    except Unresolvable as exc:
        raise InputError(f"schema cannot be loaded: {exc}", source=source) from None


def _subschemas(
    node: object, base: str, path: list[str | int]
) -> Iterator[tuple[dict[str, Any], str, list[str | int]]]:
    """Yield ``(subschema, base URI, path)`` for the node and every subschema under it,
    descending only where the 2020-12 vocabulary puts subschemas: a property *named*
    ``default`` is a subschema, the value of ``default`` or ``enum`` is data."""
    if not isinstance(node, dict):
        return
    if path and isinstance(node.get("$id"), str):
        base = urljoin(base, node["$id"])
    yield node, base, path
    subs = {id(sub) for sub in DRAFT202012.subresources_of(node) if isinstance(sub, dict)}
    for key, value in node.items():
        if id(value) in subs:
            yield from _subschemas(value, base, [*path, key])
        elif isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, child in items:
                if id(child) in subs:
                    yield from _subschemas(child, base, [*path, key, name])


def _refs(schema: dict[str, Any]) -> Iterator[tuple[str, str, str, list[str | int]]]:
    """``(base URI, keyword, reference, path)`` of every ``$ref`` and ``$dynamicRef``."""
    for node, base, path in _subschemas(schema, _root_uri(schema), []):
        for keyword in ("$ref", "$dynamicRef"):
            if isinstance(node.get(keyword), str):
                yield base, keyword, node[keyword], [*path, keyword]


def _check_patterns(schema: dict[str, Any], source: str) -> None:
    """Every ``pattern`` and ``patternProperties`` key compiles for the bounded matcher."""
    for node, _, path in _subschemas(schema, "", []):
        found = (
            [([*path, "pattern"], node["pattern"])] if isinstance(node.get("pattern"), str) else []
        )
        if isinstance(node.get("patternProperties"), dict):
            found += [([*path, "patternProperties", p], p) for p in node["patternProperties"]]
        for where, pattern in found:
            try:
                schema_regex.compiled(pattern)
            except regex.error as exc:
                raise InputError(
                    f"pattern {pattern!r} at {json_path(where)} is not a valid regular "
                    f"expression: {exc}",
                    source=source,
                ) from None


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


def validator_for(schema: dict[str, Any] | bool) -> Any:
    """A format-checking validator for ``schema``, cached by :func:`schema_hash`: patterns are
    time-bounded (:mod:`worker.schema_regex`) and references resolve only inside the schema
    and to the meta-schemas (no network)."""
    key = schema_hash(schema)
    with _validators_lock:
        validator = _validators.get(key)
        if validator is not None:
            _validators.move_to_end(key)
            return validator
    validator = BoundedValidator(
        schema, format_checker=_format_checker(), registry=_registry(schema)
    )
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
