"""`tbatch results` writes each stored result as the database printed it, spliced into a line
built by hand: every line must still be exactly the record, whatever the strings hold."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from worker.services.export import FIELDS, write_results

RESULT = {"summary": 'said "no", then\n€ ✓', "topics": ["a, b"], "score": 0.5, "ok": None}


def _record(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "job_id": 7,
        "transcript_id": 'tx, "quoted"\\ \u00e9',
        "status": "succeeded",
        "result": json.dumps(RESULT, ensure_ascii=False),
        "request_id": "req-1",
        "model": "claude-sonnet-4-6",
        "repaired": True,
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
    ],
)
def test_a_jsonl_line_is_exactly_the_record(rec: dict[str, Any]) -> None:
    out = io.StringIO()
    assert write_results([rec], "jsonl", out) == 1
    [line] = out.getvalue().splitlines()
    parsed = json.loads(line)
    assert list(parsed) == FIELDS
    result = rec["result"]
    assert parsed == {**rec, "result": None if result is None else json.loads(result)}


def test_csv_carries_the_result_as_json_text() -> None:
    out = io.StringIO()
    write_results([_record(), _record(job_id=8, result=None)], "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["job_id"] for r in rows] == ["7", "8"]
    assert json.loads(rows[0]["result"]) == RESULT and rows[1]["result"] == ""
