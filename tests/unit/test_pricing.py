"""Cost to the token: the catalog's pricing read defensively, cache and reasoning and the
in-region surcharge priced, unknown never zero."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from worker import pricing
from worker.gateway.catalog_prices import parse_pricing
from worker.gateway.response import parse_model, parse_usage
from worker.gateway.types import ModelInfo, Usage

AFTER = date(2026, 12, 7)  # surcharge in force
BEFORE = date(2026, 6, 30)


@pytest.mark.parametrize(
    ("pricing_value", "expected"),
    [
        ({"input": 3, "output": 15, "unit": "usd_per_million_tokens"}, (3.0, 15.0)),
        ({"input": "3.0", "output": "15"}, (3.0, 15.0)),
        ({"prompt": "0.000003", "completion": "0.000015"}, (3.0, 15.0)),
        ({"input": 0.003, "output": 0.015, "unit": "usd_per_1k_tokens"}, (3.0, 15.0)),
        (
            {"input": {"value": 3, "unit": "usd_per_million_tokens"}, "output": {"price": 15}},
            (3.0, 15.0),
        ),
        ({"input_per_million_tokens": 3, "output_per_million_tokens": 15}, (3.0, 15.0)),
    ],
)
def test_pricing_shapes_that_are_read(pricing_value: object, expected: tuple[float, float]) -> None:
    prices = parse_pricing(pricing_value)
    assert prices.problem is None
    assert (prices.input, prices.output) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pricing_value", "problem"),
    [
        (None, "no pricing"),
        ([3, 15], "list, not an object"),
        ("3/15", "str, not an object"),
        ({"input": "free", "output": 1}, "'free', not a number"),
        ({"input": -1, "output": 1}, "not a price"),
        ({"input": float("nan"), "output": 1}, "not a price"),
        ({"input": True, "output": 1}, "not a number"),
        ({"input": 1}, "no output price"),
        ({"input": 1, "output": 2, "unit": "eur_per_token"}, "unknown pricing unit"),
        ({"input": 1, "output": 2, "cache_read": "n/a"}, "cache_read"),
        ({"per_request": 0.01}, "no input price"),
    ],
)
def test_odd_pricing_is_unknown_with_its_reason(pricing_value: object, problem: str) -> None:
    info = parse_model({"id": "m", "pricing": pricing_value})
    assert info is not None
    assert (info.input_usd_per_mtok, info.output_usd_per_mtok) == (None, None)
    assert info.pricing_problem is not None and problem in info.pricing_problem
    cost = pricing.price_call(
        info, Usage(input_tokens=10, output_tokens=5), global_routing=False, on=AFTER
    )
    assert cost is None  # unknown, never zero


def test_unknown_price_is_logged_once_per_model(caplog: pytest.LogCaptureFixture) -> None:
    info = parse_model({"id": "odd-model-once", "pricing": "weird"})
    usage = Usage(input_tokens=1, output_tokens=1)
    with caplog.at_level(logging.WARNING, logger="worker.pricing"):
        for _ in range(3):
            assert pricing.price_call(info, usage, global_routing=False, on=AFTER) is None
    records = [r for r in caplog.records if getattr(r, "model", None) == "odd-model-once"]
    assert len(records) == 1


def _claude(**kw: object) -> ModelInfo:
    base: dict[str, object] = {
        "id": "claude-sonnet-4-6",
        "input_usd_per_mtok": 3.0,
        "output_usd_per_mtok": 15.0,
        "creator": "anthropic",
    }
    return ModelInfo.model_validate({**base, **kw})


def test_anthropic_cache_reads_and_writes_and_surcharge() -> None:
    usage = Usage(
        input_tokens=10_000, output_tokens=1_000, cached_tokens=3_000, cache_write_tokens=2_000
    )
    cost = pricing.price_call(_claude(), usage, global_routing=False, on=AFTER)
    assert cost is not None
    assert cost.input_usd == pytest.approx(5_000 * 3e-6)
    assert cost.cache_read_usd == pytest.approx(3_000 * 3e-6 * 0.1)
    assert cost.cache_write_usd == pytest.approx(2_000 * 3e-6 * 1.25)
    assert cost.output_usd == pytest.approx(1_000 * 15e-6)
    base = 5_000 * 3e-6 + 3_000 * 0.3e-6 + 2_000 * 3.75e-6 + 1_000 * 15e-6
    assert cost.surcharge_usd == pytest.approx(base * 0.1)
    parts = (
        cost.input_usd,
        cost.cache_read_usd,
        cost.cache_write_usd,
        cost.output_usd,
        cost.reasoning_usd,
        cost.surcharge_usd,
    )
    assert cost.total_usd == pytest.approx(sum(parts), abs=1e-12)
    saved = (3_000 * 3e-6 * 0.9 - 2_000 * 3e-6 * 0.25) * 1.1
    assert cost.cache_saved_usd == pytest.approx(saved)


def test_global_routing_and_dates_drop_the_surcharge() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    in_region = pricing.price_call(_claude(), usage, global_routing=False, on=AFTER)
    routed = pricing.price_call(_claude(), usage, global_routing=True, on=AFTER)
    before = pricing.price_call(_claude(), usage, global_routing=False, on=BEFORE)
    assert in_region is not None and routed is not None and before is not None
    assert in_region.total_usd == pytest.approx(3.3)
    assert routed.total_usd == pytest.approx(3.0) and routed.global_saved_usd == pytest.approx(0.3)
    assert before.total_usd == pytest.approx(3.0) and before.global_saved_usd == 0


def test_reasoning_is_priced_as_output_once() -> None:
    inside = pricing.price_call(
        _claude(),
        Usage(input_tokens=0, output_tokens=1_000, reasoning_tokens=600),
        global_routing=True,
        on=AFTER,
    )
    beside = pricing.price_call(
        _claude(),
        Usage(input_tokens=0, output_tokens=100, reasoning_tokens=600),
        global_routing=True,
        on=AFTER,
    )
    assert inside is not None and beside is not None
    assert (inside.output_usd, inside.reasoning_usd) == pytest.approx((400 * 15e-6, 600 * 15e-6))
    assert beside.total_usd == pytest.approx(700 * 15e-6)


def test_catalog_cache_prices_beat_multipliers_and_config_overrides() -> None:
    info = _claude(cache_read_usd_per_mtok=0.5)
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_tokens=1_000_000)
    cost = pricing.price_call(info, usage, global_routing=True, on=AFTER)
    assert cost is not None and cost.cache_read_usd == pytest.approx(0.5)
    gpt = ModelInfo(id="gpt-4.1", input_usd_per_mtok=2.0, output_usd_per_mtok=8.0)
    assert pricing.cache_rates(gpt).read == 0.25  # the model's own entry beats openai's
    config = pricing.PricingConfig.build({"openai": {"read": 0.5}}, surcharge=0.0)
    five = ModelInfo(id="gpt-5", input_usd_per_mtok=1.25, output_usd_per_mtok=10.0)
    assert pricing.cache_rates(five, config).read == 0.5
    assert pricing.cache_rates(_claude(), config).write_5m == 1.25


def test_usage_cache_fields_both_namings() -> None:
    gateway = parse_usage(
        {
            "input_tokens": 5000,
            "output_tokens": 10,
            "prompt_tokens_details": {
                "cached_tokens": 0,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 4100,
                    "ephemeral_1h_input_tokens": 0,
                },
            },
        }
    )
    assert (gateway.input_tokens, gateway.cached_tokens, gateway.cache_write_tokens) == (
        5000,
        0,
        4100,
    )
    native = parse_usage(
        {
            "input_tokens": 900,
            "output_tokens": 10,
            "cache_read_input_tokens": 4100,
            "cache_creation_input_tokens": 0,
        }
    )
    # Anthropic's own naming counts the cache apart from input; tbatch counts it inside.
    assert (native.input_tokens, native.cached_tokens, native.total_tokens) == (5000, 4100, 5010)
    openai = parse_usage(
        {
            "prompt_tokens": 2000,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 1024},
        }
    )
    assert (openai.input_tokens, openai.cached_tokens, openai.cache_write_tokens) == (
        2000,
        1024,
        None,
    )
