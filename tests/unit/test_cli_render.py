"""The human output of `tbatch status` / `wait`: humanised numbers and the view, rendered to
text without a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from worker.cli.render import (
    progress_line,
    render_status,
    status_view,
)
from worker.humanize import human_cost, human_count, human_duration, human_tokens


def _status(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "batch_id": 5,
        "total": 1000,
        "done": 450,
        "final": False,
        "counts": {"pending": 550, "succeeded": 448, "failed": 2},
        "failures": {"transcript_not_found": 2},
        "held": {},
        "throughput_jobs_per_s": 3.6,
        "attempts": 452,
        "http_429": 0,
        "input_tokens": 1_234_567,
        "output_tokens": 34_000,
        "cost_usd": 1.5,
        "paused_reason": None,
        "paused_at": None,
        "canary": None,
        "cancelled": False,
        "elapsed_s": 125.0,
        "eta_s": 153.0,
        "models": [
            {
                "model": "claude-sonnet-4-6",
                "region": "us",
                "limit": 30,
                "window_s": 60.0,
                "in_window": 30,
                "reserved": 0,
                "trusted": True,
                "paused_for_s": 0.0,
                "learned_limit": None,
                "remaining": 550,
                "next_call_in_s": None,
            }
        ],
    }
    return base | over


def _text(status: dict[str, Any]) -> str:
    console = Console(width=120, record=True, color_system=None)
    render_status(status, console)
    return console.export_text()


def test_humanised_numbers() -> None:
    assert [human_duration(s) for s in (None, 0, 59.4, 125, 3725, 90000)] == [
        "-",
        "0s",
        "59s",
        "2m 05s",
        "1h 02m",
        "1d 01h",
    ]
    assert human_count(1234567) == "1,234,567" and human_count(None) == "-"
    assert [human_tokens(n) for n in (950, 12_345, 4_560_000)] == ["950", "12.3k", "4.56M"]
    assert (human_cost(0.01234), human_cost(1234.5)) == ("$0.0123", "$1,234.50")


def test_the_progress_line_for_wait() -> None:
    assert progress_line(_status()) == (
        "batch 5: 45% (450/1,000 final), 2 failed, elapsed 2m 05s, ETA 2m 33s"
    )
    unknown = progress_line(_status(eta_s=None, counts={"pending": 550, "succeeded": 450}))
    assert unknown == "batch 5: 45% (450/1,000 final), elapsed 2m 05s, ETA -"


def test_the_view_shows_progress_timing_usage_and_each_models_next_call() -> None:
    text = _text(_status())
    assert "batch 5: 450/1000 final (45.0%)" in text
    assert "elapsed 2m 05s   ETA 2m 33s   throughput 3.6 jobs/s" in text
    assert "tokens in/out: 1.23M/34k   cost: $1.50" in text
    assert "transcript_not_found" in text
    row = next(line for line in text.splitlines() if "claude-sonnet-4-6" in line)
    assert "30/60s" in row and "550" in row and "window full" in row


def test_a_paused_batch_says_why_on_one_line_and_how_to_resume() -> None:
    reason = "paused after 5 permanent failures in a row (not_entitled): [no access] " + "x" * 90
    text = _text(_status(paused_reason=reason, paused_at="2026-12-07T09:00:00+00:00"))
    assert f"paused: {reason}" in text.splitlines()  # unwrapped, and its brackets kept
    assert "`tbatch resume 5`" in text


def test_a_final_batch_shows_no_eta() -> None:
    text = _text(_status(final=True, done=1000, eta_s=0.0))
    assert "ETA" not in text and "elapsed 2m 05s" in text


def test_the_view_is_one_renderable_for_live() -> None:
    console = Console(width=100, record=True, color_system=None)
    console.print(status_view(_status()))
    assert "batch 5: 450/1000 final (45.0%)" in console.export_text()
