"""Response bodies: the success shape, usage naming and the error envelopes.

Error envelopes follow gateway-api.md section 6.3: (a) the flattened ``{code, message,
request_id, metadata?}`` for validation, not-found, rate-limit and server errors, and (b) the
older ``{error, status, request_id}`` for authentication.
"""

from __future__ import annotations

import uuid
from typing import Any

from emulator.world.catalog import Family
from emulator.world.prompt_cache import CacheUse

INVALID_BODY = "invalid request body"
RATE_LIMITED = "too many requests for this action"
REPAIR_FAILED = "json-repair post-processing failed"
REPAIR_ERROR = "json-repair could not repair the model output into valid JSON"
AUTH_ERROR = "Authentication error, API token missing/invalid"
NO_GATEWAY_ACCESS = (
    "Your account does not have access to LLM Gateway. Please upgrade or contact us at "
    "support@assemblyai.com for more information."
)
SERVER_MESSAGES = {
    500: "internal server error",
    502: "upstream model provider returned an error",
    503: "model is temporarily unavailable",
    504: "upstream model provider timed out",
}

FINISH: dict[Family, dict[str, str]] = {
    "anthropic": {
        "stop": "end_turn",
        "length": "max_tokens",
        "refusal": "refusal",
        "tool": "tool_use",
    },
    "google": {"stop": "stop", "length": "length", "refusal": "content_filter", "tool": "stop"},
    "openai": {"stop": "stop", "length": "length", "refusal": "stop", "tool": "tool_calls"},
}


def new_request_id() -> str:
    return str(uuid.uuid4())


def error_body(
    code: int, message: str, request_id: str, errors: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if errors is not None:
        body["metadata"] = {"errors": errors}
    return body


def auth_body(request_id: str, missing: bool) -> dict[str, Any]:
    text = NO_GATEWAY_ACCESS if missing else AUTH_ERROR
    return {"error": text, "status": "error", "request_id": request_id}


def usage(
    family: Family,
    input_tokens: int,
    output_tokens: int,
    *,
    cache: CacheUse | None = None,
    reasoning_tokens: int = 0,
) -> dict[str, Any]:
    """Canonical names everywhere; OpenAI-family models also send the OpenAI names. Cache
    reads and writes are parts of ``input_tokens``, reasoning a part of ``output_tokens``."""
    cache = cache or CacheUse()
    out: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": cache.read,
            "audio_tokens": 0,
            "cache_creation": {
                "ephemeral_5m_input_tokens": cache.written_5m,
                "ephemeral_1h_input_tokens": cache.written_1h,
            },
        },
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if family == "openai":
        out["prompt_tokens"] = input_tokens
        out["completion_tokens"] = output_tokens
    return out


def request_echo(req: dict[str, Any], asked_model: str) -> dict[str, Any]:
    """The ``request`` echo: the model asked for plus the sampling fields that were given."""
    echo: dict[str, Any] = {"model": asked_model, "max_tokens": req.get("max_tokens", 1000)}
    for key in ("temperature", "tools", "tool_choice"):
        if key in req:
            echo[key] = req[key]
    return echo
