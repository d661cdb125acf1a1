"""Pure request handling: validation order, fallback merging, injection, token counts, repair."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from emulator.answers.malform import malform, violate
from emulator.answers.postprocess import RepairError, repair
from emulator.cli import emulator_command
from emulator.config import EmulatorConfig, apply_update, parse_model_limit
from emulator.routes.injection import TAG, inject, prompt_tokens
from emulator.routes.validation import merged_attempts, validate
from emulator.world.catalog import served

US = served("us")
CFG = EmulatorConfig()


def test_valid_body_has_no_errors() -> None:
    body = {"model": "gpt-5", "prompt": "hi", "fallbacks": [{"model": "claude-sonnet-4-6"}]}
    assert validate(body, US, CFG) == []


def test_eu_rejects_us_only_models() -> None:
    eu = served("eu")
    assert validate({"model": "kimi-k2.5", "prompt": "x"}, eu, CFG) == [
        "model kimi-k2.5 is not supported"
    ]
    assert all(m.family in ("anthropic", "google") for m in eu.values())
    assert "gemini-3.1-flash-lite-preview" not in eu


def test_bad_messages() -> None:
    messages = [
        {"role": "robot", "content": "x"},
        {"role": "user", "content": [{"type": "image_url"}]},
    ]
    body = {"model": "gpt-5", "messages": messages}
    assert validate(body, US, CFG) == [
        "messages[0].role must be one of system, user, assistant, tool",
        "messages[1].content[0] must be a text part",
    ]


def test_merged_attempts_apply_overrides_up_to_depth() -> None:
    body = {
        "model": "a",
        "temperature": 0.1,
        "prompt": "p",
        "fallbacks": [{"model": "b", "temperature": 0.9}, {"model": "c"}],
    }
    assert [(a["model"], a["temperature"]) for a in merged_attempts(body)] == [
        ("a", 0.1),
        ("b", 0.9),
    ]
    deep = merged_attempts({**body, "fallback_config": {"depth": 2}})
    assert [a["model"] for a in deep] == ["a", "b", "c"]
    assert all("fallbacks" not in a for a in deep)


def test_injection_rules() -> None:
    messages = [
        {"role": "system", "content": "no tag"},
        {"role": "user", "content": f"{TAG} and {TAG}"},
        {"role": "user", "content": TAG},
    ]
    out, injected = inject(messages, "TEXT")
    assert injected
    assert [m["content"] for m in out] == ["no tag", f"TEXT and {TAG}", TAG]
    assert messages[1]["content"] == f"{TAG} and {TAG}"  # input untouched
    same, injected = inject([{"role": "user", "content": "{{transcript}}"}], "TEXT")
    assert not injected and same[0]["content"] == "{{transcript}}"


def test_prompt_tokens_are_four_chars_each_plus_overhead() -> None:
    assert prompt_tokens([{"role": "user", "content": "x" * 400}]) == 103
    assert (
        prompt_tokens([{"role": "user", "content": "abcde"}, {"role": "user", "content": ""}]) == 8
    )


SCHEMA = {
    "type": "object",
    "properties": {
        "mood": {"enum": ["up", "down"]},
        "ok": {"type": "boolean"},
        "n": {"type": "null"},
    },
    "required": ["mood", "ok"],
}
VALUE = {"mood": "up", "ok": True, "n": None, "note": "it's fine"}


@pytest.mark.parametrize(
    "kind", ["code_fence", "prose", "trailing_comma", "single_quotes", "python_literals"]
)
def test_malformed_outputs_fail_to_parse_and_repair_back(kind: str) -> None:
    text = malform(kind, VALUE, random.Random(1))
    with pytest.raises(ValueError):
        json.loads(text)
    assert json.loads(repair(text)) == VALUE


def test_truncated_json_repairs_to_something_and_prose_does_not() -> None:
    text = malform("truncated_json", VALUE, random.Random(2))
    assert len(text) < len(json.dumps(VALUE))
    json.loads(repair(text))
    with pytest.raises(RepairError):
        repair(malform("unrepairable", VALUE, random.Random(2)))
    assert repair('{"a": 1}') == '{"a": 1}'


def test_violation_is_valid_json_that_fails_the_schema() -> None:
    for seed in range(20):
        broken = violate(SCHEMA, {"mood": "up", "ok": True}, random.Random(seed))
        json.dumps(broken)
        assert not Draft202012Validator(SCHEMA).is_valid(broken)


def test_config_updates() -> None:
    updated = apply_update(CFG, {"model_limits": {"gpt-5": "60/6"}, "latency_ms": 5})
    assert updated.limit_for("gpt-5").limit == 60 and updated.limit_for("gpt-5").window_s == 6
    assert updated.limit_for("other").limit == 30
    assert updated.latency_for("x").ms == 5
    with pytest.raises(ValueError, match="region"):
        apply_update(CFG, {"region": "eu"})
    assert parse_model_limit("claude-sonnet-4-6=60/6s")[1].window_s == 6
    with pytest.raises(ValueError):
        parse_model_limit("claude-sonnet-4-6")


def test_omit_model_for_from_cli_and_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[EmulatorConfig] = []
    monkeypatch.setattr("emulator.routes.server.run", started.append)
    args = ["--omit-model-for", "anthropic", "--omit-model-for", "google"]
    result = CliRunner().invoke(emulator_command, args)
    assert result.exit_code == 0, result.output
    assert started[0].omit_model_for == ("anthropic", "google")
    assert CFG.omit_model_for == ()
    assert apply_update(CFG, {"omit_model_for": ["openai"]}).omit_model_for == ("openai",)
    with pytest.raises(ValueError):
        apply_update(CFG, {"omit_model_for": ["mistral"]})
