"""Process one job: claim it, make exactly one gateway call, record what happened.

One task execution is one gateway call. Anything that needs another call (a transport retry
after backoff, a re-ask with validation errors, a 429) puts the job back to ``pending`` in
Postgres, where the dispatcher releases it again when its model has budget. So no worker ever
waits for a rate limit or a backoff, and every call spends exactly one token.

Output handling order: refusal / truncation (their own outcomes, never repaired) -> parse ->
repair (recorded) -> validate -> bounded re-ask showing the validation errors.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.jobs import Job
from models.vocabulary import AttemptOutcome, Delivery, FailureKind, JobStatus
from worker import metrics
from worker.caching import CachePolicy
from worker.errors import (
    AuthFailed,
    ContextOverflow,
    GatewayError,
    LimiterUnavailable,
    ModelUnavailable,
    RateLimited,
    RepairFailed,
    RequestRejected,
    SendDeferred,
    TbatchError,
    TransientGatewayError,
)
from worker.gateway.client import SendGate
from worker.gateway.types import CompletionRequest, CompletionResult, ModelInfo
from worker.output import Invalid, Refused, Truncated, Valid, interpret
from worker.pricing import PricingConfig
from worker.services import batch_health, claims
from worker.services.attempt import AttemptRecord
from worker.services.content_cache import ContentCache
from worker.services.recording import (
    record_attempt,
    storable_list,
    storable_text,
    store_result,
)
from worker.services.requests import build_request
from worker.services.reroute import reroute_target
from worker.services.routes import answer_text
from worker.services.send_gate import CallGate, PermitPort
from worker.settings import Settings

log = logging.getLogger("tbatch.pipeline")


class GatewayPort(Protocol):
    def complete(
        self,
        req: CompletionRequest,
        log_fields: Mapping[str, Any] | None = None,
        gate: SendGate | None = None,
    ) -> CompletionResult: ...

    def list_models(self, region: Any = "us") -> dict[str, ModelInfo]: ...


class LimiterPort(PermitPort, Protocol):
    """The send gate's port (``send_gate.PermitPort``) plus what the pipeline reports."""

    def on_429(
        self, model: str, region: str | None, retry_after_s: float | None, cap_s: float
    ) -> float: ...

    def debit_fallback(self, model_answered: str, region: str | None) -> None: ...


class Leases:
    """The leases this process holds (job_id -> lease token), renewed by the heartbeat.

    A delivery releases only its own lease: a duplicate message for a job another thread of
    this process is calling must not drop the live call's lease from the heartbeat.
    """

    def __init__(self) -> None:
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()

    def hold(self, job_id: int, token: str) -> None:
        with self._lock:
            self._held[job_id] = token

    def release(self, job_id: int, token: str) -> None:
        with self._lock:
            if self._held.get(job_id) == token:
                del self._held[job_id]

    def snapshot(self) -> dict[int, str]:
        with self._lock:
            return dict(self._held)


class Halt:
    """This worker stopped taking work: its key was refused (401/403) or it has none.

    Every job would fail the same way on this machine, so while the halt lasts each delivery
    goes back to ``pending`` uncalled, for healthy machines to take; after ``fleet_hold_s`` one
    job tries again (a rotated key, an auth outage that ended). Tripping logs one error line.
    """

    def __init__(self) -> None:
        self._until = 0.0
        self.reason: str | None = None
        self._lock = threading.Lock()

    def trip(self, reason: str, hold_s: float) -> None:
        with self._lock:
            self._until = time.monotonic() + hold_s
            self.reason = reason
        log.error("worker.halted", extra={"reason": reason, "hold_s": hold_s})

    def active(self) -> str | None:
        with self._lock:
            return self.reason if time.monotonic() < self._until else None


@dataclass
class PipelineDeps:
    sessions: sessionmaker[Session]
    gateway: GatewayPort
    limiter: LimiterPort | None
    settings: Settings
    content: ContentCache = field(default_factory=ContentCache)
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    leases: Leases = field(default_factory=Leases)
    halt: Halt = field(default_factory=Halt)


