"""Fallbacks, the one server-side retry, and json-repair post-processing, over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)

KEY = {"Authorization": "test-key"}
PRIMARY = "claude-sonnet-4-6"


def chat(url: str, body: dict[str, Any], timeout: float = 10) -> httpx.Response:
    return HTTP.post(f"{url}/v1/chat/completions", json=body, headers=KEY, timeout=timeout)


def fail_model(gateway: EmulatorProcess, model: str, **rule: Any) -> None:
    gateway.configure({"faults": [{"kind": "5xx", "model": model, "status": 503, **rule}]})


def base(
    content: str = "The customer asked about a refund for the broken router.",
) -> dict[str, Any]:
    return {"model": PRIMARY, "messages": [{"role": "user", "content": content}]}


def last_log(gateway: EmulatorProcess) -> dict[str, Any]:
    return gateway.requests()[-1]


def test_fallback_answers_with_its_overrides(gateway: EmulatorProcess) -> None:
    fail_model(gateway, PRIMARY)
    override = "Fallback prompt: the caller wants to upgrade to the business plan today."
    body = {
        **base(),
        "temperature": 0.2,
        "fallbacks": [
            {
                "model": "gpt-4.1",
                "temperature": 0.4,
                "messages": [{"role": "user", "content": override}],
            },
        ],
    }
    # gpt-4.1, not a gpt-5*: those reject temperature, as OpenAI's reasoning models do.
    response = chat(gateway.url, body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model"] == "gpt-4.1"
    assert payload["request"]["model"] == PRIMARY
    assert override in payload["choices"][0]["message"]["content"]
    assert payload["choices"][0]["finish_reason"] == "stop"  # the fallback's native reason
    entry = last_log(gateway)
    assert entry["models_tried"] == [PRIMARY, "gpt-4.1"]
    assert entry["model_answered"] == "gpt-4.1"
    assert entry["faults"] == ["5xx", None]


def test_default_depth_is_one(gateway: EmulatorProcess) -> None:
    gateway.configure(
        {
            "faults": [
                {"kind": "5xx", "model": PRIMARY, "status": 502},
                {"kind": "5xx", "model": "gpt-5", "status": 502},
            ]
        }
    )
    body = {**base(), "fallbacks": [{"model": "gpt-5"}, {"model": "gemini-2.5-flash"}]}
    response = chat(gateway.url, body)
    assert response.status_code == 502
    assert response.json()["code"] == 502
    assert last_log(gateway)["models_tried"] == [PRIMARY, "gpt-5"]
    deeper = chat(gateway.url, {**body, "fallback_config": {"depth": 2}})
    assert deeper.status_code == 200
    assert deeper.json()["model"] == "gemini-2.5-flash"
    assert last_log(gateway)["models_tried"] == [PRIMARY, "gpt-5", "gemini-2.5-flash"]


def test_server_retries_once_after_half_a_second(gateway: EmulatorProcess) -> None:
    fail_model(gateway, PRIMARY, times=1)
    started = time.perf_counter()
    response = chat(gateway.url, base())
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert 0.5 <= elapsed < 2.0
    assert last_log(gateway)["models_tried"] == [PRIMARY, PRIMARY]


def test_retry_false_returns_the_5xx_at_once(gateway: EmulatorProcess) -> None:
    fail_model(gateway, PRIMARY, times=1)
    started = time.perf_counter()
    response = chat(gateway.url, {**base(), "fallback_config": {"retry": False}})
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert response.json()["message"] == "model is temporarily unavailable"
    assert elapsed < 0.45
    assert last_log(gateway)["models_tried"] == [PRIMARY]


def test_no_same_model_retry_when_fallbacks_are_set(gateway: EmulatorProcess) -> None:
    fail_model(gateway, PRIMARY, times=1)
    started = time.perf_counter()
    response = chat(gateway.url, {**base(), "fallbacks": [{"model": "gpt-5-mini"}]})
    assert response.status_code == 200
    assert time.perf_counter() - started < 0.45
    assert response.json()["model"] == "gpt-5-mini"


def test_429_on_primary_spills_over_to_the_fallback(gateway: EmulatorProcess) -> None:
    gateway.configure(
        {"rate_limit_enabled": True, "model_limits": {PRIMARY: "1/30", "gpt-5": "5/30"}}
    )
    body = {**base(), "fallbacks": [{"model": "gpt-5"}]}
    assert chat(gateway.url, body).json()["model"] == PRIMARY
    spilled = chat(gateway.url, body)
    assert spilled.status_code == 200
    assert spilled.json()["model"] == "gpt-5"
    # headers describe the primary (requested) model, which is over its limit
    assert spilled.headers["x-ratelimit-model"] == PRIMARY
    assert spilled.headers["x-ratelimit-remaining"] == "-1"
    assert "retry-after" not in spilled.headers
    models = gateway.stats()["models"]
    assert models[PRIMARY]["requests"] == 2 and models[PRIMARY]["http_429"] == 1
    assert models["gpt-5"]["requests"] == 1 and models["gpt-5"]["answered"] == 1


SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "flagged": {"type": "boolean"}},
    "required": ["summary", "flagged"],
}


def schema_body(repair: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        **base(),
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}},
    }
    if repair:
        body["post_processing_steps"] = [{"type": "json-repair"}]
    return body


def test_json_repair_fixes_malformed_output(gateway: EmulatorProcess) -> None:
    for kind in ("code_fence", "prose", "trailing_comma", "single_quotes", "python_literals"):
        gateway.configure({"faults": [{"kind": kind}]})
        broken = chat(gateway.url, schema_body(repair=False)).json()
        content = broken["choices"][0]["message"]["content"]
        try:
            json.loads(content)
            parsed = True
        except ValueError:
            parsed = False
        assert not parsed, f"{kind} should not parse: {content!r}"
        fixed = chat(gateway.url, schema_body(repair=True))
        assert fixed.status_code == 200
        value = json.loads(fixed.json()["choices"][0]["message"]["content"])
        assert set(value) == {"summary", "flagged"}, kind


def test_json_repair_failure_is_a_500(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "unrepairable"}]})
    response = chat(gateway.url, schema_body(repair=True))
    assert response.status_code == 500
    payload = response.json()
    assert payload["code"] == 500
    assert payload["message"] == "json-repair post-processing failed"
    assert payload["metadata"]["errors"] == [
        "json-repair could not repair the model output into valid JSON"
    ]
    assert len(payload["request_id"]) == 36
    # not retried, not passed to a fallback
    assert (
        chat(gateway.url, {**schema_body(True), "fallbacks": [{"model": "gpt-5"}]}).status_code
        == 500
    )
    assert last_log(gateway)["models_tried"] == [PRIMARY]
