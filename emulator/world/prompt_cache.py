"""Prompt caching as the providers do it behind the gateway (gateway-api.md 7.4).

- Claude (explicit): a prefix is cached only up to a breakpoint the request marks with
  ``cache_control`` (on a message, on a text part of a message, or top-level: up to the last
  message), and only when it holds at least the model's minimum (``MIN_TOKENS``). The first call
  with a prefix writes it (reported as ``cache_creation.ephemeral_5m_input_tokens``, or
  ``ephemeral_1h_input_tokens`` when the marker says ``"ttl": "1h"``); a call within the
  lifetime with the same prefix, tools and response_format reads it (``cached_tokens``). A read
  renews the lifetime, as Anthropic's does.
- OpenAI, Gemini and Kimi (automatic): the longest prefix seen before (per key and model) is
  read, counted from 1,024 tokens in steps of 128, within 5 minutes; no write is reported and
  nothing needs sending (``prompt_cache_key`` is accepted and changes nothing: the emulator has
  one cache machine per key and model, so every repeat hits).

Tokens are the emulator's own estimate (``injection.prompt_tokens``), counted on the messages
after transcript injection; cached and written tokens are parts of ``input_tokens``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

TTL_S = {"5m": 300.0, "1h": 3600.0}
MIN_TOKENS = {
    "claude-opus-4-7": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5-20251101": 4096,
    "claude-haiku-4-5-20251001": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-sonnet-4-5-20250929": 1024,
}
AUTOMATIC_CREATORS = frozenset({"openai", "google", "moonshot"})
AUTO_MIN_TOKENS = 1024
AUTO_STEP_TOKENS = 128
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class CacheUse:
    read: int = 0
    written_5m: int = 0
    written_1h: int = 0


def breakpoint_of(body: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The last message a ``cache_control`` marks (with its ttl), or None."""
    found: tuple[int, str] | None = None
    top = body.get("cache_control")
    if isinstance(top, dict) and messages:
        found = (len(messages) - 1, str(top.get("ttl") or "5m"))
    for index, message in enumerate(messages):
        marks = [message.get("cache_control")]
        content = message.get("content")
        if isinstance(content, list):
            marks += [p.get("cache_control") for p in content if isinstance(p, dict)]
        for mark in marks:
            ephemeral = isinstance(mark, dict) and mark.get("type") == "ephemeral"
            if ephemeral and (found is None or index >= found[0]):
                assert isinstance(mark, dict)
                found = (index, str(mark.get("ttl") or "5m"))
    return found


def marked(body: dict[str, Any]) -> bool:
    """Whether the request carries any ``cache_control`` (for the request log)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return breakpoint_of(body, messages) is not None


@dataclass
class PromptCache:
    """Entries by (key, model, prefix digest) -> expiry time."""

    entries: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def use(
        self,
        key: str,
        model: str,
        creator: str,
        req: dict[str, Any],
        messages: list[dict[str, Any]],
        count: Any,
        now: float,
    ) -> CacheUse:
        """What the call read from and wrote to the cache. ``count(messages)`` = tokens."""
        self._expire(now)
        if model.startswith("claude"):
            return self._explicit(key, model, req, messages, count, now)
        if creator in AUTOMATIC_CREATORS:
            return self._automatic(key, model, messages, now)
        return CacheUse()

    def _expire(self, now: float) -> None:
        if len(self.entries) > 50_000:
            self.entries = {k: t for k, t in self.entries.items() if t > now}

    def _explicit(
        self,
        key: str,
        model: str,
        req: dict[str, Any],
        messages: list[dict[str, Any]],
        count: Any,
        now: float,
    ) -> CacheUse:
        point = breakpoint_of(req, messages)
        if point is None:
            return CacheUse()
        index, ttl = point
        prefix = messages[: index + 1]
        tokens = int(count(prefix))
        if tokens < MIN_TOKENS.get(model, 4096):
            return CacheUse()  # below the minimum: uncached, no error
        surround = {k: req.get(k) for k in ("tools", "tool_choice", "response_format")}
        digest = _digest(json.dumps([surround, _plain(prefix)], sort_keys=True, default=str))
        slot = (key, model, digest)
        lifetime = TTL_S.get(ttl, TTL_S["5m"])
        if self.entries.get(slot, 0.0) > now:
            self.entries[slot] = now + lifetime
            return CacheUse(read=tokens)
        self.entries[slot] = now + lifetime
        return CacheUse(written_1h=tokens) if ttl == "1h" else CacheUse(written_5m=tokens)

    def _automatic(
        self, key: str, model: str, messages: list[dict[str, Any]], now: float
    ) -> CacheUse:
        text = "".join(f"{m.get('role')}\x1f{_text(m)}\x1e" for m in messages)
        total = len(text) // CHARS_PER_TOKEN
        read = 0
        hasher = hashlib.sha256()
        done = 0
        for tokens in range(AUTO_MIN_TOKENS, total + 1, AUTO_STEP_TOKENS):
            end = tokens * CHARS_PER_TOKEN
            hasher.update(text[done:end].encode())
            done = end
            slot = (key, model, hasher.copy().hexdigest())
            if self.entries.get(slot, 0.0) > now:
                read = tokens
            self.entries[slot] = now + TTL_S["5m"]
        return CacheUse(read=read)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _plain(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(m.get("role")), _text(m)) for m in messages]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
