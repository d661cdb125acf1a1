"""Which fields of a result the report aggregates, and how: one :class:`FieldSpec` per field.

A path is dotted with ``[]`` for "every item of this array": ``sentiment``,
``compliance_flags.pii_shared``, ``action_items[].owner``. :func:`fields_from_schema` derives a
sensible default from any JSON Schema; a pipeline config may pass its own list instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["enum", "number", "array_items", "boolean", "count"]
KINDS: tuple[Kind, ...] = ("enum", "number", "array_items", "boolean", "count")
_MAX_DEPTH = 12  # recursive schemas ($ref to an ancestor) stop here


@dataclass(frozen=True)
class FieldSpec:
    """One aggregated field.

    ``enum`` and ``boolean`` count values; ``number`` gives mean, percentiles and a histogram
    (over ``minimum``..``maximum`` when known); ``array_items`` counts the most frequent items of
    an array (each item once per result); ``count`` treats the length of an array as a number.
    """

    path: str
    kind: Kind
    top: int = 10
    bins: int = 10
    label: str | None = None  # the field's name in headings; default from the path
    values: tuple[str, ...] = ()  # known enum values, shown even when nobody chose them
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}; expected one of {KINDS}")
        if self.top < 1 or self.bins < 1:
            raise ValueError("top and bins must be at least 1")

    @property
    def title(self) -> str:
        """A heading a team lead understands: "Sentiment", "Top topics", "Action items: owner"."""
        parts = [_words(p.replace("[]", "")) for p in self.path.split(".") if p.replace("[]", "")]
        name = self.label or (": ".join(parts) if parts else "Result")
        name = name[:1].upper() + name[1:]
        if self.kind == "array_items":
            return f"Top {name[:1].lower()}{name[1:]}"
        if self.kind == "count":
            return f"{name} per call"
        return name


def _words(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip()


def parse_path(path: str) -> tuple[tuple[str, int], ...]:
    """``"a.b[].c"`` -> ``(("a", 0), ("b", 1), ("c", 0))``: a key, then how many arrays to open."""
    steps: list[tuple[str, int]] = []
    for segment in path.split(".") if path else []:
        name, opens = segment, 0
        while name.endswith("[]"):
            name, opens = name[:-2], opens + 1
        steps.append((name, opens))
    return tuple(steps)


def values_at(data: Any, steps: tuple[tuple[str, int], ...]) -> list[Any]:
    """Every value found at a parsed path (none when a key is missing or a type is unexpected)."""
    value = data
    for index, (name, opens) in enumerate(steps):  # one value until the first "[]"
        if name:
            if not isinstance(value, dict) or name not in value:
                return []
            value = value[name]
        if opens:
            return _spread([value], opens, steps[index + 1 :])
    return [value]


def _spread(found: list[Any], opens: int, rest: tuple[tuple[str, int], ...]) -> list[Any]:
    for _ in range(opens):
        found = [item for v in found if isinstance(v, list) for item in v]
    for name, more in rest:
        if name:
            found = [v[name] for v in found if isinstance(v, dict) and name in v]
        for _ in range(more):
            found = [item for v in found if isinstance(v, list) for item in v]
    return found


# --- deriving specs from a schema -------------------------------------------------------------


def fields_from_schema(schema: Any) -> list[FieldSpec]:
    """A default report for any JSON Schema, in the schema's property order.

    Enums and booleans are counted; numbers and integers get statistics (bins over the schema's
    minimum/maximum when both are given); arrays of strings list their most frequent items; arrays
    of objects get an items-per-call count and their enum, boolean and number fields via ``[]``
    paths. Free strings are skipped. Local ``$ref`` (``#/$defs/...``) is resolved.
    """
    if not isinstance(schema, dict):
        return []
    specs: list[FieldSpec] = []
    seen: set[str] = set()
    for spec in _walk(schema, schema, "", 0):
        if spec.path not in seen:
            seen.add(spec.path)
            specs.append(spec)
    return specs


def _walk(root: dict[str, Any], node: Any, path: str, depth: int) -> Iterator[FieldSpec]:
    node = _resolve(root, node, depth)
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        return
    enum = _enum_values(node)
    types = _types(node)
    if enum is not None:
        if enum and all(isinstance(v, bool) for v in enum):
            yield FieldSpec(path, "boolean", label=_title(node))
        elif path:
            yield FieldSpec(
                path, "enum", values=tuple(enum_key(v) for v in enum), label=_title(node)
            )
    elif "boolean" in types:
        yield FieldSpec(path, "boolean", label=_title(node))
    elif types & {"number", "integer"}:
        yield _number_spec(node, path, integer=types <= {"integer"})
    elif "array" in types or "items" in node:
        yield from _array(root, node, path, depth)
    elif "object" in types or "properties" in node:
        for name, sub in (node.get("properties") or {}).items():
            yield from _walk(root, sub, f"{path}.{name}" if path else name, depth + 1)


def _array(
    root: dict[str, Any], node: dict[str, Any], path: str, depth: int
) -> Iterator[FieldSpec]:
    items = _resolve(root, node.get("items"), depth)
    if not isinstance(items, dict):
        return
    item_types = _types(items)
    label = _title(node)
    if _enum_values(items) is not None or item_types & {"string", "boolean"}:
        values = tuple(enum_key(v) for v in _enum_values(items) or [])
        yield FieldSpec(path, "array_items", values=values, label=label)
    elif item_types & {"number", "integer"}:
        yield _number_spec(items, f"{path}[]", integer=item_types <= {"integer"}, label=label)
    elif item_types & {"object", "array"} or "properties" in items or "items" in items:
        low, high = _first_number(node, "minItems") or 0.0, _first_number(node, "maxItems")
        yield FieldSpec(path, "count", label=label, minimum=low, maximum=high, integer=True)
        yield from _walk(root, items, f"{path}[]", depth + 1)


def _number_spec(
    node: dict[str, Any], path: str, *, integer: bool, label: str | None = None
) -> FieldSpec:
    low = _first_number(node, "minimum", "exclusiveMinimum")
    high = _first_number(node, "maximum", "exclusiveMaximum")
    if low is None or high is None or high <= low:
        low = high = None
    return FieldSpec(
        path, "number", label=label or _title(node), minimum=low, maximum=high, integer=integer
    )


def _first_number(node: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = node.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _title(node: dict[str, Any]) -> str | None:
    title = node.get("title")
    return title if isinstance(title, str) and title.strip() else None


def enum_key(value: Any) -> str:
    """The report's key for a JSON value: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _enum_values(node: dict[str, Any]) -> list[Any] | None:
    if isinstance(node.get("enum"), list):
        return [v for v in node["enum"] if v is not None]
    if "const" in node and node["const"] is not None:
        return [node["const"]]
    return None


def _types(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared} - {"null"}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)} - {"null"}
    return set()


