"""Fault decisions: pure, seeded, per (model, subject, n); rule parsing."""

from __future__ import annotations

import pytest

from emulator.config import MALFORMED_KINDS, FaultRule, parse_fault
from emulator.world.faults import FaultCounter, decide


def rule(**kw: object) -> FaultRule:
    return FaultRule.model_validate({"kind": "5xx", **kw})


def test_same_inputs_same_decision_and_rate_is_respected() -> None:
    rules = [rule(rate=0.25)]
    runs = [[decide(rules, 1, "m", f"t{i}", None, 0) for i in range(2000)] for _ in range(2)]
    assert runs[0] == runs[1]
    hit = sum(d is not None for d in runs[0]) / 2000
    assert 0.2 < hit < 0.3


def test_seed_and_attempt_number_change_the_dice() -> None:
    rules = [rule(rate=0.5)]
    by_seed = [decide(rules, s, "m", "t", None, 0) is not None for s in range(64)]
    by_n = [decide(rules, 1, "m", "t", None, n) is not None for n in range(64)]
    assert any(by_seed) and not all(by_seed)
    assert any(by_n) and not all(by_n)


def test_model_transcript_and_times_targeting() -> None:
    rules = [rule(model="gpt-5", transcript_ids=["a"], times=2)]
    assert decide(rules, 0, "gpt-5", "a", "a", 0) is not None
    assert decide(rules, 0, "gpt-5", "a", "a", 1) is not None
    assert decide(rules, 0, "gpt-5", "a", "a", 2) is None
    assert decide(rules, 0, "gpt-5", "b", "b", 0) is None
    assert decide(rules, 0, "claude-sonnet-4-6", "a", "a", 0) is None


def test_first_matching_rule_wins_and_malformed_picks_a_concrete_kind() -> None:
    rules = [rule(kind="malformed"), rule(kind="refusal")]
    kinds = {decide(rules, 3, "m", f"t{i}", None, 0).kind for i in range(200)}  # type: ignore[union-attr]
    assert kinds == set(MALFORMED_KINDS)
    pinned = decide([rule(status=504)], 0, "m", "t", None, 0)
    assert pinned is not None and pinned.status == 504


def test_counter_counts_per_model_and_subject() -> None:
    counter = FaultCounter()
    assert [counter.next("m", "t") for _ in range(3)] == [0, 1, 2]
    assert counter.next("m", "u") == 0 and counter.next("n", "t") == 0
    counter.clear()
    assert counter.next("m", "t") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5xx=0.1", {"kind": "5xx", "model": "*", "rate": 0.1}),
        ("claude-sonnet-4-6:malformed=0.2", {"kind": "malformed", "model": "claude-sonnet-4-6"}),
        ("refusal", {"kind": "refusal", "rate": 1.0}),
        ('{"kind": "hang", "times": 1, "transcript_ids": ["x"]}', {"times": 1}),
    ],
)
def test_parse_fault(text: str, expected: dict[str, object]) -> None:
    parsed = parse_fault(text).model_dump()
    assert {k: parsed[k] for k in expected} == expected


def test_parse_fault_rejects_unknown_kind_and_bad_rate() -> None:
    with pytest.raises(ValueError):
        parse_fault("explode=0.1")
    with pytest.raises(ValueError):
        parse_fault("5xx=1.5")
