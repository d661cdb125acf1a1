"""Every schema in the corpus gets a conforming, deterministic answer from the emulated model."""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from emulator.answers.instances import instance_for, text_answer
from emulator.answers.source import analyse

TRANSCRIPT = (
    "Thank you for calling Brightline Internet, this is Priya, how can I help you today? "
    "Hi Priya, my name is Marcus Johnson and my internet keeps dropping every evening. "
    "I can see 14 disconnects on your line since Tuesday. Honestly this is really frustrating, "
    "I work from home. I'm going to apply a credit of 40 dollars for the outage. "
    "I can schedule a technician visit for Friday between eight and noon."
)

CALL_ANALYTICS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "sentiment", "topics", "action_items", "compliance", "call_score"],
    "properties": {
        "summary": {"type": "string", "minLength": 20, "maxLength": 600},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative", "mixed"]},
        "topics": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
        "action_items": {"type": "array", "items": {"$ref": "#/$defs/action_item"}},
        "compliance": {"$ref": "#/$defs/compliance"},
        "call_score": {"type": "integer", "minimum": 1, "maximum": 10},
        "escalated_at": {"type": ["string", "null"], "format": "date-time"},
    },
    "$defs": {
        "action_item": {
            "type": "object",
            "additionalProperties": False,
            "required": ["owner", "description", "priority"],
            "properties": {
                "owner": {"type": "string", "enum": ["agent", "customer", "supervisor"]},
                "description": {"type": "string", "minLength": 5},
                "priority": {"type": "string", "enum": ["low", "medium", "high"]},
                "due_date": {"type": "string", "format": "date"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "compliance": {
            "type": "object",
            "required": ["recording_disclosure", "identity_verified", "prohibited_language"],
            "properties": {
                "recording_disclosure": {"type": "boolean"},
                "identity_verified": {"type": "boolean"},
                "prohibited_language": {"type": "boolean"},
                "notes": {"type": "string", "maxLength": 80},
            },
            "additionalProperties": False,
        },
    },
}

TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "required": ["label", "children"],
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
            },
            "additionalProperties": False,
        }
    },
    "$ref": "#/$defs/node",
}

NUMBERS = {
    "type": "object",
    "required": ["a", "b", "c", "d", "e", "f", "g"],
    "properties": {
        "a": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
        "b": {"type": "number", "minimum": -5.5, "maximum": -5.25},
        "c": {"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 50},
        "d": {"type": "number", "multipleOf": 0.5, "minimum": 1, "maximum": 3},
        "e": {"type": "number", "multipleOf": 0.1, "minimum": 0, "maximum": 1},
        "f": {"type": "number", "exclusiveMinimum": 0.999, "exclusiveMaximum": 1.001},
        "g": {"type": "integer", "minimum": 1000000},
    },
}

FORMATS = {
    "type": "object",
    "required": ["when", "day", "at", "email", "id", "url", "ip4", "ip6", "took", "host"],
    "properties": {
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "time"},
        "email": {"type": "string", "format": "email"},
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string", "format": "uri"},
        "ip4": {"type": "string", "format": "ipv4"},
        "ip6": {"type": "string", "format": "ipv6"},
        "took": {"type": "string", "format": "duration"},
        "host": {"type": "string", "format": "hostname"},
        "other": {"type": "string", "format": "made-up-format"},
    },
}

PATTERNS = {
    "type": "object",
    "required": ["ticket", "answer", "phone", "code"],
    "properties": {
        "ticket": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
        "answer": {"type": "string", "pattern": "^(yes|no|maybe)$"},
        "phone": {"type": "string", "pattern": "^\\+1 \\(\\d{3}\\) \\d{3}-\\d{4}$"},
        "code": {"type": "string", "pattern": "[a-f0-9]{8}", "minLength": 8, "maxLength": 8},
    },
}

COMBINATORS = {
    "type": "object",
    "required": ["kind", "event", "either", "merged"],
    "properties": {
        "kind": {"const": "call"},
        "event": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["type", "amount"],
                    "additionalProperties": False,
                    "properties": {"type": {"const": "payment"}, "amount": {"type": "number"}},
                },
                {
                    "type": "object",
                    "required": ["type", "reason"],
                    "additionalProperties": False,
                    "properties": {"type": {"const": "refusal"}, "reason": {"type": "string"}},
                },
            ]
        },
        "either": {
            "anyOf": [{"type": "integer", "minimum": 5}, {"type": "string", "maxLength": 3}]
        },
        "merged": {
            "allOf": [
                {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
                {"properties": {"y": {"type": "string"}}, "required": ["y"]},
                {"properties": {"x": {"maximum": 3, "minimum": 1}}},
            ]
        },
        "overlap": {
            "oneOf": [{"type": "integer", "multipleOf": 3}, {"type": "integer", "multipleOf": 5}]
        },
        "not_empty": {"type": "string", "not": {"const": ""}},
    },
}

