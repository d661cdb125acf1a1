"""GatewayClient and TranscriptLister over real sockets against the emulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from pydantic import SecretStr

from emulator.routes.server import EmulatorProcess
from tests.fixtures.emulator import API_KEY
from worker.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    GatewayTimeout,
    RateLimited,
    RepairFailed,
    RequestRejected,
    TranscriptNotFound,
)
from worker.gateway import (
    CompletionRequest,
    Fallback,
    GatewayClient,
    Message,
    TranscriptLister,
    TranscriptSummary,
)
from worker.settings import Settings

TAG = "{{ transcript }}"
SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}


def make_settings(url: str, key: str = API_KEY, **kw: Any) -> Settings:
    return Settings(
        ASSEMBLYAI_API_KEY=key,
        gateway_url=f"{url}/v1",
        gateway_eu_url=f"{url}/v1",
        transcript_api_url=url,
        transcript_api_eu_url=url,
        **kw,
    )


@pytest.fixture
def client(gateway: EmulatorProcess) -> Iterator[GatewayClient]:
    with GatewayClient(make_settings(gateway.url)) as c:
        yield c


def _completed(url: str) -> list[TranscriptSummary]:
    with TranscriptLister(make_settings(url)) as lister:
        return list(lister.iter_transcripts(created_on=None, status="completed"))


@pytest.fixture
def transcript_id(gateway: EmulatorProcess) -> str:
    with TranscriptLister(make_settings(gateway.url)) as lister:
        for summary in lister.iter_transcripts(created_on=None, status="completed"):
            try:
                lister.get_transcript(summary.id)
            except TranscriptNotFound:  # listed but deleted
                continue
            return summary.id
    raise AssertionError("emulator has no usable completed transcript")


def req(transcript_id: str, **kw: Any) -> CompletionRequest:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "messages": [Message(role="user", content=f"Summarise this call.\n\n{TAG}")],
        "transcript_id": transcript_id,
        "max_tokens": 400,
    }
    return CompletionRequest(**{**base, **kw})


def test_success_with_transcript_injection(
    client: GatewayClient, gateway: EmulatorProcess, transcript_id: str
) -> None:
    result = client.complete(req(transcript_id), log_fields={"job_id": 1})
    assert result.http_status == 200 and result.request_id
    assert result.content and result.model_answered == "claude-sonnet-4-6"
    assert result.finish_reason in {"stop", "length"}
    # The injected transcript counts toward input tokens; the bare prompt is a dozen tokens.
    assert result.usage.input_tokens is not None and result.usage.input_tokens > 50
    (logged,) = [r for r in gateway.requests() if r["request_id"] == result.request_id]
    assert logged["transcript_id"] == transcript_id and logged["status"] == 200


def test_structured_output_with_server_repair(client: GatewayClient, transcript_id: str) -> None:
    result = client.complete(
        req(
            transcript_id,
            response_format_name="summary",
            response_format_schema=SCHEMA,
            strict=True,
            server_json_repair=True,
        )
    )
    assert result.content is not None and result.content.lstrip().startswith("{")


def test_fallback_answers_when_primary_fails(
    client: GatewayClient, gateway: EmulatorProcess, transcript_id: str
) -> None:
    gateway.configure({"faults": [{"kind": "5xx", "model": "claude-sonnet-4-6", "status": 503}]})
    result = client.complete(
        req(transcript_id, fallbacks=[Fallback(model="gemini-2.5-flash")], fallback_retry=False)
    )
    assert result.model_asked == "claude-sonnet-4-6"
    assert result.model_answered == "gemini-2.5-flash" and result.served_by_fallback


def test_rate_limited_maps_retry_after_and_limit(
    client: GatewayClient, gateway: EmulatorProcess, transcript_id: str
) -> None:
    gateway.configure(
        {"rate_limit_enabled": True, "model_limits": {"gpt-5-mini": {"limit": 1, "window_s": 60}}}
    )
    first = client.complete(req(transcript_id, model="gpt-5-mini"))
    assert first.rate_limit.limit == 1 and first.rate_limit.service == "llmgw"
    with pytest.raises(RateLimited) as info:
        client.complete(req(transcript_id, model="gpt-5-mini"))
    err = info.value
    assert err.status == 429 and err.request_id and err.model == "gpt-5-mini"
    assert err.retry_after_s is not None and 0 < err.retry_after_s <= 60


def test_unknown_transcript_is_404(client: GatewayClient) -> None:
    with pytest.raises(TranscriptNotFound) as info:
        client.complete(req("no-such-transcript"))
    assert info.value.status == 404 and info.value.request_id


def test_no_access_model_is_bad_request_with_errors(
    client: GatewayClient, gateway: EmulatorProcess, transcript_id: str
) -> None:
    gateway.configure({"no_access_models": ["gpt-5"]})
    with pytest.raises(BadRequest) as info:
        client.complete(req(transcript_id, model="gpt-5"))
    assert info.value.status == 400 and info.value.errors


def test_unrepairable_output_is_repair_failed(
    client: GatewayClient, gateway: EmulatorProcess, transcript_id: str
) -> None:
    gateway.configure({"faults": [{"kind": "unrepairable"}]})
    with pytest.raises(RepairFailed) as info:
        client.complete(req(transcript_id, response_format_schema=SCHEMA, server_json_repair=True))
    assert info.value.status == 500


def test_wrong_key_is_auth_failed_and_never_echoed(
    gateway: EmulatorProcess, transcript_id: str
) -> None:
    gateway.configure({"api_key": API_KEY})
    wrong = "sk-wrong-key-for-emulator-123456"
    with (
        GatewayClient(make_settings(gateway.url, key=wrong)) as c,
        pytest.raises(AuthFailed) as info,
    ):
        c.complete(req(transcript_id))
    assert info.value.status == 401
    assert wrong not in str(info.value) and wrong not in repr(info.value)
    assert wrong not in (info.value.body or "")


def test_hang_becomes_gateway_timeout(gateway: EmulatorProcess, transcript_id: str) -> None:
    gateway.configure({"hang_s": 3, "faults": [{"kind": "hang"}]})
    s = make_settings(gateway.url, gateway_read_timeout_s=0.3)
    with GatewayClient(s) as c, pytest.raises(GatewayTimeout):
        c.complete(req(transcript_id))


def test_refused_connection_is_connection_failed(transcript_id: str) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        GatewayClient(make_settings(f"http://127.0.0.1:{port}")) as c,
        pytest.raises(ConnectionFailed),
    ):
        c.list_models("us")


def test_us_only_model_refused_for_eu_job(client: GatewayClient, transcript_id: str) -> None:
    with pytest.raises(RequestRejected, match="EU job"):
        client.complete(req(transcript_id, region="eu", model="gpt-5"))


def test_transcript_paging(gateway: EmulatorProcess) -> None:
    with TranscriptLister(make_settings(gateway.url)) as lister:
        every = list(lister.iter_transcripts(created_on=None, status=None, limit=37))
        day = every[0].created
        assert day is not None
        on_day = list(lister.iter_transcripts(created_on=date.fromisoformat(day[:10]), status=None))
    ids = [t.id for t in every]
    assert len(ids) == len(set(ids)) == 300  # the fixture's transcript count, over 9 pages
    created = [t.created or "" for t in every]
    assert created == sorted(created, reverse=True)  # newest first
    assert on_day and all((t.created or "").startswith(day[:10]) for t in on_day)
    completed = _completed(gateway.url)
    assert completed and all(t.status == "completed" for t in completed)
    assert len(completed) == sum(t.status == "completed" for t in every)


def test_a_key_read_from_a_file_with_its_newline_works(
    gateway: EmulatorProcess, transcript_id: str
) -> None:
    gateway.configure({"api_key": API_KEY})
    with GatewayClient(make_settings(gateway.url, key=f"  {API_KEY}\n")) as c:
        assert c.complete(req(transcript_id)).http_status == 200


def test_a_key_with_a_newline_inside_is_refused_at_load_without_showing_it() -> None:
    from pydantic import ValidationError

    secret = "sk-live-0123456789"
    with pytest.raises(ValidationError) as info:
        Settings(ASSEMBLYAI_API_KEY=f"{secret}\nX-Injected: 1")
    assert "whitespace or control characters" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_a_transport_error_quoting_the_key_is_scrubbed(
    gateway: EmulatorProcess, transcript_id: str
) -> None:
    """A key that slipped past the settings check (built without validation) makes the HTTP
    library raise a protocol error quoting the header; nothing of it reaches the error."""
    secret = "sk-live-0123456789"
    settings = make_settings(gateway.url).model_copy(
        update={"api_key": SecretStr(f"{secret}\nX-Injected: 1")}
    )
    with GatewayClient(settings) as c, pytest.raises(ConnectionFailed) as info:
        c.complete(req(transcript_id))
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