def process_job(job_id: int, deps: PipelineDeps) -> Delivery:
    """Run one delivery of ``jobs.process``; returns what happened (for logs and tests)."""
    with deps.sessions.begin() as session:
        job = claims.claim(session, job_id, now=deps.clock(), lease_s=deps.settings.lease_s)
        if job is None:
            parked = claims.park(session, job_id, now=deps.clock())
            return Delivery.PARKED if parked else Delivery.SKIPPED
        if claims.out_of_deliveries(job.deliveries - 1, deps.settings.max_deliveries):
            claims.finish(
                session,
                job,
                now=deps.clock(),
                status=JobStatus.FAILED,
                error_kind=FailureKind.POISON,
                error_message=f"delivered {job.deliveries} times without finishing "
                f"(cap {deps.settings.max_deliveries}); history kept in attempts",
            )
            metrics.observe_finished(job.model, JobStatus.FAILED, FailureKind.POISON)
            return Delivery.POISON
    token = str(job.lease_token)
    deps.leases.hold(job.id, token)
    try:
        return _deliver(job, deps)
    finally:
        deps.leases.release(job.id, token)


def _deliver(job: Job, deps: PipelineDeps) -> Delivery:
    halted = deps.halt.active()
    if halted is not None:
        return _hold(job, None, deps, kind=FailureKind.AUTH, message=f"worker halted: {halted}")
    try:
        with deps.sessions() as session:
            template, schema = deps.content.load(session, job.template_id, job.schema_id)
    except Exception as exc:  # stored content this worker cannot use: no call can succeed
        if database_unreachable(exc):
            raise  # the database, not the content: the lease brings the job back

        log.exception("job.content_unusable", extra={"job_id": job.id})
        record = AttemptRecord(job=job, started_at=deps.clock(), region=job.region)
        message = f"template {job.template_id} / schema {job.schema_id} unusable: {exc!r}"
        return _fail(
            job, record, deps, kind=FailureKind.BAD_CONTENT, message=message, call_made=False
        )
    return _call(job, template, schema, deps)


def _call(job: Job, template: Any, schema: Any, deps: PipelineDeps) -> Delivery:
    settings = deps.settings
    catalog = _catalog(deps, job.region)
    started = deps.clock()
    record = AttemptRecord(job=job, started_at=started, region=job.region)
    # A rerouted job (its input overflowed its model) calls the larger model alone.
    model = job.reroute_model or job.model
    fallbacks = [] if job.reroute_model else list(job.fallbacks)
    record.model_asked = model
    gate = None if deps.limiter is None else CallGate(deps.limiter, model, job.region)
    try:
        planned = build_request(
            template=template,
            variables=job.variables,
            schema=schema,
            transcript_id=job.transcript_id,
            model=model,
            fallbacks=fallbacks,
            region=job.region,
            max_tokens=job.max_tokens or settings.default_max_tokens,
            temperature=job.temperature,
            model_region_global=job.model_region_global,
            catalog=catalog,
            reask_context=job.reask_context,
            reasoning=job.reasoning,
            caching=CachePolicy.build(settings.prompt_caching, settings.cache_min_tokens),
        )
        record.plan = {
            **planned.plan.describe(),
            "global": sorted(planned.global_models),
            "cache_marked": planned.cache_marked,
        }
        record.purpose = _purpose(job)
        fields = {"job_id": job.id, "batch_id": job.batch_id}
        result = deps.gateway.complete(planned.request, log_fields=fields, gate=gate)
    except SendDeferred as deferred:
        return _defer(job, deps, deferred)
    except ModelUnavailable as error:
        return _model_unavailable(job, deps, str(error))
    except LimiterUnavailable as error:  # no permit could be asked for: nothing was sent
        log.error("ratelimit.unavailable", extra={"job_id": job.id, "error": str(error)})
        return _hold(
            job, None, deps, kind=FailureKind.LIMITER_UNAVAILABLE, message=str(error), delay_s=2.0
        )
    except AuthFailed as error:
        record.sent_at = _sent_at(gate)
        if error.status is not None:
            record.take_error(error)
        deps.halt.trip(f"{error} (this machine's ASSEMBLYAI_API_KEY)", settings.fleet_hold_s)
        called = record if error.status is not None else None
        return _hold(job, called, deps, kind=FailureKind.AUTH, message=f"worker halted: {error}")
    except GatewayError as error:
        record.sent_at = _sent_at(gate)
        on_error = partial(_on_gateway_error, job, error, record, deps, catalog)
        return _answered(job, record, deps, on_error)
    except (RequestRejected, TbatchError) as error:
        return _fail(job, record, deps, kind=FailureKind.REJECTED, message=str(error))

    record.sent_at = _sent_at(gate)
    if deps.limiter is not None and result.served_by_fallback:
        # The gateway served a fallback model; that model's window counted it (see README).
        assert result.model_answered is not None
        _debit_fallback(deps.limiter, result.model_answered, job.region)

    def settle() -> Delivery:
        answer = answer_text(planned.plan, result.content, result.tool_calls)
        record.take_result(
            result,
            catalog,
            answer,
            global_models=planned.global_models,
            prices=PricingConfig.build(settings.cache_rates, settings.region_surcharge),
        )
        record.route = planned.plan.route_for(result.model_answered)
        return _on_answer(job, result, answer, schema, record, deps)

    return _answered(job, record, deps, settle)


