"""GatewayClient over httpx.MockTransport: routing, auth, catalog cache, error mapping, logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from worker.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    GatewayError,
    GatewayTimeout,
    RateLimited,
    RepairFailed,
    RequestRejected,
    ServerError,
    TranscriptNotFound,
)
from worker.gateway import CompletionRequest, Fallback, GatewayClient, Message
from worker.settings import Settings

KEY = "sk-unit-test-key-0123456789abcdef"
TAG = "{{ transcript }}"
US = "https://us.example/v1"
EU = "https://eu.example/v1"
PARAMS = ["max_tokens", "temperature", "response_format", "tools", "tool_choice"]
US_MODELS = [
    {"id": "claude-sonnet-4-6", "supported_parameters": PARAMS, "context_length": 200000},
    {"id": "gpt-5", "supported_parameters": PARAMS, "available_regions": ["us"]},
    {"id": "gemini-2.5-flash"},
]
EU_MODELS = [US_MODELS[0], US_MODELS[2]]
OK_BODY = {
    "request_id": "rid-ok",
    "request": {"model": "claude-sonnet-4-6"},
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "fine"},
            "finish_reason": "end_turn",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    "response_time": 5000,
}

Handler = Callable[[httpx.Request], httpx.Response]


class FakeGateway:
    """Serves both hosts' catalogs; chat replies come from ``reply`` (default: OK_BODY)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.catalog_hits = 0
        self.reply: Handler = lambda _req: httpx.Response(200, json=OK_BODY)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            self.catalog_hits += 1
            models = EU_MODELS if request.url.host == "eu.example" else US_MODELS
            return httpx.Response(200, json={"data": models})
        return self.reply(request)

    @property
    def chat(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/chat/completions")]


def settings(key: str | None = KEY, **kw: Any) -> Settings:
    return Settings(ASSEMBLYAI_API_KEY=key, gateway_url=US, gateway_eu_url=EU + "/", **kw)


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def client(fake: FakeGateway) -> Iterator[GatewayClient]:
    with GatewayClient(settings(), transport=httpx.MockTransport(fake)) as c:
        yield c


def req(**kw: Any) -> CompletionRequest:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "messages": [Message(role="user", content=f"Summarise:\n\n{TAG}")],
        "transcript_id": "tr_1",
    }
    return CompletionRequest(**{**base, **kw})


def test_success_sends_body_and_raw_auth(client: GatewayClient, fake: FakeGateway) -> None:
    result = client.complete(req(max_tokens=100))
    sent = fake.chat[0]
    assert str(sent.url) == f"{US}/chat/completions"
    assert sent.headers["authorization"] == KEY  # raw, no "Bearer"
    assert json.loads(sent.content) == {
        "model": "claude-sonnet-4-6",
        "messages": [{"role": "user", "content": f"Summarise:\n\n{TAG}"}],
        "transcript_id": "tr_1",
        "max_tokens": 100,
    }
    assert result.request_id == "rid-ok" and result.content == "fine"
    assert result.model_answered == "claude-sonnet-4-6" and result.finish_reason == "stop"
    assert result.usage.total_tokens == 12 and result.response_time_ns == 5000
    assert result.http_status == 200 and result.latency_ms >= 0
    assert json.loads(result.raw_body) == OK_BODY


def test_catalog_fetched_without_auth(client: GatewayClient, fake: FakeGateway) -> None:
    client.complete(req())
    models = [r for r in fake.requests if r.url.path.endswith("/models")]
    assert str(models[0].url) == f"{US}/models"
    assert "authorization" not in models[0].headers


def test_eu_region_uses_eu_host(client: GatewayClient, fake: FakeGateway) -> None:
    client.complete(req(region="eu"))
    assert str(fake.chat[0].url) == f"{EU}/chat/completions"
    assert {r.url.host for r in fake.requests} == {"eu.example"}


def test_eu_job_with_us_only_fallback_is_never_sent(
    client: GatewayClient, fake: FakeGateway
) -> None:
    r = req(region="eu", fallbacks=[Fallback(model="gemini-2.5-flash"), Fallback(model="gpt-5")])
    with pytest.raises(RequestRejected, match=r"fallback 2 model 'gpt-5'.*EU job"):
        client.complete(r)
    assert fake.chat == []


def test_missing_tag_refused_before_any_io(client: GatewayClient, fake: FakeGateway) -> None:
    with pytest.raises(RequestRejected, match="silently ignore"):
        client.complete(req(messages=[Message(role="user", content="no tag")]))
    assert fake.requests == []


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key_raises_before_sending(fake: FakeGateway, key: str | None) -> None:
    with (
        GatewayClient(settings(key=key), transport=httpx.MockTransport(fake)) as c,
        pytest.raises(AuthFailed, match="ASSEMBLYAI_API_KEY is not set"),
    ):
        c.complete(req())
    assert fake.requests == []


