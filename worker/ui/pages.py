"""Rendering for the view: Jinja2 pages (autoescaped: every model, user and transcript text is
text, never markup) and JSON with ISO 8601 timestamps."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from worker.humanize import human_duration
from worker.reports import fmt
from worker.reports.html import escaping_environment
from worker.ui import charts
from worker.ui.jsonout import dumps

TEMPLATES = Path(__file__).parent / "templates"


def json_response(value: Any, status_code: int = 200) -> Response:
    return Response(
        dumps(value), status_code=status_code, media_type="application/json; charset=utf-8"
    )


def _when(value: Any) -> str:
    if value is None:
        return fmt.NONE
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _pretty(value: Any) -> str:
    """A stored JSON document (or its text) indented for a <pre>."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return dumps(value, indent=2)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = escaping_environment(FileSystemLoader(TEMPLATES))
    env.filters.update(
        when=_when,
        eta=human_duration,
        pretty=_pretty,
    )
    env.globals.update(
        progress_bar=charts.progress_bar,
        minute_chart=charts.minute_chart,
        state_colours=charts.STATE_COLOURS,
    )
    return env


def page(name: str, request: Request, status_code: int = 200, **context: Any) -> Response:
    html = (
        environment().get_template(name).render(request=request, status_code=status_code, **context)
    )
    return HTMLResponse(html, status_code=status_code)
