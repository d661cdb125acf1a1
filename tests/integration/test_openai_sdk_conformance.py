"""The official ``openai`` SDK against the emulator, as AssemblyAI's own CLI uses the gateway."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from emulator.routes.server import EmulatorProcess


def client(gateway: EmulatorProcess, key: str = "test-key") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{gateway.url}/v1", max_retries=0, timeout=10)


def completed_transcript(gateway: EmulatorProcess) -> str:
    transcripts = gateway.transcripts()
    return str(
        next(t["id"] for t in transcripts if t["status"] == "completed" and not t["deleted"])
    )


def test_sdk_parses_content_usage_and_model(gateway: EmulatorProcess) -> None:
    tid = completed_transcript(gateway)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"summary": {"type": "string"}, "score": {"type": "integer", "minimum": 1}},
        "required": ["summary", "score"],
    }
    result = client(gateway).chat.completions.create(
        model="gpt-5",
        messages=[{"role": "user", "content": "Summarise:\n\n{{ transcript }}"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        extra_body={"transcript_id": tid},
    )
    content = result.choices[0].message.content
    assert content is not None
    assert json.loads(content)["score"] >= 1
    assert result.model == "gpt-5"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.prompt_tokens > 100  # the injected transcript is counted
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    extra = result.model_extra or {}
    assert len(extra["request_id"]) == 36


def test_sdk_reports_the_fallback_model(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "5xx", "model": "claude-sonnet-4-6"}]})
    result = client(gateway).chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "user", "content": "Say hello to the customer."}],
        extra_body={"fallbacks": [{"model": "claude-haiku-4-5-20251001"}]},
    )
    assert result.model == "claude-haiku-4-5-20251001"
    # Claude's own reason, passed through: outside the SDK's (OpenAI's) Literal type.
    assert str(result.choices[0].finish_reason) == "end_turn"
    usage = (result.usage.model_extra or {}) if result.usage else {}
    assert usage["input_tokens"] > 0  # Claude sends only the canonical names


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        ({"model": "no-such-model"}, openai.BadRequestError, 400),
        ({"model": "gpt-5", "extra_body": {"transcript_id": "missing"}}, openai.NotFoundError, 404),
    ],
)
def test_errors_map_to_sdk_exceptions(
    gateway: EmulatorProcess,
    body: dict[str, object],
    error: type[openai.APIStatusError],
    status: int,
) -> None:
    with pytest.raises(error) as caught:
        client(gateway).chat.completions.create(
            messages=[{"role": "user", "content": "hi"}],
            **body,  # type: ignore[call-overload]
        )
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body.get("request_id") or caught.value.response.json()["request_id"]


def test_auth_and_rate_limit_errors(gateway: EmulatorProcess) -> None:
    gateway.configure({"api_key": "right", "rate_limit_enabled": True, "rate_limit": 1})
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key="wrong").chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}]
        )
    good = client(gateway, key="right")
    good.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as caught:
        good.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert int(caught.value.response.headers["retry-after"]) > 0
