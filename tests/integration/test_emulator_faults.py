"""Fault injection over HTTP: determinism under the seed, targeting, provider-native shapes."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)

KEY = {"Authorization": "test-key"}
SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
    },
    "required": ["summary", "sentiment"],
    "additionalProperties": False,
}


def ids(gateway: EmulatorProcess, count: int) -> list[str]:
    usable = [
        t["id"] for t in gateway.transcripts() if t["status"] == "completed" and not t["deleted"]
    ]
    return usable[:count]


def ask(
    gateway: EmulatorProcess, model: str, tid: str | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Analyse: {{ transcript }}"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
        "fallback_config": {"retry": False},
        **extra,
    }
    if tid is not None:
        body["transcript_id"] = tid
    return HTTP.post(f"{gateway.url}/v1/chat/completions", json=body, headers=KEY, timeout=10)


def outcome(response: httpx.Response) -> str:
    if response.status_code != 200:
        return str(response.status_code)
    return str(response.json()["choices"][0]["message"]["content"])


def scenario(gateway: EmulatorProcess, transcripts: list[str]) -> list[str]:
    return [outcome(ask(gateway, "gpt-5", t)) for t in transcripts for _ in range(2)]


def test_rerun_after_reset_gives_the_same_outcomes(gateway: EmulatorProcess) -> None:
    gateway.configure(
        {"faults": [{"kind": "5xx", "rate": 0.3}, {"kind": "malformed", "rate": 0.3}]}
    )
    transcripts = ids(gateway, 15)
    first = scenario(gateway, transcripts)
    gateway.reset()
    assert scenario(gateway, transcripts) == first
    statuses = [o for o in first if o.isdigit()]
    assert 0 < len(statuses) < len(first)  # the rates actually bite, but not always
    # a retry of the same transcript rolls new dice: some pair differs
    assert any(first[i] != first[i + 1] for i in range(0, len(first), 2))


def test_times_limits_a_rule_to_the_first_requests(gateway: EmulatorProcess) -> None:
    tid = ids(gateway, 1)[0]
    gateway.configure({"faults": [{"kind": "5xx", "times": 2, "transcript_ids": [tid]}]})
    codes = [ask(gateway, "gpt-5", tid).status_code for _ in range(3)]
    assert codes[:2] != [200, 200] and codes[2] == 200
    other = ids(gateway, 2)[1]
    assert ask(gateway, "gpt-5", other).status_code == 200  # not targeted


def test_model_targeting(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "5xx", "model": "gpt-5"}]})
    assert ask(gateway, "gpt-5").status_code >= 500
    assert ask(gateway, "gpt-5-mini").status_code == 200


@pytest.mark.parametrize(
    ("model", "finish", "content_is_text"),
    [
        ("gpt-5", "stop", False),
        ("kimi-k2.5", "stop", False),
        ("claude-sonnet-4-6", "refusal", True),
        ("gemini-2.5-flash", "content_filter", False),
    ],
)
def test_refusals_look_provider_native(
    gateway: EmulatorProcess, model: str, finish: str, content_is_text: bool
) -> None:
    gateway.configure({"faults": [{"kind": "refusal"}]})
    choice = ask(gateway, model).json()["choices"][0]
    assert choice["finish_reason"] == finish
    message = choice["message"]
    if content_is_text:
        assert "can't help" in message["content"]
    else:
        assert message["content"] is None
    if model in ("gpt-5", "kimi-k2.5"):
        assert "can't help" in message["refusal"]


@pytest.mark.parametrize(
    ("model", "finish"), [("claude-sonnet-4-6", "max_tokens"), ("gpt-5", "length")]
)
def test_truncation_cuts_the_json(gateway: EmulatorProcess, model: str, finish: str) -> None:
    gateway.configure({"faults": [{"kind": "truncation"}]})
    choice = ask(gateway, model).json()["choices"][0]
    assert choice["finish_reason"] == finish
    with pytest.raises(ValueError):
        json.loads(choice["message"]["content"])


def test_schema_violation_is_valid_json_failing_the_schema(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "schema_violation"}]})
    content = ask(gateway, "gpt-5").json()["choices"][0]["message"]["content"]
    value = json.loads(content)
    assert not Draft202012Validator(SCHEMA).is_valid(value)


def test_429_storm_has_retry_after(gateway: EmulatorProcess) -> None:
    gateway.configure({"faults": [{"kind": "429", "retry_after_s": 7}]})
    response = ask(gateway, "gpt-5")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["message"] == "too many requests for this action"
    assert gateway.stats()["models"]["gpt-5"]["http_429"] == 1


def test_hang_outlasts_the_client_timeout(gateway: EmulatorProcess) -> None:
    gateway.configure({"hang_s": 1.5, "faults": [{"kind": "hang", "times": 1}]})
    body = {"model": "gpt-5", "prompt": "Ping."}
    with pytest.raises(httpx.ReadTimeout):
        HTTP.post(f"{gateway.url}/v1/chat/completions", json=body, headers=KEY, timeout=0.3)
    response = HTTP.post(f"{gateway.url}/v1/chat/completions", json=body, headers=KEY)
    assert response.status_code == 200
    # the hung request still completes server-side; wait for it so it cannot leak into the
    # next test's log
    deadline = time.monotonic() + 5
    while not any(e["fault"] == "hang" for e in gateway.requests()):
        assert time.monotonic() < deadline, "hung request never finished"
        time.sleep(0.05)
    faults = [e["fault"] for e in gateway.requests()]
    assert faults == [None, "hang"]  # logged when done: the quick one first


def test_bad_config_update_is_rejected(gateway: EmulatorProcess) -> None:
    response = HTTP.post(f"{gateway.url}/_emulator/config", json={"faults": [{"kind": "nope"}]})
    assert response.status_code == 400
    response = HTTP.post(f"{gateway.url}/_emulator/config", json={"seed": 3})
    assert response.status_code == 400
    assert "seed" in response.json()["error"]


def _run_scenario(seed: int) -> tuple[list[str], list[str]]:
    """Transcript ids and the outcomes of a fixed scenario on a fresh in-process emulator."""
    from emulator.config import EmulatorConfig, parse_fault
    from emulator.routes.server import serve_in_thread

    config = EmulatorConfig(
        port=0,
        seed=seed,
        transcripts=12,
        rate_limit_enabled=False,
        faults=[parse_fault("gpt-5:malformed=0.4"), parse_fault("5xx=0.2")],
    )
    with serve_in_thread(config) as url:
        rows = HTTP.get(f"{url}/_emulator/transcripts").json()["transcripts"]
        usable = [t["id"] for t in rows if t["status"] == "completed" and not t["deleted"]]
        body = {
            "model": "gpt-5",
            "messages": [{"role": "user", "content": "Analyse: {{ transcript }}"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": SCHEMA},
            },
            "fallback_config": {"retry": False},
        }
        outcomes = [
            outcome(
                HTTP.post(
                    f"{url}/v1/chat/completions",
                    json={**body, "transcript_id": t},
                    headers=KEY,
                    timeout=10,
                )
            )
            for t in usable
            for _ in range(2)
        ]
    return usable, outcomes


def test_same_seed_same_scenario_across_processes_and_other_seed_differs() -> None:
    ids_a, first = _run_scenario(11)
    ids_b, second = _run_scenario(11)
    assert (ids_a, first) == (ids_b, second)
    ids_c, third = _run_scenario(12)
    assert set(ids_c).isdisjoint(ids_a)
    assert third != first
