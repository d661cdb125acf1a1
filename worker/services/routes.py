"""How each model of a chain is asked for structured output (pure: tested without servers).

The gateway rejects a parameter a model does not support instead of ignoring it, and its live
catalog omits ``response_format`` for several current models while listing ``tools``. So each
model gets a *route*, chosen from its catalog entry's ``supported_parameters``:

1. ``json_schema``: ``response_format`` with the job's schema (``json_schema_strict`` when the
   schema can be made strict-compatible: see :func:`strict_schema`);
2. ``tool``: one function whose parameters are the schema, forced with ``tool_choice``; the
   answer is read from ``tool_calls[].function.arguments``;
3. ``prompt``: the schema written into the last user message; the answer is parsed, repaired
   (recorded) and validated like any other.

The local validator always checks the job's original schema, whatever the route.

Fallbacks inherit every top-level field they do not override, and the public record does not
say that an override can *remove* one (``"response_format": null`` may be sent on or refused).
So tbatch never relies on removal: the top level carries the strongest route that every model
of the chain supports, and each fallback adds its own stronger route by override (adding is
documented). A chain of a ``json_schema`` model and a ``prompt``-only model therefore sends
the primary the ``prompt`` route too; reordering would change the user's preference and cost,
and a client-side fallback would lose the gateway's in-request fallback. Local validation and
the re-ask make every route safe; the route each call took is recorded on its attempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from worker.gateway.types import ModelInfo
from worker.prompts import neutralise_tags

TOOL_DESCRIPTION = "Return the structured result. The arguments must match the JSON Schema."
WRAP_KEY = "result"  # a non-object schema travels as the one property of a tool's parameters


class Route(StrEnum):
    JSON_SCHEMA_STRICT = "json_schema_strict"
    JSON_SCHEMA = "json_schema"
    TOOL = "tool"
    PROMPT = "prompt"


_STRENGTH = {Route.PROMPT: 0, Route.TOOL: 1, Route.JSON_SCHEMA: 2, Route.JSON_SCHEMA_STRICT: 2}


def supports(info: ModelInfo | None, parameter: str) -> bool:
    """A model supports a parameter unless its catalog entry lists parameters without it (an
    entry that lists none, or no entry, is taken at the documented default: supported)."""
    params = None if info is None else info.supported_parameters
    return params is None or parameter in params


def best_route(info: ModelInfo | None) -> Route:
    """The strongest route ``info`` takes on its own."""
    if supports(info, "response_format"):
        return Route.JSON_SCHEMA
    if supports(info, "tools") and supports(info, "tool_choice"):
        return Route.TOOL
    return Route.PROMPT


def schema_name(schema: Any) -> str:
    """The json_schema / function ``name``: the schema's title made identifier-safe, else
    ``result`` (both APIs want ``^[a-zA-Z0-9_-]{1,64}$``)."""
    title = schema.get("title") if isinstance(schema, dict) else None
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(title or "result")).strip("_")
    return (name or "result")[:64]


def fit_max_tokens(requested: int, info: ModelInfo | None) -> int:
    """``requested``, or half the model's context when it asks more: ``max_tokens`` must be
    below the context length, and the transcript needs the rest (a smaller-context fallback
    inheriting the primary's cap would fail every call)."""
    context = None if info is None else info.context_length
    if context is None or context < 2:
        return requested
    return min(requested, context // 2)


# Keywords a strict schema may use (OpenAI's structured-outputs subset, which other providers
# that honour ``strict`` accept too). Anything else: the schema is sent non-strict.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "description",
        "title",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "$schema",
        "$id",
        "default",
        "examples",
    }
)
_SCHEMA_MAPS = ("properties", "$defs", "definitions")


