"""The 200 body (gateway-api.md section 6.1) with provider-native finish reasons and usage.

Refusals follow each provider: OpenAI-family models put the text in ``message.refusal`` with
``content: null`` and finish ``stop``; Claude finishes ``refusal`` with the text as content;
Gemini finishes ``content_filter`` with no content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.answers.model import Completion
from emulator.routes import envelopes as env
from emulator.world.catalog import ModelInfo
from emulator.world.prompt_cache import CacheUse


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


#: Thinking tokens a model spends per ``reasoning.effort`` (our choice; the providers publish
#: none): reported in ``completion_tokens_details.reasoning_tokens`` and counted in output.
REASONING_BY_EFFORT = {"low": 256, "medium": 1024, "high": 4096}
REASONING_MAX = 1024  # a ``{"max_tokens": N}`` budget spends min(N, this)


def reasoning_tokens(req: dict[str, Any]) -> int:
    """The thinking tokens a request that asks for ``reasoning`` spends (0 without)."""
    reasoning = req.get("reasoning")
    if not isinstance(reasoning, dict):
        return 0
    budget = reasoning.get("max_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return min(budget, REASONING_MAX)
    return REASONING_BY_EFFORT.get(str(reasoning.get("effort") or "medium"), 1024)


@dataclass(frozen=True)
class Spent:
    """The prompt's tokens (cache reads and writes are parts of them) and the thinking ones."""

    input_tokens: int
    cache: CacheUse = field(default_factory=CacheUse)
    reasoning_tokens: int = 0


def success_body(
    request_id: str,
    body: dict[str, Any],
    info: ModelInfo,
    done: Completion,
    spent: Spent,
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
        "usage": env.usage(
            info.family,
            spent.input_tokens,
            done.output_tokens + spent.reasoning_tokens,
            cache=spent.cache,
            reasoning_tokens=spent.reasoning_tokens,
        ),
        "http_status_code": 200,
        "response_time": elapsed_ns,
        "llm_status_code": 200,
    }
    if omit_model:
        del out["model"]
    return out
