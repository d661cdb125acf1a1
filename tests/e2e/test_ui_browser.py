"""The web view in a real headless Chromium, served by the real `tbatch ui` (a `python -m worker
ui` child on a loopback socket, its settings in its environment as for every tbatch process)
over a database holding a batch run through the real pipeline against the emulator.

The pages must show what the database holds (each number below is counted from the rows with
SQLAlchemy, not read back from the view's own queries), the rerun command of each failure
reason, the `<script>` a user put in a name, custom_id and metadata as text, nothing that
reaches the network, and the strict Content-Security-Policy. Screenshots of each page are
checked to be real pictures; with TBATCH_SCREENSHOTS_DIR set (scripts/screenshots) they are
also copied there, which is how the README's pictures are made.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from emulator.routes.server import EmulatorProcess
from harness.claim import migrated_database
from models.attempts import Attempt
from models.db import make_engine, make_session_factory
from models.jobs import Batch, Job
from models.nightly import NightlyRun
from tests.fixtures.browser import Dom, dump_dom, network_references, screenshot
from tests.fixtures.pipeline import tbatch_env
from tests.fixtures.rows import attempt_totals, job_counts
from tests.fixtures.services import new_database
from tests.fixtures.ui_batch import EVIL, MODEL
from tests.fixtures.ui_world import PIPELINE, RATE_LIMITS, Seeded, seed, start_ui
from worker.reports import fmt
from worker.ui.auth import CSP, REPORT_CSP

pytestmark = pytest.mark.slow
WIDTH = 1280


@dataclass(frozen=True)
class Site:
    base: str
    sessions: sessionmaker[Session]
    seeded: Seeded

    def url(self, path: str) -> str:
        return self.base + path

    def job_id(self, transcript_id: str) -> int:
        with self.sessions() as s:
            found = s.scalar(
                select(Job.id).where(
                    Job.batch_id == self.seeded.real.batch_id, Job.transcript_id == transcript_id
                )
            )
        assert found is not None
        return int(found)

    def attempts(self, job_id: int) -> list[Attempt]:
        with self.sessions() as s:
            query = select(Attempt).where(Attempt.job_id == job_id)
            return list(s.scalars(query.order_by(Attempt.started_at, Attempt.id)))


@pytest.fixture(scope="module")
def site(
    emulator: EmulatorProcess, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    emulator.reset(config=True)
    tmp = tmp_path_factory.mktemp("ui")
    with migrated_database(new_database()) as database:
        engine = make_engine(database.url)
        sessions = make_session_factory(engine)
        try:
            seeded = seed(sessions, emulator, tmp)
            env = tbatch_env(
                database.url,
                redis_url,
                emulator.url,
                TBATCH_RATE_LIMITS=RATE_LIMITS,
                TBATCH_DEFAULT_RATE_LIMIT="30/60s",
            )
            proc, base = start_ui(env, tmp / "ui.log")
            try:
                yield Site(base, sessions, seeded)
            finally:
                proc.stop()
        finally:
            engine.dispose()


def _scan(sessions: sessionmaker[Session], batch_id: int) -> dict[str, Any]:
    """The batch's numbers counted from its rows (as tests/integration/test_ui_api.py does)."""
    with sessions() as s:
        counts = job_counts(s, batch_id)
        reasons = list(
            s.scalars(
                select(Job.error_kind)
                .where(Job.batch_id == batch_id, Job.status == "failed")
                .distinct()
            )
        )
        attempts, cost, n429 = attempt_totals(s, batch_id)
    return {
        "counts": {str(k): int(v) for k, v in counts.items()},
        "reasons": sorted(str(r) for r in reasons),
        "attempts": int(attempts),
        "cost": float(cost or 0),
        "429": int(n429),
    }


def _assert_safe(dom: Dom) -> None:
    """No script or injected markup ran or exists, and nothing points at another host."""
    assert dom.tags("script", "iframe", "object", "embed", "img") == []
    assert not [e for e in dom.elements for k in e.attrs if k.startswith("on")]
    assert network_references(dom) == []


@pytest.fixture(scope="module")
def index(site: Site) -> Dom:
    return dump_dom(site.url("/"))


@pytest.fixture(scope="module")
def batch_page(site: Site) -> Dom:
    return dump_dom(site.url(f"/batches/{site.seeded.real.batch_id}"))


