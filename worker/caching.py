"""Prompt caching that pays (pure): mark a template's static prefix for the providers that need
it marked, only where the prefix is long enough to be cached at all.

- Claude (explicit opt-in, gateway-api.md 7.4): the static prefix (``prompts.render_prompt``)
  gets ``cache_control: {"type": "ephemeral"}`` on the message it ends, as the gateway
  documents it (a message key, 2.1). When the prefix ends inside a message, that message is
  split in two of the same role (the prefix, marked; the rest), so the transcript tag stays in
  string content: whether the gateway injects into a content-part array is an open question
  (9.8), and consecutive messages of one role reach the model as one turn.
- Only when the prefix meets the model's minimum cacheable tokens (``MIN_CACHE_TOKENS``; below
  it the gateway runs the call uncached, and the 1.25x write would buy nothing). Tokens are
  estimated conservatively as characters / 4 rounded down (English prose runs nearer 3.5-4
  characters per token on Claude's tokenizer, so the estimate errs low, never marking a prefix
  that falls short).
- OpenAI and Kimi cache automatically; they get ``prompt_cache_key`` (passed through, 7.4)
  from the template's hash, so a batch's calls land on the same cache. Gemini caches
  automatically with nothing to send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.gateway.types import ModelInfo
from worker.pricing import provider_of

CHARS_PER_TOKEN = 4
EPHEMERAL = {"type": "ephemeral"}
# Minimum cacheable prefix per model id prefix (gateway-api.md 7.4); the longest matching
# prefix wins; TBATCH_CACHE_MIN_TOKENS extends or overrides it.
MIN_CACHE_TOKENS: dict[str, int] = {
    "claude-opus-4-7": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-opus-4": 1024,
    "claude": 4096,  # an unlisted Claude: the largest documented minimum
}
EXPLICIT = frozenset({"anthropic"})
CACHE_KEY_PROVIDERS = frozenset({"openai", "moonshot"})


@dataclass(frozen=True)
class CachePolicy:
    enabled: bool = True
    min_tokens: Mapping[str, int] = field(default_factory=lambda: dict(MIN_CACHE_TOKENS))

    @classmethod
    def build(cls, enabled: bool, overrides: Mapping[str, int] | None = None) -> CachePolicy:
        return cls(enabled, {**MIN_CACHE_TOKENS, **(overrides or {})})

    def minimum(self, model: str) -> int | None:
        """The model's minimum cacheable prefix; None: not a model tbatch marks."""
        keys = [key for key in self.min_tokens if model.lower().startswith(key.lower())]
        return self.min_tokens[max(keys, key=len)] if keys else None


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN


def prefix_text(messages: Sequence[Mapping[str, Any]], point: tuple[int, int]) -> str:
    index, offset = point
    parts = [str(m.get("content") or "") for m in messages[:index]]
    parts.append(str(messages[index].get("content") or "")[:offset])
    return "".join(parts)


def marks(
    chain: Sequence[str], catalog: Mapping[str, ModelInfo], prefix_tokens: int, policy: CachePolicy
) -> bool:
    """Whether to mark: some Claude model of the chain takes a prefix this long."""
    for model in chain:
        info = catalog.get(model) or ModelInfo(id=model)
        minimum = policy.minimum(model)
        if provider_of(info) in EXPLICIT and minimum is not None and prefix_tokens >= minimum:
            return True
    return False


def cache_key_wanted(chain: Sequence[str], catalog: Mapping[str, ModelInfo]) -> bool:
    return any(
        provider_of(catalog.get(model) or ModelInfo(id=model)) in CACHE_KEY_PROVIDERS
        for model in chain
    )


def prompt_cache_key(text_hash: str) -> str:
    return f"tbatch-{text_hash[:32]}"


def mark_prefix(messages: list[dict[str, Any]], point: tuple[int, int]) -> list[dict[str, Any]]:
    """``messages`` with ``cache_control`` where the prefix ends (split there if mid-message)."""
    out = [dict(m) for m in messages]
    index, offset = point
    content = out[index].get("content")
    if not isinstance(content, str):
        return out
    if offset <= 0:
        if index == 0:
            return out
        out[index - 1]["cache_control"] = dict(EPHEMERAL)
        return out
    if offset >= len(content):
        out[index]["cache_control"] = dict(EPHEMERAL)
        return out
    role = out[index]["role"]
    head = {"role": role, "content": content[:offset], "cache_control": dict(EPHEMERAL)}
    tail = {**out[index], "content": content[offset:]}
    return [*out[:index], head, tail, *out[index + 1 :]]


@dataclass(frozen=True)
class CacheDecision:
    messages: list[dict[str, Any]]
    fields: dict[str, Any]  # top-level body fields (``prompt_cache_key``)
    marked: bool
    prefix_tokens: int


def apply(
    messages: list[dict[str, Any]],
    point: tuple[int, int] | None,
    *,
    chain: Sequence[str],
    catalog: Mapping[str, ModelInfo],
    text_hash: str,
    policy: CachePolicy,
) -> CacheDecision:
    """The messages and fields to send for caching (unchanged when caching is off)."""
    if not policy.enabled:
        return CacheDecision(messages, {}, False, 0)
    fields = {"prompt_cache_key": prompt_cache_key(text_hash)}
    fields = fields if cache_key_wanted(chain, catalog) else {}
    if point is None:
        return CacheDecision(messages, fields, False, 0)
    tokens = estimate_tokens(prefix_text(messages, point))
    if not marks(chain, catalog, tokens, policy):
        return CacheDecision(messages, fields, False, tokens)
    return CacheDecision(mark_prefix(messages, point), fields, True, tokens)
