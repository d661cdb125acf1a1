"""Client for AssemblyAI's LLM Gateway and the transcript list API.

Nothing here runs at import: build one ``GatewayClient`` per worker process, after fork.
"""

from worker.gateway.client import GatewayClient, build_body
from worker.gateway.request import check_request_shape, validate_request
from worker.gateway.transcripts import Transcript, TranscriptLister, TranscriptSummary
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
