"""Parse a gateway success body and the model catalog (pure, defensive: the shape drifts)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from worker.errors import ServerError
from worker.gateway.catalog_prices import parse_pricing
from worker.gateway.errors_parse import redact, truncate_body
from worker.gateway.types import CompletionResult, ModelInfo, RateLimitInfo, Region, Usage

# Provider-native finish reasons -> OpenAI's vocabulary (gateway-api.md 5.3, 8.5).
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
}


def normalise_finish_reason(raw: str | None) -> str | None:
    if raw is None:
        return None
    return FINISH_REASONS.get(raw) or FINISH_REASONS.get(raw.lower()) or raw


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_usage(usage: Any) -> Usage:
    """Either naming (input/output or prompt/completion); total computed when absent."""
    if not isinstance(usage, dict):
        return Usage()
    input_tokens = _int(usage.get("input_tokens"))
    if input_tokens is None:
        input_tokens = _int(usage.get("prompt_tokens"))
    output_tokens = _int(usage.get("output_tokens"))
    if output_tokens is None:
        output_tokens = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    if total is None and input_tokens is not None and output_tokens is not None:
        total = input_tokens + output_tokens
    reads, writes, writes_1h = _cache_tokens(usage)
    if input_tokens is not None and _anthropic_native(usage):
        # Anthropic's own naming counts cache reads and writes apart from ``input_tokens``;
        # tbatch counts them as parts of it (OpenAI's and the gateway's convention).
        input_tokens += (reads or 0) + (writes or 0)
        if output_tokens is not None:
            total = input_tokens + output_tokens
    completion = usage.get("completion_tokens_details")
    reasoning = _int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else None
    if reasoning is None:
        reasoning = _int(usage.get("reasoning_tokens"))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total,
        cached_tokens=reads,
        cache_write_tokens=writes,
        cache_write_1h_tokens=writes_1h,
        reasoning_tokens=reasoning,
    )


def _anthropic_native(usage: dict[str, Any]) -> bool:
    native = "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage
    details = usage.get("prompt_tokens_details")
    return native and not isinstance(details, dict)


def _cache_tokens(usage: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(reads, writes, of the writes one-hour ones). OpenAI-style reads are
    ``prompt_tokens_details.cached_tokens``, the gateway's writes
    ``prompt_tokens_details.cache_creation.ephemeral_{5m,1h}_input_tokens`` (gateway-api.md
    6.1); Anthropic-style ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` are
    read when those are absent."""
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    reads = _int(details.get("cached_tokens"))
    if reads is None:
        reads = _int(usage.get("cache_read_input_tokens"))
    creation = details.get("cache_creation")
    writes: int | None = None
    writes_1h: int | None = None
    if isinstance(creation, dict):
        five = _int(creation.get("ephemeral_5m_input_tokens"))
        writes_1h = _int(creation.get("ephemeral_1h_input_tokens"))
        if five is not None or writes_1h is not None:
            writes = (five or 0) + (writes_1h or 0)
    if writes is None:
        writes = _int(details.get("cache_write_tokens"))
    if writes is None:
        writes = _int(usage.get("cache_creation_input_tokens"))
    return reads, writes, writes_1h


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return "".join(parts) if parts else None
    return None


def _first_str(values: list[Any]) -> str | None:
    return next((v for v in values if isinstance(v, str) and v), None)


def _model_answered(data: dict[str, Any], model_asked: str, with_fallbacks: bool) -> str | None:
    """The top-level ``model``. Without it, the model asked when no other could have answered;
    else unknown. The ``request`` echo is not evidence: it repeats the model requested."""
    answered = data.get("model")
    if isinstance(answered, str) and answered:
        return answered
    return None if with_fallbacks else model_asked


def parse_success(
    text: str,
    *,
    model_asked: str,
    region: Region,
    http_status: int,
    latency_ms: float,
    rate_limit: RateLimitInfo,
    secret: str | None = None,
    with_fallbacks: bool = False,
) -> CompletionResult:
    """A 2xx body as a result. Not JSON, or no choices: ``ServerError`` (transient)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(choices, list) or not choices:
        request_id = data.get("request_id") if isinstance(data, dict) else None
        raise ServerError(
            "malformed gateway response",
            status=http_status,
            model=model_asked,
            request_id=request_id if isinstance(request_id, str) else None,
            body=truncate_body(redact(text, secret)),
        )
    contents: list[Any] = []
    refusals: list[Any] = []
    reasons: list[Any] = []
    tool_calls: list[dict[str, Any]] = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        contents.append(_text(message.get("content")))
        refusals.append(message.get("refusal"))
        reasons.append(choice.get("finish_reason"))
        # Newer docs put tool_calls on the message, the March 2026 spec on the choice.
        for calls in (message.get("tool_calls"), choice.get("tool_calls")):
            if isinstance(calls, list):
                tool_calls.extend(c for c in calls if isinstance(c, dict))
    raw_reason = _first_str(reasons)
    response_time = data.get("response_time")
    request_id = data.get("request_id")
    return CompletionResult(
        request_id=request_id if isinstance(request_id, str) else None,
        model_asked=model_asked,
        model_answered=_model_answered(data, model_asked, with_fallbacks),
        region=region,
        content=_first_str(contents),
        refusal=_first_str(refusals),
        has_tool_calls=bool(tool_calls),
        tool_calls=tool_calls,
        finish_reason=normalise_finish_reason(raw_reason),
        finish_reason_raw=raw_reason,
        usage=parse_usage(data.get("usage")),
        rate_limit=rate_limit,
        http_status=http_status,
        latency_ms=latency_ms,
        response_time_ns=_int(response_time),
        raw_body=text,
    )


def _str_set(value: Any) -> frozenset[str] | None:
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    if isinstance(value, str):
        return frozenset(v.strip() for v in value.split(",") if v.strip())
    return None


def _date(value: Any) -> date | None:
    """``retirement_date`` as a date: ISO date or date-time text; anything else is no date."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _creator(entry: dict[str, Any]) -> str | None:
    creator = entry.get("creator")
    if isinstance(creator, str) and creator:
        return creator.lower()
    provider = entry.get("default_provider")
    pid = provider.get("id") if isinstance(provider, dict) else None
    return pid.lower() if isinstance(pid, str) and pid else None


def parse_model(entry: Any) -> ModelInfo | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    prices = parse_pricing(entry.get("pricing"))
    return ModelInfo(
        id=entry["id"],
        context_length=_int(entry.get("context_length")),
        supported_parameters=_str_set(entry.get("supported_parameters")),
        available_regions=_str_set(entry.get("available_regions")),
        retirement_date=_date(entry.get("retirement_date")),
        input_usd_per_mtok=prices.input,
        output_usd_per_mtok=prices.output,
        cache_read_usd_per_mtok=prices.cache_read,
        cache_write_usd_per_mtok=prices.cache_write,
        pricing_problem=prices.problem,
        creator=_creator(entry),
    )


def parse_catalog(text: str) -> dict[str, ModelInfo]:
    """``GET /v1/models``: ``{"data": [...]}`` (a bare list is accepted too)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ServerError("malformed model catalog (not JSON)") from exc
    entries = data.get("data") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ServerError("malformed model catalog (no data list)")
    catalog: dict[str, ModelInfo] = {}
    for entry in entries:
        info = parse_model(entry)
        if info is not None:
            catalog[info.id] = info
    return catalog
