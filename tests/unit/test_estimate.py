"""The estimate's arithmetic (pure): lanes in parallel at their limits, caching written once
and read after, unknown prices staying unknown."""

from __future__ import annotations

from datetime import date

from worker import estimate as est
from worker.gateway.types import ModelInfo
from worker.ratelimit.config import Limit

CLAUDE = ModelInfo(id="claude-sonnet-4-6", input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
ODD = ModelInfo(id="odd", pricing_problem="pricing is a str, not an object")


def _shape(model: str = CLAUDE.id, **kw: object) -> est.JobShape:
    fields: dict[str, object] = {
        "model": model,
        "fixed_tokens": 5_000,
        "prefix_tokens": 4_000,
        "prefix_key": "p",
        "marked": True,
        "transcript_chars": 8_000,
        "max_tokens": 4_000,
        "global_routing": False,
        "global_available": True,
    }
    return est.JobShape(**{**fields, **kw})  # type: ignore[arg-type]


def _inputs(shapes: list[est.JobShape], **kw: object) -> est.Inputs:
    fields: dict[str, object] = {
        "shapes": shapes,
        "catalog": {CLAUDE.id: CLAUDE, ODD.id: ODD},
        "limits": {CLAUDE.id: Limit(30, 60.0), ODD.id: Limit(30, 60.0)},
        "output_tokens": {CLAUDE.id: (200, "learned"), ODD.id: (200, "learned")},
        "reasoning": None,
        "on": date(2026, 12, 7),
        "margin_s": 0.05,
        "latency": {CLAUDE.id: (2.0, "p90 of recent calls")},
    }
    return est.Inputs(**{**fields, **kw})  # type: ignore[arg-type]


def test_fifty_thousand_jobs_at_thirty_a_minute_take_about_27_8_hours() -> None:
    out = est.estimate(_inputs([_shape()] * 50_000))
    # 50,000 / 30 per minute = 1,666.7 minutes, plus the gate's 50-ms margin per window.
    assert 27.7 * 3600 < out["wall_clock_s"] < 27.9 * 3600
    lane = out["by_model"][0]
    assert (lane["jobs"], lane["limit"]) == (50_000, "30/60s")
    # One write, then every other call reads the 4,000-token prefix.
    assert lane["cache_write_tokens"] == 4_000 and lane["cached_tokens"] == 4_000 * 49_999
    assert out["input_tokens"] == 50_000 * (5_000 + 2_000)
    assert out["cache_saved_usd"] > 0 and out["global_would_save_usd"] > 0


def test_lanes_run_in_parallel_and_an_unknown_price_is_null() -> None:
    shapes = [_shape()] * 60 + [_shape("odd", marked=False, prefix_tokens=0)] * 30
    out = est.estimate(_inputs(shapes))
    by_model = {lane["model"]: lane for lane in out["by_model"]}
    assert by_model["odd"]["cost_usd"] is None and by_model[CLAUDE.id]["cost_usd"] > 0
    assert out["cost_usd"] is None  # unknown, never a partial sum
    assert out["wall_clock_s"] == by_model[CLAUDE.id]["wall_clock_s"]  # the slowest lane


def test_reasoning_and_max_tokens_shape_the_output() -> None:
    out = est.estimate(_inputs([_shape(max_tokens=100)], reasoning={"effort": "high"}))
    assert out["output_tokens"] == 100 + est.REASONING_SPEND["high"]


def test_schema_guess_grows_with_the_schema() -> None:
    flat = {"type": "object", "properties": {"a": {"type": "string"}}}
    listy = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}}
    assert est.schema_output_guess(flat) < est.schema_output_guess(listy)


def test_a_lower_learned_limit_gives_a_second_longer_time() -> None:
    shapes = [_shape()] * 301
    plain = est.estimate(_inputs(shapes))
    learned = est.estimate(_inputs(shapes, learned_limits={CLAUDE.id: Limit(15, 60.0)}))
    lane = learned["by_model"][0]
    # 300 / 30 windows then 300 / 15 windows of 60.05 s, each plus two 2-s latencies.
    assert plain["wall_clock_s"] == plain["wall_clock_learned_s"] == round(10 * 60.05 + 4, 1)
    assert lane["limit"] == "30/60s" and lane["learned_limit"] == "15/60s"
    assert learned["wall_clock_s"] == plain["wall_clock_s"]
    assert learned["wall_clock_learned_s"] == round(20 * 60.05 + 4, 1)
    # A learned limit higher than the configured one is not enforced: nothing changes.
    higher = est.estimate(_inputs(shapes, learned_limits={CLAUDE.id: Limit(60, 60.0)}))
    assert higher["by_model"][0]["learned_limit"] is None
    assert higher["wall_clock_learned_s"] == plain["wall_clock_s"]


def test_a_model_without_recent_calls_takes_the_assumed_latency() -> None:
    out = est.estimate(_inputs([_shape("odd", marked=False)] * 3, limits={"odd": None}))
    lane = out["by_model"][0]
    assert (lane["latency_s"], lane["latency_source"]) == (est.DEFAULT_LATENCY_S, "assumed")
    # Unlimited: three calls side by side take one latency.
    assert lane["wall_clock_s"] == est.DEFAULT_LATENCY_S


class _Found:
    def __init__(self, text: str | None = None, audio_duration: float | None = None) -> None:
        self.text, self.audio_duration = text, audio_duration


def test_transcript_sizes_state_the_sample_means_error() -> None:
    from worker.services.estimating import TranscriptSizes

    texts = {f"t{i}": "x" * (1000 * (1 + i % 7)) for i in range(400)}
    sizes = TranscriptSizes(lambda tid: _Found(texts[tid]), sample=100)
    sizes.measure(list(texts))
    assert len(sizes.sizes) == 100 and sizes.of == 400
    margin = sizes.margin()
    assert margin is not None and 0.05 < margin < 0.15  # sd/mean 0.5, 100 of 400
    assert "100 of 400 measured" in sizes.describe() and "at 95%" in sizes.describe()
    whole = TranscriptSizes(lambda tid: _Found(audio_duration=60), sample=400)
    whole.measure(list(texts)[:30])
    assert whole.margin() == 0.0 and whole.chars("t1") == 900  # 60 s at 15 characters


def test_a_failing_transcript_api_ends_the_sample_after_one_round() -> None:
    from worker.errors import ConnectionFailed
    from worker.services.estimating import FETCH_THREADS, TranscriptSizes

    calls: list[str] = []

    def down(tid: str) -> _Found:
        calls.append(tid)
        raise ConnectionFailed("transcript API unreachable")

    sizes = TranscriptSizes(down, sample=200)
    sizes.measure([f"t{i}" for i in range(1000)])
    assert len(calls) == FETCH_THREADS and sizes.sizes == {}
    assert sizes.margin() is None and sizes.chars("t1") > 0  # the stated assumption


def test_a_transcript_not_found_is_counted_and_does_not_end_the_sample() -> None:
    from worker.errors import TranscriptNotFound
    from worker.services.estimating import TranscriptSizes

    def get(tid: str) -> _Found:
        if tid.endswith("0"):
            raise TranscriptNotFound("transcript deleted", status=404)
        return _Found("x" * 500)

    sizes = TranscriptSizes(get, sample=100)
    sizes.measure([f"t{i}" for i in range(100)])
    assert len(sizes.missing) == 10 and len(sizes.sizes) == 90  # every round went on
    assert "10 of those sampled not found" in sizes.describe()
