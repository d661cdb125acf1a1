"""Schemas are checked once, at the door: every reference resolves inside the schema (never over
the network) and patterns compile; in a worker, no pattern can stall the process."""

from __future__ import annotations

import re
import threading
import urllib.request
from typing import Any

import pytest

from worker.errors import InputError
from worker.schemas import check_schema, validation_errors


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        # A property *named* like a data keyword is a subschema like any other.
        ({"properties": {"default": {"$ref": "#/$defs/missing"}}}, "$.properties.default.$ref"),
        ({"properties": {"enum": {"$ref": "#/$defs/missing"}}}, "$.properties.enum.$ref"),
        ({"properties": {"x": {"items": {"$ref": "#/nope"}}}}, "$.properties.x.items.$ref"),
        ({"$dynamicRef": "#no-such-anchor"}, "$.$dynamicRef"),
        ({"allOf": [{"$ref": "https://example.com/remote.json"}]}, "$.allOf[0].$ref"),
    ],
)
def test_every_unresolvable_reference_is_refused_with_its_place(
    schema: dict[str, Any], where: str
) -> None:
    with pytest.raises(InputError, match=rf"at {re.escape(where)} cannot be resolved"):
        check_schema(schema, source="s.json")


@pytest.mark.parametrize(
    "schema",
    [
        {"enum": [{"$ref": "not a reference: data"}], "default": {"$ref": "also data"}},
        {"$defs": {"a": {"type": "string"}}, "properties": {"const": {"$ref": "#/$defs/a"}}},
        {"$dynamicAnchor": "node", "properties": {"child": {"$dynamicRef": "#node"}}},
        {"$ref": "https://json-schema.org/draft/2020-12/schema"},  # a bundled meta-schema
    ],
)
def test_resolvable_references_and_data_that_looks_like_one_pass(schema: dict[str, Any]) -> None:
    check_schema(schema, source="s.json")


def test_a_remote_reference_is_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[object] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: fetched.append(a))
    schema = {"properties": {"x": {"$ref": "https://example.com/remote.json"}}}
    # Stored without the door check (an older tbatch): validation must not reach for it. (A
    # worker checks stored schemas before the call too, and fails such a job as bad_content.)
    with pytest.raises(Exception, match=r"remote\.json"):
        validation_errors({"x": 1}, schema)
    assert fetched == []


def test_a_pattern_that_does_not_compile_is_refused_at_enqueue() -> None:
    with pytest.raises(InputError, match=r"at \$\.patternProperties: '\(x' is not a 'regex'"):
        check_schema({"patternProperties": {"(x": {}}}, source="s.json")


def test_a_catastrophic_pattern_is_bounded_and_does_not_hold_other_threads() -> None:
    schema = {"type": "string", "pattern": "^(a|aa)*$"}
    done = threading.Event()
    errors: list[str] = []

    def validate() -> None:
        errors.extend(validation_errors("a" * 64 + "!", schema))
        done.set()

    worker = threading.Thread(target=validate)
    worker.start()
    # Another thread (the heartbeat, say) runs while the match backtracks.
    progressed = sum(range(200_000)) > 0
    still_matching = not done.is_set()
    worker.join(timeout=10)
    assert progressed and still_matching
    assert done.is_set() and errors and "did not finish within" in errors[0]
