"""Typed requests to and results from AssemblyAI's LLM Gateway.

Requests are what tbatch wants to send; ``request.build_body`` turns one into the wire JSON.
Results keep the evidence (request_id, raw body, the model that answered) next to the parsed
fields, so a failed job can be understood and reprocessed later.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Region = Literal["us", "eu"]  # the gateway's hosts (llm-gateway[.eu].assemblyai.com)
REGIONS: tuple[Region, ...] = get_args(Region)
TRANSCRIPT_TAG = "{{ transcript }}"  # where the gateway injects the transcript
MAX_FALLBACKS = 2  # the longest fallback chain the gateway accepts


def residency_problem(region: str, model_region_global: bool) -> str | None:
    """Why a job may not be sent as asked, or None. ``model_region: "global"`` is the opt-out
    from in-region processing: an EU job that carries it would send EU data out of the EU."""
    if region == "eu" and model_region_global:
        return (
            'global routing (model_region "global") cannot be used with region eu: it opts out '
            "of in-region processing, and an EU job's data must stay in the EU; drop global "
            "routing, or use region us"
        )
    return None


class Message(BaseModel):
    """One chat message. Extra keys (``name``, ``tool_call_id``, ``cache_control``) pass through."""

    model_config = ConfigDict(frozen=True, extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class Fallback(BaseModel):
    """A backup model; ``overrides`` replace top-level request fields for this model only."""

    model_config = ConfigDict(frozen=True)

    model: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class CompletionRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    messages: list[Message]
    region: Region = "us"
    transcript_id: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    fallbacks: list[Fallback] = Field(default_factory=list)
    # None with fallbacks means "all of them" (the gateway's own default is undocumented).
    fallback_depth: int | None = None
    fallback_retry: bool = True
    response_format_name: str | None = None
    response_format_schema: dict[str, Any] | None = None
    strict: bool = False
    server_json_repair: bool = False
    model_region_global: bool = False
    # Any other top-level body field (tools, tool_choice, reasoning, stop, ...).
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_depth(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("fallbacks") and data.get("fallback_depth") is None:
            data = {**data, "fallback_depth": len(data["fallbacks"])}
        return data


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    # Prompt tokens read from the provider's cache (a part of ``input_tokens``).
    cached_tokens: int | None = None
    # Prompt tokens written to the cache (a part of ``input_tokens``; of them, ``..._1h`` with
    # a one-hour lifetime, which Anthropic prices higher than the 5-minute default).
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None  # thinking tokens, billed as output


class RateLimitInfo(BaseModel):
    """The ``X-RateLimit-*`` headers of one response; None where a header was absent."""

    model_config = ConfigDict(frozen=True)

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None
    model: str | None = None
    service: str | None = None


class CompletionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str | None
    model_asked: str
    # None: the body named no model and the request had fallbacks, so any of them may have
    # answered (gateway-api.md 4.3: Claude answers were seen without a top-level ``model``).
    model_answered: str | None
    region: Region
    content: str | None
    refusal: str | None = None
    has_tool_calls: bool = False
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    finish_reason: str | None = None
    finish_reason_raw: str | None = None
    usage: Usage = Field(default_factory=Usage)
    rate_limit: RateLimitInfo = Field(default_factory=RateLimitInfo)
    http_status: int
    latency_ms: float
    response_time_ns: int | None = None
    raw_body: str = Field(repr=False)

    @property
    def served_by_fallback(self) -> bool:
        return self.model_answered is not None and self.model_answered != self.model_asked


class ModelInfo(BaseModel):
    """One catalog entry. ``supported_parameters`` is None when the catalog did not say."""

    model_config = ConfigDict(frozen=True)

    id: str
    context_length: int | None = None
    supported_parameters: frozenset[str] | None = None
    available_regions: frozenset[str] | None = None
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    # From the catalog when it has them; else the provider's multiplier (``worker.pricing``).
    cache_read_usd_per_mtok: float | None = None
    cache_write_usd_per_mtok: float | None = None
    # Why the price is unknown (``catalog_prices.parse_pricing``); None: it is known.
    pricing_problem: str | None = None
    # Who made the model (``creator``, else the default provider's id): picks the cache rates.
    creator: str | None = None
    retirement_date: date | None = None
