"""Turning a stored job into a gateway request: pure, so it is tested without servers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from worker.gateway.types import CompletionRequest, Fallback, Message, ModelInfo
from worker.output import build_reask_messages
from worker.prompts import CompiledTemplate, render_messages

RESPONSE_FORMAT = "response_format"


def schema_name(schema: Any) -> str:
    """The json_schema ``name``: the schema's title made identifier-safe, else ``result``."""
    title = schema.get("title") if isinstance(schema, dict) else None
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(title or "result")).strip("_")
    return (name or "result")[:64]


def supports(catalog: Mapping[str, ModelInfo], model: str, parameter: str) -> bool:
    """A model supports a parameter unless its catalog entry lists parameters without it."""
    info = catalog.get(model)
    params = None if info is None else info.supported_parameters
    return params is None or parameter in params


def build_request(
    *,
    template: CompiledTemplate,
    variables: Mapping[str, object] | None,
    schema: Any,
    transcript_id: str,
    model: str,
    fallbacks: list[str],
    region: str,
    max_tokens: int,
    temperature: float | None,
    model_region_global: bool,
    catalog: Mapping[str, ModelInfo],
    reask_context: Mapping[str, Any] | None = None,
) -> CompletionRequest:
    messages = render_messages(template, variables or {})
    if reask_context:
        messages = build_reask_messages(
            messages, str(reask_context.get("answer") or ""), list(reask_context.get("errors", []))
        )
    chain = [model, *fallbacks]
    # The gateway rejects a parameter any model in the chain does not support (fallbacks inherit
    # it), so structured output is asked for only when every model takes it; validation happens
    # on our side either way.
    use_format = isinstance(schema, dict) and all(
        supports(catalog, m, RESPONSE_FORMAT) for m in chain
    )
    return CompletionRequest(
        model=model,
        messages=[Message(role=m["role"], content=m["content"]) for m in messages],
        region=region,
        transcript_id=transcript_id,
        max_tokens=max_tokens,
        temperature=temperature,
        fallbacks=[Fallback(model=m) for m in fallbacks],
        response_format_name=schema_name(schema) if use_format else None,
        response_format_schema=schema if use_format else None,
        model_region_global=model_region_global,
    )