def _purpose(job: Job) -> str:
    if job.reask_context:
        return "reask"
    return "reroute" if job.reroute_model else "call"


def _answered(
    job: Job, record: AttemptRecord, deps: PipelineDeps, settle: Callable[[], Delivery]
) -> Delivery:
    """Settle a call the gateway answered; if that fails, still record the paid attempt.

    Whatever goes wrong after the answer (a value the database refuses, a bug in handling it,
    a limiter outage during feedback) must not leave the job ``running`` until its lease
    expires and is called, and paid, again. The attempt is written with what is known and the
    job fails with the reason; only a database that cannot be written at all escapes (the
    lease then brings the job back, as after a crash).
    """
    try:
        return settle()
    except Exception as exc:
        if database_unreachable(exc):
            # Nothing can be written now; failing the job as unstorable when the database
            # came back a moment later turned an outage into a permanent failure (seen:
            # Postgres restarting mid-batch, fresh-clone CI).
            raise
        log.exception("job.settle_failed", extra={"job_id": job.id})
        record.outcome = AttemptOutcome.UNSTORABLE
        record.error_kind = FailureKind.UNSTORABLE
        record.error_message = f"the answer could not be recorded as is: {exc!r}"[:4000]
        record.repairs, record.validation_errors = [], []
        return _fail(job, record, deps, kind=FailureKind.UNSTORABLE, message=record.error_message)


def database_unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (Postgres restarting, failing over), as opposed to a
    statement the database refuses (a NUL byte, an over-long value): the first is an outage
    the lease and the reconciler recover from, the second a property of the answer."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _catalog(deps: PipelineDeps, region: str) -> dict[str, ModelInfo]:
    try:
        return deps.gateway.list_models(region)
    except GatewayError:
        return {}


def _sent_at(gate: CallGate | None) -> datetime | None:
    return None if gate is None else gate.sent_at


def _debit_fallback(limiter: LimiterPort, model: str, region: str) -> None:
    try:
        limiter.debit_fallback(model, region)
    except Exception as exc:  # the answer is paid for: a limiter outage must not lose it
        log.warning("fallback.debit_failed", extra={"model": model, "error": repr(exc)})


def _pause(
    limiter: LimiterPort, model: str, region: str, pause_s: float | None, cap_s: float
) -> None:
    """Pause the model's lane everywhere (as a 429 does); a limiter outage is logged only."""
    try:
        limiter.on_429(model, region, pause_s, cap_s)
    except Exception as exc:  # the job is recorded and goes back either way
        log.warning("ratelimit.pause_failed", extra={"model": model, "error": repr(exc)})


def _model_unavailable(job: Job, deps: PipelineDeps, problem: str) -> Delivery:
    """The model is missing from the catalog now: pause its lane and hold the job (no call)."""
    hold_s = deps.settings.fleet_hold_s
    fields = {"job_id": job.id, "model": job.model, "problem": problem, "hold_s": hold_s}
    log.error("fleet.model_unavailable", extra=fields)
    if deps.limiter is not None:
        _pause(deps.limiter, job.model, job.region, hold_s, hold_s)
    return _hold(job, None, deps, kind=FailureKind.MODEL_UNAVAILABLE, message=problem)


def _hold(
    job: Job,
    record: AttemptRecord | None,
    deps: PipelineDeps,
    *,
    kind: FailureKind,
    message: str,
    delay_s: float | None = None,
) -> Delivery:
    """Back to ``pending`` for ``delay_s`` (default ``fleet_hold_s``) after a problem of the
    fleet, spending no retry and giving back the delivery: the job is not at fault.
    ``tbatch status`` lists held jobs by ``kind`` with the message."""
    hold_s = deps.settings.fleet_hold_s if delay_s is None else delay_s
    _settle(
        job,
        record,
        deps,
        status=JobStatus.PENDING,
        not_before=deps.clock() + timedelta(seconds=hold_s),
        error_kind=kind,
        error_message=storable_text(message, 4000),
    )
    return Delivery.HELD


