"""Transcript injection over HTTP: the exact tag, first occurrence only, usage from real length."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)

KEY = {"Authorization": "test-key"}
TAG = "{{ transcript }}"
MODEL = "gpt-5-mini"


def chat(url: str, messages: list[dict[str, Any]], transcript_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": messages}
    if transcript_id is not None:
        body["transcript_id"] = transcript_id
    response = HTTP.post(f"{url}/v1/chat/completions", json=body, headers=KEY, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def expected_tokens(contents: list[str]) -> int:
    """The emulator's documented count: ceil(chars / 4) + 3 per message."""
    return sum(math.ceil(len(c) / 4) + 3 for c in contents)


@pytest.fixture
def transcript(gateway: EmulatorProcess) -> tuple[str, str]:
    meta = next(t for t in gateway.transcripts() if t["status"] == "completed" and not t["deleted"])
    text = HTTP.get(f"{gateway.url}/v2/transcript/{meta['id']}", headers=KEY).json()["text"]
    return meta["id"], text


def test_tag_is_replaced_and_counted(gateway: EmulatorProcess, transcript: tuple[str, str]) -> None:
    tid, text = transcript
    prompt = f"Summarise this call.\n\n{TAG}"
    usage = chat(gateway.url, [{"role": "user", "content": prompt}], tid)["usage"]
    assert usage["input_tokens"] == expected_tokens([prompt.replace(TAG, text)])


@pytest.mark.parametrize("variant", ["{{transcript}}", "{{ TRANSCRIPT }}", "{ transcript }"])
def test_tag_variants_are_not_substituted(
    gateway: EmulatorProcess, transcript: tuple[str, str], variant: str
) -> None:
    tid, _ = transcript
    prompt = f"Summarise: {variant}"
    usage = chat(gateway.url, [{"role": "user", "content": prompt}], tid)["usage"]
    assert usage["input_tokens"] == expected_tokens([prompt])


def test_only_first_tag_of_first_tagged_message(
    gateway: EmulatorProcess, transcript: tuple[str, str]
) -> None:
    tid, text = transcript
    messages = [
        {"role": "system", "content": "You analyse calls."},
        {"role": "user", "content": f"A: {TAG}\nB: {TAG}"},
        {"role": "user", "content": f"Again: {TAG}"},
    ]
    usage = chat(gateway.url, messages, tid)["usage"]
    contents = ["You analyse calls.", f"A: {text}\nB: {TAG}", f"Again: {TAG}"]
    assert usage["input_tokens"] == expected_tokens(contents)


def test_tag_in_text_part(gateway: EmulatorProcess, transcript: tuple[str, str]) -> None:
    tid, text = transcript
    parts = [{"type": "text", "text": "Intro."}, {"type": "text", "text": f"Call: {TAG}"}]
    usage = chat(gateway.url, [{"role": "user", "content": parts}], tid)["usage"]
    assert usage["input_tokens"] == expected_tokens([f"Intro.\nCall: {text}"])


def test_id_without_tag_is_silently_ignored(
    gateway: EmulatorProcess, transcript: tuple[str, str]
) -> None:
    tid, _ = transcript
    usage = chat(gateway.url, [{"role": "user", "content": "No tag here."}], tid)["usage"]
    assert usage["input_tokens"] == expected_tokens(["No tag here."])


def test_usage_grows_with_transcript_length(gateway: EmulatorProcess) -> None:
    usable = [t for t in gateway.transcripts() if t["status"] == "completed" and not t["deleted"]]
    short = min(usable, key=lambda t: t["minutes"])
    long = max(usable, key=lambda t: t["minutes"])
    assert long["minutes"] >= 4 * short["minutes"]
    messages = [{"role": "user", "content": f"Summarise.\n\n{TAG}"}]
    small = chat(gateway.url, messages, short["id"])["usage"]["input_tokens"]
    large = chat(gateway.url, messages, long["id"])["usage"]["input_tokens"]
    assert large > 3 * small
    # ~150 words/min of speech, ~5.5 chars/word, ~4 chars/token
    assert 100 * long["minutes"] < large < 400 * long["minutes"]


def test_answer_is_drawn_from_the_transcript(
    gateway: EmulatorProcess, transcript: tuple[str, str]
) -> None:
    tid, text = transcript
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
        "additionalProperties": False,
    }
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": TAG}],
        "transcript_id": tid,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    }
    response = HTTP.post(f"{gateway.url}/v1/chat/completions", json=body, headers=KEY)
    content = response.json()["choices"][0]["message"]["content"]
    summary = httpx.Response(200, content=content).json()["summary"]
    assert summary.split(". ")[0].rstrip(".") in text
