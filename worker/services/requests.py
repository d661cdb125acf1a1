"""Turning a stored job into a gateway request: pure, so it is tested without servers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.caching import CachePolicy
from worker.caching import apply as apply_caching
from worker.gateway.types import CompletionRequest, Fallback, Message, ModelInfo
from worker.output import build_reask_messages
from worker.prompts import CompiledTemplate, render_prompt
from worker.services.routes import (
    ChainPlan,
    Route,
    plan_chain,
    with_schema_in_prompt,
)

__all__ = ["PlannedRequest", "build_request"]


@dataclass(frozen=True)
class PlannedRequest:
    """The request and the plan it was built from (to read and record the answer);
    ``global_models``: the models of the chain sent ``model_region: "global"`` (priced
    without the in-region surcharge)."""

    request: CompletionRequest
    plan: ChainPlan
    global_models: frozenset[str] = frozenset()
    cache_marked: bool = False  # the static prefix carries ``cache_control``


def global_models(
    chain: list[str], catalog: Mapping[str, ModelInfo], region: str, wanted: bool
) -> frozenset[str]:
    """The models of ``chain`` that take ``model_region: "global"``: only when the job asks
    for it, never on an EU job (its data must stay in the EU), and only for a model whose
    catalog entry lists ``global`` in ``available_regions``."""
    if not wanted or region == "eu":
        return frozenset()
    out = set()
    for model in chain:
        info = catalog.get(model)
        if info is not None and info.available_regions and "global" in info.available_regions:
            out.add(model)
    return frozenset(out)


def build_request(
    *,
    template: CompiledTemplate,
    variables: Mapping[str, object] | None,
    schema: Any,
    transcript_id: str,
    model: str,
    fallbacks: list[str],
    region: str,
    max_tokens: int,
    temperature: float | None,
    model_region_global: bool,
    catalog: Mapping[str, ModelInfo],
    reask_context: Mapping[str, Any] | None = None,
    reasoning: Mapping[str, Any] | None = None,
    caching: CachePolicy | None = None,
) -> PlannedRequest:
    plan = plan_chain([model, *fallbacks], catalog, schema, max_tokens)
    rendered = render_prompt(template, variables or {})
    messages: list[dict[str, Any]] = list(rendered.messages)
    if plan.top.route == Route.PROMPT and isinstance(schema, dict):
        messages = with_schema_in_prompt(messages, schema)
    if reask_context:
        messages = build_reask_messages(
            messages, str(reask_context.get("answer") or ""), list(reask_context.get("errors", []))
        )
    cache = apply_caching(
        messages,
        rendered.cache_point,
        chain=[model, *fallbacks],
        catalog=catalog,
        text_hash=template.text_hash,
        policy=caching or CachePolicy(enabled=False),
    )
    messages = cache.messages
    top = {**plan.fields(plan.top.route), **cache.fields}
    if reasoning:
        top["reasoning"] = dict(reasoning)  # gated at enqueue on every model of the chain
    response_format = top.pop("response_format", None)
    json_schema = response_format["json_schema"] if response_format else None
    routed = global_models([model, *fallbacks], catalog, region, model_region_global)
    # The top level carries "global" when the primary takes it, and each fallback that takes
    # it while the top level does not adds it by override. A fallback that does not take it
    # under a "global" top level inherits it: removing an inherited field is undocumented and
    # a null may be refused ("model_region can only be set to global"), while the gateway
    # accepts "global" on any model (live G9); that call is priced in-region.
    top_global = model in routed
    overrides = [
        {**o, "model_region": "global"} if m in routed and not top_global else o
        for m, o in zip(fallbacks, plan.fallback_overrides, strict=True)
    ]
    request = CompletionRequest(
        model=model,
        messages=[Message(**m) for m in messages],
        region=region,
        transcript_id=transcript_id,
        max_tokens=plan.top.max_tokens,
        temperature=temperature,
        fallbacks=[
            Fallback(model=m, overrides=o) for m, o in zip(fallbacks, overrides, strict=True)
        ],
        response_format_name=json_schema["name"] if json_schema else None,
        response_format_schema=json_schema["schema"] if json_schema else None,
        strict=bool(json_schema and json_schema["strict"]),
        # An EU job asking for global keeps asking, so the check before sending refuses it.
        model_region_global=model_region_global if region == "eu" else top_global,
        extra=top,
    )
    return PlannedRequest(request, plan, routed, cache.marked)
