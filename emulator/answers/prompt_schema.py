"""The JSON Schema a prompt spells out, for models asked for JSON without ``response_format``.

Real models follow a schema written into the prompt (the usual route for a model whose catalog
entry lacks ``response_format``). The contract is generic rather than any one client's wording:
the schema is the **last** fenced code block (```` ```json ```` or a bare ```` ``` ````) in the
system and user messages, in order, whose body parses as a JSON object that looks like a JSON
Schema (has one of ``SCHEMA_KEYS``). Only fenced blocks count: a prompt also carries transcript
text and instructions, and a brace in those must not turn into a schema.

Fences are read line by line, as CommonMark does (an opening line starts with three backticks
and an info string, the next such line closes it), so a ```` ```python ```` block before the
schema cannot pair its closing fence with the schema's opening one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from emulator.routes.injection import content_text

SCHEMA_KEYS = frozenset(
    {"type", "properties", "$schema", "anyOf", "oneOf", "allOf", "$ref", "items", "enum"}
)
_FENCE = "```"
_JSON_INFO = frozenset({"", "json"})
_ROLES = ("system", "user")


def _blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every closed fenced block in ``text``."""
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if info is None:
            if stripped.startswith(_FENCE):
                info, body = stripped[len(_FENCE) :].strip().lower(), []
        elif stripped.startswith(_FENCE):
            blocks.append((info, "\n".join(body)))
            info = None
        else:
            body.append(line)
    return blocks


@lru_cache(maxsize=256)
def _last_schema(text: str) -> str | None:
    """The last schema-looking fenced JSON object in ``text``, re-serialised (cache-safe)."""
    found: str | None = None
    for info, body in _blocks(text):
        if info not in _JSON_INFO:
            continue
        try:
            value = json.loads(body)
        except ValueError:
            continue
        if isinstance(value, dict) and SCHEMA_KEYS & value.keys():
            found = json.dumps(value)
    return found


def prompt_schema(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The schema written into the system/user ``messages`` (see the module doc), or None."""
    found: str | None = None
    for message in messages:
        if message.get("role") not in _ROLES:
            continue
        text = content_text(message)
        if _FENCE in text:
            found = _last_schema(text) or found
    if found is None:
        return None
    schema: dict[str, Any] = json.loads(found)
    return schema
