"""``GET /v2/transcript`` and ``GET /v2/transcript/{id}`` (gateway-api.md section 11).

Pages are newest first. ``prev_url`` leads to older transcripts (``before_id`` = the oldest on
this page) and ``next_url`` to newer ones (``after_id`` = the newest on this page); each is null
when nothing lies in that direction at the time of the request. They carry ``limit`` and the
cursor only, the shape of the API reference's example: the ``status`` and ``created_on``
filters are *not* kept, so a client that follows them verbatim lists everything (a client
re-sends its own filters with the cursor, as AssemblyAI's SDK does). Only the last 90 days are
listed.
Deleted transcripts are still listed (the listing is how a pipeline meets the "deleted between
listing and processing" race) but 404 when fetched or injected.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from emulator.world.transcripts import STATUSES, TranscriptMeta, TranscriptStore

LIST_DAYS = 90
DEFAULT_LIMIT = 10
MAX_LIMIT = 200


class ListError(ValueError):
    """A bad query parameter (400)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def item(meta: TranscriptMeta, base_url: str) -> dict[str, Any]:
    return {
        "id": meta.id,
        "resource_url": f"{base_url}/v2/transcript/{meta.id}",
        "status": meta.status,
        "created": _iso(meta.created),
        "completed": _iso(meta.completed),
        "audio_url": f"https://storage.emulator.invalid/audio/{meta.id}.mp3",
        "error": meta.error,
    }


def detail(store: TranscriptStore, meta: TranscriptMeta, base_url: str) -> dict[str, Any]:
    out = item(meta, base_url)
    completed = meta.status == "completed"
    out["text"] = store.text(meta) if completed else None
    out["audio_duration"] = meta.minutes * 60 if completed else None
    out["language_code"] = "en_us"
    if completed:
        out["utterances"] = [{"speaker": u.speaker, "text": u.text} for u in store.utterances(meta)]
    return out


def _params(query: dict[str, str]) -> tuple[int, str | None, date | None]:
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError as exc:
        raise ListError("limit must be an integer") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise ListError(f"limit must be between 1 and {MAX_LIMIT}")
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise ListError(f"status must be one of {', '.join(STATUSES)}")
    created_on = None
    if "created_on" in query:
        try:
            created_on = date.fromisoformat(query["created_on"])
        except ValueError as exc:
            raise ListError("created_on must be a date (YYYY-MM-DD)") from exc
    if "before_id" in query and "after_id" in query:
        raise ListError("use only one of before_id and after_id")
    return limit, status, created_on


def page(store: TranscriptStore, query: dict[str, str], base_url: str) -> dict[str, Any]:
    """One page of the listing; ``ListError`` for bad parameters."""
    limit, status, created_on = _params(query)
    if query.get("throttled_only", "").lower() == "true":
        status = "throttled"  # overrides status; the emulator never throttles, so: empty
    oldest = datetime.combine(store.today - timedelta(days=LIST_DAYS), datetime.min.time())
    rows = [
        m
        for m in store.newest_first()
        if m.created >= oldest
        and (status is None or m.status == status)
        and (created_on is None or m.created.date() == created_on)
    ]
    position = {m.id: i for i, m in enumerate(rows)}
    start, stop = 0, limit
    for name in ("before_id", "after_id"):
        if name in query and query[name] not in position and store.get(query[name]) is None:
            raise ListError(f"{name} {query[name]} is not a known transcript")
    if "before_id" in query:
        start = _cut(rows, store, query["before_id"], position, older=True)
        stop = start + limit
    elif "after_id" in query:
        stop = _cut(rows, store, query["after_id"], position, older=False)
        start = max(0, stop - limit)
    chosen = rows[start:stop]
    keep = {"limit": str(limit)}  # the spec's shape: the filters are not carried (see above)
    url = f"{base_url}/v2/transcript"
    current = f"{url}?{urlencode(query)}" if query else url
    prev_url = (
        f"{url}?{urlencode(keep | {'before_id': chosen[-1].id})}"
        if chosen and stop < len(rows)
        else None
    )
    next_url = (
        f"{url}?{urlencode(keep | {'after_id': chosen[0].id})}" if chosen and start > 0 else None
    )
    return {
        "page_details": {
            "limit": limit,
            "result_count": len(chosen),
            "current_url": current,
            "prev_url": prev_url,
            "next_url": next_url,
        },
        "transcripts": [item(m, base_url) for m in chosen],
    }


def _cut(
    rows: list[TranscriptMeta],
    store: TranscriptStore,
    cursor: str,
    position: dict[str, int],
    older: bool,
) -> int:
    """Index in ``rows`` where the older (or newer) side of ``cursor`` begins (or ends)."""
    if cursor in position:
        return position[cursor] + 1 if older else position[cursor]
    meta = store.get(cursor)
    assert meta is not None
    mark = (meta.created, meta.id)
    return sum(1 for m in rows if (m.created, m.id) > mark)
