"""What a batch will take and cost before it starts (pure: ``services.estimating`` gathers the
inputs; this module does the arithmetic).

Per model lane (the primary of each job: tbatch cannot know in advance that a fallback will
answer, and bills only the model that does):

- **time**: a lane sends at most N per window W (plus the send gate's margin), lanes run in
  parallel, so the batch takes its slowest lane: ``floor((jobs - 1) / N) * (W + margin)`` plus
  one call's latency (and one more for the canary's verdict); an unlimited lane takes
  ``jobs / concurrency`` latencies. Twice: at the configured limits, and at the limits
  enforced now (a lower limit learned from the gateway's answers). The latency is the 90th
  percentile of the model's recent calls (each of the two is the slowest of several calls)
  when there are some, else an assumption. Retries, 429s and
  re-asks are not foreseen.
- **input tokens**: the rendered messages as sent (schema instruction, cache split) at 4
  characters a token plus 3 a message (the usual rule of thumb, which the emulator follows),
  with the transcript's own text in place of the tag;
- **output tokens**: the average of earlier answers with the same schema and model when there
  are some ("learned"), else a guess from the schema; reasoning at the effort's assumed spend;
- **caching**: a prefix marked for caching is written once per lane and read by every other
  call (the batch runs within the cache's lifetime); an automatic cache reads its 1,024-token
  steps the same way;
- **cost**: ``worker.pricing`` on those tokens (unknown prices make the cost None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from worker import pricing
from worker.gateway.types import ModelInfo, Usage
from worker.ratelimit.config import Limit, stricter

REASONING_SPEND = {"low": 256, "medium": 1024, "high": 4096}  # assumed thinking tokens
AUTO_CACHE_MIN_TOKENS = 1024
AUTO_CACHE_STEP_TOKENS = 128
DEFAULT_LATENCY_S = 3.0  # a call's assumed latency when the model has no recent calls


@dataclass(frozen=True)
class JobShape:
    """One job as it would be sent: its primary, its messages' token count without the
    transcript, the cacheable prefix's tokens, and the transcript's size in characters."""

    model: str
    fixed_tokens: int  # every message, the tagged one without its tag
    prefix_tokens: int  # the static prefix (0: none)
    prefix_key: str  # jobs sharing it share a cache entry
    marked: bool  # the prefix carries cache_control
    transcript_chars: int
    max_tokens: int
    global_routing: bool
    global_available: bool  # the model lists "global" (what routing would save)
    count: int = 1  # jobs of this shape


@dataclass
class LaneEstimate:
    model: str
    jobs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    wall_clock_s: float = 0.0
    wall_clock_learned_s: float = 0.0
    latency_s: float = 0.0
    latency_source: str = "assumed"
    cost_usd: float | None = None
    cache_saved_usd: float | None = None
    global_saved_usd: float | None = None
    global_would_save_usd: float | None = None
    limit: str | None = None
    learned_limit: str | None = None
    output_source: str = "assumed"
    prefixes: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "prefixes"}
        for key in ("cost_usd", "cache_saved_usd", "global_saved_usd", "global_would_save_usd"):
            out[key] = None if out[key] is None else round(out[key], 6)
        for key in ("wall_clock_s", "wall_clock_learned_s"):
            out[key] = round(out[key], 1)
        return out


def input_tokens(shape: JobShape) -> int:
    return shape.fixed_tokens + math.ceil(shape.transcript_chars / 4)


def cache_use(shape: JobShape, first: bool) -> tuple[int, int]:
    """(read, written) tokens of one call; ``first``: the lane's first call with its prefix."""
    if shape.marked:
        return (0, shape.prefix_tokens) if first else (shape.prefix_tokens, 0)
    if shape.prefix_tokens >= AUTO_CACHE_MIN_TOKENS and not first:
        steps = (shape.prefix_tokens - AUTO_CACHE_MIN_TOKENS) // AUTO_CACHE_STEP_TOKENS
        return AUTO_CACHE_MIN_TOKENS + steps * AUTO_CACHE_STEP_TOKENS, 0
    return 0, 0


