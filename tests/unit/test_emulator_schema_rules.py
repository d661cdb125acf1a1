"""Provider schema restrictions: Gemini's unsupported keywords, OpenAI's strict-mode rules."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.config import EmulatorConfig
from emulator.routes.schema_rules import GOOGLE_UNSUPPORTED
from emulator.routes.validation import validate
from emulator.world.catalog import served

US = served("us")
CFG = EmulatorConfig()
STRICT_OK: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["items", "not"],
    "properties": {
        "not": {"type": "string"},  # a property *named* like a keyword is no keyword
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["owner"],
                "properties": {"owner": {"type": "string"}},
            },
        },
    },
}


def body(model: str, schema: object, strict: bool = False, **extra: Any) -> dict[str, Any]:
    spec = {"name": "s", "schema": schema, "strict": strict}
    fmt = {"type": "json_schema", "json_schema": spec}
    return {"model": model, "prompt": "hi", "response_format": fmt, **extra}


@pytest.mark.parametrize("keyword", GOOGLE_UNSUPPORTED)
def test_gemini_refuses_keywords_anywhere(keyword: str) -> None:
    nested = {"type": "object", "properties": {"a": {"anyOf": [{keyword: {}}]}}}
    assert validate(body("gemini-2.5-flash", nested), US, CFG) == [
        f"response_format is invalid: schema keyword '{keyword}' is not supported by "
        "gemini-2.5-flash"
    ]


def test_others_take_what_gemini_refuses() -> None:
    schema = {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}
    for model in ("claude-sonnet-4-6", "gpt-5", "kimi-k2.5"):
        assert validate(body(model, schema, strict=False), US, CFG) == []
    assert validate(body("gemini-2.5-flash", STRICT_OK), US, CFG) == []


@pytest.mark.parametrize(
    ("schema", "at"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, "#"),
        (
            {**STRICT_OK, "properties": {**STRICT_OK["properties"], "extra": {"type": "string"}}},
            "#",
        ),
        (
            {
                **STRICT_OK,
                "properties": {
                    **STRICT_OK["properties"],
                    "items": {"type": "array", "items": {"type": "object", "properties": {}}},
                },
            },
            "#/properties/items/items",
        ),
        ({"$defs": {"a/b": {"type": "object"}}, "$ref": "#/$defs/a~1b"}, "#/$defs/a~1b"),
    ],
)
def test_openai_strict_needs_closed_objects_with_all_required(schema: Any, at: str) -> None:
    assert validate(body("gpt-5", schema, strict=True), US, CFG) == [
        "response_format is invalid: strict schemas require additionalProperties false and "
        f"every property required (at {at})"
    ]
    assert validate(body("gpt-5", schema, strict=False), US, CFG) == []
    assert validate(body("claude-sonnet-4-6", schema, strict=True), US, CFG) == []


def test_strict_ok_passes_and_a_fallback_is_checked_too() -> None:
    assert validate(body("gpt-5-mini", STRICT_OK, strict=True), US, CFG) == []
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = body("claude-sonnet-4-6", loose, strict=True, fallbacks=[{"model": "gpt-5"}])
    assert validate(req, US, CFG) == [
        "response_format is invalid: strict schemas require additionalProperties false and "
        "every property required (at #)"
    ]


def test_strict_openai_tool_parameters_are_checked() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    tools = [
        {"type": "function", "function": {"name": "ok", "parameters": loose}},
        {"type": "function", "function": {"name": "t", "strict": True, "parameters": loose}},
    ]
    req = {"model": "gpt-5", "prompt": "hi", "tools": tools}
    assert validate(req, US, CFG) == [
        "tools[1].function.parameters is invalid: strict schemas require additionalProperties "
        "false and every property required (at #)"
    ]
    assert validate({**req, "model": "claude-sonnet-4-6"}, US, CFG) == []