def test_the_index_lists_every_batch_newest_first_with_the_databases_numbers(
    site: Site, index: Dom
) -> None:
    with site.sessions() as s:
        batches = list(s.scalars(select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc())))
    rows = [e.attrs["data-metric"] for e in index.tags("tr") if "data-metric" in e.attrs]
    assert rows == [f"batch.{b.id}" for b in batches]
    assert len(rows) == 3
    for b in batches:
        scan = _scan(site.sessions, b.id)
        total = sum(scan["counts"].values())
        assert index.metric(f"batch.{b.id}.name").content == b.name
        assert index.metric(f"batch.{b.id}.total").content == fmt.count(total)
        for state in ("succeeded", "failed"):
            got = index.metric(f"batch.{b.id}.{state}").content
            assert got == fmt.count(scan["counts"].get(state, 0)), (b.id, state)
        assert index.metric(f"batch.{b.id}.cost").content == fmt.usd(scan["cost"])
        bars = {
            e.attrs["data-metric"].rsplit(".", 1)[1]: int(e.attrs["data-count"])
            for e in index.elements
            if e.attrs.get("data-metric", "").startswith(f"progress.{b.id}.")
        }
        assert bars == scan["counts"]
    real = site.seeded.real.batch_id
    assert index.metric(f"batch.{real}.state").content == "final"
    assert index.metric(f"batch.{real}.active").content == "0"
    backfill = site.seeded.backfill
    assert index.metric(f"batch.{backfill}.active").content == "40"
    assert index.metric(f"batch.{backfill}.eta").content == "40s"  # 40 jobs at 60/min
    _assert_safe(index)


def test_the_batch_page_shows_counts_cost_429s_and_the_limit(site: Site, batch_page: Dom) -> None:
    real = site.seeded.real.batch_id
    scan = _scan(site.sessions, real)
    assert scan["counts"] == {"succeeded": 7, "failed": 2} and scan["429"] == 1
    assert batch_page.metric("batch.done").content == "9 / 9"
    for state, n in scan["counts"].items():
        assert batch_page.metric(f"count.{state}").content == fmt.count(n)
        assert batch_page.metric(f"progress.{state}").attrs["data-count"] == str(n)
    assert batch_page.metric("batch.cost").content == fmt.usd(scan["cost"])
    assert scan["cost"] > 0
    assert batch_page.metric("batch.http_429").content == str(scan["429"])
    assert batch_page.metric(f"model.{MODEL}.calls").content == fmt.count(scan["attempts"])
    minutes = [
        e for e in batch_page.elements if e.attrs.get("data-metric", "").startswith("minute.")
    ]
    assert sum(int(m.attrs["data-count"]) for m in minutes) == scan["attempts"]
    assert sum(int(m.attrs["data-429"]) for m in minutes) == scan["429"]
    assert batch_page.metric(f"limit.{MODEL}").attrs["data-count"] == "60.0"
    assert len([e for e in batch_page.elements if e.attrs.get("class") == "r429"]) == 1


def test_each_failure_reason_has_the_command_that_reruns_it(site: Site, batch_page: Dom) -> None:
    real = site.seeded.real.batch_id
    reasons = _scan(site.sessions, real)["reasons"]
    assert reasons == ["refused", "transcript_not_found"]
    for reason in reasons:
        command = batch_page.metric(f"failures.{reason}.command")
        assert command.tag == "code"
        assert command.content == f"tbatch reprocess --batch {real} --reason {reason}"


def test_a_users_script_is_text_on_every_page(site: Site, index: Dom, batch_page: Dom) -> None:
    real = site.seeded.real
    assert EVIL in index.metric(f"batch.{real.batch_id}.name").content
    assert batch_page.metric("batch.name").content == f"calls {EVIL}"
    job = dump_dom(site.url(f"/jobs/{site.job_id(real.ok[0])}"))
    assert EVIL in job.metric("job.custom_id").content
    assert EVIL in job.metric("job.metadata").content
    assert job.metric("job.batch_name").content == f"calls {EVIL}"
    for dom in (index, batch_page, job):
        _assert_safe(dom)
    served = httpx.get(site.url(f"/batches/{real.batch_id}")).text
    assert EVIL not in served and "&lt;script&gt;alert(1)&lt;/script&gt;" in served