def strict_schema(schema: Any) -> dict[str, Any] | None:
    """``schema`` made strict-compatible, or None when it cannot be without changing what it
    accepts. Strict mode wants every object closed (``additionalProperties: false``) with every
    property required. Closing an open object only narrows what the model may answer (an
    answer valid under the strict copy is valid under the original); making an optional
    property required would not, so a schema with one is sent non-strict."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    try:
        return _strict_node(schema)
    except _NotStrict:
        return None


class _NotStrict(Exception):
    """A part of the schema strict mode cannot express as it is."""


def _strict_node(node: Any) -> dict[str, Any]:
    if not isinstance(node, dict) or any(key not in _STRICT_KEYWORDS for key in node):
        raise _NotStrict
    out: dict[str, Any] = dict(node)
    for key in _SCHEMA_MAPS:
        if key in node:
            if not isinstance(node[key], dict):
                raise _NotStrict
            out[key] = {name: _strict_node(sub) for name, sub in node[key].items()}
    if "items" in node:
        out["items"] = _strict_node(node["items"])
    if "anyOf" in node:
        if not isinstance(node["anyOf"], list):
            raise _NotStrict
        out["anyOf"] = [_strict_node(branch) for branch in node["anyOf"]]
    if _is_object(node):
        required = node.get("required", [])
        if not isinstance(required, list) or set(required) != set(node.get("properties", {})):
            raise _NotStrict
        if node.get("additionalProperties", False) is not False:
            raise _NotStrict
        out["additionalProperties"] = False
    return out


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


@dataclass(frozen=True)
class Shape:
    """What one model of the request is sent: its route and its ``max_tokens``."""

    model: str
    route: Route
    max_tokens: int


@dataclass(frozen=True)
class ChainPlan:
    """The shapes of a request's models (primary first) and the wire fields they need."""

    shapes: tuple[Shape, ...]
    schema: Any
    strict: dict[str, Any] | None
    name: str
    wrapped: bool  # the tool's parameters wrap a non-object schema under WRAP_KEY
    fallback_overrides: tuple[dict[str, Any], ...] = field(default=())

    @property
    def top(self) -> Shape:
        return self.shapes[0]

    def route_for(self, model: str | None) -> Route | None:
        """The route the answering model was sent; None when the answering model is unknown
        and the chain's routes differ."""
        for shape in self.shapes:
            if shape.model == model:
                return shape.route
        routes = {shape.route for shape in self.shapes}
        return routes.pop() if len(routes) == 1 else None

    def describe(self) -> dict[str, Any]:
        """``attempts.plan``: each model's route and max_tokens, as sent."""
        return {
            "models": [
                {"model": s.model, "route": str(s.route), "max_tokens": s.max_tokens}
                for s in self.shapes
            ]
        }

    def tool(self) -> dict[str, Any]:
        parameters = self.schema
        if self.wrapped:
            parameters = {
                "type": "object",
                "properties": {WRAP_KEY: self.schema},
                "required": [WRAP_KEY],
            }
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": TOOL_DESCRIPTION,
                "parameters": parameters,
            },
        }

    def tool_choice(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name}}

    def response_format(self, route: Route) -> dict[str, Any]:
        strict = route == Route.JSON_SCHEMA_STRICT and self.strict is not None
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.name,
                "schema": self.strict if strict else self.schema,
                "strict": strict,
            },
        }

    def fields(self, route: Route) -> dict[str, Any]:
        """The top-level body fields ``route`` adds."""
        if route in (Route.JSON_SCHEMA, Route.JSON_SCHEMA_STRICT):
            return {"response_format": self.response_format(route)}
        if route == Route.TOOL:
            return {"tools": [self.tool()], "tool_choice": self.tool_choice()}
        return {}


def plan_chain(
    chain: Sequence[str],
    catalog: Mapping[str, ModelInfo],
    schema: Any,
    max_tokens: int,
) -> ChainPlan:
    """Each model's shape. The top level takes the strongest route every model of ``chain``
    supports (inherited fields cannot be removed); a fallback below a ``prompt`` top level adds
    its own route by override, and any fallback whose fitted ``max_tokens`` differs carries it.
    """
    infos = [catalog.get(model) for model in chain]
    strict = strict_schema(schema)
    if not isinstance(schema, dict):
        top = Route.PROMPT  # a boolean schema: nothing to send as a format or a tool
    else:
        top = min((best_route(info) for info in infos), key=_STRENGTH.__getitem__)
    if top == Route.JSON_SCHEMA and strict is not None:
        top = Route.JSON_SCHEMA_STRICT
    shapes = [Shape(chain[0], top, fit_max_tokens(max_tokens, infos[0]))]
    for model, info in zip(chain[1:], infos[1:], strict=True):
        route = top
        if top == Route.PROMPT and isinstance(schema, dict):
            route = best_route(info)
            if route == Route.JSON_SCHEMA and strict is not None:
                route = Route.JSON_SCHEMA_STRICT
        shapes.append(Shape(model, route, fit_max_tokens(max_tokens, info)))
    plan = ChainPlan(
        shapes=tuple(shapes),
        schema=schema,
        strict=strict,
        name=schema_name(schema),
        wrapped=not (isinstance(schema, dict) and schema.get("type") == "object"),
    )
    overrides = []
    for shape in plan.shapes[1:]:
        extra: dict[str, Any] = {}
        if shape.route != top:
            extra.update(plan.fields(shape.route))
        if shape.max_tokens != plan.top.max_tokens:
            extra["max_tokens"] = shape.max_tokens
        overrides.append(extra)
    return replace(plan, fallback_overrides=tuple(overrides))


def schema_instruction(schema: Any) -> str:
    """The prompt route's instruction: the schema in a fenced block (tag-like text in it is
    broken up, so the gateway injects the transcript only where the template put it)."""
    text = neutralise_tags(json.dumps(schema, indent=2, ensure_ascii=False))
    return (
        "Answer with a single JSON value that validates against this JSON Schema, and nothing "
        f"else (no explanation, no code fence):\n```json\n{text}\n```"
    )


def with_schema_in_prompt(messages: list[dict[str, Any]], schema: Any) -> list[dict[str, Any]]:
    """``messages`` with the schema instruction at the end of the last user message (after
    the template's own text, so a cached static prefix stays the same; before an assistant
    prefill, which must stay last)."""
    out = [dict(m) for m in messages]
    instruction = schema_instruction(schema)
    for message in reversed(out):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            message["content"] = f"{message['content']}\n\n{instruction}"
            return out
    return [*out, {"role": "user", "content": instruction}]


def answer_text(plan: ChainPlan, content: str | None, tool_calls: Sequence[Any]) -> str | None:
    """The answer to validate: our function's arguments when the model called it (unwrapped
    when the schema was wrapped), else the message content."""
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or function.get("name") != plan.name:
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some providers send the object itself
            arguments = json.dumps(arguments)
        if not isinstance(arguments, str):
            continue
        return _unwrap(arguments) if plan.wrapped else arguments
    return content


def _unwrap(arguments: str) -> str:
    """``{"result": X}`` -> X; anything else is returned as is for repair and validation to
    judge (a model that answered the bare value is not penalised)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(value, dict) and set(value) == {WRAP_KEY}:
        return json.dumps(value[WRAP_KEY])
    return arguments
