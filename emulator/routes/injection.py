"""Transcript injection and prompt token counting.

The tag is exactly ``{{ transcript }}``. Only its first occurrence in the first message that
contains it is replaced (string content, or a text part of an array content); later tags stay
literal, and variants like ``{{transcript}}`` are never substituted. Tokens are counted as
~4 characters each, the usual rule of thumb, so usage grows with the injected text.
"""

from __future__ import annotations

import math
from typing import Any

TAG = "{{ transcript }}"
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


def messages_of(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation: ``messages``, then ``prompt`` (if any) as a final user message."""
    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    prompt = req.get("prompt")
    if isinstance(prompt, str):
        messages.append({"role": "user", "content": prompt})
    return messages


def content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def inject(messages: list[dict[str, Any]], text: str) -> tuple[list[dict[str, Any]], bool]:
    """``messages`` with the first tag replaced by ``text``; the flag says whether it was."""
    for index, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str) and TAG in content:
            replaced = {**message, "content": content.replace(TAG, text, 1)}
            return [*messages[:index], replaced, *messages[index + 1 :]], True
        if isinstance(content, list):
            for pi, part in enumerate(content):
                if isinstance(part, dict) and TAG in str(part.get("text", "")):
                    new_part = {**part, "text": str(part["text"]).replace(TAG, text, 1)}
                    parts = [*content[:pi], new_part, *content[pi + 1 :]]
                    replaced = {**message, "content": parts}
                    return [*messages[:index], replaced, *messages[index + 1 :]], True
    return messages, False


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Input tokens: ~4 characters per token plus a small per-message overhead."""
    return sum(count_tokens(content_text(m)) + TOKENS_PER_MESSAGE for m in messages)
