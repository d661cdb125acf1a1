"""Client for AssemblyAI's LLM Gateway and the transcript list API.

Nothing here runs at import: build one ``GatewayClient`` per worker process, after fork.
The HTTP parts (httpx) load on first use of a name that needs them: importing the package for
its types (the limiter does) must not cost ``tbatch status`` the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from worker.gateway.types import (
    TRANSCRIPT_TAG,
    CompletionRequest,
    CompletionResult,
    Fallback,
    Message,
    ModelInfo,
    RateLimitInfo,
    Region,
    Usage,
)

if TYPE_CHECKING:
    from worker.gateway.client import GatewayClient, build_body
    from worker.gateway.request import check_request_shape, validate_request
    from worker.gateway.transcripts import Transcript, TranscriptLister, TranscriptSummary

_LAZY = {
    "GatewayClient": "worker.gateway.client",
    "build_body": "worker.gateway.client",
    "check_request_shape": "worker.gateway.request",
    "validate_request": "worker.gateway.request",
    "Transcript": "worker.gateway.transcripts",
    "TranscriptLister": "worker.gateway.transcripts",
    "TranscriptSummary": "worker.gateway.transcripts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "TRANSCRIPT_TAG",
    "CompletionRequest",
    "CompletionResult",
    "Fallback",
    "GatewayClient",
    "Message",
    "ModelInfo",
    "RateLimitInfo",
    "Region",
    "Transcript",
    "TranscriptLister",
    "TranscriptSummary",
    "Usage",
    "build_body",
    "check_request_shape",
    "validate_request",
]