ARRAYS = {
    "type": "object",
    "required": ["tags", "pair", "scores", "with_yes", "exact"],
    "properties": {
        "tags": {
            "type": "array",
            "uniqueItems": True,
            "minItems": 3,
            "items": {"enum": ["billing", "outage", "refund", "upgrade"]},
        },
        "pair": {
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "integer"}],
            "items": False,
            "minItems": 2,
        },
        "scores": {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 5,
            "maxItems": 5,
        },
        "with_yes": {"type": "array", "items": {"type": "string"}, "contains": {"const": "yes"}},
        "exact": {"type": "array", "minItems": 0, "maxItems": 0},
    },
}

MISC = {
    "type": "object",
    "required": ["maybe", "mixed", "bag", "card", "short", "long", "anything"],
    "properties": {
        "maybe": {"type": ["null", "integer"]},
        "mixed": {"enum": [1, "two", None, True, {"k": 3}]},
        "bag": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
        "card": {
            "type": "object",
            "properties": {"number": {"type": "string"}, "cvv": {"type": "string"}},
            "dependentRequired": {"number": ["cvv"]},
        },
        "short": {"type": "string", "maxLength": 4},
        "long": {"type": "string", "minLength": 300},
        "anything": True,
        "never": False,
        "cond": {"type": "integer", "if": {"minimum": 50}, "then": {"multipleOf": 2}},
    },
}

DRAFT7_DEFS = {
    "definitions": {"speaker": {"type": "string", "enum": ["A", "B"]}},
    "type": "array",
    "minItems": 2,
    "items": {
        "type": "object",
        "properties": {"speaker": {"$ref": "#/definitions/speaker"}, "quote": {"type": "string"}},
        "required": ["speaker", "quote"],
    },
}

CORPUS = {
    "call_analytics": CALL_ANALYTICS,
    "tree": TREE,
    "numbers": NUMBERS,
    "formats": FORMATS,
    "patterns": PATTERNS,
    "combinators": COMBINATORS,
    "arrays": ARRAYS,
    "misc": MISC,
    "draft7_defs": DRAFT7_DEFS,
    "top_level_string": {"type": "string", "enum": ["A", "B", "C"]},
    "empty": {},
}

SOURCES = [analyse(TRANSCRIPT), analyse("Say PONG.")]


def _check_formats(value: Any) -> None:
    """Formats this environment's FormatChecker skips (no rfc3339 package), checked by hand."""
    if isinstance(value, dict):
        when = value.get("when")
        if isinstance(when, str):
            datetime.fromisoformat(when.replace("Z", "+00:00"))
        for item in value.values():
            _check_formats(item)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_instance_validates(name: str) -> None:
    schema = CORPUS[name]
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for seed in range(25):
        for src in SOURCES:
            value = instance_for(schema, random.Random(seed), src)
            errors = [e.message for e in validator.iter_errors(value)]
            assert not errors, f"{name} seed={seed}: {errors} in {json.dumps(value)}"
            _check_formats(value)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_same_seed_same_instance(name: str) -> None:
    schema = CORPUS[name]
    first = instance_for(schema, random.Random(42), SOURCES[0])
    assert instance_for(schema, random.Random(42), SOURCES[0]) == first


def test_seeds_vary_the_answer() -> None:
    answers = {
        json.dumps(instance_for(CALL_ANALYTICS, random.Random(s), SOURCES[0])) for s in range(8)
    }
    assert len(answers) > 4


def test_strings_come_from_the_transcript() -> None:
    value = instance_for(CALL_ANALYTICS, random.Random(1), SOURCES[0])
    assert value["summary"].split(".")[0] in TRANSCRIPT
    words = TRANSCRIPT.lower()
    assert all(any(w in words for w in t.split()) for t in value["topics"])


def test_text_answer_quotes_the_source() -> None:
    answer = text_answer(random.Random(3), SOURCES[0])
    assert answer.startswith("Summary: ")
    assert any(s in answer for s in SOURCES[0].sentences)
