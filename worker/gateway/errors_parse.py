"""Turn a failed gateway response into one of ``worker.errors``' exceptions (pure, no I/O).

Three error envelopes coexist on the wire (gateway-api.md section 6.3):

- flattened: ``{"code", "message", "request_id", "metadata": {"errors": [...]}}``
- auth:      ``{"error": "<text>", "status": "error", "request_id"}``
- old:       ``{"error": {"code", "message", "metadata": {"errors": [...]}}}``

The real cause of a 400 is only in ``metadata.errors``; ``message`` is generic.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from worker.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    ContextOverflow,
    GatewayError,
    GatewayTimeout,
    ModelNotFound,
    NotEntitled,
    NotFound,
    RateLimited,
    RepairFailed,
    SchemaRejected,
    ServerError,
    TranscriptNotFound,
    UnsupportedParameter,
)
from worker.gateway.types import RateLimitInfo

BODY_LIMIT_BYTES = 4096
REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class ErrorEnvelope:
    message: str | None = None
    request_id: str | None = None
    errors: list[str] = field(default_factory=list)


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced wherever it shows: as is, as Python quotes it in a
    ``str`` or ``bytes`` repr (an HTTP library's error does), and each run of it between
    whitespace (a key with a newline inside is quoted in pieces). No-op for an empty secret."""
    if not secret:
        return text
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}
    forms.update(part for part in secret.split() if len(part) >= 6)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def truncate_body(text: str, limit_bytes: int = BODY_LIMIT_BYTES) -> str:
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit_bytes:
        return text
    return raw[:limit_bytes].decode("utf-8", errors="ignore") + "...[truncated]"


def _str_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    if isinstance(value, str):
        return [value]
    return []


def parse_envelope(text: str) -> ErrorEnvelope:
    """Read any of the three envelopes; anything else yields an empty envelope."""
    try:
        data = json.loads(text)
    except ValueError:
        return ErrorEnvelope()
    if not isinstance(data, dict):
        return ErrorEnvelope()
    request_id = data.get("request_id")
    request_id = request_id if isinstance(request_id, str) else None
    message = data.get("message")
    metadata = data.get("metadata")
    error = data.get("error")
    if isinstance(error, dict):  # old shape
        message = message if isinstance(message, str) else error.get("message")
        metadata = metadata if isinstance(metadata, dict) else error.get("metadata")
    elif isinstance(error, str) and not isinstance(message, str):  # auth shape
        message = error
    errors = _str_list(metadata.get("errors")) if isinstance(metadata, dict) else []
    return ErrorEnvelope(
        message=message if isinstance(message, str) else None,
        request_id=request_id,
        errors=errors,
    )


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = _float_header(headers, name)
    return int(value) if value is not None else None


def _float_header(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def rate_limit_info(headers: httpx.Headers) -> RateLimitInfo:
    """``X-RateLimit-*`` headers (httpx.Headers look names up case-insensitively)."""
    return RateLimitInfo(
        limit=_int_header(headers, "x-ratelimit-limit"),
        remaining=_int_header(headers, "x-ratelimit-remaining"),
        reset_s=_float_header(headers, "x-ratelimit-reset"),
        model=headers.get("x-ratelimit-model"),
        service=headers.get("x-ratelimit-service"),
    )


def parse_retry_after(value: str | None, now_epoch_s: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date (never negative)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    now = time.time() if now_epoch_s is None else now_epoch_s
    return max(0.0, when.timestamp() - now)


def _mentions_repair(envelope: ErrorEnvelope) -> bool:
    texts = [envelope.message or "", *envelope.errors]
    return any("repair" in t.lower() for t in texts)


def error_from_response(
    response: httpx.Response,
    *,
    model: str | None,
    json_repair_requested: bool = False,
    secret: str | None = None,
    now_epoch_s: float | None = None,
) -> GatewayError:
    """The exception for a non-2xx ``response``; ``secret`` is scrubbed from every text."""
    status = response.status_code
    text = redact(response.text, secret)
    envelope = parse_envelope(text)
    message = redact(envelope.message or f"gateway returned HTTP {status}", secret)
    common: dict[str, Any] = {
        "status": status,
        "request_id": envelope.request_id,
        "model": model,
        "errors": [redact(e, secret) for e in envelope.errors],
        "body": truncate_body(text),
    }
    if status == 429:
        info = rate_limit_info(response.headers)
        retry_after = parse_retry_after(response.headers.get("retry-after"), now_epoch_s)
        return RateLimited(
            message,
            retry_after_s=retry_after if retry_after is not None else info.reset_s,
            limit=info.limit,
            limit_model=info.model,
            **common,
        )
    if status >= 500 or status < 400:
        if status == 500 and json_repair_requested and _mentions_repair(envelope):
            return RepairFailed(message, **common)
        return ServerError(message, **common)
    if status in (401, 403):
        return AuthFailed(message, **common)
    if status == 404:
        return _not_found(envelope)(message, **common)
    cls = _bad_request(envelope) if status == 400 else BadRequest
    return cls(message, **common)


# The 400 causes (``metadata.errors`` texts, gateway-api.md 6.3). The gateway lists its checks
# in the order it runs them, so the first error that names a cause names the kind stored.
_BAD_REQUEST_KINDS: tuple[tuple[str, type[BadRequest]], ...] = (
    ("is not supported", BadRequest),  # an unknown model id
    ("does not have access", NotEntitled),
    ("context limit exceeded", ContextOverflow),
    ("response_format is invalid", SchemaRejected),
    ("does not support", UnsupportedParameter),
)


def _bad_request(envelope: ErrorEnvelope) -> type[BadRequest]:
    for text in (*envelope.errors, envelope.message or ""):
        for needle, cls in _BAD_REQUEST_KINDS:
            if needle in text.lower():
                return cls
    return BadRequest


def _not_found(envelope: ErrorEnvelope) -> type[GatewayError]:
    """The live 404 says "transcript not found" / "transcript deleted"; the docs also name
    invalid endpoints and models. Only a 404 that names a transcript is a missing transcript: a
    retired or misspelt model reported as one sends the user hunting for the wrong thing."""
    text = " ".join((envelope.message or "", *envelope.errors)).lower()
    if "transcript" in text:
        return TranscriptNotFound
    if "model" in text:
        return ModelNotFound
    return NotFound


def error_from_transport(
    exc: httpx.TransportError, *, model: str | None, secret: str | None = None
) -> GatewayError:
    """Timeouts and broken connections. The message names the failure; ``secret`` is scrubbed
    from it (an HTTP library's protocol error can quote a header's value). Raise the result
    ``from None``: the original exception's text is not scrubbed."""
    detail = f"{type(exc).__name__}: {redact(str(exc), secret)}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return GatewayTimeout(f"gateway timeout ({detail})", model=model)
    return ConnectionFailed(f"gateway connection failed ({detail})", model=model)