@pytest.mark.parametrize("which", ["rate_limited", "reasked"])
def test_a_jobs_timeline_has_every_attempt_as_stored(site: Site, which: str) -> None:
    job_id = site.job_id(getattr(site.seeded.real, which))
    stored = site.attempts(job_id)
    assert len(stored) >= 2
    dom = dump_dom(site.url(f"/jobs/{job_id}"))
    shown = [e for e in dom.tags("li") if e.attrs.get("class", "").startswith("attempt ")]
    assert len(shown) == len(stored)
    for n, attempt in enumerate(stored, start=1):
        assert dom.metric(f"attempt.{n}.request_id").content == (
            attempt.request_id or "no request_id"
        )
        assert dom.metric(f"attempt.{n}.outcome").content == attempt.outcome
        assert dom.metric(f"attempt.{n}.cost").content == fmt.usd(
            float(attempt.cost_usd) if attempt.cost_usd is not None else None
        )
        assert attempt.http_status is not None  # every call of these two jobs was answered
        assert dom.metric(f"attempt.{n}.http").content == str(attempt.http_status)
    assert dom.metric("job.status").content == "succeeded"
    if which == "rate_limited":
        assert [a.http_status for a in stored] == [429, 200]
    else:
        assert stored[0].outcome == "invalid" and stored[-1].purpose == "reask"
        assert dom.metric("attempt.1.raw").content  # the answer that failed validation
        assert "validation errors:" in dom.metric("attempt.1").content
    _assert_safe(dom)


def test_searching_a_request_id_lands_on_its_job(site: Site) -> None:
    job_id = site.job_id(site.seeded.real.refused)
    (attempt, *_) = site.attempts(job_id)
    assert attempt.request_id
    dom = dump_dom(site.url(f"/search?q={attempt.request_id}"))  # a 303 the browser follows
    assert [e.content for e in dom.tags("h1")] == [f"Job {job_id}"]
    assert dom.metric("attempt.1.request_id").content == attempt.request_id
    assert dom.metric("job.status").content == "failed"
    miss = dump_dom(site.url("/search?q=no-such-request"))
    assert "no-such-request" in miss.metric("search.none").content


def test_the_reports_page_links_each_nightly_report(site: Site) -> None:
    run_id, real = site.seeded.run_id, site.seeded.real.batch_id
    scan = _scan(site.sessions, real)
    dom = dump_dom(site.url("/reports"))
    assert PIPELINE in dom.metric(f"run.{run_id}").content
    assert dom.metric(f"run.{run_id}.succeeded").content == fmt.count(scan["counts"]["succeeded"])
    assert dom.metric(f"run.{run_id}.failed").content == fmt.count(scan["counts"]["failed"])
    assert dom.metric(f"run.{run_id}.cost").content == fmt.usd(scan["cost"])
    with site.sessions() as s:
        runs = list(s.scalars(select(NightlyRun.id).order_by(NightlyRun.run_date.desc())))
    rows = [e.attrs["data-metric"] for e in dom.tags("tr") if "data-metric" in e.attrs]
    assert rows == [f"run.{r}" for r in runs] and len(rows) == 3  # newest night first
    assert any(f"HTTP 503 {EVIL}" in e.content for e in dom.find(class_="reason"))
    link = dom.metric(f"run.{run_id}.report")
    assert link.attrs["href"] == f"/reports/{run_id}/report.html"
    _assert_safe(dom)
    report = dump_dom(site.url(link.attrs["href"]))
    assert report.tags("h1")[0].content == f"Batch report: calls {EVIL}"
    assert report.metric("headline.jobs.total").attrs["data-value"] == "9"


def test_every_response_carries_the_strict_policy(site: Site) -> None:
    real = site.seeded.real.batch_id
    paths = ["/", f"/batches/{real}", "/reports", "/search?q=x", "/api/batches", "/jobs/987654"]
    for path in paths:
        response = httpx.get(site.url(path))
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in CSP and "unsafe" not in CSP and "default-src 'none'" in CSP
    report = httpx.get(site.url(f"/reports/{site.seeded.run_id}/report.html"))
    assert report.status_code == 200
    assert report.headers["content-security-policy"] == REPORT_CSP
    assert REPORT_CSP.endswith("sandbox")


#: (file name, path of the page, window height): heights that show each whole page.
SHOTS = [
    ("batches.png", lambda s: "/", 400),
    ("batch.png", lambda s: f"/batches/{s.seeded.real.batch_id}", 1060),
    ("job-reask.png", lambda s: f"/jobs/{s.job_id(s.seeded.real.reasked)}", 830),
    ("job-429.png", lambda s: f"/jobs/{s.job_id(s.seeded.real.rate_limited)}", 800),
    ("reports.png", lambda s: "/reports", 330),
]


@pytest.mark.parametrize(("name", "path", "height"), SHOTS, ids=[s[0] for s in SHOTS])
def test_screenshots_of_each_page(
    site: Site, tmp_path: Path, name: str, path: Any, height: int
) -> None:
    shot = tmp_path / name
    screenshot(site.url(path(site)), shot, (WIDTH, height), min_bytes=20_000)
    keep = os.environ.get("TBATCH_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(keep) / name)
