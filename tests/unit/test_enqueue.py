"""`tbatch enqueue`'s service: every bad input is rejected whole, naming where, storing nothing;
good input is stored once, with templates and schemas shared by content hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.content import Schema, Template
from models.jobs import Batch, Job
from tests.fakes import SCHEMA, TEMPLATE, enqueue_lines, ids, sqlite_sessions
from worker.errors import InputError


@pytest.fixture()
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    return sqlite_sessions(tmp_path)


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _ok_lines(n: int = 3) -> list[str]:
    return [json.dumps({"transcript_id": t, "variables": {"team": "ops"}}) for t in ids(n)]


def test_stores_jobs_with_shared_template_and_schema(sessions) -> None:
    first = enqueue_lines(sessions, _ok_lines(3))
    second = enqueue_lines(sessions, _ok_lines(2))
    assert first != second
    assert _count(sessions, Job) == 5
    assert _count(sessions, Template) == 1 and _count(sessions, Schema) == 1


def test_reenqueue_into_same_batch_is_idempotent(sessions) -> None:
    batch = enqueue_lines(sessions, _ok_lines(3))
    again = enqueue_lines(sessions, _ok_lines(3) + _ok_lines(3), batch_id=batch)
    assert again == batch and _count(sessions, Job) == 3


BAD_CASES = [
    (
        {
            "lines": [
                '{"transcript_id": "abcdefgh12", "variables": {"team": "a"}, "custom_id": "c1"}',
                '{"transcript_id": "abcdefgh13", "variables": {"team": "a"}, "custom_id": "c1"}',
            ]
        },
        "ids.txt:2: custom_id 'c1' is already used on line 1",
    ),
    (
        {"lines": ['{"transcript_id": "abcdefgh12", "variables": {"team": "a"}, "custom_id": 7}']},
        "ids.txt:1: custom_id must be a string of 1 to 200 characters",
    ),
    (
        {"lines": ['{"transcript_id": "abcdefgh12", "variables": {"team": "a"}, "metadata": [1]}']},
        "ids.txt:1: metadata must be an object",
    ),
    ({"lines": ["not an id!"]}, "ids.txt:1: 'not an id!' is not a plausible transcript id"),
    ({"lines": ['{"transcript_id": "abcdefgh12", ']}, "ids.txt:1: malformed JSON line"),
    ({"lines": ["# only a comment", ""]}, "no transcript ids in the input"),
    ({"lines": []}, "no transcript ids in the input"),
    ({"model": "gpt-9-imaginary"}, "unknown model 'gpt-9-imaginary'"),
    ({"region": "eu", "model": "gpt-5"}, "model 'gpt-5' is US-only"),
    ({"region": "eu", "fallbacks": ("gpt-oss-20b",)}, "fallback 'gpt-oss-20b' is US-only"),
    ({"fallbacks": ("gpt-5", "gemini-2.5-flash", "gpt-oss-20b")}, "the gateway chains at most 2"),
    ({"template_text": "Summarise {{ team }}"}, "{{ transcript }}"),
    ({"template_text": "{% if %}"}, "t.j2"),
    ({"schema": {"type": "nonsense"}}, "s.json"),
    ({"lines": ['{"transcript_id": "abcdefgh12", "colour": 1}']}, "unknown key(s) colour"),
    (
        {"lines": ['{"transcript_id": "abcdefgh12", "fallbacks": ["gpt-5","gpt-5","gpt-5"]}']},
        "at most 2",
    ),
    ({"lines": ['{"transcript_id": "abcdefgh12"}']}, "team"),  # undefined template variable
    ({"region": "eu", "model_region_global": True}, "cannot be used with region eu"),
    (
        {"lines": ['{"transcript_id": "abcdefgh12\\n", "variables": {"team": "a"}}']},
        "ids.txt:1: 'abcdefgh12\\n' is not a plausible transcript id",
    ),
    (
        {
            "lines": [
                '{"transcript_id": "abcdefgh12", "variables": {"team": "a"}}',
                '{"transcript_id": "abcdefgh12", "variables": {"team": "b"}}',
            ]
        },
        "ids.txt:2: transcript abcdefgh12 with model claude-sonnet-4-6 is already on an earlier",
    ),
    (
        {"lines": ['{"transcript_id": "abcdefgh12", "max_tokens": 4294967296, "variables": {}}']},
        "ids.txt:1: max_tokens must be an integer from 1 to 2147483647",
    ),
    ({"max_tokens": 2**40}, "--max-tokens: must be an integer from 1 to 2147483647"),
    ({"name": "n" * 201}, "--name: batch name is 201 characters; at most 200"),
    ({"schema": False}, "s.json: the schema false accepts no value"),
]


@pytest.mark.parametrize(("change", "message"), BAD_CASES)
def test_bad_input_is_rejected_and_nothing_is_stored(
    sessions, change: dict[str, Any], message: str
) -> None:
    lines = change.pop("lines", _ok_lines(3))
    with pytest.raises(InputError) as info:
        enqueue_lines(sessions, lines, **change)
    assert message in str(info.value)
    assert _count(sessions, Job) == 0 and _count(sessions, Batch) == 0


def test_a_bad_line_late_in_a_big_file_stores_nothing(sessions) -> None:
    lines = [*_ok_lines(12000), "bad id"]
    with pytest.raises(InputError, match=r"ids.txt:12001"):
        enqueue_lines(sessions, lines)
    assert _count(sessions, Job) == 0


def test_template_and_schema_are_as_given(sessions) -> None:
    enqueue_lines(sessions, _ok_lines(1))
    with sessions() as s:
        assert s.scalar(select(Template.body)) == TEMPLATE
        assert s.scalar(select(Schema.body)) == SCHEMA


def _infos(region: str) -> dict[str, Any]:
    from worker.gateway.types import ModelInfo

    base = frozenset({"max_tokens", "temperature", "response_format", "tools", "tool_choice"})
    return {
        "claude-sonnet-4-6": ModelInfo(
            id="claude-sonnet-4-6", context_length=200_000, supported_parameters=base
        ),
        "gpt-5": ModelInfo(
            id="gpt-5",
            context_length=400_000,
            supported_parameters=base - {"temperature"},
            retirement_date=__import__("datetime").date(2026, 12, 20),
        ),
        "gemini-2.5-flash": ModelInfo(
            id="gemini-2.5-flash", context_length=8_192, supported_parameters=base
        ),
    }


def _enqueue_with_infos(sessions, lines: list[str], catalog: Any = _infos, **overrides: Any):
    from datetime import date

    from tests.fakes import enqueue_outcome

    return enqueue_outcome(sessions, lines, catalog=catalog, today=date(2026, 12, 7), **overrides)


def test_a_temperature_a_fallback_does_not_take_is_refused_naming_it(sessions) -> None:
    with pytest.raises(InputError) as exc:
        _enqueue_with_infos(sessions, _ok_lines(2), fallbacks=("gpt-5",), temperature=0.2)
    assert "fallback 'gpt-5' does not support temperature" in str(exc.value)
    assert "--temperature" in str(exc.value)
    assert _count(sessions, Job) == 0


def test_a_job_line_overriding_temperature_is_checked_against_its_own_chain(sessions) -> None:
    lines = [
        json.dumps({"transcript_id": ids(1)[0], "variables": {"team": "ops"}}),
        json.dumps(
            {
                "transcript_id": ids(2)[1],
                "model": "gpt-5",
                "temperature": 0.5,
                "variables": {"team": "x"},
            }
        ),
    ]
    with pytest.raises(InputError) as exc:
        _enqueue_with_infos(sessions, lines)
    assert "ids.txt:2:" in str(exc.value) and "'gpt-5' does not support temperature" in str(
        exc.value
    )
    assert _count(sessions, Job) == 0


def test_retiring_models_and_fitted_max_tokens_are_noted_once(sessions) -> None:
    out = _enqueue_with_infos(
        sessions, _ok_lines(3), fallbacks=("gpt-5", "gemini-2.5-flash"), max_tokens=6000
    )
    assert out.jobs == 3
    assert out.notes == (
        "model gpt-5 retires on 2026-12-20 (the catalog's retirement_date); name a fallback "
        "or move to another model",
        "max_tokens 6000 is sent to gemini-2.5-flash as 4096 (half its 8192-token context, "
        "leaving room for the transcript)",
    )


def test_reasoning_is_gated_on_every_model_and_stored_on_the_jobs(sessions) -> None:
    from worker.gateway.types import ModelInfo

    def infos(region: str) -> dict[str, Any]:
        found = _infos(region)
        plain = found["gemini-2.5-flash"]
        found["gemini-2.5-flash"] = plain.model_copy(
            update={"supported_parameters": plain.supported_parameters | {"reasoning"}}
        )
        found["thinker"] = ModelInfo(
            id="thinker", supported_parameters=frozenset({"max_tokens", "reasoning"})
        )
        return found

    def run(**fields: Any) -> Any:
        return _enqueue_with_infos(sessions, _ok_lines(2), catalog=infos, **fields)

    with pytest.raises(InputError) as exc:
        run(model="thinker", fallbacks=("claude-sonnet-4-6",), reasoning={"effort": "low"})
    assert "fallback 'claude-sonnet-4-6' does not support reasoning" in str(exc.value)
    assert "--reasoning" in str(exc.value) and _count(sessions, Job) == 0
    run(model="thinker", fallbacks=("gemini-2.5-flash",), reasoning={"max_tokens": 2048})
    with sessions() as s:
        assert {j.reasoning["max_tokens"] for j in s.scalars(select(Job))} == {2048}


def test_reasoning_is_an_effort_or_a_cap_not_both() -> None:
    from worker.services.job_input import reasoning_value

    assert reasoning_value("high", None) == {"effort": "high"}
    assert reasoning_value(None, 512) == {"max_tokens": 512}
    assert reasoning_value(None, None) is None
    for effort, cap in (("high", 512), ("extreme", None), (None, 0)):
        with pytest.raises(InputError):
            reasoning_value(effort, cap)
