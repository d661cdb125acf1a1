"""A context overflow goes to the largest-context eligible model of the job's region."""

from __future__ import annotations

from datetime import date

from worker.gateway.types import ModelInfo
from worker.services.reroute import reroute_target

TODAY = date(2026, 12, 7)


def _m(mid: str, ctx: int | None, regions: tuple[str, ...] = ("us",), **kw: object) -> ModelInfo:
    return ModelInfo(id=mid, context_length=ctx, available_regions=frozenset(regions), **kw)


CATALOG = {
    m.id: m
    for m in (
        _m("small", 32_768),
        _m("mid", 200_000, ("us", "eu")),
        _m("big", 1_000_000, input_usd_per_mtok=5.0),
        _m("big-cheap", 1_000_000, input_usd_per_mtok=0.5),
        _m("huge-retired", 2_000_000, retirement_date=date(2026, 12, 1)),
        _m("unknown-ctx", None),
    )
}


def _target(
    overflowed: str, region: str = "us", allowed: frozenset[str] = frozenset()
) -> str | None:
    found = reroute_target(CATALOG, region, overflowed=overflowed, allowed=allowed, today=TODAY)
    return None if found is None else found.id


def test_the_largest_context_wins_then_the_cheaper_input() -> None:
    assert _target("small") == "big-cheap"


def test_retired_and_unknown_contexts_and_other_regions_are_not_eligible() -> None:
    assert _target("small", region="eu") == "mid"
    assert _target("mid", region="eu") is None


def test_nothing_larger_means_no_target() -> None:
    assert _target("big-cheap") is None


def test_the_allowed_list_limits_the_candidates() -> None:
    assert _target("small", allowed=frozenset({"mid", "small"})) == "mid"
