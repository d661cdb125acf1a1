"""The one error tree of tbatch.

    TbatchError
    ├── ConfigError                 settings or pipeline config that cannot work
    ├── InputError                  user input rejected at the boundary (names file/line/field)
    ├── NotFoundError               an unknown batch, job or request_id asked for by a person
    ├── RequestRejected             the client refused to send a request (e.g. no transcript tag)
    ├── SendDeferred                no send permit opened within the bound; sent back unsent
    ├── LimiterUnavailable          the shared rate-limit store did not answer
    └── GatewayError                a gateway call failed; carries request_id, status, model
        ├── TransientGatewayError   worth retrying later with backoff
        │   ├── RateLimited         429; carries retry_after_s and the limit the gateway reported
        │   ├── ServerError         5xx other than an unrepairable json-repair
        │   ├── GatewayTimeout      connect/read/write/pool timeout
        │   └── ConnectionFailed    the connection could not be made or broke
        └── PermanentGatewayError   retrying the same request cannot help
            ├── BadRequest          400; the real causes are in ``errors`` (metadata.errors)
            ├── AuthFailed          401/403
            ├── TranscriptNotFound  404 unknown or deleted transcript
            └── RepairFailed        500 from the gateway's json-repair step (its own kind)

Only ``TransientGatewayError`` is retried. Every error's message is safe to log and store: the API
key never appears in one.
"""

from __future__ import annotations

from models.vocabulary import FailureKind


class TbatchError(Exception):
    """Root of every error tbatch raises on purpose."""


class ConfigError(TbatchError):
    """A setting or a pipeline definition that cannot work."""


class InputError(TbatchError):
    """Bad user input. The message names the file, line and problem."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = source or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line
        self.problem = message


class NotFoundError(TbatchError):
    """A batch, job or request_id that tbatch does not know."""


class RequestRejected(TbatchError):
    """The client refused to build or send a request that the gateway would mishandle."""


class ModelUnavailable(RequestRejected):
    """A model the job was enqueued for is missing from the catalog right now (a catalog that
    briefly omits it, or could not be fetched). A problem of the fleet, not of the job: the
    job waits and the model's lane pauses, loudly, instead of failing."""


class SendDeferred(TbatchError):
    """The model's send gate had no permit within ``permit_max_wait_s``: the request was not
    sent, and the job goes back to ``pending`` without spending a retry."""

    def __init__(self, model: str, region: str, wait_s: float) -> None:
        super().__init__(
            f"no send permit for {region}:{model} within the bound (next in {wait_s:.3f} s)"
        )
        self.model = model
        self.region = region
        self.wait_s = wait_s


class LimiterUnavailable(TbatchError):
    """The shared rate-limit store (Redis) did not answer: no permit can be had, so nothing is
    sent until it answers again."""


class GatewayError(TbatchError):
    """A failed gateway call. ``kind`` is the stable name stored on attempts and jobs."""

    kind = FailureKind.GATEWAY_ERROR

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        model: str | None = None,
        errors: list[str] | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.model = model
        self.errors = errors or []
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        if self.errors:
            parts.append("; ".join(self.errors))
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)


class TransientGatewayError(GatewayError):
    kind = FailureKind.TRANSIENT


class RateLimited(TransientGatewayError):
    kind = FailureKind.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        limit: int | None = None,
        window_s: float | None = None,
        limit_model: str | None = None,
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s
        self.limit = limit
        self.window_s = window_s
        # The model the gateway says the limit belongs to (X-RateLimit-Model), when it names one.
        self.limit_model = limit_model


class ServerError(TransientGatewayError):
    kind = FailureKind.SERVER_ERROR


class GatewayTimeout(TransientGatewayError):
    kind = FailureKind.TIMEOUT


class ConnectionFailed(TransientGatewayError):
    kind = FailureKind.CONNECTION


class PermanentGatewayError(GatewayError):
    kind = FailureKind.PERMANENT


class BadRequest(PermanentGatewayError):
    kind = FailureKind.BAD_REQUEST


class NotEntitled(BadRequest):
    """400 "Your account does not have access to this LLM Gateway model"."""

    kind = FailureKind.NOT_ENTITLED


class UnsupportedParameter(BadRequest):
    """400 "model X does not support P": enqueue gates parameters, so this means the catalog
    changed, or said nothing."""

    kind = FailureKind.UNSUPPORTED_PARAMETER


class SchemaRejected(BadRequest):
    """400 "response_format is invalid: ...": the provider refuses a feature of the schema."""

    kind = FailureKind.SCHEMA_REJECTED


class ContextOverflow(BadRequest):
    """400 "model context limit exceeded": input plus ``max_tokens`` do not fit the model. The
    gateway's fallbacks do not rescue it (a validation error), so tbatch reroutes the job."""

    kind = FailureKind.CONTEXT_OVERFLOW


class ModelNotFound(PermanentGatewayError):
    """A 404 naming a model (retired, misspelt): not a missing transcript."""

    kind = FailureKind.MODEL_NOT_FOUND


class NotFound(PermanentGatewayError):
    """A 404 naming neither a transcript nor a model."""

    kind = FailureKind.NOT_FOUND


class AuthFailed(PermanentGatewayError):
    """401/403, or no key on this machine: a problem of the machine, not of the job (the
    worker stops taking work for a while and the job waits)."""

    kind = FailureKind.AUTH


class TranscriptNotFound(PermanentGatewayError):
    kind = FailureKind.TRANSCRIPT_NOT_FOUND


class RepairFailed(PermanentGatewayError):
    kind = FailureKind.REPAIR_FAILED
