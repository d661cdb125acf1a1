"""Body building and pre-send validation (pure functions, no transport)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.errors import RequestRejected
from worker.gateway.request import build_body, check_request_shape, validate_request
from worker.gateway.response import parse_catalog
from worker.gateway.types import CompletionRequest, Fallback, Message, ModelInfo

TAG = "{{ transcript }}"
ALL_PARAMS = ["max_tokens", "temperature", "response_format", "tools", "tool_choice"]


def _catalog(*entries: dict[str, Any]) -> dict[str, ModelInfo]:
    return parse_catalog(json.dumps({"data": list(entries)}))


US = _catalog(
    {
        "id": "claude-sonnet-4-6",
        "context_length": 200000,
        "supported_parameters": ALL_PARAMS,
        "available_regions": ["us", "eu", "global"],
    },
    {"id": "gpt-5", "supported_parameters": ALL_PARAMS, "available_regions": ["us"]},
    {"id": "gpt-oss-20b", "supported_parameters": ["max_tokens"], "available_regions": ["us"]},
    {"id": "gemini-2.5-flash", "available_regions": ["us", "eu"]},
)
EU = _catalog(
    {"id": "claude-sonnet-4-6", "supported_parameters": ALL_PARAMS},
    {"id": "gemini-2.5-flash"},
    {"id": "gemini-3.1-flash-lite-preview", "available_regions": ["us"]},
)


def req(**kw: Any) -> CompletionRequest:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "messages": [Message(role="user", content=f"Summarise.\n\n{TAG}")],
        "transcript_id": "tr_1",
    }
    return CompletionRequest(**{**base, **kw})


def test_minimal_body() -> None:
    body = build_body(req())
    assert body == {
        "model": "claude-sonnet-4-6",
        "messages": [{"role": "user", "content": f"Summarise.\n\n{TAG}"}],
        "transcript_id": "tr_1",
    }


def test_full_body() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = build_body(
        req(
            max_tokens=500,
            temperature=0.2,
            response_format_name="items",
            response_format_schema=schema,
            strict=True,
            server_json_repair=True,
            model_region_global=True,
            fallbacks=[
                Fallback(model="gemini-2.5-flash", overrides={"temperature": 0.5}),
                Fallback(
                    model="gpt-5",
                    overrides={"messages": [Message(role="user", content=f"Short. {TAG}")]},
                ),
            ],
            fallback_retry=False,
            extra={"reasoning": {"effort": "low"}},
        )
    )
    assert body["max_tokens"] == 500 and body["temperature"] == 0.2
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "items", "schema": schema, "strict": True},
    }
    assert body["post_processing_steps"] == [{"type": "json-repair"}]
    assert body["model_region"] == "global"
    assert body["reasoning"] == {"effort": "low"}
    assert body["fallbacks"] == [
        {"model": "gemini-2.5-flash", "temperature": 0.5},
        {"model": "gpt-5", "messages": [{"role": "user", "content": f"Short. {TAG}"}]},
    ]
    assert body["fallback_config"] == {"depth": 2, "retry": False}


def test_fallback_depth_defaults_to_number_of_fallbacks() -> None:
    assert req(fallbacks=[Fallback(model="gpt-5")]).fallback_depth == 1
    assert req().fallback_depth is None
    assert build_body(req(fallbacks=[Fallback(model="gpt-5")], fallback_depth=0))[
        "fallback_config"
    ] == {"depth": 0, "retry": True}


def test_no_fallback_config_unless_needed() -> None:
    assert "fallback_config" not in build_body(req())
    assert build_body(req(fallback_retry=False))["fallback_config"] == {"retry": False}


def test_extra_cannot_override_model() -> None:
    assert build_body(req(extra={"model": "other"}))["model"] == "claude-sonnet-4-6"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("no tag here", "no message containing"),
        ("{{transcript}}", "'{{transcript}}' but the gateway only substitutes the exact tag"),
        ("{{ TRANSCRIPT }}", "only substitutes the exact tag"),
    ],
)
def test_transcript_id_without_exact_tag_is_refused(content: str, why: str) -> None:
    with pytest.raises(RequestRejected, match="silently ignore") as info:
        check_request_shape(req(messages=[Message(role="user", content=content)]))
    assert why in str(info.value)


def test_tag_in_content_parts_does_not_count() -> None:
    parts = [{"type": "text", "text": TAG}]
    with pytest.raises(RequestRejected, match="string content"):
        check_request_shape(req(messages=[Message(role="user", content=parts)]))


def test_tag_in_any_message_is_enough() -> None:
    check_request_shape(
        req(
            messages=[
                Message(role="system", content="Be brief."),
                Message(role="user", content=TAG),
            ]
        )
    )


def test_fallback_override_messages_without_tag_are_refused() -> None:
    fb = Fallback(model="gpt-5", overrides={"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(RequestRejected, match="fallback 1 \\('gpt-5'\\) messages has no message"):
        check_request_shape(req(fallbacks=[fb]))


def test_fallback_inheriting_messages_is_fine() -> None:
    check_request_shape(req(fallbacks=[Fallback(model="gpt-5", overrides={"temperature": 1})]))


def test_tag_without_transcript_id_is_refused() -> None:
    with pytest.raises(RequestRejected, match="transcript_id is not set"):
        check_request_shape(req(transcript_id=None))


def test_no_transcript_no_tag_is_fine() -> None:
    check_request_shape(req(transcript_id=None, messages=[Message(role="user", content="hi")]))


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"fallbacks": [Fallback(model="gpt-5")] * 3}, "3 fallbacks given"),
        ({"fallbacks": [Fallback(model="gpt-5")], "fallback_depth": 3}, "fallback_depth 3"),
        ({"messages": []}, "no messages"),
        ({"response_format_name": "x"}, "response_format_schema is not"),
        ({"max_tokens": 0}, "at least 1"),
    ],
)
def test_shape_checks(kw: dict[str, Any], why: str) -> None:
    with pytest.raises(RequestRejected, match=why):
        check_request_shape(req(**kw))


def test_valid_us_request_with_fallbacks() -> None:
    validate_request(
        req(fallbacks=[Fallback(model="gpt-5"), Fallback(model="gemini-2.5-flash")]), US
    )


def test_unknown_model_is_refused() -> None:
    with pytest.raises(RequestRejected, match="model 'gpt-9' is not in the US catalog"):
        validate_request(req(model="gpt-9"), US)


def test_unknown_fallback_is_refused() -> None:
    with pytest.raises(RequestRejected, match="fallback 2 model 'nope' is not in the US catalog"):
        validate_request(req(fallbacks=[Fallback(model="gpt-5"), Fallback(model="nope")]), US)


def test_eu_job_with_us_only_fallback_is_refused() -> None:
    r = req(region="eu", fallbacks=[Fallback(model="gemini-2.5-flash"), Fallback(model="gpt-5")])
    with pytest.raises(RequestRejected) as info:
        validate_request(r, EU)
    assert str(info.value) == (
        "fallback 2 model 'gpt-5' is not served by the EU host (US-only or unknown) "
        "and this is an EU job"
    )


def test_eu_catalog_entry_marked_us_only_is_refused() -> None:
    with pytest.raises(RequestRejected) as info:
        validate_request(req(region="eu", model="gemini-3.1-flash-lite-preview"), EU)
    assert str(info.value) == (
        "model 'gemini-3.1-flash-lite-preview' is US-only and this is an EU job"
    )


def test_us_model_in_eu_job_is_refused() -> None:
    with pytest.raises(RequestRejected, match="EU job"):
        validate_request(req(region="eu", model="gpt-5"), EU)


def test_response_format_checked_against_supported_parameters() -> None:
    schema = {"type": "object"}
    with pytest.raises(
        RequestRejected, match="model 'gpt-oss-20b' does not support response_format"
    ):
        validate_request(req(model="gpt-oss-20b", response_format_schema=schema), US)
    # A fallback inherits response_format unless it overrides it away.
    r = req(response_format_schema=schema, fallbacks=[Fallback(model="gpt-oss-20b")])
    with pytest.raises(RequestRejected, match="fallback 1 model 'gpt-oss-20b' does not support"):
        validate_request(r, US)
    ok = Fallback(model="gpt-oss-20b", overrides={"response_format": None})
    validate_request(req(response_format_schema=schema, fallbacks=[ok]), US)


def test_no_supported_parameters_list_means_no_check() -> None:
    validate_request(req(model="gemini-2.5-flash", response_format_schema={"type": "object"}), US)


def test_tools_in_extra_are_gated_too() -> None:
    with pytest.raises(RequestRejected, match="does not support tools"):
        validate_request(req(model="gpt-oss-20b", extra={"tools": [{"type": "function"}]}), US)


def test_max_tokens_must_be_below_context_length() -> None:
    with pytest.raises(RequestRejected, match="below its context length 200000"):
        validate_request(req(max_tokens=200000), US)
    validate_request(req(max_tokens=199999), US)


def test_validate_runs_shape_checks() -> None:
    with pytest.raises(RequestRejected, match="silently ignore"):
        validate_request(req(messages=[Message(role="user", content="x")]), US)


def test_an_eu_request_with_global_routing_is_refused_before_any_io() -> None:
    req = CompletionRequest(
        model="claude-sonnet-4-6",
        messages=[Message(role="user", content="hi")],
        region="eu",
        model_region_global=True,
    )
    with pytest.raises(RequestRejected, match="cannot be used with region eu"):
        check_request_shape(req)
