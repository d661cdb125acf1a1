"""Schema restrictions providers enforce, surfaced as the gateway's ``response_format is invalid``.

The record (gateway-api.md 5.1) only says a malformed format is a 400 ``"response_format is
invalid: …"``. Which schemas a provider refuses is our choice, modelled on the providers' own
published limits so a client meets the failure here before it meets it live:

- Google (Gemini's structured output takes an OpenAPI-style subset): a schema using any of
  ``GOOGLE_UNSUPPORTED`` anywhere is refused.
- OpenAI with ``strict: true`` (structured outputs): every object must say
  ``additionalProperties: false`` and list every property in ``required``.

The walk visits schema positions only, so a property *named* ``not`` or ``if`` is no keyword.
Pointers are JSON Pointers written as URI fragments (``#`` is the root).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from emulator.world.catalog import ModelInfo

GOOGLE_UNSUPPORTED = (
    "patternProperties",
    "if",
    "then",
    "else",
    "not",
    "dependentSchemas",
    "unevaluatedProperties",
    "propertyNames",
)
STRICT_PROBLEM = (
    "strict schemas require additionalProperties false and every property required (at {at})"
)
#: Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_ONE: tuple[str, ...] = ("not", "if", "then", "else", "items", "additionalProperties")
_ONE += ("contains", "propertyNames", "unevaluatedProperties", "unevaluatedItems")
_ONE += ("additionalItems",)
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _walk(schema: Any, at: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (pointer, subschema) object in ``schema``, the root first."""
    if not isinstance(schema, dict):
        return
    yield at, schema
    for key in _ONE:
        if key in schema:
            yield from _walk(schema[key], f"{at}/{key}")
    for key in _MANY:
        items = schema.get(key)
        for i, sub in enumerate(items if isinstance(items, list) else []):
            yield from _walk(sub, f"{at}/{key}/{i}")
    for key in _NAMED:
        named = schema.get(key)
        for name, sub in (named if isinstance(named, dict) else {}).items():
            yield from _walk(sub, f"{at}/{key}/{_escape(str(name))}")


def google_problem(schema: Any, model: str) -> str | None:
    for _, sub in _walk(schema):
        for keyword in GOOGLE_UNSUPPORTED:
            if keyword in sub:
                return f"schema keyword '{keyword}' is not supported by {model}"
    return None


def strict_problem(schema: Any) -> str | None:
    for at, sub in _walk(schema):
        props, kind = sub.get("properties"), sub.get("type")
        is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
        if not is_object and not isinstance(props, dict):
            continue
        names = set(props) if isinstance(props, dict) else set()
        required = sub.get("required")
        listed = set(required) if isinstance(required, list) else set()
        if sub.get("additionalProperties") is not False or not names <= listed:
            return STRICT_PROBLEM.format(at=at)
    return None


def format_problem(info: ModelInfo, schema: Any, strict: bool) -> str | None:
    """Why ``info``'s provider refuses ``schema`` (without the field prefix), or None."""
    if info.creator == "google":
        return google_problem(schema, info.id)
    if info.creator == "openai" and strict:
        return strict_problem(schema)
    return None


def tool_problems(info: ModelInfo, tools: Any) -> list[str]:
    """OpenAI checks a ``strict`` function's ``parameters`` as it checks a strict format."""
    if info.creator != "openai" or not isinstance(tools, list):
        return []
    problems = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        params = function.get("parameters") if isinstance(function, dict) else None
        if isinstance(function, dict) and function.get("strict") is True and params is not None:
            problem = strict_problem(params)
            if problem:
                problems.append(f"tools[{i}].function.parameters is invalid: {problem}")
    return problems
