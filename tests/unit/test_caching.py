"""The static prefix of a template, and when it is marked for caching (pure)."""

from __future__ import annotations

import pytest

from worker import caching
from worker.errors import InputError
from worker.gateway.types import TRANSCRIPT_TAG, ModelInfo
from worker.prompts import compile_template, render_prompt

RUBRIC = "Score the call against this rubric. " * 600  # 21,600 chars: ~5,400 tokens
POLICY = caching.CachePolicy()
CATALOG = {
    m: ModelInfo(id=m, creator=c)
    for m, c in [
        ("claude-sonnet-4-6", "anthropic"),
        ("claude-haiku-4-5-20251001", "anthropic"),
        ("gpt-5-mini", "openai"),
    ]
}


def _render(
    text: str, **variables: object
) -> tuple[list[dict[str, str]], tuple[int, int] | None, bool]:
    rendered = render_prompt(compile_template(text), variables)
    return rendered.messages, rendered.cache_point, rendered.explicit


def test_prefix_ends_at_the_first_variable() -> None:
    messages, point, explicit = _render(
        f"[system]\n{RUBRIC}\n[user]\nCall for {{{{ team }}}}:\n{{{{ transcript }}}}", team="ops"
    )
    assert point == (1, len("Call for")) and not explicit
    assert caching.prefix_text(messages, point) == RUBRIC.strip() + "Call for"


def test_whole_static_messages_and_no_prefix() -> None:
    _, point, _ = _render("[system]\nStatic.\n[user]\n{{ name }} {{ transcript }}", name="x")
    assert point == (0, len("Static."))
    _, point, _ = _render("{{ transcript }}")
    assert point is None


def test_explicit_marker_takes_the_variables_before_it() -> None:
    messages, point, explicit = _render(
        "[user]\nCompany {{ company }} rules.{# cache #}\nNow: {{ transcript }}", company="Acme"
    )
    assert explicit and caching.prefix_text(messages, point or (0, 0)) == "Company Acme rules."
    assert "TBATCH_CACHE" not in messages[0]["content"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{# cache #}a{# cache #} {{ transcript }}", "one {# cache #} marker"),
        ("{{ transcript }} {# cache #}", "after {{ transcript }}"),
        ("{% for i in [1, 2] %}{# cache #}{% endfor %}{{ transcript }}", "more than once"),
    ],
)
def test_bad_markers_are_named(text: str, problem: str) -> None:
    with pytest.raises(InputError, match="cache"):
        try:
            _render(text)
        except InputError as exc:
            assert problem in str(exc)
            raise


def test_long_prefix_is_split_and_marked_on_claude_only_above_the_minimum() -> None:
    messages, point, _ = _render(f"{RUBRIC}\n\nTranscript: {{{{ transcript }}}}")
    assert point is not None
    decision = caching.apply(
        messages,
        point,
        chain=["claude-sonnet-4-6"],
        catalog=CATALOG,
        text_hash="ab" * 32,
        policy=POLICY,
    )
    assert decision.marked and len(decision.messages) == 2
    head, tail = decision.messages
    assert head["cache_control"] == {"type": "ephemeral"} and "cache_control" not in tail
    assert (
        TRANSCRIPT_TAG in tail["content"]
        and head["content"] + tail["content"] == messages[0]["content"]
    )
    assert decision.fields == {}  # no prompt_cache_key for a Claude-only chain


def test_prefix_below_the_model_minimum_is_not_marked() -> None:
    short = "Rules. " * 1500  # 10,500 chars: ~2,600 tokens: over Sonnet 4.6's 2,048, under 4,096
    messages, point, _ = _render(f"{short}{{{{ transcript }}}}")
    assert point is not None
    sonnet = caching.apply(
        messages,
        point,
        chain=["claude-sonnet-4-6"],
        catalog=CATALOG,
        text_hash="0" * 64,
        policy=POLICY,
    )
    haiku = caching.apply(
        messages,
        point,
        chain=["claude-haiku-4-5-20251001"],
        catalog=CATALOG,
        text_hash="0" * 64,
        policy=POLICY,
    )
    assert sonnet.marked and not haiku.marked
    assert haiku.messages == messages and "cache_control" not in str(haiku.messages)
    extended = caching.CachePolicy.build(True, {"claude-sonnet-4-6": 8192})
    assert not caching.apply(
        messages,
        point,
        chain=["claude-sonnet-4-6"],
        catalog=CATALOG,
        text_hash="0" * 64,
        policy=extended,
    ).marked


def test_openai_gets_a_prompt_cache_key_from_the_template_hash() -> None:
    messages, point, _ = _render(f"{RUBRIC}{{{{ transcript }}}}")
    decision = caching.apply(
        messages, point, chain=["gpt-5-mini"], catalog=CATALOG, text_hash="cd" * 32, policy=POLICY
    )
    assert not decision.marked and decision.fields == {"prompt_cache_key": "tbatch-" + "cd" * 16}
    off = caching.apply(
        messages,
        point,
        chain=["gpt-5-mini"],
        catalog=CATALOG,
        text_hash="cd" * 32,
        policy=caching.CachePolicy(enabled=False),
    )
    assert off.fields == {} and off.messages == messages


def test_estimate_is_chars_over_four_rounded_down() -> None:
    assert caching.estimate_tokens("x" * 4095) == 1023
