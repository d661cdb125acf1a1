"""Schemas at the boundary, answer interpretation (order, repair, validation) and re-asks."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from worker import schema_regex, schemas
from worker.errors import InputError
from worker.gateway.types import TRANSCRIPT_TAG
from worker.output import (
    Invalid,
    Outcome,
    Refused,
    Truncated,
    Valid,
    build_reask_messages,
    check_schema,
    interpret,
    schema_hash,
    validator_for,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
        "action_items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "owner": {"type": "string", "format": "email"},
                    "due": {"type": "string", "format": "date"},
                    "done": {"type": "boolean"},
                },
                "required": ["owner"],
            },
        },
    },
    "required": ["summary", "sentiment"],
}
GOOD = {"summary": "Call went well", "sentiment": "positive"}


def answer(
    content: str | None, finish_reason: str | None = "stop", refusal: str | None = None
) -> Outcome:
    return interpret(content, finish_reason=finish_reason, refusal=refusal, schema=SCHEMA)


# check_schema


def test_valid_schema_passes() -> None:
    check_schema(SCHEMA, source="s.json")
    check_schema(True, source="s.json")


@pytest.mark.parametrize("bad", [[{"type": "object"}], "object", 3, None])
def test_schema_must_be_object_or_boolean(bad: object) -> None:
    with pytest.raises(InputError, match=r"^s\.json: a JSON Schema must be"):
        check_schema(bad, source="s.json")


def test_invalid_schema_names_file_and_path() -> None:
    bad = {"type": "object", "properties": {"due": {"type": "strnig"}}}
    with pytest.raises(InputError) as info:
        check_schema(bad, source="jobs/schema.json")
    assert str(info.value).startswith("jobs/schema.json: invalid JSON Schema at ")
    assert "$.properties.due.type" in str(info.value)


def test_schema_size_bound() -> None:
    big = {"description": "x" * schemas.MAX_SCHEMA_BYTES}
    with pytest.raises(InputError, match="limit"):
        check_schema(big, source="s.json")


def test_unresolvable_local_ref_is_rejected_with_its_path() -> None:
    bad = {"properties": {"a": {"$ref": "#/$defs/missing"}}, "$defs": {"b": {}}}
    with pytest.raises(InputError) as info:
        check_schema(bad, source="s.json")
    assert "'#/$defs/missing'" in str(info.value)
    assert "$.properties.a.$ref" in str(info.value)


def test_remote_ref_is_rejected() -> None:
    with pytest.raises(InputError, match="cannot be resolved"):
        check_schema({"$ref": "https://example.com/other.json"}, source="s.json")


@pytest.mark.parametrize(
    "good",
    [
        {"$defs": {"d": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/d"}}},
        {"$defs": {"d": {"$anchor": "day", "type": "string"}}, "$ref": "#day"},
        {
            "$id": "https://tbatch.example/root.json",
            "$defs": {
                "item": {
                    "$id": "item.json",
                    "$defs": {"when": {"type": "string"}},
                    "properties": {"due": {"$ref": "#/$defs/when"}},
                }
            },
            "$ref": "item.json",
        },
        {"$ref": "https://json-schema.org/draft/2020-12/schema"},
        {"const": {"$ref": "#/not/a/reference"}},
        {"properties": {"$ref": {"type": "string"}}},
    ],
)
def test_resolvable_refs_and_ref_lookalikes_pass(good: dict[str, Any]) -> None:
    check_schema(good, source="s.json")


def test_schema_hash_is_canonical() -> None:
    reordered = json.loads(json.dumps(SCHEMA, indent=4))
    reordered = dict(reversed(list(reordered.items())))
    assert schema_hash(reordered) == schema_hash(SCHEMA)
    assert schema_hash({"type": "string"}) != schema_hash({"type": "integer"})
    assert len(schema_hash(SCHEMA)) == 64


# The validator cache


def test_validators_are_cached_by_schema_hash() -> None:
    assert validator_for(SCHEMA) is validator_for(copy.deepcopy(SCHEMA))
    assert validator_for(SCHEMA) is not validator_for({"type": "string"})


def test_interpret_builds_one_validator_per_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "object", "title": uuid.uuid4().hex}
    validator_for({"type": "null"})  # builds the shared format checker before patching
    real = schema_regex.BoundedValidator  # what worker.schemas builds validators with
    built: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(schemas, "BoundedValidator", counting)
    for _ in range(50):
        assert isinstance(interpret("{}", finish_reason="stop", refusal=None, schema=schema), Valid)
    assert built == [schema]


# Order: refusal and truncation come first and are never repaired


def test_refusal_text_wins_over_broken_json() -> None:
    outcome = answer('{"summary": "x",', finish_reason="stop", refusal="I can't help with that.")
    assert outcome == Refused(reason="I can't help with that.", finish_reason="stop")


@pytest.mark.parametrize("reason", ["refusal", "content_filter", "SAFETY"])
def test_refusal_finish_reasons(reason: str) -> None:
    outcome = answer('{"summary": ', finish_reason=reason)
    assert isinstance(outcome, Refused)
    assert reason in outcome.reason


def test_refusal_comes_before_truncation() -> None:
    assert isinstance(answer("{", finish_reason="length", refusal="No."), Refused)


@pytest.mark.parametrize("reason", ["length", "max_tokens", "MAX_TOKENS"])
def test_truncated_broken_json_is_not_repaired(reason: str) -> None:
    content = '{"summary": "The customer asked about'
    outcome = answer(content, finish_reason=reason)
    assert outcome == Truncated(finish_reason=reason, content=content)


def test_truncated_even_when_the_cut_text_happens_to_parse() -> None:
    assert isinstance(answer(json.dumps(GOOD), finish_reason="length"), Truncated)


def test_blank_refusal_text_is_not_a_refusal() -> None:
    assert isinstance(answer(json.dumps(GOOD), refusal="  "), Valid)


@pytest.mark.parametrize("content", [None, "", "  \n "])
def test_empty_answer(content: str | None) -> None:
    assert answer(content) == Invalid(data=None, errors=["empty answer"])


# Parsing and repair


def test_clean_json_is_valid_and_not_repaired() -> None:
    outcome = answer(json.dumps(GOOD), finish_reason="end_turn")
    assert outcome == Valid(data=GOOD, repaired=False, repairs=[])


EXPECTED = {"summary": "ok", "sentiment": "neutral"}


@pytest.mark.parametrize(
    ("content", "repairs"),
    [
        ('```json\n{"summary": "ok", "sentiment": "neutral"}\n```', ["code_fence"]),
        ('```\n{"summary": "ok", "sentiment": "neutral"}\n```\n', ["code_fence"]),
        (
            'Here you go:\n```json\n{"summary": "ok", "sentiment": "neutral"}\n```\nAnything else?',
            ["code_fence"],
        ),
        ('```json\n{"summary": "ok", "sentiment": "neutral",}\n```', ["code_fence", "json_repair"]),
        (
            'Sure! Here is the JSON: {"summary": "ok", "sentiment": "neutral"} Hope this helps.',
            ["json_repair"],
        ),
        ('{"summary": "ok", "sentiment": "neutral",}', ["json_repair"]),
        ("{'summary': 'ok', 'sentiment': 'neutral'}", ["json_repair"]),
        ("{summary: 'ok', sentiment: 'neutral',}", ["json_repair"]),
        ('{"summary": "ok", "sentiment": "neutral"', ["json_repair"]),
    ],
    ids=[
        "fence",
        "fence-no-lang",
        "prose-around-fence",
        "fence-and-trailing-comma",
        "prose-around-json",
        "trailing-comma",
        "single-quotes",
        "js-object",
        "cut-off-but-finish-stop",
    ],
)
def test_malformations_real_models_emit(content: str, repairs: list[str]) -> None:
    assert answer(content) == Valid(data=EXPECTED, repaired=True, repairs=repairs)


def test_python_literals_are_repaired() -> None:
    content = (
        '{"summary": "ok", "sentiment": "neutral", '
        '"action_items": [{"owner": "a@b.co", "done": True}, {"owner": "c@d.co", "done": None}]}'
    )
    outcome = answer(content)
    assert isinstance(outcome, Invalid)  # None is not a boolean: repaired, then validated
    assert outcome.repaired and outcome.repairs == ["json_repair"]
    assert outcome.data["action_items"][0]["done"] is True
    assert outcome.errors == ["at $.action_items[1].done: None is not of type 'boolean'"]


def test_cut_off_with_finish_stop_is_repaired_then_validated() -> None:
    outcome = answer('{"summary": "The call')
    assert isinstance(outcome, Invalid)
    assert outcome.repaired
    assert outcome.data == {"summary": "The call"}
    assert outcome.errors == ["at $: 'sentiment' is a required property"]


@pytest.mark.parametrize(
    "content",
    ["I'm sorry, I can't produce that.", "{,}", "[,]", "True", "'just a string'", "NaN"],
)
def test_never_repaired_into_an_empty_or_scalar_result(content: str) -> None:
    outcome = answer(content)
    assert isinstance(outcome, Invalid)
    assert outcome.data is None
    assert not outcome.repaired
    assert len(outcome.errors) == 1 and outcome.errors[0].startswith("unparseable: ")


def test_non_finite_numbers_are_not_json() -> None:
    outcome = answer('{"summary": "ok", "sentiment": "neutral", "score": NaN}')
    assert isinstance(outcome, Invalid) and outcome.data is None
    assert "NaN" in outcome.errors[0]


def test_a_genuinely_empty_object_is_parsed_not_rejected() -> None:
    outcome = answer("{}")
    assert isinstance(outcome, Invalid)
    assert outcome.data == {} and not outcome.repaired
    assert "required property" in outcome.errors[0]


# Validation


def test_all_errors_with_paths_sorted() -> None:
    data = {
        "sentiment": "angry",
        "action_items": [
            {"owner": "a@b.co", "due": "2024-02-30"},
            {"owner": "not-an-email", "due": "2024-03-01", "done": "yes"},
            {"due": "tomorrow"},
        ],
    }
    outcome = answer(json.dumps(data))
    assert isinstance(outcome, Invalid) and outcome.data == data
    assert outcome.errors == [
        "at $: 'summary' is a required property",
        "at $.action_items[0].due: '2024-02-30' is not a 'date'",
        "at $.action_items[1].done: 'yes' is not of type 'boolean'",
        "at $.action_items[1].owner: 'not-an-email' is not a 'email'",
        "at $.action_items[2]: 'owner' is a required property",
        "at $.action_items[2].due: 'tomorrow' is not a 'date'",
        "at $.sentiment: 'angry' is not one of ['positive', 'neutral', 'negative']",
    ]


def test_odd_keys_are_quoted_in_paths() -> None:
    schema = {"properties": {"due date": {"type": "string"}}}
    outcome = interpret('{"due date": 1}', finish_reason="stop", refusal=None, schema=schema)
    assert isinstance(outcome, Invalid)
    assert outcome.errors == ["at $['due date']: 1 is not of type 'string'"]


def test_date_time_format_is_checked() -> None:
    schema = {"type": "string", "format": "date-time"}
    good = interpret('"2024-05-01T10:00:00Z"', finish_reason="stop", refusal=None, schema=schema)
    bad = interpret('"2024-05-01 morning"', finish_reason="stop", refusal=None, schema=schema)
    assert isinstance(good, Valid)
    assert isinstance(bad, Invalid) and "date-time" in bad.errors[0]


def test_errors_are_capped_in_number_and_length() -> None:
    schema = {"type": "array", "items": {"type": "string", "maxLength": 1}}
    outcome = interpret(
        json.dumps(["x" * 1000] * 30), finish_reason="stop", refusal=None, schema=schema
    )
    assert isinstance(outcome, Invalid)
    assert len(outcome.errors) == 20
    assert outcome.errors[-1] == "... and 11 more errors"
    assert all(len(error) <= 300 for error in outcome.errors)
    assert outcome.errors[0].endswith("…")
    assert [error[:7] for error in outcome.errors[9:12]] == ["at $[9]", "at $[10", "at $[11"]


def test_outcome_kinds() -> None:
    assert [Valid.kind, Invalid.kind, Refused.kind, Truncated.kind] == [
        "valid",
        "invalid",
        "refused",
        "truncated",
    ]


# Re-ask


MESSAGES = [
    {"role": "system", "content": "Extract action items as JSON."},
    {"role": "user", "content": f"Transcript:\n{TRANSCRIPT_TAG}\nAnswer in JSON."},
]


def first_tag_position(messages: list[dict[str, str]]) -> tuple[int, int]:
    for index, message in enumerate(messages):
        if TRANSCRIPT_TAG in message["content"]:
            return index, message["content"].index(TRANSCRIPT_TAG)
    raise AssertionError("no tag")


def test_reask_keeps_the_originals_and_lists_errors() -> None:
    original = copy.deepcopy(MESSAGES)
    errors = ["at $: 'summary' is a required property", "at $.sentiment: 'x' is not one of"]
    out = build_reask_messages(MESSAGES, '{"sentiment": "x"}', errors)
    assert original == MESSAGES  # not mutated
    assert out[:2] == MESSAGES
    assert out[2] == {"role": "assistant", "content": '{"sentiment": "x"}'}
    assert out[3]["role"] == "user"
    assert all(f"- {error}" in out[3]["content"] for error in errors)
    assert "JSON only" in out[3]["content"]
    assert len(out) == 4


def test_reask_neutralises_tags_in_answer_and_errors() -> None:
    previous = f'{{"summary": "they said {TRANSCRIPT_TAG} and {{{{transcript}}}}"}}'
    errors = [f"at $.summary: '{TRANSCRIPT_TAG}' is too long"]
    out = build_reask_messages(MESSAGES, previous, errors)
    assert first_tag_position(out) == first_tag_position(MESSAGES)
    assert sum(m["content"].count(TRANSCRIPT_TAG) for m in out) == 1
    assert "{ { transcript } }" in out[2]["content"]
    assert "{ {transcript} }" in out[2]["content"]
    assert "{ { transcript } }" in out[3]["content"]


def test_reask_after_an_empty_answer_has_no_empty_assistant_message() -> None:
    out = build_reask_messages(MESSAGES, "  ", ["empty answer"])
    assert [m["role"] for m in out] == ["system", "user", "user"]
    assert "- empty answer" in out[-1]["content"]


def test_reask_continues_an_assistant_prefill() -> None:
    prefilled = [*MESSAGES, {"role": "assistant", "content": "{"}]
    out = build_reask_messages(prefilled, '"summary": 1}', ["at $.summary: 1 is not a string"])
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[2]["content"] == '{"summary": 1}'
    assert first_tag_position(out) == (1, MESSAGES[1]["content"].index(TRANSCRIPT_TAG))
