"""The emulated model's answers: a JSON instance for a schema, or plain text.

``instance_for`` walks a normalised schema (see ``schema_norm``) with a seeded RNG, drawing
strings from the source text. Schemas that use keywords the walk does not fully honour (oneOf,
not, patterns, uniqueItems, ...) are checked with jsonschema and regenerated with the next seed
until they conform, so callers always get a conforming instance when one is reachable.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from typing import Any

from jsonschema import Draft202012Validator

from emulator.answers.numbers import make_integer, make_number
from emulator.answers.schema_norm import Compiled, Schema
from emulator.answers.source import Source
from emulator.answers.strings import make_string

_MAX_DEPTH = 6
_ATTEMPTS = 12
_CACHE_SIZE = 256
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


class _Plan:
    """A compiled schema and, for hard schemas, its validator."""

    def __init__(self, schema: object) -> None:
        self.compiled = Compiled(schema)
        self.validator: Draft202012Validator | None = None
        if self.compiled.hard:
            self.validator = Draft202012Validator(
                self.compiled.root, format_checker=Draft202012Validator.FORMAT_CHECKER
            )


_plans: OrderedDict[str, _Plan] = OrderedDict()


def plan_for(schema: object) -> _Plan:
    key = json.dumps(schema, sort_keys=True)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _Plan(schema)
        if len(_plans) > _CACHE_SIZE:
            _plans.popitem(last=False)
    return plan


def instance_for(schema: object, rng: random.Random, src: Source) -> Any:
    """A JSON value conforming to ``schema``, derived from ``src``, deterministic in ``rng``."""
    plan = plan_for(schema)
    value = _Walker(plan.compiled, rng, src).value(plan.compiled.root, 0, "answer")
    if plan.validator is None:
        return value
    for _ in range(_ATTEMPTS):
        if plan.validator.is_valid(value):
            return value
        value = _Walker(plan.compiled, random.Random(rng.getrandbits(64)), src).value(
            plan.compiled.root, 0, "answer"
        )
    return value


def text_answer(rng: random.Random, src: Source) -> str:
    """A short plain-text reply built from the source's sentences."""
    start = rng.randrange(len(src.sentences))
    picked = src.sentences[start : start + rng.randint(1, 3)]
    topics = ", ".join(src.keywords[:3])
    return f"Summary: {' '.join(picked)} Key topics: {topics}."


class _Walker:
    def __init__(self, compiled: Compiled, rng: random.Random, src: Source) -> None:
        self.c = compiled
        self.rng = rng
        self.src = src

    def value(self, schema: object, depth: int, name: str) -> Any:
        s = self.c.norm(schema)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return self._enum(s)
        if "if" in s:
            return self.value(self.c.conditional(s), depth, name)
        for key in ("anyOf", "oneOf"):
            if key in s:
                branches = s[key]
                index = self.rng.randrange(len(branches)) if branches else -1
                return self.value(self.c.branch(s, key, index), depth, name)
        kind = self._type(s)
        if kind == "object":
            return self._object(s, depth, name)
        if kind == "array":
            return self._array(s, depth, name)
        if kind == "string":
            return make_string(self.rng, s, self.src, name)
        if kind == "integer":
            return make_integer(self.rng, s, name)
        if kind == "number":
            return make_number(self.rng, s, name)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    def _enum(self, s: Schema) -> Any:
        options = list(s["enum"])
        types = s.get("type")
        if types is not None:
            wanted = {types} if isinstance(types, str) else set(types)
            options = [o for o in options if _json_type(o) in wanted] or options
        return self.rng.choice(options) if options else None

    def _type(self, s: Schema) -> str:
        types = s.get("type")
        if isinstance(types, str):
            return types
        if isinstance(types, list) and types:
            real = [t for t in _TYPE_ORDER if t in types and t != "null"]
            return real[0] if real else "null"
        if {"properties", "required", "additionalProperties"} & s.keys():
            return "object"
        if {"items", "prefixItems", "minItems", "maxItems"} & s.keys():
            return "array"
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & s.keys():
            return "number"
        return "string"

    def _object(self, s: Schema, depth: int, name: str) -> dict[str, Any]:
        props: dict[str, Any] = s.get("properties", {})
        allowed = s.get("_allowed")
        required = list(s.get("required", []))
        optional = [p for p in props if p not in required]
        deep = depth >= _MAX_DEPTH
        chosen = [p for p in optional if not deep and self.rng.random() < 0.8]
        keys = [
            k
            for k in [*required, *chosen]
            if (allowed is None or k in allowed) and props.get(k, True) is not False
        ]
        max_props = s.get("maxProperties")
        if max_props is not None:
            keys = keys[: max(int(max_props), len(required))]
        out: dict[str, Any] = {}
        for key in keys:
            out[key] = self._property(s, key, depth)
        for key, deps in s.get("dependentRequired", {}).items():
            if key in out:
                for dep in deps:
                    out.setdefault(dep, self._property(s, dep, depth))
        extra = s.get("additionalProperties", True)
        index = 0
        while len(out) < int(s.get("minProperties", 0)) and extra is not False and allowed is None:
            index += 1
            out[f"{name}_extra_{index}"] = self.value(extra, depth + 1, f"extra_{index}")
        return out

    def _property(self, s: Schema, key: str, depth: int) -> Any:
        props = s.get("properties", {})
        if key in props:
            return self.value(props[key], depth + 1, key)
        extra = s.get("additionalProperties", True)
        return self.value(extra if isinstance(extra, dict) else {}, depth + 1, key)

    def _array(self, s: Schema, depth: int, name: str) -> list[Any]:
        prefix = list(s.get("prefixItems", []))
        items = s.get("items", {} if not prefix else True)
        lo = int(s.get("minItems", 0))
        hi = int(s.get("maxItems", max(lo, len(prefix) + 3)))
        if items is False:
            hi = min(hi, len(prefix))
        want = lo if depth >= _MAX_DEPTH else self.rng.randint(lo, max(lo, min(hi, lo + 3)))
        want = max(want, 1) if hi >= 1 and lo == 0 and depth < 2 else want
        out: list[Any] = []
        seen: set[str] = set()
        unique = bool(s.get("uniqueItems"))
        singular = name[:-1] if name.endswith("s") else name
        for _ in range(want * (4 if unique else 1)):
            if len(out) >= want:
                break
            schema = prefix[len(out)] if len(out) < len(prefix) else items
            item = self.value(schema, depth + 1, singular)
            if unique:
                mark = json.dumps(item, sort_keys=True)
                if mark in seen:
                    continue
                seen.add(mark)
            out.append(item)
        if "contains" in s and out:
            out[0] = self.value(s["contains"], depth + 1, singular)
        return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
