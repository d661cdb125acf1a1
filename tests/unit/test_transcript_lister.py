"""TranscriptLister over httpx.MockTransport: paging by prev_url's cursor with our own filters,
errors."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from worker.errors import AuthFailed, ConnectionFailed, ServerError, TranscriptNotFound
from worker.gateway.transcripts import TranscriptLister
from worker.settings import Settings

KEY = "sk-transcripts-key-42424242"
US = "https://api.us.example"
EU = "https://api.eu.example"


def settings(key: str | None = KEY) -> Settings:
    return Settings(ASSEMBLYAI_API_KEY=key, transcript_api_url=US, transcript_api_eu_url=EU)


def _item(i: int) -> dict[str, Any]:
    return {
        "id": f"t{i}",
        "status": "completed",
        "created": "2026-09-24T10:00:00",
        "completed": "2026-09-24T10:01:00",
        "audio_url": f"https://a/{i}.mp3",
        "resource_url": f"{US}/v2/transcript/t{i}",
        "error": None,
        "unknown": 1,
    }


class Paged:
    """Seven transcripts, newest first, served ``limit`` at a time via before_id."""

    def __init__(self, host: str = "api.us.example") -> None:
        self.items = [_item(i) for i in range(7, 0, -1)]
        self.requests: list[httpx.Request] = []
        self.host = host

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        q = request.url.params
        limit = int(q.get("limit", "10"))
        start = 0
        if "before_id" in q:
            start = next(i for i, t in enumerate(self.items) if t["id"] == q["before_id"]) + 1
        page = self.items[start : start + limit]
        more = start + limit < len(self.items)
        # The reference's shape: the cursor and the limit, not the filters.
        prev = f"https://{self.host}/v2/transcript?limit={limit}&before_id={page[-1]['id']}"
        return httpx.Response(
            200,
            json={
                "transcripts": page,
                "page_details": {
                    "limit": limit,
                    "result_count": len(page),
                    "current_url": str(request.url),
                    "prev_url": prev if more else None,
                    "next_url": None,
                },
            },
        )


def test_walks_prev_url_until_null() -> None:
    server = Paged()
    with TranscriptLister(settings(), transport=httpx.MockTransport(server)) as lister:
        got = list(lister.iter_transcripts(created_on=date(2026, 9, 24), limit=3))
    assert [t.id for t in got] == ["t7", "t6", "t5", "t4", "t3", "t2", "t1"]
    assert got[0].status == "completed" and got[0].audio_url == "https://a/7.mp3"
    assert len(server.requests) == 3
    first = server.requests[0]
    assert str(first.url).startswith(f"{US}/v2/transcript?")
    assert dict(first.url.params) == {
        "limit": "3",
        "status": "completed",
        "created_on": "2026-09-24",
    }
    assert server.requests[1].url.params["before_id"] == "t5"
    # Every page is asked for with our filters: prev_url does not carry them.
    for request in server.requests[1:]:
        assert request.url.params["status"] == "completed"
        assert request.url.params["created_on"] == "2026-09-24"
        assert request.url.params["limit"] == "3"
    assert all(r.headers["authorization"] == KEY for r in server.requests)


def test_eu_region_and_no_filters() -> None:
    server = Paged(host="api.eu.example")
    with TranscriptLister(settings(), transport=httpx.MockTransport(server)) as lister:
        got = list(lister.iter_transcripts(created_on=None, status=None, region="eu"))
    assert len(got) == 7
    assert {r.url.host for r in server.requests} == {"api.eu.example"}
    assert dict(server.requests[0].url.params) == {"limit": "200"}


def test_prev_url_on_foreign_host_is_rerooted() -> None:
    """The key is only ever sent to our configured host."""
    server = Paged(host="evil.example")
    with TranscriptLister(settings(), transport=httpx.MockTransport(server)) as lister:
        got = list(lister.iter_transcripts(created_on=None, limit=4))
    assert len(got) == 7
    assert {r.url.host for r in server.requests} == {"api.us.example"}


def test_looping_pages_are_an_error() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        prev = f"{US}/v2/transcript?before_id=x"
        return httpx.Response(
            200, json={"transcripts": [_item(1)], "page_details": {"prev_url": prev}}
        )

    with (
        TranscriptLister(settings(), transport=httpx.MockTransport(loop)) as lister,
        pytest.raises(ServerError, match="loops"),
    ):
        list(lister.iter_transcripts(created_on=None))


def test_empty_list_and_bad_items_skipped() -> None:
    def handler(_r: httpx.Request) -> httpx.Response:
        body = {"transcripts": [{"no": "id"}, _item(1)], "page_details": {"prev_url": None}}
        return httpx.Response(200, json=body)

    with TranscriptLister(settings(), transport=httpx.MockTransport(handler)) as lister:
        assert [t.id for t in lister.iter_transcripts(created_on=None)] == ["t1"]


def test_limit_range() -> None:
    with TranscriptLister(settings()) as lister, pytest.raises(ValueError):
        list(lister.iter_transcripts(created_on=None, limit=201))


def test_get_transcript_and_404() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/transcript/t1":
            return httpx.Response(200, json={**_item(1), "text": "hello there"})
        return httpx.Response(404, json={"error": "Transcript not found"})

    with TranscriptLister(settings(), transport=httpx.MockTransport(handler)) as lister:
        t = lister.get_transcript("t1")
        assert (t.id, t.text) == ("t1", "hello there")
        with pytest.raises(TranscriptNotFound, match="Transcript not found"):
            lister.get_transcript("missing/../x")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"error": f"Authentication error, API token missing/invalid {KEY}"}, AuthFailed),
        (500, "<html>oops</html>", ServerError),
        (200, "not json", ServerError),
    ],
)
def test_errors(status: int, body: Any, kind: type[Exception]) -> None:
    def handler(_r: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with (
        TranscriptLister(settings(), transport=httpx.MockTransport(handler)) as lister,
        pytest.raises(kind) as info,
    ):
        list(lister.iter_transcripts(created_on=None))
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert KEY not in (getattr(info.value, "body", None) or "")


def test_missing_key_and_connection_error() -> None:
    def refuse(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with (
        TranscriptLister(settings(key=None), transport=httpx.MockTransport(refuse)) as lister,
        pytest.raises(AuthFailed, match="ASSEMBLYAI_API_KEY is not set"),
    ):
        list(lister.iter_transcripts(created_on=None))
    with (
        TranscriptLister(settings(), transport=httpx.MockTransport(refuse)) as lister,
        pytest.raises(ConnectionFailed),
    ):
        lister.get_transcript("t1")
