"""Error envelopes, status classification, Retry-After and rate-limit headers (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from worker.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    ContextOverflow,
    GatewayError,
    GatewayTimeout,
    ModelNotFound,
    NotEntitled,
    NotFound,
    PermanentGatewayError,
    RateLimited,
    RepairFailed,
    SchemaRejected,
    ServerError,
    TranscriptNotFound,
    TransientGatewayError,
    UnsupportedParameter,
)
from worker.gateway.errors_parse import (
    error_from_response,
    error_from_transport,
    parse_envelope,
    parse_retry_after,
    rate_limit_info,
)

FLAT = {
    "code": 400,
    "message": "invalid request body",
    "request_id": "rid-flat",
    "metadata": {"errors": ["model gpt-9 is not supported", "model context limit exceeded"]},
}
AUTH = {
    "error": "Authentication error, API token missing/invalid",
    "status": "error",
    "request_id": "rid-auth",
}
OLD = {
    "error": {
        "code": 401,
        "message": "Unauthorized - Invalid or missing API key",
        "metadata": {"errors": ["bad key"]},
    }
}


def resp(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    text = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    return httpx.Response(status, text=text, headers=headers)


def test_flattened_envelope() -> None:
    env = parse_envelope(json.dumps(FLAT))
    assert env.message == "invalid request body"
    assert env.request_id == "rid-flat"
    assert env.errors == ["model gpt-9 is not supported", "model context limit exceeded"]


def test_auth_envelope() -> None:
    env = parse_envelope(json.dumps(AUTH))
    assert env.message == "Authentication error, API token missing/invalid"
    assert env.request_id == "rid-auth"
    assert env.errors == []


def test_old_envelope() -> None:
    env = parse_envelope(json.dumps(OLD))
    assert env.message == "Unauthorized - Invalid or missing API key"
    assert env.errors == ["bad key"]
    assert env.request_id is None


@pytest.mark.parametrize("text", ["", "<html>502</html>", "[1,2]", '"str"', "null"])
def test_unparseable_bodies_give_empty_envelope(text: str) -> None:
    env = parse_envelope(text)
    assert (env.message, env.request_id, env.errors) == (None, None, [])


def test_400_is_bad_request_with_metadata_errors() -> None:
    err = error_from_response(resp(400, FLAT), model="gpt-9")
    assert type(err) is BadRequest and isinstance(err, PermanentGatewayError)
    assert err.errors == FLAT["metadata"]["errors"]  # type: ignore[index]
    assert (err.status, err.request_id, err.model) == (400, "rid-flat", "gpt-9")
    assert "model gpt-9 is not supported" in str(err) and "rid-flat" in str(err)
    assert err.body == json.dumps(FLAT)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, AUTH, AuthFailed),
        (403, OLD, AuthFailed),
        (
            404,
            {"request_id": "r", "message": "transcript not found", "code": 404},
            TranscriptNotFound,
        ),
        (409, FLAT, BadRequest),
        (413, "too large", BadRequest),
        (422, FLAT, BadRequest),
        (500, {"message": "internal"}, ServerError),
        (502, "<html>bad gateway</html>", ServerError),
        (503, {}, ServerError),
        (504, "", ServerError),
        (302, "", ServerError),
    ],
)
def test_status_classification(status: int, body: Any, kind: type[GatewayError]) -> None:
    err = error_from_response(resp(status, body), model="m")
    assert type(err) is kind
    assert err.status == status and err.model == "m"


def test_404_carries_request_id_and_message() -> None:
    body = {"request_id": "r404", "message": "transcript deleted", "code": 404}
    err = error_from_response(resp(404, body), model="m")
    assert err.request_id == "r404" and err.message == "transcript deleted"


def test_500_json_repair_is_its_own_kind_only_when_asked() -> None:
    body = {"code": 500, "message": "json-repair could not repair the output", "request_id": "r"}
    assert type(error_from_response(resp(500, body), model="m", json_repair_requested=True)) is (
        RepairFailed
    )
    assert type(error_from_response(resp(500, body), model="m")) is ServerError
    other = {"code": 500, "message": "upstream failed"}
    assert type(error_from_response(resp(500, other), model="m", json_repair_requested=True)) is (
        ServerError
    )
    in_errors = {"message": "internal", "metadata": {"errors": ["output could not be Repaired"]}}
    err = error_from_response(resp(500, in_errors), model="m", json_repair_requested=True)
    assert type(err) is RepairFailed
    # Only a 500 is the json-repair failure; a 502 mentioning repair stays transient.
    assert type(error_from_response(resp(502, body), model="m", json_repair_requested=True)) is (
        ServerError
    )


def test_429_retry_after_seconds() -> None:
    headers = {"Retry-After": "56", "X-RateLimit-Limit": "30", "X-RateLimit-Reset": "60"}
    body = {"request_id": "r429", "message": "too many requests for this action", "code": 429}
    err = error_from_response(resp(429, body, headers), model="m")
    assert isinstance(err, RateLimited) and isinstance(err, TransientGatewayError)
    assert (err.retry_after_s, err.limit, err.request_id) == (56.0, 30, "r429")


def test_429_retry_after_http_date() -> None:
    now = datetime(2026, 9, 24, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 9, 24, 12, 0, 42, tzinfo=UTC), usegmt=True)
    err = error_from_response(
        resp(429, {}, {"retry-after": later}), model="m", now_epoch_s=now.timestamp()
    )
    assert isinstance(err, RateLimited) and err.retry_after_s == 42.0


def test_429_falls_back_to_ratelimit_reset_lowercase_headers() -> None:
    err = error_from_response(
        resp(429, {}, {"x-ratelimit-reset": "17", "x-ratelimit-limit": "2"}), model="m"
    )
    assert isinstance(err, RateLimited)
    assert (err.retry_after_s, err.limit) == (17.0, 2)


def test_429_without_headers() -> None:
    err = error_from_response(resp(429, {}), model="m")
    assert isinstance(err, RateLimited)
    assert (err.retry_after_s, err.limit) == (None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  7 ", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("soon", None),
        ("Thu, 24 Sep 2026 11:59:00 GMT", 0.0),  # in the past: no wait
        ("Thu, 24 Sep 2026 12:01:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 9, 24, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now) == expected


def test_rate_limit_info_case_insensitive_and_absent() -> None:
    info = rate_limit_info(
        httpx.Headers(
            {
                "X-RATELIMIT-LIMIT": "30",
                "x-ratelimit-remaining": "-1",
                "X-RateLimit-Reset": "60",
                "x-ratelimit-model": "claude-sonnet-4-6",
                "X-RateLimit-Service": "llmgw",
            }
        )
    )
    assert (info.limit, info.remaining, info.reset_s) == (30, -1, 60.0)
    assert (info.model, info.service) == ("claude-sonnet-4-6", "llmgw")
    empty = rate_limit_info(httpx.Headers({"x-ratelimit-limit": "lots"}))
    assert (empty.limit, empty.remaining, empty.reset_s, empty.model) == (None, None, None, None)


def test_body_truncated_to_4kb() -> None:
    err = error_from_response(resp(502, "x" * 10_000), model="m")
    assert err.body is not None and err.body.startswith("x" * 4096)
    assert len(err.body.encode()) < 4200


def test_secret_scrubbed_from_message_errors_and_body() -> None:
    key = "sk-live-0123456789"
    body = {"message": f"bad key {key}", "metadata": {"errors": [f"key {key} invalid"]}}
    err = error_from_response(resp(400, body), model="m", secret=key)
    for text in (str(err), repr(err), err.message, err.body or "", *err.errors):
        assert key not in text
    assert "[REDACTED]" in str(err)


def test_transport_errors() -> None:
    timeout = error_from_transport(httpx.ReadTimeout("timed out"), model="m")
    assert isinstance(timeout, GatewayTimeout) and "ReadTimeout" in str(timeout)
    assert isinstance(error_from_transport(httpx.PoolTimeout(""), model="m"), GatewayTimeout)
    conn = error_from_transport(httpx.ConnectError("refused"), model="m")
    assert isinstance(conn, ConnectionFailed) and conn.model == "m"
    assert isinstance(
        error_from_transport(httpx.RemoteProtocolError("eof"), model=None), ConnectionFailed
    )


def _flat(status: int, *errors: str, message: str = "invalid request body") -> dict[str, Any]:
    return {
        "code": status,
        "message": message,
        "request_id": "r",
        "metadata": {"errors": [*errors]},
    }


@pytest.mark.parametrize(
    ("errors", "kind"),
    [
        (["Your account does not have access to this LLM Gateway model"], NotEntitled),
        (["model context limit exceeded"], ContextOverflow),
        (["response_format is invalid: schema keyword 'not' is not allowed"], SchemaRejected),
        (["model gpt-5 does not support temperature"], UnsupportedParameter),
        (["model gpt-9 is not supported", "model context limit exceeded"], BadRequest),
        (["one of messages or prompt required"], BadRequest),
    ],
)
def test_a_400_is_named_by_its_first_cause(errors: list[str], kind: type[GatewayError]) -> None:
    err = error_from_response(resp(400, _flat(400, *errors)), model="m")
    assert type(err) is kind and isinstance(err, BadRequest)
    assert err.kind == kind.kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"request_id": "r", "message": "transcript deleted", "code": 404}, TranscriptNotFound),
        (
            {"request_id": "r", "message": "model claude-3-haiku not found", "code": 404},
            ModelNotFound,
        ),
        (_flat(404, "model gpt-4o has been retired", message="not found"), ModelNotFound),
        ({"request_id": "r", "message": "not found", "code": 404}, NotFound),
        ("", NotFound),
    ],
)
def test_only_a_404_naming_a_transcript_is_a_missing_transcript(
    body: Any, kind: type[GatewayError]
) -> None:
    assert type(error_from_response(resp(404, body), model="m")) is kind
