"""Prompt templates: role markers, the transcript tag, the sandbox, and the bounds."""

from __future__ import annotations

import pytest

from worker.errors import InputError
from worker.gateway.types import TRANSCRIPT_TAG
from worker.prompts import (
    MAX_MESSAGE_BYTES,
    MAX_TEMPLATE_BYTES,
    check_template_for_enqueue,
    compile_template,
    neutralise_tags,
    render_messages,
    template_hash,
)


def render(text: str, variables: dict[str, object] | None = None) -> list[dict[str, str]]:
    return render_messages(compile_template(text, source="t.j2"), variables or {})


def rejected(text: str, variables: dict[str, object] | None = None) -> InputError:
    with pytest.raises(InputError) as info:
        render(text, variables)
    return info.value


# Role markers


def test_without_markers_the_whole_file_is_one_user_message() -> None:
    assert render("Summarise:\n\n{{ transcript }}\n") == [
        {"role": "user", "content": "Summarise:\n\n{{ transcript }}"}
    ]


def test_markers_start_messages_in_order() -> None:
    text = "[system]\nBe terse.\n[user]\nCall with {{ name }}:\n{{ transcript }}\n[assistant]\n{"
    assert render(text, {"name": "Acme"}) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": f"Call with Acme:\n{TRANSCRIPT_TAG}"},
        {"role": "assistant", "content": "{"},
    ]


def test_empty_messages_are_dropped() -> None:
    text = "[system]\n{% if strict %}Be strict.{% endif %}\n[user]\n\n[user]\n{{ transcript }}"
    assert render(text, {"strict": False}) == [{"role": "user", "content": TRANSCRIPT_TAG}]


def test_text_before_the_first_marker_is_a_user_message() -> None:
    messages = render("Intro\n[system]\nRules\n[user]\n{{ transcript }}")
    assert [m["role"] for m in messages] == ["user", "system", "user"]


def test_marker_must_be_alone_on_its_line() -> None:
    messages = render("see [system] here\n{{ transcript }}")
    assert messages == [{"role": "user", "content": f"see [system] here\n{TRANSCRIPT_TAG}"}]


@pytest.mark.parametrize("marker", ["[User]", "[SYSTEM]", "[tool]", "[ user ]", "  [user]"])
def test_near_miss_marker_is_rejected_with_its_line(marker: str) -> None:
    with pytest.raises(InputError) as info:
        compile_template(f"hello\n{marker}\n{{{{ transcript }}}}", source="t.j2")
    assert info.value.line == 2
    assert "role marker" in str(info.value)


def test_jinja_block_cannot_span_two_messages() -> None:
    with pytest.raises(InputError) as info:
        compile_template("[user]\n{% if x %}\n[assistant]\n{% endif %}", source="t.j2")
    assert "syntax" in str(info.value)


# Compile-time checks


def test_syntax_error_reports_the_line_in_the_file() -> None:
    with pytest.raises(InputError) as info:
        compile_template("[system]\nok\n[user]\nfine\n{{ name }\n", source="p.j2")
    assert info.value.line == 5
    assert str(info.value).startswith("p.j2:5:")


def test_template_size_bound() -> None:
    compile_template("x" * MAX_TEMPLATE_BYTES)
    with pytest.raises(InputError, match="limit"):
        compile_template("x" * (MAX_TEMPLATE_BYTES + 1))


