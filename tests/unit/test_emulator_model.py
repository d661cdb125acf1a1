"""The emulated model: a schema written in the prompt, forced tools, faults on tool arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from emulator.answers.model import Completion, complete
from emulator.answers.prompt_schema import prompt_schema
from emulator.answers.source import analyse
from emulator.world.catalog import BY_ID

SRC = analyse("Hi, this is Priya from Brightline. Marcus asked for a refund of 40 dollars.")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "sentiment"],
    "properties": {
        "summary": {"type": "string", "minLength": 5},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
    },
}
TOOL_PARAMS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["priority", "owner"],
    "properties": {
        "priority": {"type": "integer", "minimum": 1, "maximum": 3},
        "owner": {"type": "string"},
    },
}
TOOLS = [
    {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "file_ticket", "parameters": TOOL_PARAMS}},
]
FORCED = {"type": "function", "function": {"name": "file_ticket"}}
FORMAT = {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}}


def fenced(body: object, info: str = "json") -> str:
    return f"```{info}\n{json.dumps(body, indent=2)}\n```"


def ask(messages: list[dict[str, Any]], model: str = "gpt-4.1", **req: Any) -> dict[str, Any]:
    return {"model": model, "messages": messages, **req}


def answer(req: dict[str, Any], fault: str | None = None, json_wanted: bool = False) -> Completion:
    return complete(req, BY_ID[req["model"]], SRC, (7, "answer"), fault, json_wanted)


def test_last_schema_looking_fence_in_system_or_user_messages_wins() -> None:
    decoy = {"type": "object", "properties": {"decoy": {"type": "string"}}}
    messages = [
        {"role": "system", "content": f"Old format:\n{fenced(decoy)}"},
        {"role": "user", "content": f"Answer in this format:\n{fenced(SCHEMA, '')}\nThanks."},
        {"role": "user", "content": f"An example answer:\n{fenced({'summary': 'x'})}"},
        {"role": "assistant", "content": fenced({"type": "string"})},
    ]
    assert prompt_schema(messages) == SCHEMA


@pytest.mark.parametrize(
    "content",
    [
        "Schema: " + json.dumps(SCHEMA),  # not fenced: transcript text may hold braces too
        fenced(SCHEMA, "python"),  # not a JSON fence
        fenced({"summary": "an example, not a schema"}),
        "```json\n{not json}\n```",
        "```json\n" + json.dumps(SCHEMA),  # never closed
    ],
)
def test_no_schema_unless_a_closed_json_fence_holds_one(content: str) -> None:
    assert prompt_schema([{"role": "user", "content": content}]) is None


def test_an_earlier_foreign_fence_does_not_swallow_the_schema() -> None:
    content = f"```python\nprint(1)\n```\nUse this:\n{fenced(SCHEMA)}"
    parts = [{"type": "text", "text": content}]
    assert prompt_schema([{"role": "user", "content": parts}]) == SCHEMA


def test_model_told_the_schema_in_the_prompt_answers_an_instance() -> None:
    req = ask([{"role": "user", "content": f"Summarise as:\n{fenced(SCHEMA)}"}])
    done = answer(req)
    assert done.content is not None and done.finish == "stop"
    Draft202012Validator(SCHEMA).validate(json.loads(done.content))
    plain = answer(ask([{"role": "user", "content": "Summarise the call."}]))
    assert plain.content is not None
    with pytest.raises(ValueError):
        json.loads(plain.content)


def test_content_faults_apply_to_a_prompt_schema() -> None:
    req = ask([{"role": "user", "content": fenced(SCHEMA)}])
    fenced_answer = answer(req, "code_fence").content
    assert fenced_answer is not None and fenced_answer.startswith("```json")
    violated = answer(req, "schema_violation").content
    assert violated is not None
    assert not Draft202012Validator(SCHEMA).is_valid(json.loads(violated))
    truncated = answer(req, "truncation")
    assert truncated.finish == "length"


def tool_answer(done: Completion) -> str:
    assert done.content is None and done.tool_calls is not None
    (call,) = done.tool_calls
    assert call["function"]["name"] == "file_ticket"
    arguments: str = call["function"]["arguments"]
    return arguments


def test_forced_tool_wins_over_response_format() -> None:
    req = ask([{"role": "user", "content": "File it."}], "gpt-5", tools=TOOLS, tool_choice=FORCED)
    done = answer({**req, "response_format": FORMAT})
    assert done.finish == "tool"
    Draft202012Validator(TOOL_PARAMS).validate(json.loads(tool_answer(done)))
    auto = answer({**req, "tool_choice": "auto", "response_format": FORMAT})
    assert auto.tool_calls is None and auto.content is not None
    Draft202012Validator(SCHEMA).validate(json.loads(auto.content))


@pytest.mark.parametrize("fault", ["code_fence", "trailing_comma", "truncated_json"])
def test_malformed_tool_arguments_do_not_parse(fault: str) -> None:
    req = ask([{"role": "user", "content": "File it."}], tools=TOOLS, tool_choice=FORCED)
    with pytest.raises(ValueError):
        json.loads(tool_answer(answer(req, fault)))


def test_schema_violation_and_truncation_reach_tool_arguments() -> None:
    req = ask([{"role": "user", "content": "File it."}], tools=TOOLS, tool_choice=FORCED)
    violated = json.loads(tool_answer(answer(req, "schema_violation")))
    assert not Draft202012Validator(TOOL_PARAMS).is_valid(violated)
    truncated = answer(req, "truncation")
    assert truncated.finish == "length"
    with pytest.raises(ValueError):
        json.loads(tool_answer(truncated))
