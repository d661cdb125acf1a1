"""The words tbatch stores and reports, defined once.

Every value here is written to a column (``jobs.status``, ``jobs.error_kind``,
``attempts.outcome``, ``nightly_runs.state``) or returned to a caller, and read back by
``tbatch status``, ``tbatch reprocess --reason``, the reports and SQL written by people. They are
``StrEnum`` members, so each *is* its string: rows read back compare equal, JSON and f-strings
print the plain word, and no migration is needed to adopt them. A misspelt member is an
``AttributeError`` at import, where a misspelt string was a job stuck in a state nobody reads.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is: ``pending -> queued -> running -> succeeded | failed`` (or
    ``cancelled``), and back to ``pending`` for a retry, a re-ask or a lost lease."""

    PENDING = "pending"  # waiting in Postgres for its model's budget (or a backoff)
    QUEUED = "queued"  # released to the broker with a token; a worker will call at once
    RUNNING = "running"  # claimed by a worker under a lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)


class FailureKind(StrEnum):
    """Why a job failed or waits (``jobs.error_kind``, ``attempts.error_kind``).

    The gateway's kinds are the ``kind`` of each class of ``worker.errors``; the rest name what
    tbatch itself decided. ``tbatch reprocess --reason`` takes any of them.
    """

    # A gateway call failed (``worker.errors.GatewayError`` and its subclasses).
    GATEWAY_ERROR = "gateway_error"
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    PERMANENT = "permanent"
    BAD_REQUEST = "bad_request"
    NOT_ENTITLED = "not_entitled"  # the account may not use the model (400)
    UNSUPPORTED_PARAMETER = "unsupported_parameter"  # "model X does not support P" (400)
    SCHEMA_REJECTED = "schema_rejected"  # "response_format is invalid: ..." (400)
    CONTEXT_OVERFLOW = "context_overflow"  # "model context limit exceeded" (400)
    MODEL_NOT_FOUND = "model_not_found"  # a 404 naming a model, not a transcript
    NOT_FOUND = "not_found"  # a 404 naming neither
    AUTH = "auth"
    TRANSCRIPT_NOT_FOUND = "transcript_not_found"
    REPAIR_FAILED = "repair_failed"
    # The answer came and could not be used.
    REFUSED = "refused"
    TRUNCATED = "truncated"
    INVALID_OUTPUT = "invalid_output"
    UNSTORABLE = "unstorable"  # the database refused the answer's values
    # No call could be made, or the job was lost.
    BAD_CONTENT = "bad_content"  # its stored template or schema cannot be used
    REJECTED = "rejected"  # the client refused to build the request
    MODEL_UNAVAILABLE = "model_unavailable"
    LIMITER_UNAVAILABLE = "limiter_unavailable"
    LEASE_EXPIRED = "lease_expired"  # a worker stopped before finishing (back to pending)
    POISON = "poison"  # lost by workers ``max_deliveries`` times
    CANCELLED = "cancelled"


# Problems of the fleet, not of the job: such a job is held ``pending`` with one of these kinds
# and listed by ``tbatch status`` as held (migration 0004 indexes exactly these).
FLEET_KINDS = (FailureKind.AUTH, FailureKind.MODEL_UNAVAILABLE, FailureKind.LIMITER_UNAVAILABLE)


class AttemptOutcome(StrEnum):
    """What one gateway call came to (``attempts.outcome``)."""

    OK = "ok"
    REPAIRED = "repaired"  # valid after a recorded local repair
    INVALID = "invalid"  # parsed (or not) but failed the schema
    REFUSED = "refused"
    TRUNCATED = "truncated"
    UNSTORABLE = "unstorable"
    TRANSIENT = "transient"  # a transport error worth retrying
    PERMANENT = "permanent"  # an error retrying cannot help


class Delivery(StrEnum):
    """What one delivery of a job's message did (``process_job``'s return, for logs and tests)."""

    SKIPPED = "skipped"  # the job was not ``queued``: a duplicate or stale message
    PARKED = "parked"  # its batch was paused after it was queued: back to pending uncalled
    POISON = "poison"
    HELD = "held"  # a problem of the fleet: back to pending uncalled (or unblamed)
    DEFERRED = "deferred"  # no send permit within the bound: back to pending unsent
    SUCCEEDED = "succeeded"
    LEASE_LOST = "lease_lost"  # answered, but the job had moved on: attempt recorded only
    REASK = "reask"
    REROUTED = "rerouted"  # the next call goes to a larger-context model
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    FAILED = "failed"


class RunState(StrEnum):
    """A nightly run's state (``nightly_runs.state``)."""

    ENQUEUING = "enqueuing"  # the night is claimed; ids are being fetched and enqueued
    RUNNING = "running"  # the batch exists; its jobs are being processed
    FINAL = "final"  # the batch is final and the report is built
    FAILED = "failed"  # listing or enqueueing failed (see ``error``)
    EMPTY = "empty"  # no transcripts for that date: nothing to process or report
