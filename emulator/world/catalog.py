"""The seed model catalog (gateway-api.md section 7.1) and what each region serves.

Prices are plausible USD per million tokens, not AssemblyAI's list prices. ``family`` decides the
provider-native wire details: finish reasons, refusal shape and usage naming; ``creator`` decides
which provider's schema restrictions apply (``emulator.routes.schema_rules``).

``lacks`` follows the live catalog (gateway-api.md 5.1, G1) where it was seen, and the providers'
own rules elsewhere: OpenAI's reasoning models (``gpt-5*``) reject ``temperature``, and models
with no thinking mode do not list ``reasoning``. Validation rejects what a model lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["anthropic", "google", "openai"]

_BASE_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "response_format",
    "reasoning",
)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    creator: str
    family: Family
    provider: str
    regions: tuple[str, ...]
    context_length: int
    price_in: float
    price_out: float
    lacks: tuple[str, ...] = ()
    retirement_date: str | None = None

    @property
    def supported_parameters(self) -> tuple[str, ...]:
        return tuple(p for p in _BASE_PARAMS if p not in self.lacks)

    def pricing(self) -> dict[str, Any]:
        """USD per million tokens, with the cache prices the creator has."""
        out: dict[str, Any] = {"input": self.price_in, "output": self.price_out}
        read = 0.25 if self.id == "gpt-4.1" else _CACHE_READ.get(self.creator)
        if read is not None:
            out["cache_read"] = round(self.price_in * read, 6)
        if self.creator in _CACHE_WRITE:
            out["cache_write"] = round(self.price_in * _CACHE_WRITE[self.creator], 6)
        out["unit"] = "usd_per_million_tokens"
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": f"{self.name} via AssemblyAI LLM Gateway (emulated)",
            "creator": self.creator,
            "context_length": self.context_length,
            "supported_parameters": list(self.supported_parameters),
            "default_parameters": {"max_tokens": 1000},
            "top_provider": {"context_length": self.context_length},
            "pricing": self.pricing(),
            "retirement_date": self.retirement_date,
            "available_regions": list(self.regions),
            "default_provider": {"id": self.provider, "name": self.provider},
        }


# Cache prices as multipliers of the input price, per creator (the providers' 2026 rates; see
# docs/emulator.md): Claude reads 0.1x and writes (5 minutes) 1.25x; the automatic caches of
# OpenAI (GPT-5.x 0.1x, GPT-4.1 0.25x), Gemini (0.25x) and Kimi read at a discount and charge no
# write, so they list ``cache_read`` only; Qwen lists none.
_CACHE_READ = {"anthropic": 0.1, "openai": 0.1, "google": 0.25, "moonshot": 0.1667}
_CACHE_WRITE = {"anthropic": 1.25}


def _claude(
    mid: str, name: str, price: tuple[float, float], ctx: int = 200_000, **kw: Any
) -> ModelInfo:
    regions = ("us", "eu", "global")
    return ModelInfo(mid, name, "anthropic", "anthropic", "bedrock", regions, ctx, *price, **kw)


def _gpt(
    mid: str, price: tuple[float, float], ctx: int = 400_000, lacks: tuple[str, ...] = ()
) -> ModelInfo:
    regions = ("us", "global") if mid.startswith("gpt-5") else ("us",)
    if mid.startswith("gpt-5"):
        # OpenAI's reasoning models refuse sampling parameters; the gateway passes that on.
        lacks = ("temperature", *lacks)
    return ModelInfo(
        mid, mid.upper(), "openai", "openai", "open_ai", regions, ctx, *price, lacks=lacks
    )


def _gemini(
    mid: str, price: tuple[float, float], regions: tuple[str, ...] = ("us", "eu"), **kw: Any
) -> ModelInfo:
    return ModelInfo(
        mid, mid.title(), "google", "google", "vertex", regions, 1_048_576, *price, **kw
    )


def _baseten(mid: str, creator: str, price: tuple[float, float], ctx: int, **kw: Any) -> ModelInfo:
    return ModelInfo(mid, mid, creator, "openai", "baseten", ("us",), ctx, *price, **kw)


_NO_OSS = ("response_format", "stream", "stream_options")
#: Seen live (G1): listed ``tools`` but not ``response_format``.
_NO_FORMAT = ("response_format",)
_NO_REASONING = ("reasoning",)

MODELS: tuple[ModelInfo, ...] = (
    _claude("claude-opus-4-7", "Claude Opus 4.7", (5.0, 25.0), 1_000_000, lacks=_NO_FORMAT),
    _claude("claude-opus-4-6", "Claude Opus 4.6", (5.0, 25.0)),
    _claude("claude-opus-4-5-20251101", "Claude Opus 4.5", (5.0, 25.0)),
    _claude("claude-sonnet-4-6", "Claude Sonnet 4.6", (3.0, 15.0)),
    _claude(
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        (3.0, 15.0),
        retirement_date="2026-12-31",  # our choice: one model near retirement, for clients
    ),
    _claude("claude-haiku-4-5-20251001", "Claude Haiku 4.5", (1.0, 5.0)),
    _gpt("gpt-5.5", (5.0, 40.0)),
    _gpt("gpt-5.2", (1.75, 14.0)),
    _gpt("gpt-5.1", (1.25, 10.0)),
    _gpt("gpt-5", (1.25, 10.0)),
    _gpt("gpt-5-mini", (0.25, 2.0)),
    _gpt("gpt-5-nano", (0.05, 0.4)),
    _gpt("gpt-4.1", (2.0, 8.0), 1_047_576, lacks=_NO_FORMAT + _NO_REASONING),
    _gpt("gpt-oss-120b", (0.15, 0.6), 131_072, lacks=_NO_OSS),
    _gpt("gpt-oss-20b", (0.05, 0.2), 131_072, lacks=_NO_OSS),
    _gemini("gemini-3.5-flash", (0.5, 3.0)),
    _gemini("gemini-3-flash-preview", (0.5, 3.0)),
    _gemini("gemini-3.1-flash-lite-preview", (0.25, 1.5), ("us",)),
    _gemini("gemini-2.5-pro", (1.25, 10.0)),
    _gemini("gemini-2.5-flash", (0.3, 2.5)),
    _gemini("gemini-2.5-flash-lite", (0.1, 0.4), lacks=_NO_REASONING),
    _baseten("qwen3-next-80b-a3b", "alibaba", (0.15, 1.5), 262_144),
    _baseten("qwen3-32B", "alibaba", (0.1, 0.3), 131_072, lacks=_NO_REASONING),
    _baseten("kimi-k2.5", "moonshot", (0.6, 2.5), 262_144),
    ModelInfo(
        "qwen3.5-4b-32k-fast",
        "Qwen3.5 4B 32k (fast)",
        "alibaba",
        "openai",
        "assemblyai",
        ("us", "eu"),
        32_768,
        0.02,
        0.1,
        lacks=("response_format", "tools", "tool_choice", "reasoning"),
    ),
)

BY_ID: dict[str, ModelInfo] = {m.id: m for m in MODELS}

#: The EU host serves Claude and Gemini only, minus the US-only Gemini preview. The catalog says
#: ``qwen3.5-4b-32k-fast`` is ``us,eu`` but the live EU host rejected it (G9); we follow the host.
_EU_IDS = frozenset(
    m.id for m in MODELS if m.family in ("anthropic", "google") and "eu" in m.regions
)


def served(region: str) -> dict[str, ModelInfo]:
    """The models a host in ``region`` accepts, by id."""
    if region == "eu":
        return {mid: m for mid, m in BY_ID.items() if mid in _EU_IDS}
    return dict(BY_ID)
