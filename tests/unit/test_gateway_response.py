"""Success-body and catalog parsing (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.errors import ServerError
from worker.gateway.response import (
    normalise_finish_reason,
    parse_catalog,
    parse_success,
    parse_usage,
)
from worker.gateway.types import CompletionResult, RateLimitInfo

RECORDED = {
    "request_id": "0554b22b-7ea3-4e28-8306-8aeee83ca384",
    "request": {"model": "claude-haiku-4-5-20251001", "max_tokens": 16},
    "model": "claude-haiku-4-5-20251001",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "PONG", "tool_calls": None},
            "finish_reason": "end_turn",
        }
    ],
    "usage": {
        "input_tokens": 16,
        "output_tokens": 6,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    },
    "http_status_code": 200,
    "response_time": 1030392710,
    "llm_status_code": 200,
}


def parse(
    body: Any, model: str = "claude-haiku-4-5-20251001", with_fallbacks: bool = False
) -> CompletionResult:
    text = body if isinstance(body, str) else json.dumps(body)
    return parse_success(
        text,
        with_fallbacks=with_fallbacks,
        model_asked=model,
        region="us",
        http_status=200,
        latency_ms=12.5,
        rate_limit=RateLimitInfo(),
    )


def test_recorded_response() -> None:
    r = parse(RECORDED)
    assert r.request_id == "0554b22b-7ea3-4e28-8306-8aeee83ca384"
    assert r.model_answered == "claude-haiku-4-5-20251001" and not r.served_by_fallback
    assert r.content == "PONG" and r.refusal is None
    assert (r.finish_reason, r.finish_reason_raw) == ("stop", "end_turn")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (16, 6, 22)
    assert r.usage.cached_tokens == 4
    assert r.response_time_ns == 1030392710 and r.http_status == 200 and r.latency_ms == 12.5
    assert not r.has_tool_calls
    assert json.loads(r.raw_body) == RECORDED


def test_model_answered_prefers_top_level_model() -> None:
    body = {**RECORDED, "model": "gemini-2.5-flash", "request": {"model": "claude-x"}}
    r = parse(body, model="claude-x")
    assert r.model_answered == "gemini-2.5-flash" and r.served_by_fallback


def test_without_a_top_level_model_the_answering_model_is_the_only_one_or_unknown() -> None:
    """The ``request`` echo repeats the model requested: it is no evidence of who answered. A
    request without fallbacks could only be answered by its model; one with fallbacks by any."""
    body = {k: v for k, v in RECORDED.items() if k != "model"}
    echoed = {**body, "request": {"model": "echoed"}}
    assert parse(echoed, model="asked").model_answered == "asked"
    assert parse({**body, "model": None, "request": {}}, model="asked").model_answered == "asked"
    unknown = parse(echoed, model="asked", with_fallbacks=True)
    assert unknown.model_answered is None and not unknown.served_by_fallback
    named = parse({**body, "model": "fb"}, model="asked", with_fallbacks=True)
    assert named.model_answered == "fb" and named.served_by_fallback


def test_retirement_date_is_read_as_a_date_or_nothing() -> None:
    from datetime import date

    from worker.gateway.response import parse_model

    def retires(value: Any) -> Any:
        info = parse_model({"id": "m", "retirement_date": value})
        assert info is not None
        return info.retirement_date

    assert retires("2026-12-31") == date(2026, 12, 31)
    assert retires("2026-12-31T00:00:00Z") == date(2026, 12, 31)
    assert retires(None) is None and retires("soon") is None and retires(20261231) is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("something_new", "something_new"),
        (None, None),
    ],
)
def test_finish_reason_normalised(raw: str | None, normal: str | None) -> None:
    assert normalise_finish_reason(raw) == normal
    body = {**RECORDED, "choices": [{"message": {"content": "x"}, "finish_reason": raw}]}
    r = parse(body)
    assert (r.finish_reason, r.finish_reason_raw) == (normal, raw)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}, (3, 4, 7, None)),
        ({"prompt_tokens": 3, "completion_tokens": 4}, (3, 4, 7, None)),
        ({"input_tokens": 3, "output_tokens": 4}, (3, 4, 7, None)),
        (
            {"input_tokens": 3, "prompt_tokens": 99, "output_tokens": 1, "completion_tokens": 98},
            (3, 1, 4, None),
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 8},
            },
            (10, 2, 12, 8),
        ),
        ({"input_tokens": "3"}, (None, None, None, None)),
        (None, (None, None, None, None)),
        ("junk", (None, None, None, None)),
    ],
)
def test_usage_namings(usage: Any, expected: tuple[int | None, ...]) -> None:
    u = parse_usage(usage)
    assert (u.input_tokens, u.output_tokens, u.total_tokens, u.cached_tokens) == expected


def test_content_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}, {"x": 1}]
    body = {**RECORDED, "choices": [{"message": {"content": parts}, "finish_reason": "stop"}]}
    assert parse(body).content == "Hello, world"


def test_split_choices_text_and_tool_calls() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        **RECORDED,
        "choices": [
            {
                "index": 0,
                "message": {"content": None, "tool_calls": [call]},
                "finish_reason": "tool_use",
            },
            {"index": 1, "message": {"content": ""}, "finish_reason": None},
            {"index": 2, "message": {"content": "the text"}, "finish_reason": "end_turn"},
        ],
    }
    r = parse(body)
    assert r.content == "the text"
    assert r.has_tool_calls and r.tool_calls == [call]
    assert (r.finish_reason, r.finish_reason_raw) == ("tool_calls", "tool_use")


def test_tool_calls_on_choice_old_shape() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {**RECORDED, "choices": [{"message": {"content": None}, "tool_calls": [call]}]}
    r = parse(body)
    assert r.has_tool_calls and r.content is None


def test_refusal() -> None:
    body = {
        **RECORDED,
        "choices": [
            {"message": {"content": None, "refusal": "I can't"}, "finish_reason": "refusal"}
        ],
    }
    r = parse(body)
    assert (r.refusal, r.content, r.finish_reason) == ("I can't", None, "refusal")


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"request_id": "r"}),
        json.dumps({"choices": []}),
        json.dumps({"choices": "x", "request_id": "rid"}),
    ],
)
def test_malformed_success_is_server_error(body: str) -> None:
    with pytest.raises(ServerError, match="malformed gateway response") as info:
        parse(body, model="m")
    assert info.value.status == 200 and info.value.model == "m"
    assert info.value.body == body


def test_malformed_success_keeps_request_id() -> None:
    with pytest.raises(ServerError) as info:
        parse({"request_id": "rid-x", "choices": None})
    assert info.value.request_id == "rid-x"


def test_raw_body_not_in_repr() -> None:
    assert "raw_body" not in repr(parse(RECORDED))


def test_catalog_parsing_is_defensive() -> None:
    text = json.dumps(
        {
            "data": [
                {
                    "id": "claude-sonnet-4-6",
                    "context_length": 200000,
                    "supported_parameters": ["max_tokens", "response_format"],
                    "available_regions": ["us", "eu", "global"],
                    "pricing": {"input": 3, "output": "15.0", "cache_read": 0.3},
                    "providers": [{"id": "bedrock"}],
                    "new_field": {"x": 1},
                },
                {
                    "id": "gpt-5",
                    "pricing": {"prompt": "0.00000125", "completion": "0.00001"},
                    "available_regions": "us",
                },
                {
                    "id": "odd",
                    "context_length": "big",
                    "supported_parameters": None,
                    "pricing": {"input": "free"},
                },
                {"name": "no id"},
                "junk",
            ]
        }
    )
    catalog = parse_catalog(text)
    assert set(catalog) == {"claude-sonnet-4-6", "gpt-5", "odd"}
    claude = catalog["claude-sonnet-4-6"]
    assert claude.context_length == 200000
    assert claude.supported_parameters == frozenset({"max_tokens", "response_format"})
    assert claude.available_regions == frozenset({"us", "eu", "global"})
    assert (claude.input_usd_per_mtok, claude.output_usd_per_mtok) == (3.0, 15.0)
    gpt = catalog["gpt-5"]
    assert gpt.input_usd_per_mtok == pytest.approx(1.25)
    assert gpt.output_usd_per_mtok == pytest.approx(10.0)
    assert gpt.available_regions == frozenset({"us"})
    odd = catalog["odd"]
    assert (odd.context_length, odd.supported_parameters, odd.input_usd_per_mtok) == (
        None,
        None,
        None,
    )


def test_catalog_bare_list_and_garbage() -> None:
    assert set(parse_catalog(json.dumps([{"id": "a"}]))) == {"a"}
    with pytest.raises(ServerError):
        parse_catalog("<html>")
    with pytest.raises(ServerError):
        parse_catalog(json.dumps({"models": []}))


def test_reasoning_tokens_are_read_from_completion_details_or_the_usage_itself() -> None:
    from worker.gateway.response import parse_usage

    details = {"output_tokens": 90, "completion_tokens_details": {"reasoning_tokens": 64}}
    assert parse_usage(details).reasoning_tokens == 64
    assert parse_usage({"output_tokens": 9, "reasoning_tokens": 5}).reasoning_tokens == 5
    assert parse_usage({"output_tokens": 9}).reasoning_tokens is None
