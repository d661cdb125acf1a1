"""What the model answers, over HTTP: prompt schemas, forced tools, tool faults, omitted model."""

from __future__ import annotations

import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)
KEY = {"Authorization": "test-key"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "sentiment"],
    "properties": {
        "summary": {"type": "string", "minLength": 5},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
    },
}
PARAMS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["priority"],
    "properties": {"priority": {"type": "integer", "minimum": 1, "maximum": 3}},
}
TOOL_REQUEST = {
    "messages": [{"role": "user", "content": "File a ticket for the broken router."}],
    "tools": [{"type": "function", "function": {"name": "file_ticket", "parameters": PARAMS}}],
    "tool_choice": {"type": "function", "function": {"name": "file_ticket"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}},
}
REPAIR = {"post_processing_steps": [{"type": "json-repair"}]}


def chat(url: str, body: dict[str, Any]) -> httpx.Response:
    return HTTP.post(f"{url}/v1/chat/completions", json=body, headers=KEY)


def test_schema_fenced_in_the_prompt_is_followed(gateway: EmulatorProcess) -> None:
    prompt = (
        "Summarise the call. Reply with JSON matching this schema:\n"
        f"```json\n{json.dumps(SCHEMA, indent=2)}\n```\n"
        "Call: the customer's router keeps dropping {every evening}."
    )
    response = chat(gateway.url, {"model": "gpt-4.1", "prompt": prompt})  # no response_format
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    Draft202012Validator(SCHEMA).validate(json.loads(content))


def tool_call(response: httpx.Response) -> tuple[dict[str, Any], str]:
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "file_ticket"
    return choice, call["function"]["arguments"]


def test_forced_tool_beats_response_format(gateway: EmulatorProcess) -> None:
    for model, finish in (("claude-sonnet-4-6", "tool_use"), ("gpt-5", "tool_calls")):
        choice, arguments = tool_call(chat(gateway.url, {"model": model, **TOOL_REQUEST}))
        assert choice["finish_reason"] == finish
        Draft202012Validator(PARAMS).validate(json.loads(arguments))
    auto = chat(gateway.url, {"model": "gpt-5", **TOOL_REQUEST, "tool_choice": "auto"}).json()
    assert auto["choices"][0]["message"]["tool_calls"] is None
    Draft202012Validator(SCHEMA).validate(json.loads(auto["choices"][0]["message"]["content"]))


def test_content_faults_break_tool_arguments(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "trailing_comma", "model": "gpt-5"}]})
    body = {"model": "gpt-5", **TOOL_REQUEST}
    _, broken = tool_call(chat(gateway.url, body))
    assert broken.rstrip().endswith(",}")
    _, repaired = tool_call(chat(gateway.url, {**body, **REPAIR}))
    Draft202012Validator(PARAMS).validate(json.loads(repaired))
    gateway.configure({"faults": [{"kind": "unrepairable", "model": "gpt-5"}]})
    failed = chat(gateway.url, {**body, **REPAIR})
    assert failed.status_code == 500
    assert failed.json()["message"] == "json-repair post-processing failed"


def test_omit_model_for_drops_top_level_model(gateway: EmulatorProcess) -> None:
    ping = {"messages": [{"role": "user", "content": "Ping."}]}
    claude = {"model": "claude-haiku-4-5-20251001", **ping}
    assert chat(gateway.url, claude).json()["model"] == claude["model"]  # default: ()
    gateway.configure({"omit_model_for": ["anthropic"]})
    bare = chat(gateway.url, claude).json()
    assert "model" not in bare and bare["request"]["model"] == claude["model"]
    assert chat(gateway.url, {"model": "gpt-5", **ping}).json()["model"] == "gpt-5"
    gateway.configure({"faults": [{"kind": "5xx", "model": "gpt-5", "status": 503}]})
    spilled = chat(gateway.url, {"model": "gpt-5", **ping, "fallbacks": [claude]}).json()
    assert "model" not in spilled and spilled["request"]["model"] == "gpt-5"
    streamed = HTTP.post(
        f"{gateway.url}/v1/chat/completions", json={**claude, "stream": True}, headers=KEY
    )
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert events and all(json.loads(e)["model"] == claude["model"] for e in events)


def test_provider_schema_rules_are_400s(gateway: EmulatorProcess) -> None:
    schema = {"type": "object", "properties": {"a": {"not": {"type": "null"}}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}}
    body = {"model": "gemini-2.5-flash", "prompt": "hi", "response_format": fmt}
    response = chat(gateway.url, body)
    assert response.status_code == 400
    assert response.json()["metadata"]["errors"] == [
        "response_format is invalid: schema keyword 'not' is not supported by gemini-2.5-flash"
    ]
    strict = chat(gateway.url, {**body, "model": "gpt-5"})
    assert strict.json()["metadata"]["errors"] == [
        "response_format is invalid: strict schemas require additionalProperties false and "
        "every property required (at #)"
    ]
    assert chat(gateway.url, {**body, "model": "claude-sonnet-4-6"}).status_code == 200
