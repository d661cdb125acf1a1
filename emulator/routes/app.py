"""The Starlette app: gateway routes, transcript routes and the ``/_emulator`` control routes.

``create_app(config)`` builds a fresh app with its own state; nothing happens at import.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from emulator.config import EmulatorConfig
from emulator.routes import admin, completions, listing
from emulator.routes import envelopes as env
from emulator.routes.stream import sse_events
from emulator.world.catalog import served
from emulator.world.state import EmulatorState, LogEntry, key_id

ARRIVED_AT = "tbatch_arrived_at"  # the ASGI scope's ``state`` key the server stamps (wall time, s)


def arrival_time(request: Request) -> float:
    """When the request arrived: the server's stamp, or now when served without one."""
    stamped = request.scope.get("state", {}).get(ARRIVED_AT)
    return float(stamped) if stamped is not None else time.time()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers, media_type="application/json")


def api_key_of(request: Request) -> str:
    """The key from ``Authorization``, raw or ``Bearer``-prefixed (both work live)."""
    raw = request.headers.get("authorization", "").strip()
    if raw[:7].lower() == "bearer ":
        raw = raw[7:].strip()
    return raw


def auth_failure(state: EmulatorState, key: str) -> Response | None:
    """A 401 for a missing key, or for a key other than the configured one."""
    expected = state.config.api_key
    if key and (expected is None or key == expected):
        return None
    return json_response(env.auth_body(env.new_request_id(), missing=not key), 401)


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    key = api_key_of(request)
    entry = LogEntry(
        ts=arrival_time(request),
        key=key_id(key),
        model=None,
        status=0,
        request_id=env.new_request_id(),
        transcript_id=None,
    )
    denied = auth_failure(state, key)
    if denied is not None:
        entry.status = 401
        state.record(entry)
        return denied
    reply = await completions.handle(state, key, entry, await request.body())
    entry.status = reply.status
    state.record(entry)
    if reply.stream:
        events = sse_events(reply.body, reply.stream_usage)
        return StreamingResponse(events, headers=reply.headers, media_type="text/event-stream")
    return json_response(reply.body, reply.status, reply.headers)


async def list_models(request: Request) -> Response:
    models = served(_state(request).config.region).values()
    return json_response({"object": "list", "data": [m.to_json() for m in models]})


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def list_transcripts(request: Request) -> Response:
    state = _state(request)
    denied = auth_failure(state, api_key_of(request))
    if denied is not None:
        return denied
    try:
        body = listing.page(state.store, dict(request.query_params), _base_url(request))
    except listing.ListError as exc:
        return json_response({"error": str(exc)}, 400)
    return json_response(body)


async def get_transcript(request: Request) -> Response:
    state = _state(request)
    denied = auth_failure(state, api_key_of(request))
    if denied is not None:
        return denied
    meta = state.store.get(request.path_params["transcript_id"])
    if meta is None:
        return json_response({"error": "transcript not found"}, 404)
    if meta.deleted:
        return json_response({"error": "transcript deleted"}, 404)
    return json_response(listing.detail(state.store, meta, _base_url(request)))


def create_app(config: EmulatorConfig) -> Starlette:
    """A new emulator app with fresh state built from ``config``."""
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v2/transcript", list_transcripts, methods=["GET"]),
        Route("/v2/transcript/{transcript_id}", get_transcript, methods=["GET"]),
        *admin.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = EmulatorState(config)
    return app