def lane_time_s(
    jobs: int, limit: Limit | None, margin_s: float, latency_s: float, concurrency: int
) -> float:
    if jobs == 0:
        return 0.0
    if limit is None:
        return math.ceil(jobs / max(1, concurrency)) * latency_s
    return ((jobs - 1) // limit.requests) * (limit.window_s + margin_s) + 2 * latency_s


@dataclass(frozen=True)
class Inputs:
    shapes: Sequence[JobShape]
    catalog: Mapping[str, ModelInfo]
    limits: Mapping[str, Limit | None]
    output_tokens: Mapping[str, tuple[int, str]]  # model -> (tokens per answer, source)
    reasoning: Mapping[str, Any] | None
    on: date
    margin_s: float = 0.05
    latency: Mapping[str, tuple[float, str]] = field(default_factory=dict)  # model -> (s, source)
    learned_limits: Mapping[str, Limit | None] = field(default_factory=dict)  # enforced now
    concurrency: int = 64
    prices: pricing.PricingConfig = pricing.DEFAULT_CONFIG


def reasoning_spend(reasoning: Mapping[str, Any] | None) -> int:
    if not reasoning:
        return 0
    budget = reasoning.get("max_tokens")
    if isinstance(budget, int):
        return budget
    return REASONING_SPEND.get(str(reasoning.get("effort")), 1024)


def estimate(inputs: Inputs) -> dict[str, Any]:
    """The estimate as ``tbatch estimate --json`` prints it."""
    lanes: dict[str, LaneEstimate] = {}
    usages: dict[tuple[str, bool], list[int]] = {}
    thinking = reasoning_spend(inputs.reasoning)
    for shape in inputs.shapes:
        lane = lanes.setdefault(shape.model, LaneEstimate(shape.model))
        first = shape.prefix_key not in lane.prefixes
        lane.prefixes.add(shape.prefix_key)
        read, written = cache_use(shape, first)
        if shape.count > 1:
            again, _ = cache_use(shape, False)
            read += again * (shape.count - 1)
        out_tokens, lane.output_source = inputs.output_tokens[shape.model]
        visible = min(out_tokens, shape.max_tokens)
        n = shape.count
        lane.jobs += n
        lane.input_tokens += input_tokens(shape) * n
        lane.output_tokens += (visible + thinking) * n
        lane.reasoning_tokens += thinking * n
        lane.cached_tokens += read
        lane.cache_write_tokens += written
        sums = usages.setdefault((shape.model, shape.global_routing), [0, 0, 0, 0, 0, 0])
        for i, v in enumerate(
            (input_tokens(shape) * n, (visible + thinking) * n, read, written, thinking * n)
        ):
            sums[i] += v
        sums[5] += int(shape.global_available and not shape.global_routing)
    for lane in lanes.values():
        _price_lane(lane, usages, inputs)
        limit = inputs.limits.get(lane.model)
        now = stricter(limit, inputs.learned_limits.get(lane.model))
        lane.limit = None if limit is None else str(limit)
        lane.learned_limit = None if now == limit or now is None else str(now)
        lane.latency_s, lane.latency_source = inputs.latency.get(
            lane.model, (DEFAULT_LATENCY_S, "assumed")
        )
        lane.wall_clock_s, lane.wall_clock_learned_s = (
            lane_time_s(lane.jobs, at, inputs.margin_s, lane.latency_s, inputs.concurrency)
            for at in (limit, now)
        )
    return _total([lanes[m] for m in sorted(lanes)])


def _price_lane(
    lane: LaneEstimate, usages: Mapping[tuple[str, bool], list[int]], inputs: Inputs
) -> None:
    info = inputs.catalog.get(lane.model)
    totals = {"cost": 0.0, "cache": 0.0, "global": 0.0, "would": 0.0}
    for (model, routed), (inp, out, read, written, thinking, could) in usages.items():
        if model != lane.model:
            continue
        usage = Usage(
            input_tokens=inp,
            output_tokens=out,
            cached_tokens=read,
            cache_write_tokens=written,
            reasoning_tokens=thinking,
        )
        cost = pricing.price_call(
            info, usage, global_routing=routed, on=inputs.on, config=inputs.prices, model=model
        )
        if cost is None:
            return  # unknown stays None, never zero
        totals["cost"] += cost.total_usd
        totals["cache"] += cost.cache_saved_usd
        totals["global"] += cost.global_saved_usd
        if could:
            totals["would"] += cost.surcharge_usd
    lane.cost_usd, lane.cache_saved_usd = totals["cost"], totals["cache"]
    lane.global_saved_usd, lane.global_would_save_usd = totals["global"], totals["would"]


def _sum_or_none(values: Sequence[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return round(sum(v for v in values if v is not None), 6)


def _total(lanes: list[LaneEstimate]) -> dict[str, Any]:
    by_model = [lane.as_dict() for lane in lanes]
    return {
        "jobs": sum(lane.jobs for lane in lanes),
        "wall_clock_s": round(max((lane.wall_clock_s for lane in lanes), default=0.0), 1),
        "wall_clock_learned_s": round(
            max((lane.wall_clock_learned_s for lane in lanes), default=0.0), 1
        ),
        "input_tokens": sum(lane.input_tokens for lane in lanes),
        "output_tokens": sum(lane.output_tokens for lane in lanes),
        "cached_tokens": sum(lane.cached_tokens for lane in lanes),
        "cache_write_tokens": sum(lane.cache_write_tokens for lane in lanes),
        "cost_usd": _sum_or_none([lane.cost_usd for lane in lanes]),
        "cache_saved_usd": _sum_or_none([lane.cache_saved_usd for lane in lanes]),
        "global_saved_usd": _sum_or_none([lane.global_saved_usd for lane in lanes]),
        "global_would_save_usd": _sum_or_none([lane.global_would_save_usd for lane in lanes]),
        "by_model": by_model,
    }


def schema_output_guess(schema: Any) -> int:
    """Output tokens for a schema with no answers seen yet: 20 per leaf value plus 10 per
    object (keys and punctuation), arrays taken at 3 items (a stated guess)."""
    if not isinstance(schema, dict):
        return 20
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        inner = props.values() if isinstance(props, dict) else []
        return 10 + sum(schema_output_guess(p) for p in inner)
    if kind == "array":
        return 5 + 3 * schema_output_guess(schema.get("items"))
    return 20
