"""The gateway client: one pooled ``httpx.Client`` per worker process, built after fork.

    with GatewayClient(get_settings()) as gateway:
        result = gateway.complete(request, log_fields={"job_id": job.id})

Every call checks the request (``request.validate_request``) against the catalog of its
region's host, sends it, and either returns a ``CompletionResult`` or raises one of
``worker.errors``' ``GatewayError`` kinds; either way it logs one ``gateway.call`` line.
The API key is sent only in the ``Authorization`` header and scrubbed from every error text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from worker.errors import GatewayError, RequestRejected
from worker.gateway.errors_parse import (
    error_from_response,
    error_from_transport,
    rate_limit_info,
    redact,
)
from worker.gateway.http import PooledHttp, make_http_client, require_api_key
from worker.gateway.request import build_body, check_request_shape, validate_request
from worker.gateway.response import parse_catalog, parse_success
from worker.gateway.types import (
    CompletionRequest,
    CompletionResult,
    ModelInfo,
    RateLimitInfo,
    Region,
)
from worker.logs import RESERVED_ATTRS
from worker.settings import Settings

__all__ = ["GatewayClient", "SendGate", "build_body"]

log = logging.getLogger("tbatch.gateway")


class SendGate(Protocol):
    """What a call asks right before its request leaves, and tells once an answer is in."""

    def before_send(self) -> None:
        """Take the send permit (may wait briefly, or raise ``SendDeferred``: nothing sent)."""
        ...

    def written(self) -> None:
        """The request has been written to the connection."""
        ...

    def answered(self, info: RateLimitInfo) -> None:
        """The answer's ``X-RateLimit-*`` headers (success or error)."""
        ...


DEFAULT_CATALOG_TTL_S = 300.0
CATALOG_RETRY_S = 30.0


