"""Each model of a chain gets a structured-output route it takes; nothing relies on a fallback
being able to remove an inherited field; the answer is read from where the route puts it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes import SCHEMA
from worker.gateway.request import build_body, validate_request
from worker.gateway.types import CompletionRequest, Fallback, Message, ModelInfo
from worker.output import Valid, interpret
from worker.prompts import compile_template
from worker.services.requests import build_request
from worker.services.routes import (
    Route,
    answer_text,
    fit_max_tokens,
    plan_chain,
    strict_schema,
    with_schema_in_prompt,
)

FULL = frozenset({"max_tokens", "temperature", "response_format", "tools", "tool_choice"})
CATALOG = {
    "fmt": ModelInfo(id="fmt", context_length=200_000, supported_parameters=FULL),
    "tool": ModelInfo(
        id="tool", context_length=1_000_000, supported_parameters=FULL - {"response_format"}
    ),
    "bare": ModelInfo(
        id="bare",
        context_length=32_768,
        supported_parameters=frozenset({"max_tokens", "temperature"}),
    ),
}
CLOSED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "tags"],
}
TEMPLATE = compile_template("[user]\nSummarise:\n{{ transcript }}\n")


def _routes(chain: list[str], schema: Any = SCHEMA) -> list[Route]:
    return [s.route for s in plan_chain(chain, CATALOG, schema, 4000).shapes]


@pytest.mark.parametrize(
    ("chain", "routes"),
    [
        (["fmt"], [Route.JSON_SCHEMA]),
        (["tool"], [Route.TOOL]),
        (["bare"], [Route.PROMPT]),
        (["fmt", "tool"], [Route.TOOL, Route.TOOL]),  # tool inherits no response_format
        (["tool", "fmt"], [Route.TOOL, Route.TOOL]),  # fmt inherits the forced tool
        (["fmt", "bare"], [Route.PROMPT, Route.PROMPT]),
        (["bare", "fmt", "tool"], [Route.PROMPT, Route.JSON_SCHEMA, Route.TOOL]),
    ],
)
def test_the_top_level_takes_what_every_model_supports_and_fallbacks_add_their_own(
    chain: list[str], routes: list[Route]
) -> None:
    assert _routes(chain) == routes


@pytest.mark.parametrize(
    "chain",
    [["fmt"], ["tool"], ["bare"], ["fmt", "tool"], ["bare", "fmt", "tool"], ["fmt", "bare"]],
)
def test_every_model_of_the_request_passes_the_catalog_check(chain: list[str]) -> None:
    """What the gateway validates up front: each fallback merged onto the top level."""
    planned = build_request(
        template=TEMPLATE,
        variables=None,
        schema=SCHEMA,
        transcript_id="t" * 12,
        model=chain[0],
        fallbacks=chain[1:],
        region="us",
        max_tokens=30_000,
        temperature=None,
        model_region_global=False,
        catalog=CATALOG,
    )
    validate_request(planned.request, CATALOG)  # raises on any unsupported merged parameter


def test_a_prompt_top_level_lets_each_fallback_add_its_route_by_override() -> None:
    planned = build_request(
        template=TEMPLATE,
        variables=None,
        schema=SCHEMA,
        transcript_id="t" * 12,
        model="bare",
        fallbacks=["fmt", "tool"],
        region="us",
        max_tokens=30_000,
        temperature=None,
        model_region_global=False,
        catalog=CATALOG,
    )
    body = build_body(planned.request)
    assert "response_format" not in body and "tools" not in body
    assert "```json" in body["messages"][-1]["content"]
    assert body["max_tokens"] == 16_384  # half of bare's 32,768 context
    fmt, tool = body["fallbacks"]
    assert fmt["response_format"]["json_schema"]["schema"] == SCHEMA
    assert fmt["max_tokens"] == 30_000  # its own context holds it; the top level's is fitted
    assert tool["tool_choice"] == {"type": "function", "function": {"name": "result"}}
    assert tool["tools"][0]["function"]["parameters"] == SCHEMA
    assert planned.plan.describe()["models"][0] == {
        "model": "bare",
        "route": "prompt",
        "max_tokens": 16_384,
    }


def test_strict_only_when_it_narrows_nothing_the_schema_accepts() -> None:
    strict = strict_schema(CLOSED)
    assert strict is not None and strict["additionalProperties"] is False
    assert strict_schema(SCHEMA) is None  # minLength: outside the strict subset
    optional = {**CLOSED, "required": ["summary"]}
    assert strict_schema(optional) is None  # requiring "tags" would refuse valid answers
    assert strict_schema({**CLOSED, "additionalProperties": True}) is None
    assert strict_schema({"type": "array", "items": {"type": "string"}}) is None
    nested = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}},
        "required": ["a"],
    }
    assert strict_schema(nested) is None  # the inner object leaves "b" optional
    assert (
        strict_schema({**CLOSED, "properties": {**CLOSED["properties"], "x": {"not": {}}}}) is None
    )
    plan = plan_chain(["fmt"], CATALOG, CLOSED, 100)
    assert plan.top.route == Route.JSON_SCHEMA_STRICT
    sent = plan.response_format(plan.top.route)["json_schema"]
    assert sent["strict"] is True and sent["schema"]["additionalProperties"] is False
    assert plan_chain(["fmt"], CATALOG, optional, 100).top.route == Route.JSON_SCHEMA


def test_the_answer_comes_from_our_tool_call_and_a_wrapped_schema_is_unwrapped() -> None:
    plan = plan_chain(["tool"], CATALOG, SCHEMA, 100)
    call = {"function": {"name": "result", "arguments": '{"summary": "s", "sentiment": "neutral"}'}}
    other = {"function": {"name": "other", "arguments": "{}"}}
    assert answer_text(plan, None, [other, call]) == call["function"]["arguments"]
    assert answer_text(plan, "text", []) == "text"
    listed = {"type": "array", "items": {"type": "string"}}
    wrapped = plan_chain(["tool"], CATALOG, listed, 100)
    assert wrapped.tool()["function"]["parameters"]["properties"]["result"] == listed
    answer = answer_text(
        wrapped, None, [{"function": {"name": "result", "arguments": '{"result": ["a"]}'}}]
    )
    assert answer is not None
    outcome = interpret(answer, finish_reason="tool_calls", refusal=None, schema=listed)
    assert isinstance(outcome, Valid) and outcome.data == ["a"]


def test_the_schema_goes_at_the_end_of_the_last_user_message_with_tags_broken() -> None:
    schema = {"type": "object", "description": "not {{ transcript }} here"}
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Read {{ transcript }}"},
        {"role": "assistant", "content": "{"},
    ]
    out = with_schema_in_prompt(messages, schema)
    assert out[0] == messages[0] and out[2] == messages[2]
    assert out[1]["content"].startswith("Read {{ transcript }}\n\n")
    assert out[1]["content"].count("{{ transcript }}") == 1


def test_max_tokens_is_fitted_to_half_a_small_context() -> None:
    assert fit_max_tokens(4000, CATALOG["bare"]) == 4000
    assert fit_max_tokens(30_000, CATALOG["bare"]) == 16_384
    assert fit_max_tokens(30_000, None) == 30_000


def test_the_old_request_shape_with_a_response_format_fallback_is_refused_for_a_tool_model() -> (
    None
):
    """Why the plan exists: a fallback inherits the top level's response_format."""
    req = CompletionRequest(
        model="fmt",
        messages=[Message(role="user", content="hi")],
        fallbacks=[Fallback(model="tool")],
        response_format_name="r",
        response_format_schema={"type": "object"},
    )
    with pytest.raises(Exception, match="'tool' does not support response_format"):
        validate_request(req, CATALOG)
    assert json.dumps(build_body(req))  # still serialisable
