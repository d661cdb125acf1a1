"""`tbatch results` writes each stored result as the database printed it, spliced into a line
built by hand: every line must still be exactly the record, whatever the strings hold."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from worker.services.export import FIELDS, schema_columns, write_results

RESULT = {"summary": 'said "no", then\n€ ✓', "topics": ["a, b"], "score": 0.5, "ok": None}


def _record(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "job_id": 7,
        "custom_id": 'crm-42, "x"',
        "transcript_id": 'tx, "quoted"\\ \u00e9',
        "status": "succeeded",
        "result": json.dumps(RESULT, ensure_ascii=False),
        "metadata": json.dumps({"account": "A-1", "tags": ["vip"]}),
        "request_id": "req-1",
        "model": "claude-sonnet-4-6",
        "repaired": True,
        "attempts": 2,
        "input_tokens": 1200,
        "output_tokens": 80,
        "cached_tokens": None,
        "cost_usd": 0.0048,
        "finished_at": "2026-12-07T03:00:00+00:00",
        "error": None,
    }
    rec.update(kw)
    return rec


@pytest.mark.parametrize(
    "rec",
    [
        _record(),
        _record(result=None, status="failed", error="auth: key \u2028 refused", repaired=None),
        _record(result="null", repaired=False),
        _record(result="[1, 2]"),
        _record(custom_id=None, metadata=None, attempts=0, cost_usd=None),
    ],
)
def test_a_jsonl_line_is_exactly_the_record(rec: dict[str, Any]) -> None:
    out = io.StringIO()
    assert write_results([rec], "jsonl", out) == 1
    [line] = out.getvalue().splitlines()
    parsed = json.loads(line)
    assert list(parsed) == FIELDS
    spliced = {k: None if rec[k] is None else json.loads(rec[k]) for k in ("result", "metadata")}
    assert parsed == {**rec, **spliced}


def test_csv_carries_the_result_as_json_text() -> None:
    out = io.StringIO()
    write_results([_record(), _record(job_id=8, result=None)], "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["job_id"] for r in rows] == ["7", "8"]
    assert json.loads(rows[0]["result"]) == RESULT and rows[1]["result"] == ""


def test_with_an_errors_output_the_failures_go_there_and_only_there() -> None:
    out, errors = io.StringIO(), io.StringIO()
    records = [
        _record(job_id=1),
        _record(job_id=2, status="failed", result=None, error="refused: no"),
        _record(job_id=3, status="cancelled", result=None, error="cancelled: stopped"),
    ]
    assert write_results(records, "jsonl", out, errors=errors) == 1
    assert [json.loads(line)["job_id"] for line in out.getvalue().splitlines()] == [1]
    assert [json.loads(line)["job_id"] for line in errors.getvalue().splitlines()] == [2, 3]


def test_flatten_turns_the_schemas_top_level_properties_into_columns() -> None:
    schema = {"type": "object", "properties": {"summary": {}, "topics": {}, "ok": {}, "gone": {}}}
    columns = schema_columns([schema, {"properties": {"score": {}, "summary": {}}}, True])
    assert columns == ["summary", "topics", "ok", "gone", "score"]
    out = io.StringIO()
    write_results([_record(), _record(job_id=8, result=None)], "csv", out, flatten=columns)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert "result" not in rows[0]
    assert rows[0]["result.summary"] == RESULT["summary"]
    assert json.loads(rows[0]["result.topics"]) == ["a, b"]
    assert (rows[0]["result.score"], rows[0]["result.ok"], rows[0]["result.gone"]) == (
        "0.5",
        "",
        "",
    )
    assert rows[1]["result.summary"] == "" and rows[1]["job_id"] == "8"
    assert json.loads(rows[0]["metadata"]) == {"account": "A-1", "tags": ["vip"]}