def _resolve(root: dict[str, Any], node: Any, depth: int) -> Any:
    """Follow local ``$ref`` and merge ``allOf``; reduce ``anyOf``/``oneOf`` with ``null``."""
    if depth > _MAX_DEPTH:
        return None
    for _ in range(_MAX_DEPTH):
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            target = _pointer(root, node["$ref"])
            rest = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **rest} if isinstance(target, dict) else rest
            continue
        for keyword in ("anyOf", "oneOf"):
            branches = node.get(keyword)
            if isinstance(branches, list):
                useful = [b for b in branches if not _is_null(_resolve(root, b, depth + 1))]
                if len(useful) == 1:
                    rest = {k: v for k, v in node.items() if k != keyword}
                    node = {**_resolve(root, useful[0], depth + 1), **rest}
                    break
        else:
            if isinstance(node.get("allOf"), list):
                rest = {k: v for k, v in node.items() if k != "allOf"}
                branches = [_resolve(root, b, depth + 1) for b in node["allOf"]]
                node = _merge([b for b in branches if isinstance(b, dict)] + [rest])
            return node
    return node


def _merge(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """``allOf`` as one schema: later keywords win, ``properties`` are combined."""
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for node in nodes:
        merged.update(node)
        if isinstance(node.get("properties"), dict):
            properties.update(node["properties"])
    if properties:
        merged["properties"] = properties
    return merged


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and (node.get("type") == "null" or node.get("const", 0) is None)


def _pointer(root: dict[str, Any], ref: str) -> Any:
    """Resolve ``#``-local JSON pointers; anything else resolves to nothing."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
