"""JSON Schema normalisation: resolve local ``$ref`` and fold ``allOf`` into one schema.

The generator in ``answers`` then only has to handle plain keywords plus ``anyOf``/``oneOf``
branch choice. Results are memoised per compiled root, and compiled roots are cached by the
schema's canonical JSON, so a batch asking the same schema a thousand times analyses it once.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

#: Keywords whose constraints the generator does not fully honour; schemas using them are
#: validated after generation and regenerated on failure.
HARD_KEYWORDS = frozenset(
    {
        "oneOf",
        "not",
        "pattern",
        "patternProperties",
        "propertyNames",
        "uniqueItems",
        "contains",
        "if",
        "dependentSchemas",
        "multipleOf",
        "unevaluatedProperties",
        "unevaluatedItems",
        "_patterns",
    }
)

_MAX_KEYS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
_MIN_KEYS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")


class SchemaError(ValueError):
    """A schema the emulator cannot use (bad ``$ref``)."""


def _types(value: object) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else {str(v) for v in value}  # type: ignore[attr-defined]


def _merge_types(a: object, b: object) -> list[str] | None:
    ta, tb = _types(a), _types(b)
    if ta is None or tb is None:
        return sorted(ta or tb or []) or None
    both = ta & tb
    if ("integer" in ta and "number" in tb) or ("integer" in tb and "number" in ta):
        both.add("integer")
    return sorted(both) or ["null"]


def _sub_all(a: object, b: object) -> object:
    """Two subschemas that must both hold."""
    if a is None or a is True:
        return b
    if b is None or b is True:
        return a
    return {"allOf": [a, b]}


def _merge_properties(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    props = dict(a)
    for name, sub in b.items():
        props[name] = _sub_all(props.get(name), sub)
    return props


def _both_subschemas(a: object, b: object) -> object:
    return False if b is False else _sub_all(a, b)


_COMBINE: dict[str, Any] = {
    "type": _merge_types,
    "properties": _merge_properties,
    "required": lambda a, b: list(dict.fromkeys([*a, *b])),
    "enum": lambda a, b: [v for v in a if v in b],
    "patternProperties": lambda a, b: {**a, **b},
    "items": _both_subschemas,
    "additionalProperties": _both_subschemas,
    "contains": _both_subschemas,
    "propertyNames": _both_subschemas,
    "anyOf": lambda a, b: [{"allOf": [x, {"anyOf": b}]} for x in a],
    "oneOf": lambda a, b: [{"allOf": [x, {"oneOf": b}]} for x in a],
    **{k: max for k in _MAX_KEYS},
    **{k: min for k in _MIN_KEYS},
}


def merge(a: Schema, b: Schema) -> Schema:
    """One schema that means ``a`` and ``b`` (approximately; exotic cases are validated)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key in _COMBINE:
            out[key] = _COMBINE[key](out[key], value)
        elif key == "pattern" and value != out["pattern"]:
            out["_patterns"] = [*out.get("_patterns", []), value]
    if "additionalProperties" in a or "additionalProperties" in b:
        out["_allowed"] = _allowed_keys(a, b)
    return out


def _allowed_keys(a: Schema, b: Schema) -> list[str] | None:
    """Keys an object may carry when some part of an ``allOf`` forbids extra properties."""
    allowed: set[str] | None = None
    for part in (a, b):
        keys = part.get("_allowed")
        if keys is None and part.get("additionalProperties") is False:
            keys = list(part.get("properties", {}))
        if keys is not None:
            allowed = set(keys) if allowed is None else allowed & set(keys)
    return sorted(allowed) if allowed is not None else None


class Compiled:
    """A root schema plus memoised normal forms of its subschemas."""

    def __init__(self, root: object) -> None:
        self.root: Schema = root if isinstance(root, dict) else {}
        self._memo: dict[int, Schema] = {}
        self._keep: list[object] = []  # keeps synthetic subschemas alive so ids stay unique
        self._branches: dict[tuple[int, str, int], Schema] = {}
        self.hard = _uses_hard_keywords(self.root)

    def branch(self, schema: Schema, key: str, index: int) -> Schema:
        """``schema`` with its ``anyOf``/``oneOf`` replaced by branch ``index`` (memoised)."""
        memo_key = (id(schema), key, index)
        hit = self._branches.get(memo_key)
        if hit is None:
            base = {k: v for k, v in schema.items() if k != key}
            chosen = schema[key][index] if index >= 0 else {}
            hit = self._branches[memo_key] = self.norm({"allOf": [chosen, base]})
        return hit

    def conditional(self, schema: Schema) -> Schema:
        """``schema`` with ``if``/``then``/``else`` replaced by "satisfies if and then"."""
        memo_key = (id(schema), "if", 0)
        hit = self._branches.get(memo_key)
        if hit is None:
            base = {k: v for k, v in schema.items() if k not in ("if", "then", "else")}
            parts = [schema["if"], schema.get("then", True), base]
            hit = self._branches[memo_key] = self.norm({"allOf": parts})
        return hit

    def resolve(self, ref: str) -> object:
        if not ref.startswith("#"):
            raise SchemaError(f"only local $ref is supported, got {ref!r}")
        node: object = self.root
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise SchemaError(f"unresolvable $ref {ref!r}")
        return node

    def norm(self, schema: object, depth: int = 0) -> Schema:
        """``schema`` without ``$ref``/``allOf`` at its top level; ``{"not": {}}`` for false."""
        if schema is True or schema is None:
            return {}
        if schema is False or not isinstance(schema, dict):
            return {"not": {}}
        key = id(schema)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        if depth > 32:
            raise SchemaError("$ref/allOf nesting too deep")
        out = {k: v for k, v in schema.items() if k not in ("$ref", "allOf", "$defs")}
        parts: list[object] = list(schema.get("allOf", []))
        if "$ref" in schema:
            parts.insert(0, self.resolve(str(schema["$ref"])))
        for part in parts:
            out = merge(self.norm(part, depth + 1), out)
        self._keep.append(schema)
        self._memo[key] = out
        return out


def _uses_hard_keywords(node: object) -> bool:
    if isinstance(node, dict):
        return bool(HARD_KEYWORDS & node.keys()) or any(
            _uses_hard_keywords(v) for v in node.values()
        )
    if isinstance(node, list):
        return any(_uses_hard_keywords(v) for v in node)
    return False