def test_catalog_cached_per_region_with_ttl(fake: FakeGateway) -> None:
    now = [1000.0]
    c = GatewayClient(
        settings(), transport=httpx.MockTransport(fake), catalog_ttl_s=300, clock=lambda: now[0]
    )
    c.complete(req())
    c.complete(req())
    assert fake.catalog_hits == 1
    c.complete(req(region="eu"))
    assert fake.catalog_hits == 2
    now[0] += 301
    assert "gpt-5" in c.list_models("us")
    assert fake.catalog_hits == 3
    c.close()


def test_stale_catalog_used_when_refresh_fails(fake: FakeGateway) -> None:
    now = [0.0]
    up = [True]

    calls = [0]

    def flaky(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return fake(request) if up[0] else httpx.Response(503)

    c = GatewayClient(settings(), transport=httpx.MockTransport(flaky), clock=lambda: now[0])
    c.list_models("us")
    up[0] = False
    now[0] += 1000
    assert "gpt-5" in c.list_models("us")  # stale, not an error
    assert calls[0] == 2
    now[0] += 10
    c.list_models("us")  # within the retry pause: no new fetch
    assert calls[0] == 2
    now[0] += 30
    c.list_models("us")
    assert calls[0] == 3
    c.close()


def test_catalog_failure_without_cache_raises(fake: FakeGateway) -> None:
    def down(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "down"})

    with (
        GatewayClient(settings(), transport=httpx.MockTransport(down)) as c,
        pytest.raises(ServerError),
    ):
        c.complete(req())


def _reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    def handler(_req: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            {
                "code": 400,
                "message": "invalid request body",
                "request_id": "r1",
                "metadata": {"errors": ["model context limit exceeded"]},
            },
            BadRequest,
        ),
        (
            401,
            {
                "error": "Authentication error, API token missing/invalid",
                "status": "error",
                "request_id": "r1",
            },
            AuthFailed,
        ),
        (403, {"error": {"code": 403, "message": "forbidden"}}, AuthFailed),
        (
            404,
            {"request_id": "r1", "message": "transcript not found", "code": 404},
            TranscriptNotFound,
        ),
        (429, {"request_id": "r1", "message": "too many requests", "code": 429}, RateLimited),
        (500, {"message": "internal", "request_id": "r1"}, ServerError),
        (503, "<html>unavailable</html>", ServerError),
        (200, "not json", ServerError),
        (200, {"request_id": "r1"}, ServerError),
    ],
)
def test_status_mapping(
    client: GatewayClient, fake: FakeGateway, status: int, body: Any, kind: type[GatewayError]
) -> None:
    fake.reply = _reply(status, body, {"Retry-After": "3"})
    with pytest.raises(kind) as info:
        client.complete(req())
    err = info.value
    assert err.status == status and err.model == "claude-sonnet-4-6"
    if isinstance(body, dict) and "request_id" in body:
        assert err.request_id == "r1"
    assert err.body is not None


def test_bad_request_carries_metadata_errors(client: GatewayClient, fake: FakeGateway) -> None:
    fake.reply = _reply(
        400, {"message": "invalid request body", "metadata": {"errors": ["a", "b"]}}
    )
    with pytest.raises(BadRequest) as info:
        client.complete(req())
    assert info.value.errors == ["a", "b"]


def test_rate_limited_details(client: GatewayClient, fake: FakeGateway) -> None:
    fake.reply = _reply(429, {}, {"x-ratelimit-limit": "30", "x-ratelimit-reset": "44"})
    with pytest.raises(RateLimited) as info:
        client.complete(req())
    assert (info.value.retry_after_s, info.value.limit) == (44.0, 30)


def test_repair_failed_only_with_server_json_repair(
    client: GatewayClient, fake: FakeGateway
) -> None:
    fake.reply = _reply(500, {"code": 500, "message": "json-repair failed to repair output"})
    with pytest.raises(RepairFailed):
        client.complete(req(server_json_repair=True))
    assert json.loads(fake.chat[0].content)["post_processing_steps"] == [{"type": "json-repair"}]
    with pytest.raises(ServerError):
        client.complete(req())


def test_rate_limit_headers_on_success(client: GatewayClient, fake: FakeGateway) -> None:
    headers = {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "29",
        "X-RateLimit-Reset": "60",
        "X-RateLimit-Model": "claude-sonnet-4-6",
        "X-RateLimit-Service": "llmgw",
    }
    fake.reply = _reply(200, OK_BODY, headers)
    rl = client.complete(req()).rate_limit
    assert (rl.limit, rl.remaining, rl.reset_s, rl.model, rl.service) == (
        30,
        29,
        60.0,
        "claude-sonnet-4-6",
        "llmgw",
    )


