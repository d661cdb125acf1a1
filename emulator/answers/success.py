"""The 200 body (gateway-api.md section 6.1) with provider-native finish reasons and usage.

Refusals follow each provider: OpenAI-family models put the text in ``message.refusal`` with
``content: null`` and finish ``stop``; Claude finishes ``refusal`` with the text as content;
Gemini finishes ``content_filter`` with no content.
"""

from __future__ import annotations

from typing import Any

from emulator.answers.model import Completion
from emulator.routes import envelopes as env
from emulator.world.catalog import ModelInfo


def _message(info: ModelInfo, done: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": done.content,
        "tool_calls": done.tool_calls,
    }
    if info.family == "openai":
        message["refusal"] = done.refusal
    if done.finish == "refusal" and info.family == "anthropic":
        message["content"] = done.refusal
    return message


def success_body(
    request_id: str,
    body: dict[str, Any],
    info: ModelInfo,
    done: Completion,
    input_tokens: int,
    elapsed_ns: int,
    omit_model: bool = False,
) -> dict[str, Any]:
    """The 200 body; ``omit_model`` drops the top-level ``model`` as some providers' answers
    did (June 2026), while the ``request`` echo keeps the model asked for."""
    out: dict[str, Any] = {
        "request_id": request_id,
        "request": env.request_echo(body, str(body["model"])),
        "model": info.id,
        "choices": [
            {
                "index": 0,
                "message": _message(info, done),
                "finish_reason": env.FINISH[info.family][done.finish],
            }
        ],
        "usage": env.usage(info.family, input_tokens, done.output_tokens),
        "http_status_code": 200,
        "response_time": elapsed_ns,
        "llm_status_code": 200,
    }
    if omit_model:
        del out["model"]
    return out
