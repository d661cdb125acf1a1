"""`tbatch show`'s table: the job, its attempts as a timeline, its result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from worker.cli.render_job import job_view

T0 = datetime(2026, 12, 7, 9, 30, 1, 250000, tzinfo=UTC)


def _attempt(**over: Any) -> dict[str, Any]:
    base = {
        "id": 1,
        "request_id": "req-1",
        "purpose": "call",
        "model_requested": "gpt-5-mini",
        "model_answered": "gpt-5-mini",
        "fallback_used": False,
        "route": "json_schema",
        "http_status": 200,
        "outcome": "invalid",
        "error_kind": None,
        "error_message": None,
        "finish_reason": "stop",
        "repairs": None,
        "validation_errors": [{"path": "$.score", "message": "not an integer"}],
        "latency_ms": 1234.5,
        "input_tokens": 12000,
        "output_tokens": 300,
        "cost_usd": 0.00123,
        "started_at": T0,
    }
    return base | over


HISTORY: dict[str, Any] = {
    "job": {
        "id": 12,
        "batch_id": 3,
        "status": "succeeded",
        "transcript_id": "5f0e7a1c-1111-4222-8333-444455556666",
        "model": "gpt-5-mini",
        "fallbacks": ["claude-sonnet-4-6"],
        "region": "us",
        "custom_id": "call-77",
        "created_at": T0,
        "finished_at": T0,
        "deliveries": 2,
        "transport_retries": 0,
        "reasks": 1,
        "error_kind": None,
    },
    "attempts": [
        _attempt(),
        _attempt(
            id=2,
            request_id="req-2",
            purpose="reask",
            outcome="repaired",
            model_answered="claude-sonnet-4-6",
            fallback_used=True,
            repairs=["code_fence"],
            validation_errors=None,
        ),
    ],
    "result": {
        "request_id": "req-2",
        "model": "claude-sonnet-4-6",
        "repaired": True,
        "data": {"score": 4, "summary": "[bold]not markup[/]"},
    },
    "replaced_results": [{"attempt_id": 0, "created_at": T0, "replaced_at": T0}],
}


def _text(request_id: str | None) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(job_view(HISTORY, request_id), soft_wrap=True)
    return console.export_text()


def test_the_timeline_has_one_row_per_attempt_in_order_with_the_asked_one_marked() -> None:
    text = _text("req-2")
    rows = [line for line in text.splitlines() if "req-" in line and "│" in line]
    assert [("req-1" in r, "req-2" in r) for r in rows] == [(True, False), (False, True)]
    assert rows[1].lstrip("│ ").startswith(">") and not rows[0].lstrip("│ ").startswith(">")
    assert "2026-12-07 09:30:01.250" in rows[0] and "1,234 ms" in rows[0]
    assert "12,000/300" in rows[0] and "1 validation error(s)" in rows[0]
    assert "gpt-5-mini -> claude-sonnet-4-6 (fallback)" in rows[1]
    assert "repaired 200 (reask)" in rows[1] and "repairs: code_fence" in rows[1]


def test_the_header_and_the_result() -> None:
    text = _text(None)
    assert "job 12 (batch 3): succeeded" in text
    assert "model gpt-5-mini -> claude-sonnet-4-6   region us   custom_id call-77" in text
    assert "result (request_id req-2, model claude-sonnet-4-6, repaired):" in text
    assert '"summary": "[bold]not markup[/]"' in text  # model text is shown, not interpreted
    assert "replaced result: of attempt 0" in text