def test_fallback_answer_is_reported(client: GatewayClient, fake: FakeGateway) -> None:
    fake.reply = _reply(200, {**OK_BODY, "model": "gpt-5"})
    result = client.complete(req(fallbacks=[Fallback(model="gpt-5")]))
    assert result.model_asked == "claude-sonnet-4-6" and result.model_answered == "gpt-5"
    assert result.served_by_fallback
    body = json.loads(fake.chat[0].content)
    assert body["fallbacks"] == [{"model": "gpt-5"}]
    assert body["fallback_config"] == {"depth": 1, "retry": True}


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectTimeout("connect timed out"), GatewayTimeout),
        (httpx.ReadTimeout("read timed out"), GatewayTimeout),
        (httpx.WriteTimeout("write timed out"), GatewayTimeout),
        (httpx.PoolTimeout("pool timed out"), GatewayTimeout),
        (httpx.ConnectError("connection refused"), ConnectionFailed),
        (httpx.ReadError("connection reset"), ConnectionFailed),
        (httpx.RemoteProtocolError("server disconnected"), ConnectionFailed),
    ],
)
def test_transport_errors(
    client: GatewayClient, fake: FakeGateway, exc: httpx.TransportError, kind: type[GatewayError]
) -> None:
    def boom(_req: httpx.Request) -> httpx.Response:
        raise exc

    fake.reply = boom
    with pytest.raises(kind) as info:
        client.complete(req())
    assert info.value.model == "claude-sonnet-4-6" and info.value.status is None


def test_timeouts_come_from_settings(fake: FakeGateway) -> None:
    s = settings(
        gateway_connect_timeout_s=1.5,
        gateway_read_timeout_s=2.5,
        gateway_write_timeout_s=3.5,
        gateway_pool_timeout_s=4.5,
    )
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return fake(request)

    with GatewayClient(s, transport=httpx.MockTransport(handler)) as c:
        c.complete(req())
    assert seen[-1] == {"connect": 1.5, "read": 2.5, "write": 3.5, "pool": 4.5}


def _gateway_lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_one_log_line_per_call_with_fields(
    client: GatewayClient, fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tbatch.gateway")
    client.complete(req(), log_fields={"job_id": 7, "batch_id": "b1", "name": "clash"})
    (line,) = _gateway_lines(caplog, "gateway.call")
    assert line.levelno == logging.INFO
    fields = vars(line)
    assert (fields["job_id"], fields["batch_id"], fields["field_name"]) == (7, "b1", "clash")
    assert fields["request_id"] == "rid-ok" and fields["model_asked"] == "claude-sonnet-4-6"
    assert fields["model_answered"] == "claude-sonnet-4-6" and fields["region"] == "us"
    assert fields["status"] == 200 and fields["error_kind"] is None
    assert isinstance(fields["latency_ms"], float)


def test_error_log_line_has_full_body(
    client: GatewayClient, fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tbatch.gateway")
    long_body = {"message": "invalid request body", "request_id": "r9", "pad": "x" * 6000}
    fake.reply = _reply(400, long_body)
    with pytest.raises(BadRequest) as info:
        client.complete(req(), log_fields={"job_id": 1})
    (line,) = _gateway_lines(caplog, "gateway.call")
    assert line.levelno == logging.WARNING
    assert vars(line)["error_kind"] == "bad_request" and vars(line)["request_id"] == "r9"
    assert json.loads(vars(line)["error_body"]) == long_body  # full, not truncated
    assert info.value.body is not None and len(info.value.body) < 4200  # the exception's is


def test_transport_error_is_logged(
    client: GatewayClient, fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tbatch.gateway")

    def boom(_req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    fake.reply = boom
    with pytest.raises(GatewayTimeout):
        client.complete(req())
    (line,) = _gateway_lines(caplog, "gateway.call")
    assert vars(line)["error_kind"] == "timeout" and vars(line)["status"] is None


def test_api_key_never_leaks(
    fake: FakeGateway, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key echoed back in bodies must not reach exceptions, reprs or log output."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    echo = {"message": f"bad key {KEY}", "request_id": "r", "metadata": {"errors": [KEY]}}
    cases: list[Handler] = [
        _reply(401, echo),
        _reply(400, echo),
        _reply(500, f"<html>{KEY}</html>"),
        _reply(200, f"not json {KEY}"),
        _reply(429, echo),
    ]
    with GatewayClient(settings(), transport=httpx.MockTransport(fake)) as c:
        texts.append(repr(c))
        for handler in cases:
            fake.reply = handler
            with pytest.raises(GatewayError) as info:
                c.complete(req())
            err = info.value
            texts += [str(err), repr(err), err.body or "", *err.errors, str(info.getrepr())]
    texts += [r.getMessage() for r in caplog.records]
    texts += [json.dumps(vars(r), default=str) for r in caplog.records]
    texts.append(caplog.text)
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert texts and all(KEY not in t for t in texts)
    assert any("[REDACTED]" in t for t in texts)
    assert KEY not in repr(settings())