def _defer(job: Job, deps: PipelineDeps, deferred: SendDeferred) -> Delivery:
    """No permit within the bound: back to ``pending`` unsent, giving back the delivery and
    spending no retry; the dispatcher releases the job again when its model has room."""
    metrics.DEFERRED.labels(job.model).inc()
    with deps.sessions.begin() as session:
        claims.finish(
            session,
            job,
            now=deps.clock(),
            status=JobStatus.PENDING,
            deliveries=max(0, job.deliveries - 1),
        )
    log.info(
        "job.deferred",
        extra={"job_id": job.id, "model": job.model, "wait_s": round(deferred.wait_s, 3)},
    )
    return Delivery.DEFERRED


def _on_answer(
    job: Job,
    result: CompletionResult,
    answer: str | None,
    schema: Any,
    record: AttemptRecord,
    deps: PipelineDeps,
) -> Delivery:
    """``answer`` is what the route returns: the tool call's arguments, or the content."""
    outcome = interpret(
        answer, finish_reason=result.finish_reason, refusal=result.refusal, schema=schema
    )
    if isinstance(outcome, Valid):
        record.outcome = AttemptOutcome.REPAIRED if outcome.repaired else AttemptOutcome.OK
        record.repairs = list(outcome.repairs)
        with deps.sessions.begin() as session:
            attempt_id = record_attempt(session, record, now=deps.clock())
            stored = store_result(
                session, job, attempt_id, outcome, result, answer or "", now=deps.clock()
            )
            if stored:
                batch_health.on_succeeded(session, job.batch_id)
        if not stored:
            return Delivery.LEASE_LOST
        metrics.observe_finished(job.model, JobStatus.SUCCEEDED, None)
        return Delivery.SUCCEEDED
    if isinstance(outcome, Refused):
        record.outcome = AttemptOutcome.REFUSED
        return _fail(
            job, record, deps, kind=FailureKind.REFUSED, message=f"model refused: {outcome.reason}"
        )
    if isinstance(outcome, Truncated):
        record.outcome = AttemptOutcome.TRUNCATED
        limit = job.max_tokens or deps.settings.default_max_tokens
        return _fail(
            job,
            record,
            deps,
            kind=FailureKind.TRUNCATED,
            message=f"answer cut at max_tokens ({limit}); raise --max-tokens",
        )
    assert isinstance(outcome, Invalid)
    record.outcome = AttemptOutcome.INVALID
    record.repairs = list(outcome.repairs)
    record.validation_errors = list(outcome.errors)
    return _reask_or_fail(job, record, deps, answer=answer or "", errors=outcome.errors)


def _reask_or_fail(
    job: Job, record: AttemptRecord, deps: PipelineDeps, *, answer: str, errors: list[str]
) -> Delivery:
    if job.reasks >= deps.settings.max_reasks:
        return _fail(
            job,
            record,
            deps,
            kind=FailureKind.INVALID_OUTPUT,
            message=f"output still invalid after {job.reasks} re-ask(s): " + "; ".join(errors[:3]),
        )
    _settle(
        job,
        record,
        deps,
        status=JobStatus.PENDING,
        not_before=None,
        reasks=job.reasks + 1,
        reask_context={
            "answer": storable_text(answer, 20000),
            "errors": storable_list(errors) or [],
        },
        error_kind=FailureKind.INVALID_OUTPUT,
        error_message=storable_text("; ".join(errors[:3]), 4000),
    )
    return Delivery.REASK


def _on_gateway_error(
    job: Job,
    error: GatewayError,
    record: AttemptRecord,
    deps: PipelineDeps,
    catalog: Mapping[str, ModelInfo],
) -> Delivery:
    record.take_error(error)
    settings = deps.settings
    if isinstance(error, ContextOverflow):
        return _reroute(job, record, deps, catalog, error)
    if isinstance(error, RateLimited):
        # A rate-limit wait is the model's, not the job's: it never spends the retry budget.
        if deps.limiter is not None:
            model = error.limit_model or job.model
            _pause(
                deps.limiter,
                model,
                job.region,
                error.retry_after_s,
                settings.rate_limit_pause_cap_s,
            )
        return _back_to_pending(job, record, deps, delay_s=0.0, count_retry=False)
    if isinstance(error, RepairFailed):
        # The gateway's json-repair gave up: the model's output was garbage, like an invalid
        # answer, so it spends the re-ask budget rather than the transport one.
        return _reask_or_fail(job, record, deps, answer="", errors=[str(error)])
    if isinstance(error, TransientGatewayError):
        if job.transport_retries >= settings.max_transport_retries:
            return _fail(
                job,
                record,
                deps,
                kind=error.kind,
                message=f"gave up after {job.transport_retries} retries: {error}",
            )
        delay = backoff_s(job.transport_retries, settings, deps.rng)
        return _back_to_pending(job, record, deps, delay_s=delay, count_retry=True)
    return _fail(job, record, deps, kind=error.kind, message=str(error))


