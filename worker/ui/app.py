"""The read-only web view (`tbatch ui`): Starlette routes over the read models of
:mod:`worker.services.batch_views` and :mod:`worker.services.job_views`.

Pages and JSON share one read per request: each route opens one session, reads, closes it.
Routes are plain functions (Starlette runs them in its thread pool), since the database layer
is synchronous. Nothing here writes: there is no POST route at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from worker.errors import NotFoundError
from worker.reports.build import HTML_NAME
from worker.services.batch_views import LimitOf, batch_detail, list_batches
from worker.services.job_views import job_detail, nightly_reports, report_dir, search
from worker.ui.auth import Guard
from worker.ui.pages import json_response, page

T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
LIST_LIMIT = 100


@dataclass(frozen=True)
class View:
    sessions: sessionmaker[Session]
    limit_of: LimitOf

    def read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return fn(session)


def _int(request: Request, name: str) -> int:
    return int(request.path_params[name])


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "")
    return max(1, min(1000, int(raw))) if raw.isdigit() else LIST_LIMIT


class Handlers:
    """One method per route; each reads through ``view`` and renders a page or JSON."""

    def __init__(self, view: View) -> None:
        self.view = view

    def batches_data(self, request: Request) -> list[dict[str, Any]]:
        limit = _limit(request)
        return self.view.read(lambda s: list_batches(s, self.view.limit_of, limit=limit))

    def batch_data(self, request: Request) -> dict[str, Any]:
        batch_id = _int(request, "batch_id")
        return self.view.read(lambda s: batch_detail(s, batch_id, self.view.limit_of))

    def job_data(self, request: Request) -> dict[str, Any]:
        job_id = _int(request, "job_id")
        return self.view.read(lambda s: job_detail(s, job_id))

    def search_data(self, request: Request) -> dict[str, Any]:
        q = request.query_params.get("q", "")
        return {"q": q, "jobs": self.view.read(lambda s: search(s, q))}

    def index(self, request: Request) -> Response:
        return page("batches.html.j2", request, batches=self.batches_data(request))

    def batch_page(self, request: Request) -> Response:
        return page("batch.html.j2", request, b=self.batch_data(request))

    def job_page(self, request: Request) -> Response:
        return page("job.html.j2", request, j=self.job_data(request))

    def search_page(self, request: Request) -> Response:
        found = self.search_data(request)
        if len(found["jobs"]) == 1:  # one job: that is the answer
            return RedirectResponse(f"/jobs/{found['jobs'][0]['job_id']}", status_code=303)
        return page("search.html.j2", request, **found)

    def reports_page(self, request: Request) -> Response:
        return page("reports.html.j2", request, runs=self.view.read(nightly_reports))

    def report_html(self, request: Request) -> Response:
        run_id = _int(request, "run_id")
        path = Path(self.view.read(lambda s: report_dir(s, run_id))) / HTML_NAME
        if not path.is_file():
            raise NotFoundError(f"the report of nightly run {run_id} is not at {path}")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    def css(self, request: Request) -> Response:
        return FileResponse(STATIC / "ui.css", media_type="text/css; charset=utf-8")


def _api(fn: Callable[[Request], Any]) -> Callable[[Request], Response]:
    return lambda request: json_response(fn(request))


def create_app(view: View, *, token: str | None = None) -> Any:
    """The ASGI app; with ``token``, every request must carry it (worker/ui/auth.py)."""
    h = Handlers(view)
    routes = [
        Route("/", h.index),
        Route("/batches/{batch_id:int}", h.batch_page),
        Route("/jobs/{job_id:int}", h.job_page),
        Route("/search", h.search_page),
        Route("/reports", h.reports_page),
        Route("/reports/{run_id:int}/report.html", h.report_html),
        Route("/static/ui.css", h.css),
        Route("/api/batches", _api(h.batches_data)),
        Route("/api/batches/{batch_id:int}", _api(h.batch_data)),
        Route("/api/jobs/{job_id:int}", _api(h.job_data)),
        Route("/api/search", _api(h.search_data)),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={NotFoundError: _not_found, HTTPException: _http_error},
    )
    return Guard(app, token)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _not_found(request: Request, exc: Exception) -> Response:
    if _wants_json(request):
        return json_response({"error": str(exc)}, status_code=404)
    return page("error.html.j2", request, status_code=404, message=str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _wants_json(request):
        return json_response({"error": exc.detail}, status_code=exc.status_code)
    return page("error.html.j2", request, status_code=exc.status_code, message=exc.detail)
