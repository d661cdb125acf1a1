"""Interpret a model's answer against the job's JSON Schema, and build the re-ask after a miss.

:func:`interpret` works in a fixed order, which is part of its contract:

1. A refusal (refusal text, or a refusal/content-filter ``finish_reason``) is ``Refused`` and a
   cut-off answer (``finish_reason`` ``length`` or ``max_tokens``) is ``Truncated``. Neither is
   ever repaired: repairing a cut-off answer invents a complete-looking but partial result, and
   re-asking either as if it were a validation error fails the same way again.
2. Empty content is ``Invalid`` ("empty answer").
3. The text is parsed with ``json.loads``; failing that, a surrounding markdown code fence is
   stripped, and failing that ``json_repair`` mends it (prose around the JSON, trailing commas,
   single quotes, Python literals, a missing closing bracket). The steps used are recorded in
   ``repairs``. A repair must yield a non-empty object or array, never an empty or scalar
   stand-in for text that was not JSON.
   A number too large for a float (``1e999``) is not JSON a database can hold: unparseable.
4. NUL characters in strings (``\u0000``, which Postgres cannot store) are removed, recorded as
   the repair ``nul_removed``.
5. The value is validated against the schema (formats included); every violation is reported.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import json_repair

from worker.prompts import neutralise_tags
from worker.schemas import check_schema, schema_hash, validation_errors, validator_for

__all__ = [
    "Invalid",
    "Outcome",
    "Refused",
    "Truncated",
    "Valid",
    "build_reask_messages",
    "check_schema",
    "interpret",
    "schema_hash",
    "validation_errors",
    "validator_for",
]

REFUSAL_FINISH_REASONS = frozenset(
    # OpenAI, Claude, then Gemini's provider-native block reasons (lower-cased).
    {"refusal", "content_filter", "safety", "prohibited_content", "blocklist", "spii", "recitation"}
)
TRUNCATION_FINISH_REASONS = frozenset({"length", "max_tokens"})

_WHOLE_FENCE = re.compile(r"\s*```[ \t]*[\w+-]*[ \t]*\n(.*?)\n?[ \t]*```\s*", re.DOTALL)
_INNER_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)
_REPAIR_FAILURES = (ValueError, TypeError, IndexError, KeyError, RecursionError)


@dataclass(frozen=True, slots=True)
class Valid:
    data: Any
    repaired: bool = False
    repairs: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "valid"


@dataclass(frozen=True, slots=True)
class Invalid:
    """``data`` is the parsed value, or None when nothing could be parsed."""

    data: Any
    errors: list[str]
    repaired: bool = False
    repairs: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "invalid"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    finish_reason: str | None = None
    kind: ClassVar[str] = "refused"


@dataclass(frozen=True, slots=True)
class Truncated:
    finish_reason: str
    content: str | None = None
    kind: ClassVar[str] = "truncated"


Outcome = Valid | Invalid | Refused | Truncated


def interpret(
    content: str | None,
    *,
    finish_reason: str | None,
    refusal: str | None,
    schema: dict[str, Any] | bool,
) -> Outcome:
    """Classify one answer; see the module docstring for the order of the checks."""
    reason = (finish_reason or "").strip().lower()
    if (refusal and refusal.strip()) or reason in REFUSAL_FINISH_REASONS:
        text = refusal.strip() if refusal and refusal.strip() else f"finish_reason {finish_reason}"
        return Refused(reason=text, finish_reason=finish_reason)
    if reason in TRUNCATION_FINISH_REASONS:
        return Truncated(finish_reason=finish_reason or reason, content=content)
    if content is None or not content.strip():
        return Invalid(data=None, errors=["empty answer"])
    parsed = _parse(content)
    if isinstance(parsed, str):
        return Invalid(data=None, errors=[parsed])
    data, repairs = parsed
    data, had_nul = _without_nul(data)
    if had_nul:
        repairs = [*repairs, "nul_removed"]
    errors = validation_errors(data, schema)
    if errors:
        return Invalid(data=data, errors=errors, repaired=bool(repairs), repairs=repairs)
    return Valid(data=data, repaired=bool(repairs), repairs=repairs)


def _parse(content: str) -> tuple[Any, list[str]] | str:
    """``(value, repairs)``, or an ``"unparseable: ..."`` error."""
    try:
        return _strict_loads(content), []
    except RecursionError:
        return "unparseable: JSON nested too deeply"
    except ValueError as exc:
        first_error = str(exc)
    whole = _WHOLE_FENCE.fullmatch(content)
    inner = whole or _INNER_FENCE.search(content)
    if inner:
        try:
            return _strict_loads(inner.group(1)), ["code_fence"]
        except (ValueError, RecursionError):
            pass
    # A fence around the whole answer is removed before mending; prose around a fenced block is
    # left to json_repair, which looks past it.
    text, repairs = (whole.group(1), ["code_fence"]) if whole else (content, [])
    mended = _mend(text)
    if mended is None:
        return f"unparseable: {first_error}; json_repair found no JSON object or array in it"
    return mended, [*repairs, "json_repair"]


def _strict_loads(text: str) -> Any:
    value = json.loads(text, parse_constant=_reject_constant)
    if not _is_finite(value):
        raise ValueError("a number is out of range (JSON numbers must be finite)")
    return value


def _without_nul(value: Any) -> tuple[Any, bool]:
    """``value`` with NUL removed from every string and key, and whether there was one."""
    if isinstance(value, str):
        return (value.replace("\x00", ""), True) if "\x00" in value else (value, False)
    if isinstance(value, list):
        items = [_without_nul(item) for item in value]
        return [item for item, _ in items], any(found for _, found in items)
    if isinstance(value, dict):
        pairs = [(_without_nul(k), _without_nul(v)) for k, v in value.items()]
        found = any(k[1] or v[1] for k, v in pairs)
        return ({k[0]: v[0] for k, v in pairs} if found else value), found
    return value, False


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _mend(text: str) -> dict[str, Any] | list[Any] | None:
    """json_repair's reading of ``text``, if it is a non-empty object or array of finite JSON."""
    try:
        value = json_repair.loads(text)
    except _REPAIR_FAILURES:
        return None
    if isinstance(value, dict | list) and value and _is_finite(value):
        return value
    return None


def _is_finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_is_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_is_finite(item) for item in value)
    return True


def build_reask_messages(
    messages: list[dict[str, str]], previous_answer: str, errors: list[str]
) -> list[dict[str, str]]:
    """The original messages, the previous answer, and a request to fix the listed errors.

    The transcript tag stays in the original messages only: tag-like text in the answer or the
    errors is broken up, so the gateway still injects the transcript where the template put it.
    """
    out = [dict(message) for message in messages]
    answer = neutralise_tags(previous_answer)
    if answer.strip():
        if out and out[-1].get("role") == "assistant":
            # The template ended with an assistant prefill, which the answer continued.
            out[-1] = {"role": "assistant", "content": out[-1]["content"] + answer}
        else:
            out.append({"role": "assistant", "content": answer})
    problems = [neutralise_tags(error) for error in errors] or ["the answer was not usable JSON"]
    listed = "\n".join(f"- {problem}" for problem in problems)
    out.append(
        {
            "role": "user",
            "content": (
                "Your previous answer does not match the required JSON Schema:\n"
                f"{listed}\n\n"
                "Reply with the corrected JSON only: a single JSON value that matches the "
                "schema, with no explanation and no code fence."
            ),
        }
    )
    return out
