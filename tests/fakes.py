"""Hand-written fakes of the pipeline's ports (no MagicMock), a fake clock and a SQLite-backed
world.

Shared by the unit and the integration tests, so they live beside both rather than in one.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_session_factory
from models.migrate import upgrade
from worker.errors import RateLimited, SendDeferred
from worker.gateway.client import SendGate
from worker.gateway.types import (
    CompletionRequest,
    CompletionResult,
    ModelInfo,
    RateLimitInfo,
    Usage,
)
from worker.services.enqueue import EnqueueOutcome, EnqueueRequest, enqueue
from worker.settings import Settings

CATALOG = {
    "us": ["claude-sonnet-4-6", "gemini-2.5-flash", "gpt-5", "gpt-oss-20b"],
    "eu": ["claude-sonnet-4-6", "gemini-2.5-flash"],
}
SCHEMA = {
    "type": "object",
    "required": ["summary", "sentiment"],
    "properties": {
        "summary": {"type": "string", "minLength": 1},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
    },
}
TEMPLATE = "[system]\nBe terse.\n[user]\nSummarise for {{ team }}:\n{{ transcript }}\n"
GOOD = '{"summary": "Customer asked about a refund.", "sentiment": "neutral"}'


def answer(
    content: str | None,
    *,
    finish: str = "stop",
    model: str = "claude-sonnet-4-6",
    asked: str = "claude-sonnet-4-6",
    refusal: str | None = None,
) -> CompletionResult:
    return CompletionResult(
        request_id=str(uuid.uuid4()),
        model_asked=asked,
        model_answered=model,
        region="us",
        content=content,
        refusal=refusal,
        finish_reason=finish,
        finish_reason_raw=finish,
        usage=Usage(input_tokens=100, output_tokens=20, total_tokens=120),
        rate_limit=RateLimitInfo(limit=30),
        http_status=200,
        latency_ms=5.0,
        raw_body="{}",
    )


class FakeClock:
    """Time that moves only when a test says so: call it for "now", ``sleep`` to advance it.

    The limiter, its backends and the dispatcher take a clock and a sleep function; this one
    serves as both, and ``slept`` records every wait so tests can assert how long code waited.
    """

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self.now_s = start_s
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


@dataclass
class FakeGateway:
    """Answers from a script: each item is a CompletionResult or an exception to raise."""

    script: list[Any] = field(default_factory=list)
    requests: list[CompletionRequest] = field(default_factory=list)

    def complete(
        self,
        req: CompletionRequest,
        log_fields: Mapping[str, Any] | None = None,
        gate: SendGate | None = None,
    ) -> CompletionResult:
        if gate is not None:
            gate.before_send()  # may raise SendDeferred: then nothing is sent
            gate.written()
        self.requests.append(req)
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            if gate is not None and isinstance(item, RateLimited):
                gate.answered(RateLimitInfo(limit=item.limit, model=item.limit_model))
            raise item
        if gate is not None:
            gate.answered(item.rate_limit)
        return item  # type: ignore[no-any-return]

    def list_models(self, region: Any = "us") -> dict[str, ModelInfo]:
        return {
            m: ModelInfo(id=m, input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
            for m in CATALOG[region]
        }


@dataclass
class FakeLimiter:
    paused: dict[str, float] = field(default_factory=dict)
    debits: list[str] = field(default_factory=list)
    learned: dict[str, int] = field(default_factory=dict)
    # Permits to refuse (each refusal raises SendDeferred once), and the permits granted.
    refuse_permits: int = 0
    permits: list[str] = field(default_factory=list)
    observed: list[tuple[str, float | None, RateLimitInfo]] = field(default_factory=list)
    clock_s: float = 1_700_000_000.0

    def permit(self, model: str, region: str | None) -> float:
        if self.refuse_permits > 0:
            self.refuse_permits -= 1
            raise SendDeferred(model, region or "us", 2.0)
        self.permits.append(model)
        self.clock_s += 1.0
        return self.clock_s

    def written(self, permit: float) -> float:
        return permit + 0.001

    def observe(
        self,
        model: str,
        region: str | None,
        sent_at_s: float | None,
        info: RateLimitInfo,
        *,
        probe: bool = True,
    ) -> None:
        self.observed.append((info.model or model, sent_at_s, info))
        if info.limit is not None:
            self.learned[info.model or model] = info.limit

    def on_429(
        self, model: str, region: str | None, retry_after_s: float | None, cap_s: float
    ) -> float:
        self.paused[model] = min(retry_after_s or cap_s, cap_s)
        return self.paused[model]

    def debit_fallback(self, model_answered: str, region: str | None) -> None:
        self.debits.append(model_answered)


def sqlite_sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'tbatch.sqlite3'}"
    upgrade(url)
    return make_session_factory(make_engine(url))


def catalog(region: str) -> list[str]:
    return CATALOG[region]


def enqueue_lines(sessions: sessionmaker[Session], lines: list[str], **overrides: Any) -> int:
    return enqueue_outcome(sessions, lines, **overrides).batch_id


def enqueue_outcome(
    sessions: sessionmaker[Session],
    lines: list[str],
    *,
    catalog: Any = catalog,
    today: date | None = None,
    **overrides: Any,
) -> EnqueueOutcome:
    """Enqueue ``lines`` with the shared template and schema; ``overrides`` set request fields."""
    fields: dict[str, Any] = {
        "transcripts_source": "ids.txt",
        "template_text": TEMPLATE,
        "template_source": "t.j2",
        "schema": SCHEMA,
        "schema_source": "s.json",
        "model": "claude-sonnet-4-6",
    }
    fields.update(overrides)
    with sessions.begin() as session:
        return enqueue(session, EnqueueRequest(**fields), lines, catalog, today=today)


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "retry_backoff_base_s": 1.0,
        "max_reasks": 2,
        "max_transport_retries": 3,
    }
    base.update(kw)
    return Settings(**base)


counter = itertools.count()
