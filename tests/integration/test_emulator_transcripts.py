"""``GET /v2/transcript`` paging and filters, and ``GET /v2/transcript/{id}``, over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)

KEY = {"Authorization": "test-key"}


def get(url: str, **params: Any) -> httpx.Response:
    # an empty ``params`` would replace the query string already in a page URL
    return HTTP.get(url, params=params or None, headers=KEY, timeout=10)


def walk(url: str, direction: str, **filters: str) -> list[dict[str, Any]]:
    """Follow ``direction`` (prev_url or next_url) until null, re-sending ``filters`` with each
    page's cursor (the page URLs carry only ``limit`` and the cursor)."""
    items: list[dict[str, Any]] = []
    pages = 0
    next_page: str | None = url
    params: dict[str, str] = dict(filters)
    while next_page is not None:
        body = get(str(httpx.URL(next_page).copy_merge_params(params))).json()
        assert body["page_details"]["result_count"] == len(body["transcripts"])
        items.extend(body["transcripts"])
        next_page = body["page_details"][direction]
        pages += 1
        assert pages < 100
    return items


def test_prev_url_walks_everything_newest_first(gateway: EmulatorProcess) -> None:
    items = walk(f"{gateway.url}/v2/transcript?limit=40", "prev_url")
    ids = [t["id"] for t in items]
    assert len(ids) == len(set(ids)) == 300
    created = [t["created"] for t in items]
    assert created == sorted(created, reverse=True)
    first = items[0]
    assert set(first) >= {
        "id",
        "resource_url",
        "status",
        "created",
        "completed",
        "audio_url",
        "error",
    }
    assert "text" not in first
    assert first["resource_url"] == f"{gateway.url}/v2/transcript/{first['id']}"
    assert str(uuid.UUID(first["id"], version=4)) == first["id"]


def test_first_page_details(gateway: EmulatorProcess) -> None:
    body = get(f"{gateway.url}/v2/transcript").json()
    details = body["page_details"]
    assert details["limit"] == 10 and details["result_count"] == 10
    assert details["next_url"] is None  # nothing newer than the newest page
    assert f"before_id={body['transcripts'][-1]['id']}" in details["prev_url"]
    assert details["current_url"] == f"{gateway.url}/v2/transcript"


def test_next_url_walks_back_to_the_newest(gateway: EmulatorProcess) -> None:
    everything = walk(f"{gateway.url}/v2/transcript?limit=200", "prev_url")
    oldest = everything[-1]["id"]
    newer = walk(f"{gateway.url}/v2/transcript?limit=25&after_id={oldest}", "next_url")
    assert {t["id"] for t in newer} == {t["id"] for t in everything[:-1]}
    page = get(f"{gateway.url}/v2/transcript", limit=3, after_id=oldest).json()
    assert [t["id"] for t in page["transcripts"]] == [t["id"] for t in everything[-4:-1]]


def test_filters(gateway: EmulatorProcess) -> None:
    everything = walk(f"{gateway.url}/v2/transcript?limit=200", "prev_url")
    errored = walk(f"{gateway.url}/v2/transcript?limit=200", "prev_url", status="error")
    assert errored and [t["id"] for t in errored] == [
        t["id"] for t in everything if t["status"] == "error"
    ]
    assert all(t["error"] for t in errored)
    day = everything[len(everything) // 2]["created"][:10]
    on_day = walk(f"{gateway.url}/v2/transcript?limit=7", "prev_url", created_on=day)
    assert on_day and all(t["created"].startswith(day) for t in on_day)
    assert len(on_day) == sum(t["created"].startswith(day) for t in everything)
    assert len({t["created"][:10] for t in everything}) == 7  # spread over --transcript-days
    assert {t["status"] for t in everything} >= {"completed", "error", "processing"}


def test_page_urls_carry_the_cursor_but_not_the_filters(gateway: EmulatorProcess) -> None:
    """The reference's shape: a client following ``prev_url`` verbatim loses its filters."""
    body = get(f"{gateway.url}/v2/transcript", limit=5, status="error").json()
    older = httpx.URL(body["page_details"]["prev_url"])
    assert dict(older.params) == {"limit": "5", "before_id": body["transcripts"][-1]["id"]}
    verbatim = get(str(older)).json()["transcripts"]
    assert {t["status"] for t in verbatim} != {"error"}  # the filter is gone: any status


def test_bad_parameters_are_400(gateway: EmulatorProcess) -> None:
    url = f"{gateway.url}/v2/transcript"
    some = str(uuid.uuid4())
    for params in (
        {"limit": 0},
        {"limit": 201},
        {"status": "done"},
        {"created_on": "yesterday"},
        {"before_id": some, "after_id": some},
        {"before_id": some},
    ):
        response = get(url, **params)
        assert response.status_code == 400, params
        assert response.json()["error"]


def test_one_transcript(gateway: EmulatorProcess) -> None:
    metas = gateway.transcripts()
    done = next(t for t in metas if t["status"] == "completed" and not t["deleted"])
    body = get(f"{gateway.url}/v2/transcript/{done['id']}").json()
    assert body["status"] == "completed"
    words = len(body["text"].split())
    assert 100 * done["minutes"] <= words <= 200 * done["minutes"]
    assert {u["speaker"] for u in body["utterances"]} >= {"A", "B"}
    pending = next(t for t in metas if t["status"] != "completed")
    assert get(f"{gateway.url}/v2/transcript/{pending['id']}").json()["text"] is None
    assert get(f"{gateway.url}/v2/transcript/{uuid.uuid4()}").status_code == 404
    deleted = next(t for t in metas if t["deleted"])
    gone = get(f"{gateway.url}/v2/transcript/{deleted['id']}")
    assert gone.status_code == 404 and gone.json()["error"] == "transcript deleted"


def test_listing_needs_a_key(gateway: EmulatorProcess) -> None:
    assert HTTP.get(f"{gateway.url}/v2/transcript").status_code == 401
