"""One gateway call's evidence, as the pipeline gathers it (request_id, models, outcome, usage,
cost, what was repaired or invalid): the row ``attempts`` keeps of every call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models.jobs import Job
from models.vocabulary import AttemptOutcome
from worker import pricing
from worker.errors import GatewayError, TransientGatewayError
from worker.gateway.types import CompletionResult, ModelInfo

MAX_RAW_CHARS = 100_000  # of an answer's text kept on its attempt (and result)


@dataclass
class AttemptRecord:
    """What one gateway call came to, gathered as the call goes (``take_result`` /
    ``take_error``) and written once by ``recording.record_attempt``; nothing is stored until
    the job's move is, so the attempt and the move share one transaction."""

    job: Job
    started_at: datetime
    region: str
    purpose: str = "call"
    model_asked: str | None = None  # the request's primary; None: the job's model
    route: str | None = None  # how the answering model was asked (``routes.Route``)
    plan: dict[str, Any] | None = None  # every model's shape, as sent
    request_id: str | None = None
    model_answered: str | None = None
    http_status: int | None = None
    outcome: AttemptOutcome = AttemptOutcome.TRANSIENT
    error_kind: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    raw_text: str | None = None
    repairs: list[str] = field(default_factory=list)
    validation_errors: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    usage: dict[str, int | None] = field(default_factory=dict)
    cost_usd: float | None = None
    cost_breakdown: dict[str, Any] | None = None
    sent_at: datetime | None = None

    def take_result(
        self,
        result: CompletionResult,
        catalog: dict[str, ModelInfo],
        answer: str | None,
        *,
        global_models: frozenset[str] = frozenset(),
        prices: pricing.PricingConfig = pricing.DEFAULT_CONFIG,
    ) -> None:
        """``answer``: the text the route returns (a tool call's arguments, or the content);
        ``global_models``: the models of the request sent ``model_region: "global"``."""
        self.request_id = result.request_id
        self.model_answered = result.model_answered
        self.http_status = result.http_status
        self.finish_reason = result.finish_reason_raw or result.finish_reason
        self.raw_text = (answer or result.refusal or "")[:MAX_RAW_CHARS]
        self.latency_ms = result.latency_ms
        self.usage = {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
            "total_tokens": result.usage.total_tokens,
            "cached_tokens": result.usage.cached_tokens,
            "cache_write_tokens": result.usage.cache_write_tokens,
            "reasoning_tokens": result.usage.reasoning_tokens,
        }
        model = result.model_answered
        cost = pricing.price_call(
            None if model is None else catalog.get(model),
            result.usage,
            global_routing=model in global_models,
            on=self.started_at.date(),
            config=prices,
            model=model,
        )
        self.cost_breakdown = None if cost is None else cost.as_dict()
        self.cost_usd = None if cost is None else cost.total_usd

    def take_error(self, error: GatewayError) -> None:
        self.request_id = error.request_id
        self.http_status = error.status
        transient = isinstance(error, TransientGatewayError)
        self.outcome = AttemptOutcome.TRANSIENT if transient else AttemptOutcome.PERMANENT
        self.error_kind = error.kind
        self.error_message = str(error)[:4000]
