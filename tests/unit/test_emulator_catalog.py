"""The seed catalog plays the live one: its gaps (G1), OpenAI's reasoning rules, retirement."""

from __future__ import annotations

import pytest

from emulator.config import EmulatorConfig
from emulator.routes.validation import validate
from emulator.world.catalog import BY_ID, MODELS, served

US = served("us")
CFG = EmulatorConfig()


def params(model: str) -> set[str]:
    return set(BY_ID[model].to_json()["supported_parameters"])


@pytest.mark.parametrize("model", ["claude-opus-4-7", "gpt-4.1"])
def test_live_gaps_lack_response_format_but_list_tools(model: str) -> None:
    assert "response_format" not in params(model)
    assert {"tools", "tool_choice"} <= params(model)


def test_gpt_oss_and_qwen_fast_gaps() -> None:
    for oss in ("gpt-oss-120b", "gpt-oss-20b"):
        assert not {"response_format", "stream", "stream_options"} & params(oss)
        assert "tools" in params(oss)
    assert not {"response_format", "tools", "tool_choice"} & params("qwen3.5-4b-32k-fast")


def test_gpt5_family_lacks_temperature_and_others_keep_it() -> None:
    gpt5 = [m.id for m in MODELS if m.id.startswith("gpt-5")]
    assert len(gpt5) == 6
    for model in gpt5:
        assert "temperature" not in params(model)
        assert {"reasoning", "response_format"} <= params(model)
    assert "temperature" in params("gpt-4.1") and "temperature" in params("claude-sonnet-4-6")


@pytest.mark.parametrize(
    "model", ["gpt-4.1", "qwen3-32B", "qwen3.5-4b-32k-fast", "gemini-2.5-flash-lite"]
)
def test_models_without_thinking_lack_reasoning(model: str) -> None:
    assert "reasoning" not in params(model)


def test_one_model_retires_soon_the_rest_never() -> None:
    dates = {m.id: m.to_json()["retirement_date"] for m in MODELS}
    assert dates.pop("claude-sonnet-4-5-20250929") == "2026-12-31"
    assert set(dates.values()) == {None}


def test_validation_rejects_what_the_catalog_lacks() -> None:
    body = {"model": "gpt-5", "prompt": "hi", "temperature": 0.2}
    assert validate(body, US, CFG) == ["model gpt-5 does not support temperature"]
    fallback = {"model": "claude-sonnet-4-6", "prompt": "hi", "fallbacks": [{"model": "gpt-5"}]}
    assert validate({**fallback, "temperature": 0.2}, US, CFG) == [
        "model gpt-5 does not support temperature"
    ]
    assert validate({"model": "gpt-4.1", "prompt": "hi", "temperature": 0.2}, US, CFG) == []