def _reroute(
    job: Job,
    record: AttemptRecord,
    deps: PipelineDeps,
    catalog: Mapping[str, ModelInfo],
    error: ContextOverflow,
) -> Delivery:
    """The input does not fit the model asked: send the job on to the largest-context model
    of its region (its next call, at once, spending no retry), or fail saying none fits."""
    settings = deps.settings
    asked = job.reroute_model or job.model
    target = None
    if settings.overflow_reroute:
        target = reroute_target(
            catalog,
            job.region,
            overflowed=asked,
            allowed=settings.overflow_candidates,
            today=deps.clock().date(),
        )
    if target is None:
        context = catalog[asked].context_length if asked in catalog else None
        why = (
            "rerouting is off (TBATCH_OVERFLOW_REROUTE)"
            if not settings.overflow_reroute
            else (f"no eligible model of region {job.region} has a larger context")
        )
        return _fail(
            job,
            record,
            deps,
            kind=FailureKind.CONTEXT_OVERFLOW,
            message=f"input plus max_tokens exceed {asked}'s context ({context} tokens) and "
            f"{why}: {error}",
        )
    log.info(
        "job.rerouted",
        extra={"job_id": job.id, "model": asked, "to": target.id, "request_id": error.request_id},
    )
    _settle(
        job,
        record,
        deps,
        status=JobStatus.PENDING,
        not_before=None,
        reroute_model=target.id,
        error_kind=FailureKind.CONTEXT_OVERFLOW,
        error_message=storable_text(f"rerouted from {asked} to {target.id}: {error}", 4000),
    )
    return Delivery.REROUTED


def backoff_s(retries: int, settings: Settings, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_base_s * 2.0**retries)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _back_to_pending(
    job: Job, record: AttemptRecord, deps: PipelineDeps, *, delay_s: float, count_retry: bool
) -> Delivery:
    now = deps.clock()
    _settle(
        job,
        record,
        deps,
        status=JobStatus.PENDING,
        not_before=now + timedelta(seconds=delay_s) if delay_s else None,
        transport_retries=job.transport_retries + (1 if count_retry else 0),
        error_kind=record.error_kind,
        error_message=storable_text(record.error_message, 4000),
    )
    return Delivery.RETRY if count_retry else Delivery.RATE_LIMITED


def _fail(
    job: Job,
    record: AttemptRecord,
    deps: PipelineDeps,
    *,
    kind: FailureKind,
    message: str,
    call_made: bool = True,
) -> Delivery:
    """Fail the job; its attempt is recorded when a call was made (``call_made``)."""
    if record.error_kind is None:
        record.error_kind, record.error_message = kind, message
    message = storable_text(message, 4000) or ""
    moved = _settle(
        job,
        record if call_made else None,
        deps,
        status=JobStatus.FAILED,
        error_kind=kind,
        error_message=message,
    )
    if moved:
        metrics.observe_finished(job.model, JobStatus.FAILED, kind)
    log.info("job.failed", extra={"job_id": job.id, "error_kind": kind})
    return Delivery.FAILED


def _settle(
    job: Job, record: AttemptRecord | None, deps: PipelineDeps, *, status: str, **values: Any
) -> bool:
    """Record the attempt and move the job out of ``running``, in one transaction.

    A job sent back to ``pending`` on purpose (retry, re-ask, 429) gives back its delivery:
    ``deliveries`` counts only deliveries that never finished (a crash, a lost lease), which is
    what the poison cap is about. The attempts table keeps the full history. False when the
    lease was lost meanwhile (the job's move is someone else's).
    """
    if status == JobStatus.PENDING:
        values["deliveries"] = max(0, job.deliveries - 1)
    now = deps.clock()
    with deps.sessions.begin() as session:
        if record is not None:
            record_attempt(session, record, now=now)
        moved = claims.finish(session, job, now=now, status=status, **values)
        if moved and status == JobStatus.FAILED:  # a verdict on the batch (_fail)
            batch_health.on_failed(
                session,
                job.batch_id,
                values["error_kind"],
                values["error_message"],
                pause_streak=deps.settings.pause_streak,
                now=now,
            )
        return moved
