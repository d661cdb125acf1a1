"""Broken outputs of the kinds real models emit, for fault injection.

``malform`` turns a JSON value into the text a sloppy model would send (fences, prose, trailing
commas, single quotes, Python literals, truncation). ``violate`` returns valid JSON that breaks
the schema (a required field dropped, an enum value wrong, a type wrong) so clients can test
their re-ask path.
"""

from __future__ import annotations

import json
import random
from typing import Any

from jsonschema import Draft202012Validator

from emulator.answers.schema_norm import Compiled

UNREPAIRABLE_TEXT = "I'm not able to produce that in the requested format."
_PROSE_BEFORE = "Sure! Here is the analysis you asked for:\n\n"
_PROSE_AFTER = "\n\nLet me know if you would like me to expand on any of these points."


def _dump(value: Any, trailing: bool, quote: str, literals: tuple[str, str, str]) -> str:
    """JSON-like text with a chosen string quote, optional trailing commas and literal names."""
    if isinstance(value, dict):
        items = [
            f"{_dump(k, trailing, quote, literals)}: {_dump(v, trailing, quote, literals)}"
            for k, v in value.items()
        ]
        tail = "," if trailing and items else ""
        return "{" + ", ".join(items) + tail + "}"
    if isinstance(value, list):
        items = [_dump(v, trailing, quote, literals) for v in value]
        tail = "," if trailing and items else ""
        return "[" + ", ".join(items) + tail + "]"
    if isinstance(value, str):
        if quote == "'" and "'" not in value:
            return "'" + json.dumps(value)[1:-1].replace('\\"', '"') + "'"
        return json.dumps(value)
    if value is True:
        return literals[0]
    if value is False:
        return literals[1]
    if value is None:
        return literals[2]
    return json.dumps(value)


_JSON_LITERALS = ("true", "false", "null")
_PY_LITERALS = ("True", "False", "None")


def malform(kind: str, value: Any, rng: random.Random) -> str:
    """The text of ``value`` broken in the way named by ``kind``."""
    text = json.dumps(value)
    if kind == "code_fence":
        return "```json\n" + json.dumps(value, indent=2) + "\n```"
    if kind == "prose":
        return _PROSE_BEFORE + text + _PROSE_AFTER
    if kind == "trailing_comma":
        return _dump(value, True, '"', _JSON_LITERALS)
    if kind == "single_quotes":
        return _dump(value, False, "'", _JSON_LITERALS)
    if kind == "python_literals":
        return _dump(value, False, "'", _PY_LITERALS)
    if kind == "truncated_json":
        return cut(text, rng)
    if kind == "unrepairable":
        return UNREPAIRABLE_TEXT
    return text


def cut(text: str, rng: random.Random) -> str:
    """``text`` cut somewhere in its middle (at least one character dropped)."""
    if len(text) < 2:
        return text[:0]
    return text[: max(1, int(len(text) * rng.uniform(0.35, 0.8)))]


def violate(schema: object, value: Any, rng: random.Random) -> Any:
    """Valid JSON that fails ``schema``; ``value`` unchanged if nothing could break it."""
    validator = Draft202012Validator(schema if isinstance(schema, dict | bool) else {})
    compiled = Compiled(schema)
    root = compiled.norm(compiled.root)
    for candidate in _candidates(root, value, compiled, rng):
        if not validator.is_valid(candidate):
            return candidate
    return value


def _candidates(root: dict[str, Any], value: Any, compiled: Compiled, rng: random.Random) -> Any:
    if isinstance(value, dict):
        required = [k for k in root.get("required", []) if k in value]
        if required:
            dropped = dict(value)
            dropped.pop(rng.choice(required))
            yield dropped
        for key, sub in root.get("properties", {}).items():
            norm = compiled.norm(sub)
            if key in value and "enum" in norm:
                yield {**value, key: "not_a_valid_option"}
        for key in list(value)[:3]:
            yield {**value, key: {"unexpected": [1, 2, 3]}}
    if isinstance(value, list) and value:
        yield [*value, {"unexpected": True}]
        yield value[:0]
    yield {"unexpected": "shape"} if not isinstance(value, dict) else ["unexpected", "shape"]
