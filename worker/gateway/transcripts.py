"""List transcripts on AssemblyAI's speech-to-text API (``GET /v2/transcript``).

Pages come newest first; ``page_details.prev_url`` leads to older ones until it is null (its
cursor is taken; the filters are ours, re-sent with every page).
The text itself is never needed for LLM work (the gateway injects it by id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from worker.errors import GatewayError, ServerError
from worker.gateway.errors_parse import error_from_response, error_from_transport
from worker.gateway.http import PooledHttp, make_http_client, require_api_key
from worker.gateway.types import Region
from worker.settings import Settings

log = logging.getLogger("tbatch.transcripts")
MAX_PAGE_LIMIT = 200


class TranscriptSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    status: str | None = None
    created: str | None = None
    completed: str | None = None
    audio_url: str | None = None
    resource_url: str | None = None
    error: str | None = None


class Transcript(TranscriptSummary):
    text: str | None = None
    audio_duration: float | None = None  # seconds (the transcript API's own metadata)


class TranscriptLister(PooledHttp):
    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self._http = make_http_client(settings, transport)

    def __repr__(self) -> str:
        return f"TranscriptLister(us={self._settings.transcript_api_url!r})"

    def base_url(self, region: Region) -> str:
        s = self._settings
        return (s.transcript_api_eu_url if region == "eu" else s.transcript_api_url).rstrip("/")

    def iter_transcripts(
        self,
        *,
        created_on: date | None,
        status: str | None = "completed",
        region: Region = "us",
        limit: int = MAX_PAGE_LIMIT,
    ) -> Iterator[TranscriptSummary]:
        """Every listed transcript, newest first, page by page while ``prev_url`` is set.

        Each page is asked for with *our* filters plus the cursor the previous page's
        ``prev_url`` names (``before_id``), the way AssemblyAI's SDK pages: nothing public says
        ``prev_url`` keeps ``status`` and ``created_on`` (the reference's example carries only
        ``limit`` and ``before_id``), and following one that drops them would list 90 days.
        """
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit {limit} is out of range 1..{MAX_PAGE_LIMIT}")
        filters: dict[str, str] = {"limit": str(limit)}
        if status is not None:
            filters["status"] = status
        if created_on is not None:
            filters["created_on"] = created_on.isoformat()
        url = f"{self.base_url(region)}/v2/transcript"
        cursor: dict[str, str] = {}
        seen: set[str] = set()
        while True:
            data = self._get_json(url, cursor | filters)
            for item in _list(data.get("transcripts")):
                summary = _summary(item)
                if summary is not None:
                    yield summary
            older = _older_cursor(data)
            if older is None:
                return
            key = str(sorted(older.items()))
            if key in seen:  # a server that loops must not make us loop forever
                raise ServerError(f"transcript list paging loops at {older}")
            seen.add(key)
            cursor = older

    def get_transcript(self, transcript_id: str, *, region: Region = "us") -> Transcript:
        url = f"{self.base_url(region)}/v2/transcript/{quote(transcript_id, safe='')}"
        data = self._get_json(url, {})
        try:
            return Transcript.model_validate(data)
        except ValidationError as exc:
            raise ServerError("malformed transcript response", status=200) from exc

    def _get_json(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        key = require_api_key(self._settings)
        try:
            response = self._http.get(url, params=params or None, headers={"Authorization": key})
        except httpx.TransportError as exc:
            raise error_from_transport(exc, model=None, secret=key) from None
        if not response.is_success:
            error: GatewayError = error_from_response(response, model=None, secret=key)
            # A 404 is an answer about one transcript (deleted, never made), which the caller
            # reports in its own words; anything else is the API's problem, worth a warning.
            log.log(
                logging.INFO if response.status_code == 404 else logging.WARNING,
                "transcripts.call",
                extra={
                    "event": "transcripts.call",
                    "status": response.status_code,
                    "error_kind": error.kind,
                    "error_body": error.body,
                },
            )
            raise error
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ServerError("malformed transcript API response", status=response.status_code)
        return data


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _summary(item: Any) -> TranscriptSummary | None:
    try:
        return TranscriptSummary.model_validate(item)
    except ValidationError:
        log.warning("transcripts.skip", extra={"event": "transcripts.skip", "item": str(item)})
        return None


def _older_cursor(data: dict[str, Any]) -> dict[str, str] | None:
    """The query of ``prev_url`` (older transcripts) but our own filters, or None at the end.

    Only its parameters are used: the host and path stay ours, so the key never leaves the
    configured host whatever URL a page names.
    """
    details = data.get("page_details")
    prev = details.get("prev_url") if isinstance(details, dict) else None
    if not isinstance(prev, str) or not prev:
        return None
    query = dict(parse_qsl(urlsplit(prev).query, keep_blank_values=True))
    if not query:
        raise ServerError(f"transcript list prev_url names no cursor: {prev[:200]}")
    return {k: v for k, v in query.items() if k not in _OUR_FILTERS}


_OUR_FILTERS = ("limit", "status", "created_on")
