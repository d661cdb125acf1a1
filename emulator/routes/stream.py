"""SSE rendering of a finished completion for ``stream: true`` (gateway-api.md section 6.2).

The answer is computed first and then sent as OpenAI ``chat.completion.chunk`` events: a role
chunk, the content in a few pieces, a finish chunk, a usage-only chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

_PIECES = 4


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{body['request_id'].replace('-', '')[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def sse_events(body: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    choice = body["choices"][0]
    message = choice["message"]
    content = message.get("content") or ""
    yield _event(_chunk(body, {"role": "assistant", "content": ""}, None))
    step = max(1, -(-len(content) // _PIECES))
    for start in range(0, len(content), step):
        yield _event(_chunk(body, {"content": content[start : start + step]}, None))
    if message.get("tool_calls"):
        yield _event(_chunk(body, {"tool_calls": message["tool_calls"]}, None))
    yield _event(_chunk(body, {}, choice["finish_reason"]))
    if include_usage:
        last = _chunk(body, {}, None)
        last["choices"] = []
        last["usage"] = body["usage"]
        yield _event(last)
    yield b"data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"
