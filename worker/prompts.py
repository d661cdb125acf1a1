"""Prompt templates: compile a user's Jinja2 template file and render it into chat messages.

File format: Jinja2 text. A line that is exactly ``[system]``, ``[user]`` or ``[assistant]``
(trailing whitespace allowed) starts a message of that role; text before the first marker, or
the whole file when there are no markers, is a ``user`` message. Each message is compiled on its
own (a ``{% if %}`` cannot span two messages), rendered, stripped of surrounding whitespace, and
dropped when empty. Template errors carry the line number in the file.

The transcript tag. The gateway injects the transcript server-side: it replaces the first exact
``{{ transcript }}`` in the first message that contains it, and silently ignores
``transcript_id`` when no message does. In a template ``{{ transcript }}`` is Jinja syntax, so we
render with ``transcript`` bound to an unguessable sentinel and then swap the sentinel for the
exact tag. Consequences for template authors:

- ``{{ transcript }}``, ``{{transcript}}`` and ``{{- transcript -}}`` all print the variable and
  so all produce the exact tag (spacing inside a Jinja expression does not matter); the tag in
  the output is always the exact one the gateway wants.
- ``{{ transcript | upper }}`` or ``{{ transcript[:100] }}`` produce no tag: the gateway can only
  insert the whole transcript verbatim, so such templates are rejected.
- The rendered messages must contain the tag exactly once, counting tags from
  ``{% raw %}`` blocks; a second one would reach the model as literal text.

Variables may not be named ``transcript`` and their values (strings nested in lists and dicts
too) may not contain tag-like text such as ``{{ transcript }}`` or ``{{TRANSCRIPT}}``: the
gateway could inject the transcript there instead of where the template put it.

The static prefix (prompt caching, ``worker/caching.py``): what renders the same for every job of
a batch. Automatically it is everything before the first per-job part: the literal text of each
message up to its first Jinja expression or statement (``{{ transcript }}`` included); messages
with none are static whole. A template author may place the breakpoint explicitly with the
comment ``{# cache #}`` (once, before ``{{ transcript }}``): everything rendered before it is the
prefix, variables included (for variables that are the same for the whole batch). The comment
renders as nothing, so the template means the same to any other Jinja tool.

Rendering runs in Jinja's immutable sandbox with ``StrictUndefined``: an undefined variable is an
error naming it, and attribute-walking escapes (``''.__class__``) fail instead of rendering.
Every failure is an :class:`~worker.errors.InputError`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.errors import InputError
from worker.gateway.types import TRANSCRIPT_TAG

TRANSCRIPT_VARIABLE = "transcript"
ROLES = ("system", "user", "assistant")
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 256 * 1024

_TAG_LIKE = re.compile(r"\{\{\s*-?\s*transcript\s*-?\s*\}\}", re.IGNORECASE)
_MARKER = re.compile(r"\[(system|user|assistant)\]")
_CACHE_MARKER = re.compile(r"\{#-?\s*cache\s*-?#\}")
# Lines that look like a role marker but are not one (``[User]``, ``[ tool ]``): almost surely
# a typo that would otherwise reach the model as text.
_NEAR_MARKER = re.compile(
    r"\s*\[\s*(system|user|assistant|tool|developer|function)\s*\]\s*", re.IGNORECASE
)
_JINJA_FILENAME = "<template>"
_MAX_POW_EXPONENT = 1000
_STREAM_SLACK_CHARS = 4096


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """One ``[role]`` section of a template file; ``line`` is its first content line;
    ``static_prefix`` its literal text before the first Jinja expression or statement, and
    ``static`` whether that is all of it."""

    role: str
    line: int
    template: Template
    static_prefix: str = ""
    static: bool = False


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    source: str
    text_hash: str
    messages: tuple[MessageTemplate, ...]
    # What ``{# cache #}`` was compiled to (a literal the render removes); None: no marker.
    cache_sentinel: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """Rendered messages and where their static prefix ends: ``(message index, offset)``
    into ``messages`` (offset = the message's length: the whole message); ``explicit`` when a
    ``{# cache #}`` marker placed it. None: no static prefix."""

    messages: list[dict[str, str]]
    cache_point: tuple[int, int] | None
    explicit: bool = False


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus bounds on ``*`` and ``**`` (``'x' * 10**9`` is a memory bomb)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > _MAX_POW_EXPONENT:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            size, count = (left, right) if isinstance(right, int) else (right, left)
            if (
                isinstance(size, str | list | tuple)
                and isinstance(count, int)
                and len(size) * count > MAX_MESSAGE_BYTES
            ):
                raise SecurityError("repetition result is too large")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    return _Sandbox(undefined=StrictUndefined, autoescape=False)


def template_hash(text: str) -> str:
    """sha256 hex of the template text; templates are stored by content hash."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_tag_like(text: str) -> str | None:
    """The first piece of ``text`` the gateway could take for the transcript tag, if any."""
    match = _TAG_LIKE.search(text)
    return match.group(0) if match else None


def neutralise_tags(text: str) -> str:
    """Break every tag-like ``{{ transcript }}`` in ``text`` into ``{ { transcript } }``."""
    return _TAG_LIKE.sub(lambda m: m.group(0).replace("{{", "{ {").replace("}}", "} }"), text)


def compile_template(text: str, *, source: str = "<template>") -> CompiledTemplate:
    """Parse and compile a template file; raise InputError naming ``source`` and the line."""
    size = len(text.encode("utf-8"))
    if size > MAX_TEMPLATE_BYTES:
        raise InputError(
            f"template is {size} bytes; the limit is {MAX_TEMPLATE_BYTES}", source=source
        )
    env = _environment()
    compiled = []
    sentinel = _cache_sentinel(text, source)
    for role, line, body in _split_sections(text, source):
        if sentinel is not None:
            body = _CACHE_MARKER.sub(sentinel, body)
        # Pad with newlines so Jinja's line numbers are line numbers in the file.
        padded = "\n" * (line - 1) + body
        try:
            template = env.from_string(padded)
            static_prefix, static = _static_prefix(env.parse(padded))
        except TemplateSyntaxError as exc:
            raise InputError(
                f"template syntax error: {exc.message}", source=source, line=exc.lineno
            ) from None
        compiled.append(MessageTemplate(role, line, template, static_prefix, static))
    return CompiledTemplate(
        source=source,
        text_hash=template_hash(text),
        messages=tuple(compiled),
        cache_sentinel=sentinel,
    )


def _cache_sentinel(text: str, source: str) -> str | None:
    """A fresh literal for the ``{# cache #}`` marker, or None without one; two markers are
    an error (one breakpoint: the prefix before it)."""
    found = list(_CACHE_MARKER.finditer(text))
    if len(found) > 1:
        line = text.count("\n", 0, found[1].start()) + 1
        raise InputError(
            "a template may hold one {# cache #} marker (the end of its cached prefix); "
            "this is the second",
            source=source,
            line=line,
        )
    return f"TBATCH_CACHE_{secrets.token_hex(16)}" if found else None


def _static_prefix(tree: nodes.Template) -> tuple[str, bool]:
    """The literal text before the first expression or statement, and whether that is all."""
    out: list[str] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return "".join(out), False
        for child in node.nodes:
            if not isinstance(child, nodes.TemplateData):
                return "".join(out), False
            out.append(child.data)
    return "".join(out), True


def _split_sections(text: str, source: str) -> Iterator[tuple[str, int, str]]:
    """Yield ``(role, first content line, body)`` per section; empty preambles are skipped."""
    role, start = "user", 1
    body: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        marker = _MARKER.fullmatch(line)
        if marker:
            if body or role != "user" or start != 1:
                yield role, start, "\n".join(body)
            role, start, body = marker.group(1), number + 1, []
        elif _NEAR_MARKER.fullmatch(raw):
            raise InputError(
                f"{raw.strip()!r} is not a role marker; write [system], [user] or [assistant] "
                "alone on the line, in lowercase",
                source=source,
                line=number,
            )
        else:
            body.append(raw)
    yield role, start, "\n".join(body)


def render_messages(tpl: CompiledTemplate, variables: Mapping[str, object]) -> list[dict[str, str]]:
    """Render to ``[{"role", "content"}]`` with exactly one transcript tag; InputError otherwise."""
    return render_prompt(tpl, variables).messages


def render_prompt(tpl: CompiledTemplate, variables: Mapping[str, object]) -> RenderedPrompt:
    """The messages, and where their static prefix ends (see the module's docstring)."""
    _check_variables(variables, tpl.source)
    sentinel = f"TBATCH_TRANSCRIPT_{secrets.token_hex(16)}"
    context = {**variables, TRANSCRIPT_VARIABLE: sentinel}
    messages: list[dict[str, str]] = []
    tagged: list[tuple[int, str]] = []
    altered = False
    auto: tuple[int, int] | None = None
    auto_open = True
    explicit: tuple[int, int] | None = None
    for index, part in enumerate(tpl.messages):
        raw = _render_one(part, context, tpl.source)
        marker = _take_marker(raw, tpl.cache_sentinel, part, tpl.source)
        if marker is not None:
            raw = raw.replace(str(tpl.cache_sentinel), "")
        rendered = raw.strip()
        lead = len(raw) - len(raw.lstrip())
        if marker is not None and rendered:
            before = sum(count for count, _ in tagged) + raw[:marker].count(sentinel)
            if before:
                raise InputError(
                    "the {# cache #} marker comes after {{ transcript }}: the prefix before "
                    "it would differ for every job",
                    source=tpl.source,
                    line=part.line,
                )
            explicit = (len(messages), max(0, min(len(rendered), marker - lead)))
        if not rendered:
            continue
        if auto_open:
            if part.static:
                auto = (len(messages), len(rendered))
            else:
                auto_open = False
                if raw.startswith(part.static_prefix) and part.static_prefix.strip():
                    auto = (len(messages), max(0, len(part.static_prefix.rstrip()) - lead))
        altered = altered or (sentinel not in rendered and sentinel.lower() in rendered.lower())
        content = rendered.replace(sentinel, TRANSCRIPT_TAG)
        size = len(content.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise InputError(
                f"rendered {part.role} message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}",
                source=tpl.source,
                line=part.line,
            )
        count = content.count(TRANSCRIPT_TAG)
        if count:
            tagged.append((count, f"message {index + 1} [{part.role}] from line {part.line}"))
        messages.append({"role": part.role, "content": content})
    _check_tag_count(tagged, altered, tpl.source)
    if explicit is not None:
        return RenderedPrompt(messages, explicit, explicit=True)
    return RenderedPrompt(messages, auto)


def _take_marker(
    raw: str, cache_sentinel: str | None, part: MessageTemplate, source: str
) -> int | None:
    """Where the ``{# cache #}`` marker rendered in ``raw`` (None: not in this message)."""
    if cache_sentinel is None or cache_sentinel not in raw:
        return None
    if raw.count(cache_sentinel) > 1:
        raise InputError(
            "the {# cache #} marker renders more than once (inside a loop?)",
            source=source,
            line=part.line,
        )
    return raw.index(cache_sentinel)


def check_template_for_enqueue(
    tpl: CompiledTemplate, sample_variables: Mapping[str, object]
) -> None:
    """Prove at enqueue time that these variables render and produce the transcript tag once."""
    render_messages(tpl, sample_variables)


def _check_tag_count(tagged: list[tuple[int, str]], altered: bool, source: str) -> None:
    """``tagged`` holds (tag count, where) for each message that has the tag."""
    total = sum(count for count, _ in tagged)
    if total == 1:
        return
    if total == 0:
        hint = (
            "; the transcript variable was changed by a filter, and the gateway can only insert "
            "it verbatim"
            if altered
            else ""
        )
        raise InputError(
            f"template never produces the {TRANSCRIPT_TAG} tag; the gateway would ignore "
            f"transcript_id{hint}",
            source=source,
        )
    where = "; ".join(f"{count}x in {place}" for count, place in tagged)
    raise InputError(
        f"template produces the {TRANSCRIPT_TAG} tag {total} times ({where}); the "
        "gateway replaces only the first, and the others would reach the model as literal text",
        source=source,
    )


def _check_variables(variables: Mapping[str, object], source: str) -> None:
    if TRANSCRIPT_VARIABLE in variables:
        raise InputError(
            f"a variable may not be named {TRANSCRIPT_VARIABLE!r}: the gateway injects the "
            "transcript itself",
            source=source,
        )
    for name, value in variables.items():
        try:
            found = _find_tag_in_value(value, f"$.{name}", depth=0)
        except RecursionError:
            raise InputError(f"variable {name!r} is nested too deeply", source=source) from None
        if found:
            where, tag = found
            raise InputError(
                f"variable value at {where} contains {tag!r}, which the gateway could take for "
                "the transcript tag",
                source=source,
            )


def _find_tag_in_value(value: object, path: str, depth: int) -> tuple[str, str] | None:
    if depth > 100:
        raise RecursionError(path)
    if isinstance(value, str):
        tag = find_tag_like(value)
        return (path, tag) if tag else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _find_tag_in_value(key, f"{path} (key)", depth + 1) or _find_tag_in_value(
                item, f"{path}.{key}", depth + 1
            )
            if found:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = _find_tag_in_value(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
    return None


def _render_one(part: MessageTemplate, context: Mapping[str, object], source: str) -> str:
    pieces: list[str] = []
    length = 0
    try:
        for piece in part.template.generate(context):
            pieces.append(piece)
            length += len(piece)
            # Characters <= bytes, and the sentinel is longer than the tag: the exact check
            # comes after rendering, this one only stops a runaway loop early.
            if length > MAX_MESSAGE_BYTES + _STREAM_SLACK_CHARS:
                raise InputError(
                    f"rendered {part.role} message exceeds {MAX_MESSAGE_BYTES} bytes",
                    source=source,
                    line=part.line,
                )
    except SecurityError as exc:
        raise InputError(
            f"template tried an operation the sandbox forbids: {exc}",
            source=source,
            line=_template_line(exc.__traceback__),
        ) from None
    except TemplateError as exc:
        raise InputError(
            f"template error: {exc}", source=source, line=_template_line(exc.__traceback__)
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        raise InputError(
            f"template error: {type(exc).__name__}: {exc}",
            source=source,
            line=_template_line(exc.__traceback__),
        ) from None
    return "".join(pieces)


def _template_line(tb: TracebackType | None) -> int | None:
    """The deepest template line in a traceback (Jinja rewrites frames to template lines)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _JINJA_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
