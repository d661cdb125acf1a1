"""What a call cost, from the catalog's prices and the answer's usage (an estimate: the gateway
bills; AssemblyAI passes provider prices through)."""

from __future__ import annotations

from worker.gateway.types import CompletionResult, ModelInfo


def estimate_cost(info: ModelInfo | None, result: CompletionResult) -> float | None:
    """The call's price from the catalog's per-million-token prices; None when unknown."""
    if info is None or info.input_usd_per_mtok is None or info.output_usd_per_mtok is None:
        return None
    cached = result.usage.cached_tokens or 0
    fresh_in = max(0, (result.usage.input_tokens or 0) - cached)
    # Cached input is billed at a discount; 10% is the common provider rate.
    cost = fresh_in * info.input_usd_per_mtok + cached * info.input_usd_per_mtok * 0.1
    cost += (result.usage.output_tokens or 0) * info.output_usd_per_mtok
    return round(cost / 1_000_000, 8)
