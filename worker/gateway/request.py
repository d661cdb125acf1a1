"""Build and check the body of ``POST /v1/chat/completions`` (pure functions, no I/O).

The gateway silently ignores a ``transcript_id`` when no message carries the exact tag, and it
rejects a whole request when any fallback id is unknown in its region; both are cheaper to
catch here than to discover in a batch of ten thousand jobs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from worker.errors import ModelUnavailable, RequestRejected
from worker.gateway.types import (
    MAX_FALLBACKS,
    TRANSCRIPT_TAG,
    CompletionRequest,
    Message,
    ModelInfo,
    residency_problem,
)

MAX_FALLBACK_DEPTH = 2
# Body fields the gateway itself takes for every model; any other field is a model parameter,
# which the gateway rejects (400 "model X does not support P") for a model whose catalog entry
# does not list it (gateway-api.md section 2 and 8.7).
GATEWAY_FIELDS = frozenset(
    {
        "model",
        "messages",
        "prompt",
        "transcript_id",
        "fallbacks",
        "fallback_config",
        "post_processing_steps",
        "model_region",
        "cache_control",
        "prompt_cache_key",
        "prompt_cache_retention",
        "max_tokens",
    }
)
_TAG_LOOKALIKE = re.compile(r"\{\{\s*transcript\s*\}\}", re.IGNORECASE)


def _message_dict(message: Message | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, Message):
        return message.model_dump(exclude_none=False)
    return dict(message)


def build_body(req: CompletionRequest) -> dict[str, Any]:
    """The JSON body for ``req``. Validation is separate: see ``validate_request``."""
    body: dict[str, Any] = {**req.extra, "model": req.model}
    body["messages"] = [_message_dict(m) for m in req.messages]
    if req.transcript_id is not None:
        body["transcript_id"] = req.transcript_id
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.response_format_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": req.response_format_name or "output",
                "schema": req.response_format_schema,
                "strict": req.strict,
            },
        }
    if req.server_json_repair:
        body["post_processing_steps"] = [{"type": "json-repair"}]
    if req.model_region_global:
        body["model_region"] = "global"
    if req.fallbacks:
        body["fallbacks"] = [_fallback_dict(fb.model, fb.overrides) for fb in req.fallbacks]
        body["fallback_config"] = {"depth": req.fallback_depth, "retry": req.fallback_retry}
    elif not req.fallback_retry:
        body["fallback_config"] = {"retry": False}
    return body


def _fallback_dict(model: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in overrides.items() if k != "model"}
    if "messages" in out and out["messages"] is not None:
        out["messages"] = [_message_dict(m) for m in out["messages"]]
    return {"model": model, **out}


def _has_tag(messages: Sequence[Message | Mapping[str, Any]]) -> bool:
    return any(
        isinstance(c, str) and TRANSCRIPT_TAG in c
        for c in (_message_dict(m).get("content") for m in messages)
    )


def _tag_problem(messages: Sequence[Message | Mapping[str, Any]], where: str) -> str:
    texts = [str(_message_dict(m).get("content") or "") for m in messages]
    for text in texts:
        found = _TAG_LOOKALIKE.search(text)
        if found:
            return (
                f"{where} has {found.group(0)!r} but the gateway only substitutes the exact tag "
                f"{TRANSCRIPT_TAG!r} (in string content); transcript_id would be silently ignored"
            )
    return (
        f"{where} has no message containing {TRANSCRIPT_TAG!r} (in string content); "
        "the gateway would silently ignore transcript_id"
    )


def check_request_shape(req: CompletionRequest) -> None:
    """Checks that need no catalog. Raises ``RequestRejected`` saying why."""
    if not req.messages:
        raise RequestRejected("request has no messages")
    residency = residency_problem(req.region, req.model_region_global)
    if residency is not None:
        raise RequestRejected(residency)
    if req.transcript_id is not None:
        if not _has_tag(req.messages):
            raise RequestRejected(_tag_problem(req.messages, "request"))
        for i, fb in enumerate(req.fallbacks, start=1):
            msgs = fb.overrides.get("messages")
            if msgs is not None and not _has_tag(msgs):
                raise RequestRejected(_tag_problem(msgs, f"fallback {i} ({fb.model!r}) messages"))
    elif _has_tag(req.messages):
        raise RequestRejected(
            f"a message contains {TRANSCRIPT_TAG!r} but transcript_id is not set; "
            "the model would see the raw tag"
        )
    if len(req.fallbacks) > MAX_FALLBACKS:
        raise RequestRejected(
            f"{len(req.fallbacks)} fallbacks given; the gateway chains at most {MAX_FALLBACKS}"
        )
    depth = req.fallback_depth
    if depth is not None and not 0 <= depth <= MAX_FALLBACK_DEPTH:
        raise RequestRejected(f"fallback_depth {depth} is out of range 0..{MAX_FALLBACK_DEPTH}")
    if req.response_format_name is not None and req.response_format_schema is None:
        raise RequestRejected("response_format_name is set but response_format_schema is not")
    if req.max_tokens is not None and req.max_tokens < 1:
        raise RequestRejected(f"max_tokens {req.max_tokens} must be at least 1")


def validate_request(req: CompletionRequest, catalog: Mapping[str, ModelInfo]) -> None:
    """Every check before sending, against the catalog of ``req.region``'s host."""
    check_request_shape(req)
    body = build_body(req)
    targets: list[tuple[str, dict[str, Any]]] = [("model", body)]
    for i, fb in enumerate(body.get("fallbacks", []), start=1):
        # A fallback inherits every field it does not override.
        targets.append((f"fallback {i} model", {**body, **fb}))
    for label, effective in targets:
        _check_model(label, effective, req.region, catalog)


def _check_model(
    label: str, effective: Mapping[str, Any], region: str, catalog: Mapping[str, ModelInfo]
) -> None:
    model_id = str(effective["model"])
    info = catalog.get(model_id)
    if info is None:
        if region == "eu":
            raise ModelUnavailable(
                f"{label} {model_id!r} is not served by the EU host (US-only or unknown) "
                "and this is an EU job"
            )
        raise ModelUnavailable(f"{label} {model_id!r} is not in the {region.upper()} catalog")
    regions = info.available_regions
    if regions is not None and region not in regions:
        where = "US-only" if region == "eu" else "not available in the US"
        job = "an EU job" if region == "eu" else "a US job"
        raise RequestRejected(f"{label} {model_id!r} is {where} and this is {job}")
    supported = info.supported_parameters
    if supported is not None:
        for param, value in effective.items():
            if param not in GATEWAY_FIELDS and value is not None and param not in supported:
                raise RequestRejected(f"{label} {model_id!r} does not support {param}")
    max_tokens = effective.get("max_tokens")
    limit = info.context_length
    if isinstance(max_tokens, int) and limit is not None and max_tokens >= limit:
        raise RequestRejected(
            f"{label} {model_id!r}: max_tokens {max_tokens} must be below its context "
            f"length {limit}"
        )
