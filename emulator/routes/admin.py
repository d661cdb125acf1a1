"""``/_emulator/*``: what tests and benchmarks use to observe and steer a running emulator.

- ``GET  /_emulator/stats``     per-model counters and window maxima
- ``GET  /_emulator/requests``  the request log (``?limit=N`` for the last N)
- ``POST /_emulator/reset``     clear log, stats, windows and fault counts; body
  ``{"config": true}`` also restores the start-up config
- ``GET/POST /_emulator/config`` read, or partially update, the runtime config
- ``GET  /_emulator/transcripts`` every transcript's metadata incl. ``deleted`` (so tests can
  find a deleted, errored or long one without guessing)
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.config import LIMIT_FIELDS, apply_update
from emulator.world.state import EmulatorState


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, media_type="application/json")


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def stats(request: Request) -> Response:
    return _json(_state(request).stats())


async def requests_log(request: Request) -> Response:
    entries = list(_state(request).log)
    limit = request.query_params.get("limit")
    if limit is not None and limit.isdigit():
        entries = entries[-int(limit) :] if int(limit) else []
    return _json({"requests": [e.to_json() for e in entries]})


async def reset(request: Request) -> Response:
    try:
        body = await _body(request)
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    state = _state(request)
    state.reset(restore_config=bool(body.get("config")))
    return _json({"ok": True, "config": _public(state)})


async def config(request: Request) -> Response:
    state = _state(request)
    if request.method == "GET":
        return _json(_public(state))
    try:
        update = await _body(request)
        new = apply_update(state.config, update)
    except (ValueError, ValidationError) as exc:
        return _json({"error": str(exc)}, 400)
    state.set_config(new, limits_changed=bool(LIMIT_FIELDS & update.keys()))
    return _json(_public(state))


async def transcripts(request: Request) -> Response:
    rows = [
        {
            "id": m.id,
            "status": m.status,
            "deleted": m.deleted,
            "created": m.created.isoformat(),
            "scenario": m.scenario,
            "minutes": m.minutes,
            "speakers": m.speakers,
        }
        for m in _state(request).store.newest_first()
    ]
    return _json({"transcripts": rows})


def _public(state: EmulatorState) -> dict[str, Any]:
    data = state.config.model_dump(mode="json")
    if data.get("api_key"):
        data["api_key"] = "***"
    return data


def routes() -> list[Route]:
    return [
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/requests", requests_log, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/config", config, methods=["GET", "POST"]),
        Route("/_emulator/transcripts", transcripts, methods=["GET"]),
    ]
