"""List transcripts on AssemblyAI's speech-to-text API (``GET /v2/transcript``).

Pages come newest first; ``page_details.prev_url`` leads to older ones until it is null.
The text itself is never needed for LLM work (the gateway injects it by id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

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
        """Every listed transcript, newest first, walking ``prev_url`` until it is null."""
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit {limit} is out of range 1..{MAX_PAGE_LIMIT}")
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if created_on is not None:
            params["created_on"] = created_on.isoformat()
        base = self.base_url(region)
        url: str | None = f"{base}/v2/transcript"
        seen: set[str] = set()
        while url is not None:
            data = self._get_json(url, params)
            params = {}  # prev_url carries the query from here on
            seen.add(url)
            for item in _list(data.get("transcripts")):
                summary = _summary(item)
                if summary is not None:
                    yield summary
            url = _next_url(data, base)
            if url in seen:  # a server that loops must not make us loop forever
                raise ServerError(f"transcript list paging loops at {url}")

    def get_transcript(self, transcript_id: str, *, region: Region = "us") -> Transcript:
        url = f"{self.base_url(region)}/v2/transcript/{quote(transcript_id, safe='')}"
        data = self._get_json(url, {})
        try:
            return Transcript.model_validate(data)
        except ValidationError as exc:
            raise ServerError("malformed transcript response", status=200) from exc

    def _get_json(self, url: str, params: dict[str, str | int]) -> dict[str, Any]:
        key = require_api_key(self._settings)
        try:
            response = self._http.get(url, params=params or None, headers={"Authorization": key})
        except httpx.TransportError as exc:
            raise error_from_transport(exc, model=None, secret=key) from None
        if not response.is_success:
            error: GatewayError = error_from_response(response, model=None, secret=key)
            log.warning(
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


def _next_url(data: dict[str, Any], base: str) -> str | None:
    """``prev_url`` (older transcripts), re-rooted on our own host so the key never leaves it."""
    details = data.get("page_details")
    prev = details.get("prev_url") if isinstance(details, dict) else None
    if not isinstance(prev, str) or not prev:
        return None
    target = urlsplit(urljoin(base + "/", prev))
    origin = urlsplit(base)
    return urlunsplit((origin.scheme, origin.netloc, target.path, target.query, ""))
