"""The emulated LLM: one completion for one attempt, with content-level faults applied.

Transport-level faults (5xx, 429, hang) are the gateway loop's business; this module only
decides what the model *says*: a schema instance (from ``response_format`` or a schema written
in the prompt), a tool call, plain text, or the broken, refused or truncated versions of those.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from emulator.answers.instances import instance_for, text_answer
from emulator.answers.malform import UNREPAIRABLE_TEXT, cut, malform, violate
from emulator.answers.prompt_schema import prompt_schema
from emulator.answers.source import Source
from emulator.rng import seeded
from emulator.routes.injection import CHARS_PER_TOKEN, count_tokens, messages_of
from emulator.world.catalog import ModelInfo

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."


@dataclass
class Completion:
    content: str | None
    finish: str  # generic: stop | length | refusal | tool (mapped per family by envelopes)
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    output_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _schema(req: dict[str, Any]) -> object | None:
    fmt = req.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    schema: object = spec.get("schema") if isinstance(spec, dict) else None
    return schema


def _forced(req: dict[str, Any]) -> bool:
    """``tool_choice`` names a function: the model must answer through that tool."""
    choice = req.get("tool_choice")
    return isinstance(choice, dict) and isinstance(choice.get("function"), dict)


def _tool(req: dict[str, Any]) -> dict[str, Any] | None:
    """The function the model calls, if tools were offered and not switched off."""
    tools = req.get("tools")
    choice = req.get("tool_choice", "auto")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    functions: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        functions = [f for f in functions if f.get("name") == wanted] or functions
    return functions[0] if functions else None


def _plain(kind: str | None, text: str, rng: random.Random) -> str:
    """Content-level faults applied to a plain-text answer."""
    if kind == "code_fence":
        return f"```\n{text}\n```"
    if kind == "prose":
        return f"Sure! {text} Let me know if you need anything else."
    if kind == "truncated_json":
        return cut(text, rng)
    if kind == "unrepairable":
        return UNREPAIRABLE_TEXT
    return text


def _json_value(
    schema: object | None, json_wanted: bool, fault: str | None, rng: random.Random, src: Source
) -> Any:
    """The JSON the model means to send (before malformation), or None for a text answer."""
    if schema is not None:
        value = instance_for(schema, rng, src)
        return violate(schema, value, rng) if fault == "schema_violation" else value
    if json_wanted:
        value = {"answer": text_answer(rng, src)}
        return ["unexpected", "shape"] if fault == "schema_violation" else value
    return None


def _finished(
    text: str, fault: str | None, rng: random.Random, req: dict[str, Any]
) -> tuple[str, str]:
    """``text`` after truncation (the fault, or ``max_tokens``), with the generic finish."""
    finish = "stop"
    if fault == "truncation":
        text, finish = cut(text, rng), "length"
    max_tokens = int(req.get("max_tokens") or 1000)
    if count_tokens(text) > max_tokens:
        text, finish = text[: max_tokens * CHARS_PER_TOKEN], "length"
    return text, finish


def _tool_call(
    tool: dict[str, Any], req: dict[str, Any], src: Source, rng: random.Random, fault: str | None
) -> Completion:
    """An answer through ``tool`` only; content faults break its arguments as they would break
    content, so a client's repair and re-ask paths are exercised on tool calls too."""
    schema = tool.get("parameters") or {"type": "object"}
    value = _json_value(schema, True, fault, rng, src)
    raw = malform(fault, value, rng) if fault else json.dumps(value)
    text, finish = _finished(raw, fault, rng, req)
    call = {
        "id": f"call_{rng.getrandbits(48):012x}",
        "type": "function",
        "function": {"name": str(tool.get("name", "tool")), "arguments": text},
    }
    return Completion(
        content=None,
        finish="tool" if finish == "stop" else finish,
        tool_calls=[call],
        output_tokens=max(1, count_tokens(text)),
    )


def complete(
    req: dict[str, Any],
    info: ModelInfo,
    src: Source,
    rng_parts: tuple[object, ...],
    fault: str | None,
    json_wanted: bool,
) -> Completion:
    """What ``info`` answers to ``req``; ``fault`` is a content-level fault kind or None.

    Precedence: a forced ``tool_choice`` > ``response_format`` > offered tools (``auto``) >
    a schema written in the prompt > JSON because json-repair was asked for > plain text.
    """
    rng = seeded(*rng_parts)
    if fault == "refusal":
        return Completion(
            content=None,
            finish="refusal",
            refusal=REFUSAL_TEXT,
            output_tokens=count_tokens(REFUSAL_TEXT),
        )
    schema = _schema(req)
    tool = _tool(req)
    if tool is not None and (schema is None or _forced(req)):
        return _tool_call(tool, req, src, rng, fault)
    if schema is None:
        schema = prompt_schema(messages_of(req))
    value = _json_value(schema, json_wanted, fault, rng, src)
    if value is None:
        text = _plain(fault, text_answer(rng, src), rng)
    else:
        text = malform(fault, value, rng) if fault else json.dumps(value)
    text, finish = _finished(text, fault, rng, req)
    return Completion(content=text, finish=finish, output_tokens=max(1, count_tokens(text)))