def test_template_size_counts_bytes_not_characters() -> None:
    with pytest.raises(InputError, match="limit"):
        compile_template("é" * (MAX_TEMPLATE_BYTES // 2 + 1))


def test_template_hash_is_sha256_of_the_text() -> None:
    assert template_hash("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert compile_template("abc").text_hash == template_hash("abc")


# The transcript tag


@pytest.mark.parametrize(
    "written",
    ["{{ transcript }}", "{{transcript}}", "{{- transcript -}}", "{{  transcript  }}"],
)
def test_any_jinja_spelling_produces_the_exact_tag(written: str) -> None:
    assert render(f"Text: {written}")[0]["content"] in (
        f"Text: {TRANSCRIPT_TAG}",
        f"Text:{TRANSCRIPT_TAG}",
    )


def test_raw_block_tag_counts_as_the_tag() -> None:
    assert render("{% raw %}{{ transcript }}{% endraw %}")[0]["content"] == TRANSCRIPT_TAG


def test_missing_tag_is_rejected() -> None:
    error = rejected("Summarise the call.")
    assert "never produces the {{ transcript }} tag" in str(error)
    assert "ignore transcript_id" in str(error)


def test_tag_only_in_a_false_branch_is_rejected_for_those_variables() -> None:
    tpl = compile_template("{% if include %}{{ transcript }}{% endif %}")
    check_template_for_enqueue(tpl, {"include": True})
    with pytest.raises(InputError, match="never produces"):
        check_template_for_enqueue(tpl, {"include": False})


def test_filtered_transcript_is_rejected_with_a_hint() -> None:
    assert "changed by a filter" in str(rejected("{{ transcript | upper }}"))
    assert "never produces" in str(rejected("{{ transcript[:10] }}"))


def test_duplicated_tag_in_one_message_is_rejected() -> None:
    error = rejected("{{ transcript }}\nAgain: {{ transcript }}")
    assert "2 times" in str(error)
    assert "message 1 [user]" in str(error)


def test_duplicated_tag_across_messages_names_both() -> None:
    error = rejected("[system]\n{{ transcript }}\n[user]\nq\n{{ transcript }}")
    assert "message 1 [system] from line 2" in str(error)
    assert "message 2 [user] from line 4" in str(error)


def test_tag_in_a_loop_is_rejected() -> None:
    assert "3 times" in str(rejected("{% for i in range(3) %}{{ transcript }}{% endfor %}"))


def test_variable_named_transcript_is_rejected() -> None:
    error = rejected("{{ transcript }}", {"transcript": "hello"})
    assert "may not be named 'transcript'" in str(error)


@pytest.mark.parametrize(
    "value",
    [
        "see {{ transcript }}",
        "{{transcript}}",
        "{{ TRANSCRIPT }}",
        ["ok", {"deep": "x {{ transcript }} y"}],
        {"{{ transcript }}": "key"},
    ],
)
def test_variable_values_with_tag_like_text_are_rejected(value: object) -> None:
    error = rejected("{{ name }} {{ transcript }}", {"name": value})
    assert "could take for the transcript tag" in str(error)
    assert "$.name" in str(error)


def test_other_braces_in_values_are_allowed() -> None:
    content = render("{{ code }} {{ transcript }}", {"code": "{{ name }} {'a': 1}"})[0]["content"]
    assert content == "{{ name }} {'a': 1} " + TRANSCRIPT_TAG


def test_sentinel_differs_between_renders() -> None:
    tpl = compile_template("{{ transcript | length }} {{ transcript }}")
    first = render_messages(tpl, {})[0]["content"]
    assert first.endswith(TRANSCRIPT_TAG)
    assert "TBATCH" not in first


# Variables and the sandbox


def test_undefined_variable_names_it_and_the_line() -> None:
    error = rejected("ok\n{{ transcript }}\n{{ customer_name }}")
    assert "customer_name" in str(error)
    assert error.line == 3


def test_undefined_attribute_is_an_error() -> None:
    assert "nope" in str(rejected("{{ transcript }}{{ meta.nope }}", {"meta": {}}))


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "cycler.__init__.__globals__",
        "joiner.__init__.__globals__['os']",
        "namespace.__init__.__globals__",
        "lipsum.__globals__",
        "().__class__.__base__.__subclasses__()",
        "self._TemplateReference__context",
        "x.__class__.__name__",
    ],
)
def test_attribute_walking_escapes_are_blocked(expression: str) -> None:
    error = rejected(f"{{{{ transcript }}}}\n{{{{ {expression} }}}}", {"x": 1})
    assert "the sandbox forbids" in str(error)
    assert error.line == 2


def test_escape_inside_a_condition_is_blocked_too() -> None:
    assert "sandbox forbids" in str(rejected("{% if ''.__class__ %}x{% endif %}{{ transcript }}"))


def test_sandbox_error_message_is_clear() -> None:
    error = rejected("{{ transcript }}{{ ''.__class__ }}")
    assert "sandbox forbids" in str(error)
    assert "__class__" in str(error)


def test_immutable_sandbox_blocks_mutation_of_variables() -> None:
    items: list[str] = ["a"]
    rejected("{{ transcript }}{{ items.append('b') }}", {"items": items})
    assert items == ["a"]


def test_memory_bomb_repetition_is_blocked() -> None:
    assert "too large" in str(rejected("{{ transcript }}{{ 'x' * 100000000 }}"))
    assert "too large" in str(rejected("{{ transcript }}{{ 10 ** 100000 }}"))


def test_runtime_python_error_becomes_input_error() -> None:
    error = rejected("{{ transcript }}\n{{ 1 / 0 }}")
    assert "ZeroDivisionError" in str(error)
    assert error.line == 2


def test_autoescape_is_off() -> None:
    assert render("{{ v }} {{ transcript }}", {"v": "<b>&"})[0]["content"].startswith("<b>&")


# Size bounds


def test_rendered_message_size_bound() -> None:
    ok = "x" * (MAX_MESSAGE_BYTES - len(TRANSCRIPT_TAG) - 1)
    assert len(render("{{ v }} {{ transcript }}", {"v": ok})) == 1
    error = rejected("{{ v }} {{ transcript }}", {"v": ok + "xx"})
    assert "limit" in str(error) or "exceeds" in str(error)


def test_runaway_loop_output_is_stopped() -> None:
    text = "{{ transcript }}{% for i in range(100000) %}{{ v }}{% endfor %}"
    assert "exceeds" in str(rejected(text, {"v": "y" * 100}))


# Helpers


def test_neutralise_tags_breaks_every_spelling() -> None:
    text = neutralise_tags("a {{ transcript }} b {{TRANSCRIPT}} c {{ name }}")
    assert text == "a { { transcript } } b { {TRANSCRIPT} } c {{ name }}"
    assert TRANSCRIPT_TAG not in text