def _safe_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Caller fields that would collide with LogRecord attributes get a ``field_`` prefix."""
    return {(f"field_{k}" if k in RESERVED_ATTRS else k): v for k, v in fields.items()}


class GatewayClient(PooledHttp):
    def __init__(
        self,
        settings: Settings,
        transport: httpx.BaseTransport | None = None,
        *,
        catalog_ttl_s: float = DEFAULT_CATALOG_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = make_http_client(settings, transport)
        # Completions go through one small client per thread. One shared pool serialises every
        # request behind its lock, and under it httpcore polls each pooled socket (a syscall,
        # so a GIL hand-off, per connection per request): with 64 threads that put 70 ms
        # (p50) to 700 ms (p99) between the send permit and the first byte on the wire
        # (measured with httpcore's trace extension under scripts/bench.py limit).
        self._shared_transport = transport is not None
        self._tls = httpx.create_ssl_context()
        self._local = threading.local()
        self._thread_clients: list[httpx.Client] = []
        self._catalog_ttl_s = catalog_ttl_s
        self._clock = clock
        self._catalogs: dict[Region, tuple[float, dict[str, ModelInfo]]] = {}
        self._catalog_lock = threading.Lock()
        self._refreshing: set[Region] = set()

    def __repr__(self) -> str:
        s = self._settings
        return f"GatewayClient(us={s.gateway_url!r}, eu={s.gateway_eu_url!r})"

    def base_url(self, region: Region) -> str:
        url = self._settings.gateway_eu_url if region == "eu" else self._settings.gateway_url
        return url.rstrip("/")

    def _secret(self) -> str | None:
        key = self._settings.api_key
        return key.get_secret_value() if key is not None else None

    # -- catalog ---------------------------------------------------------------------------

    def list_models(self, region: Region = "us") -> dict[str, ModelInfo]:
        """The catalog of ``region``'s host (``GET {base}/models``, no auth), cached for
        ``catalog_ttl_s``. If a refresh fails, a stale catalog is used rather than none.

        Only one thread refreshes; the others keep using the stale copy meanwhile. Blocking them
        all on the refresh would release them together afterwards: a burst of gateway calls
        that the rate limiter had carefully spaced.
        """
        with self._catalog_lock:
            cached = self._catalogs.get(region)
            now = self._clock()
            if cached is not None and now - cached[0] < self._catalog_ttl_s:
                return cached[1]
            if cached is not None and region in self._refreshing:
                return cached[1]
            self._refreshing.add(region)
        try:
            catalog = self._fetch_catalog(region)
        except GatewayError as exc:
            if cached is None:
                raise
            with self._catalog_lock:
                # Serve the stale copy and try again after a short pause, not on every call.
                pause_s = min(CATALOG_RETRY_S, self._catalog_ttl_s)
                self._catalogs[region] = (now - self._catalog_ttl_s + pause_s, cached[1])
            log.warning(
                "gateway.models stale",
                extra={"event": "gateway.models", "region": region, "error_kind": exc.kind},
            )
            return cached[1]
        finally:
            with self._catalog_lock:
                self._refreshing.discard(region)
        with self._catalog_lock:
            self._catalogs[region] = (now, catalog)
        return catalog

    def _fetch_catalog(self, region: Region) -> dict[str, ModelInfo]:
        try:
            response = self._http.get(f"{self.base_url(region)}/models")
        except httpx.TransportError as exc:
            raise error_from_transport(exc, model=None, secret=self._secret()) from None
        if not response.is_success:
            raise error_from_response(response, model=None, secret=self._secret())
        return parse_catalog(response.text)

    # -- completions -----------------------------------------------------------------------

    def complete(
        self,
        req: CompletionRequest,
        log_fields: Mapping[str, Any] | None = None,
        gate: SendGate | None = None,
    ) -> CompletionResult:
        """One call. ``gate.before_send`` (the send permit) is the last step before the bytes
        leave: it runs inside the transport, on a connection already open, right before the
        request headers are written (httpcore's ``trace`` extension), so the permit's time is
        the send time the rate limit is held on. Raising there sends nothing."""
        key = require_api_key(self._settings)
        fields = _safe_fields(log_fields or {})
        try:
            check_request_shape(req)  # before any network I/O
            validate_request(req, self.list_models(req.region))
        except RequestRejected as exc:
            log.warning(
                "gateway.rejected",
                extra={
                    **fields,
                    "event": "gateway.rejected",
                    "model_asked": req.model,
                    "region": req.region,
                    "reason": str(exc),
                },
            )
            raise
        http = self._thread_http()
        request = http.build_request(
            "POST",
            f"{self.base_url(req.region)}/chat/completions",
            json=build_body(req),
            headers={"Authorization": key},
        )
        sent = _SentAt()
        if gate is not None and self._shared_transport:
            gate.before_send()  # an injected transport (tests) has no connection to trace
        elif gate is not None:
            request.extensions["trace"] = _gate_the_write(gate, sent)
        try:
            response = http.send(request)
            if gate is not None and self._shared_transport:
                gate.written()
        except httpx.TransportError as exc:
            error = error_from_transport(exc, model=req.model, secret=key)
            self._log_call(req, fields, _ms_since(sent.perf_s), error=error)
            raise error from None
        latency_ms = _ms_since(sent.perf_s)
        info = rate_limit_info(response.headers)
        if gate is not None:
            gate.answered(info)
        try:
            if not response.is_success:
                raise error_from_response(
                    response,
                    model=req.model,
                    json_repair_requested=req.server_json_repair,
                    secret=key,
                )
            result = parse_success(
                response.text,
                model_asked=req.model,
                region=req.region,
                http_status=response.status_code,
                latency_ms=latency_ms,
                rate_limit=info,
                secret=key,
                with_fallbacks=bool(req.fallbacks),
            )
        except GatewayError as error:
            self._log_call(req, fields, latency_ms, error=error, body=redact(response.text, key))
            raise
        self._log_call(req, fields, latency_ms, result=result)
        return result

    def _thread_http(self) -> httpx.Client:
        """This thread's client (a thread makes one call at a time: a few connections do)."""
        if self._shared_transport:
            return self._http  # an injected transport (tests) serves every thread
        http: httpx.Client | None = getattr(self._local, "http", None)
        if http is None:
            http = make_http_client(self._settings, None, max_connections=4, verify=self._tls)
            self._local.http = http
            with self._catalog_lock:
                self._thread_clients.append(http)
        return http

    def close(self) -> None:
        with self._catalog_lock:
            clients, self._thread_clients = self._thread_clients, []
        for http in clients:
            http.close()
        super().close()

    def _log_call(
        self,
        req: CompletionRequest,
        fields: dict[str, Any],
        latency_ms: float,
        *,
        result: CompletionResult | None = None,
        error: GatewayError | None = None,
        body: str | None = None,
    ) -> None:
        line: dict[str, Any] = {
            **fields,
            "event": "gateway.call",
            "request_id": result.request_id if result else (error.request_id if error else None),
            "model_asked": req.model,
            "model_answered": result.model_answered if result else None,
            "region": req.region,
            "status": result.http_status if result else (error.status if error else None),
            "latency_ms": round(latency_ms, 1),
            "error_kind": error.kind if error else None,
        }
        if result is not None:
            line["finish_reason"] = result.finish_reason
            line["input_tokens"] = result.usage.input_tokens
            line["output_tokens"] = result.usage.output_tokens
        if error is not None:
            line["error"] = str(error)
            if body is not None:
                line["error_body"] = body  # full text: AssemblyAI support asks for it
        log.log(logging.WARNING if error else logging.INFO, "gateway.call", extra=line)


class _SentAt:
    """When the request went out (perf_counter), for its latency: the permit's wait excluded."""

    def __init__(self) -> None:
        self.perf_s = time.perf_counter()


def _gate_the_write(gate: SendGate, sent: _SentAt) -> Callable[[str, Any], None]:
    """httpcore trace hook: the permit right before the headers are written, the confirmation
    right after the body is."""

    def trace(event: str, info: Any) -> None:
        if event.endswith("send_request_headers.started"):
            gate.before_send()
            sent.perf_s = time.perf_counter()
        elif event.endswith("send_request_body.complete"):
            gate.written()

    return trace


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
