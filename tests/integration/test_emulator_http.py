"""The emulator over real sockets: validation order, error envelopes, auth, models, regions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)

KEY = "test-key"
PING = {"model": "claude-haiku-4-5-20251001", "messages": [{"role": "user", "content": "Ping."}]}


def post(url: str, body: Any, key: str | None = KEY, **extra: Any) -> httpx.Response:
    headers = {"Authorization": key} if key is not None else {}
    return HTTP.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10, **extra)


def assert_uuid(value: object) -> None:
    assert isinstance(value, str)
    assert str(uuid.UUID(value)) == value


def errors_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400
    assert body["message"] == "invalid request body"
    assert_uuid(body["request_id"])
    errors: list[str] = body["metadata"]["errors"]
    return errors


def test_missing_messages_and_prompt(gateway: EmulatorProcess) -> None:
    assert errors_of(post(gateway.url, {"model": "gpt-5"})) == [
        "one of messages or prompt required"
    ]


def test_all_problems_reported_in_gateway_order(gateway: EmulatorProcess) -> None:
    body = {
        "model": "no-such-model",
        "model_region": "us",
        "fallback_config": {"depth": 3},
        "fallbacks": [{"model": "also-missing"}],
    }
    assert errors_of(post(gateway.url, body)) == [
        "one of messages or prompt required",
        "model no-such-model is not supported",
        "model_region can only be set to global",
        "fallback_config depth cannot be greater than 2",
        "model also-missing is not supported",
    ]


@pytest.mark.parametrize(
    ("model", "param", "value"),
    [
        ("gpt-oss-120b", "response_format", {"type": "json_schema"}),
        ("gpt-oss-20b", "stream", True),
        ("qwen3.5-4b-32k-fast", "tools", []),
        ("qwen3.5-4b-32k-fast", "tool_choice", "auto"),
        ("gpt-5", "frequency_penalty", 0.5),
        ("gpt-5", "temperature", 0.3),
        ("gpt-5-mini", "temperature", 1),
        ("claude-opus-4-7", "response_format", {"type": "json_schema"}),
        ("gpt-4.1", "response_format", {"type": "json_schema"}),
        ("gpt-4.1", "reasoning", {"effort": "low"}),
        ("qwen3-32B", "reasoning", {"effort": "low"}),
    ],
)
def test_unsupported_parameter_is_rejected(
    gateway: EmulatorProcess, model: str, param: str, value: object
) -> None:
    body = {"model": model, "prompt": "hi", param: value}
    assert errors_of(post(gateway.url, body)) == [f"model {model} does not support {param}"]


def test_invalid_response_format_and_bad_json(gateway: EmulatorProcess) -> None:
    body = {**PING, "response_format": {"type": "json_object"}}
    assert errors_of(post(gateway.url, body)) == [
        "response_format is invalid: type must be json_schema"
    ]
    raw = HTTP.post(
        f"{gateway.url}/v1/chat/completions", content=b"{nope", headers={"Authorization": KEY}
    )
    assert errors_of(raw) == ["request body is not valid JSON"]


def test_fallback_model_errors_are_not_rescued(gateway: EmulatorProcess) -> None:
    body = {**PING, "fallbacks": [{"model": "gpt-oss-20b", "stream": True}]}
    assert errors_of(post(gateway.url, body)) == ["model gpt-oss-20b does not support stream"]


def test_no_access_model_gives_entitlement_error(gateway: EmulatorProcess) -> None:
    gateway.configure({"no_access_models": ["gpt-5"]})
    errors = errors_of(post(gateway.url, {"model": "gpt-5", "prompt": "hi"}))
    assert errors == ["Your account does not have access to this LLM Gateway model"]


def test_unknown_transcript_is_404_with_flat_envelope(gateway: EmulatorProcess) -> None:
    body = {**PING, "transcript_id": str(uuid.uuid4())}
    response = post(gateway.url, body)
    assert response.status_code == 404
    payload = response.json()
    assert set(payload) == {"code", "message", "request_id"}
    assert (payload["code"], payload["message"]) == (404, "transcript not found")


def test_deleted_transcript_is_404_transcript_deleted(gateway: EmulatorProcess) -> None:
    deleted = next(t["id"] for t in gateway.transcripts() if t["deleted"])
    body = {**PING, "messages": [{"role": "user", "content": "{{ transcript }}"}]}
    response = post(gateway.url, {**body, "transcript_id": deleted})
    assert response.status_code == 404
    assert response.json()["message"] == "transcript deleted"


def test_transcript_not_completed_is_400(gateway: EmulatorProcess) -> None:
    pending = next(t for t in gateway.transcripts() if t["status"] != "completed")
    body = {**PING, "messages": [{"role": "user", "content": "{{ transcript }}"}]}
    errors = errors_of(post(gateway.url, {**body, "transcript_id": pending["id"]}))
    assert errors == [
        f"transcript {pending['id']} has status {pending['status']}; only completed can be injected"
    ]


def test_context_limit(gateway: EmulatorProcess) -> None:
    body = {"model": "qwen3.5-4b-32k-fast", "prompt": "word " * 30_000}
    assert errors_of(post(gateway.url, body)) == ["model context limit exceeded"]


#: 31 003 input tokens (4 characters each, plus 3 for the message) on a 32 768-token model.
FAST, FAST_PROMPT, FAST_ROOM = "qwen3.5-4b-32k-fast", "abcd" * 31_000, 32_768 - 31_003


def test_context_counts_input_plus_max_tokens(gateway: EmulatorProcess) -> None:
    body = {"model": FAST, "prompt": FAST_PROMPT}
    assert post(gateway.url, body).status_code == 200  # + the default 1000 still fits
    assert post(gateway.url, {**body, "max_tokens": FAST_ROOM}).status_code == 200
    overflowing = post(gateway.url, {**body, "max_tokens": FAST_ROOM + 1})
    assert errors_of(overflowing) == ["model context limit exceeded"]


def test_fallback_whose_max_tokens_overflows_is_skipped(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "5xx", "model": "gpt-5", "status": 503}]})
    body = {
        "model": "gpt-5",
        "prompt": FAST_PROMPT,
        "fallbacks": [{"model": FAST, "max_tokens": FAST_ROOM + 1}],
        "fallback_config": {"retry": False},
    }
    response = post(gateway.url, body)
    assert response.status_code == 503, response.text
    assert gateway.requests()[-1]["models_tried"] == ["gpt-5"]


def test_missing_key_and_bad_key_are_401(gateway: EmulatorProcess) -> None:
    missing = post(gateway.url, PING, key=None)
    assert missing.status_code == 401
    assert missing.json()["error"].startswith("Your account does not have access to LLM Gateway")
    gateway.configure({"api_key": "s3cret"})
    wrong = post(gateway.url, PING, key="other")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "Authentication error, API token missing/invalid"
    assert wrong.json()["status"] == "error"
    assert_uuid(wrong.json()["request_id"])
    assert post(gateway.url, PING, key="s3cret").status_code == 200
    assert post(gateway.url, PING, key="Bearer s3cret").status_code == 200


def test_success_shape_and_usage_naming(gateway: EmulatorProcess) -> None:
    claude = post(gateway.url, {**PING, "max_tokens": 200}).json()
    assert_uuid(claude["request_id"])
    assert claude["request"] == {"model": PING["model"], "max_tokens": 200}
    assert claude["model"] == PING["model"]
    assert claude["choices"][0]["finish_reason"] == "end_turn"
    assert "prompt_tokens" not in claude["usage"]
    usage = claude["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    # gpt-4.1: the gpt-5 family rejects temperature (OpenAI's reasoning models do).
    gpt = post(gateway.url, {"model": "gpt-4.1", "prompt": "Ping.", "temperature": 0.3}).json()
    assert gpt["request"] == {"model": "gpt-4.1", "max_tokens": 1000, "temperature": 0.3}
    assert gpt["choices"][0]["finish_reason"] == "stop"
    assert gpt["choices"][0]["message"]["refusal"] is None
    assert gpt["usage"]["prompt_tokens"] == gpt["usage"]["input_tokens"]
    assert gpt["usage"]["completion_tokens"] == gpt["usage"]["output_tokens"]
    assert isinstance(gpt["response_time"], int)


@pytest.mark.parametrize(
    ("model", "finish"), [("gpt-5", "length"), ("claude-sonnet-4-6", "max_tokens")]
)
def test_small_max_tokens_truncates(gateway: EmulatorProcess, model: str, finish: str) -> None:
    body = {"model": model, "prompt": "Tell me about the call in detail.", "max_tokens": 3}
    payload = post(gateway.url, body).json()
    assert payload["choices"][0]["finish_reason"] == finish
    assert payload["usage"]["output_tokens"] <= 3
    assert len(payload["choices"][0]["message"]["content"]) <= 12


def test_model_region_global_is_accepted(gateway: EmulatorProcess) -> None:
    response = post(gateway.url, {**PING, "model": "gemini-2.5-flash", "model_region": "global"})
    assert response.status_code == 200


def test_streaming_sends_sse_chunks(gateway: EmulatorProcess) -> None:
    body = {**PING, "stream": True, "stream_options": {"include_usage": True}}
    with HTTP.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers={"Authorization": KEY}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert chunks[-1]["usage"]["input_tokens"] > 0


def test_models_endpoint(gateway: EmulatorProcess) -> None:
    response = HTTP.get(f"{gateway.url}/v1/models")  # no auth needed
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    assert {"claude-sonnet-4-6", "gpt-5", "gemini-2.5-flash", "kimi-k2.5", "qwen3-32B"} <= set(
        models
    )
    for oss in ("gpt-oss-120b", "gpt-oss-20b"):
        assert "response_format" not in models[oss]["supported_parameters"]
        assert "stream" not in models[oss]["supported_parameters"]
    assert "response_format" in models["gpt-5"]["supported_parameters"]
    sonnet = models["claude-sonnet-4-6"]
    assert sonnet["context_length"] > 100_000
    assert set(sonnet["available_regions"]) == {"us", "eu", "global"}
    assert sonnet["pricing"]["input"] > 0 and sonnet["pricing"]["output"] > 0
    assert models["kimi-k2.5"]["available_regions"] == ["us"]


@pytest.fixture(scope="module")
def eu_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(
        "--region",
        "eu",
        "--api-key",
        "eu-key",
        "--fault",
        "gemini-2.5-pro:5xx=1",
        "--model-limit",
        "claude-haiku-4-5-20251001=1/30",
        "--transcripts",
        "5",
    ) as process:
        yield process


def test_eu_region_serves_claude_and_gemini_only(eu_emulator: EmulatorProcess) -> None:
    ids = {m["id"] for m in HTTP.get(f"{eu_emulator.url}/v1/models").json()["data"]}
    assert "claude-sonnet-4-6" in ids and "gemini-2.5-flash" in ids
    assert not {"gpt-5", "kimi-k2.5", "qwen3.5-4b-32k-fast", "gemini-3.1-flash-lite-preview"} & ids
    for model in ("gpt-5", "gemini-3.1-flash-lite-preview", "qwen3.5-4b-32k-fast"):
        response = post(eu_emulator.url, {"model": model, "prompt": "hi"}, key="eu-key")
        assert errors_of(response) == [f"model {model} is not supported"]
    ok = post(
        eu_emulator.url,
        {**PING, "model": "claude-sonnet-4-6", "model_region": "global"},
        key="eu-key",
    )
    assert ok.status_code == 200


def test_cli_options_reach_the_server(eu_emulator: EmulatorProcess) -> None:
    assert post(eu_emulator.url, PING, key="not-eu-key").status_code == 401
    assert post(eu_emulator.url, PING, key="Bearer eu-key").status_code == 200
    limited = post(eu_emulator.url, PING, key="eu-key")
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-limit"] == "1"
    failing = post(eu_emulator.url, {"model": "gemini-2.5-pro", "prompt": "hi"}, key="eu-key")
    assert failing.status_code in (500, 502, 503)


def test_serve_in_thread_runs_an_in_process_emulator() -> None:
    from emulator.config import EmulatorConfig
    from emulator.routes.server import serve_in_thread

    config = EmulatorConfig(port=0, seed=3, transcripts=4, rate_limit=1, window_s=30)
    with serve_in_thread(config) as url:
        assert post(url, PING).status_code == 200
        assert post(url, PING).status_code == 429
        assert len(HTTP.get(f"{url}/_emulator/transcripts").json()["transcripts"]) == 4
    with pytest.raises(httpx.ConnectError):
        HTTP.get(f"{url}/v1/models", timeout=2)
