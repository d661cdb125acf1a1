"""report.html in a real headless Chromium: what a team lead sees when opening the file.

Chromium is required (CI installs it with `apt-get install -y chromium`); without it these tests
fail with that message rather than skip, so a missing browser cannot pass unnoticed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.db import make_engine, make_session_factory
from tests.fixtures.browser import Dom, dump_dom, network_references, screenshot
from tests.fixtures.reports import EVIL_TOPIC, seed_batch
from worker.reports import build_report

WINDOW = (1280, 3000)


@pytest.fixture(scope="module")
def report_html(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as session:
            batch_id = seed_batch(session, name="nightly 2026-11-25")
        with sessions() as session:
            first = build_report(session, batch_id, out / "first")
        previous = []
        for day, success in (("2026-11-23", 0.95), ("2026-11-24", 0.9)):
            older = json.loads(first.json_path.read_text())
            older["batch"]["created_at"] = f"{day}T02:00:00+00:00"
            older["jobs"]["success_rate"] = success
            previous.append(out / f"{day}.json")
            previous[-1].write_text(json.dumps(older))
        with sessions() as session:
            files = build_report(
                session,
                batch_id,
                out / "tonight",
                previous_reports=previous,
                now=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
            )
    finally:
        engine.dispose()
    return files.html_path


@pytest.fixture(scope="module")
def dom(report_html: Path) -> Dom:
    return dump_dom(report_html.as_uri())


def test_headings_a_team_lead_understands(dom: Dom) -> None:
    headings = [e.content for e in dom.elements if e.tag in ("h1", "h2")]
    for heading in (
        "Sentiment",
        "Top topics",
        "Resolution",
        "Failures by reason",
        "Cost",
        "Compared with previous nights",
        "Compliance flags",
    ):
        assert heading in headings
    assert headings[0] == "Batch report: nightly 2026-11-25"


def test_headline_and_sentiment_numbers_are_on_the_page(dom: Dom) -> None:
    assert dom.metric("headline.jobs.total").attrs["data-value"] == "20"
    assert "16" in dom.metric("headline.jobs.succeeded").content
    assert "84.2% success rate" in dom.metric("headline.jobs.succeeded").content
    assert (
        "\N{MINUS SIGN}5.8 pts vs previous night" in dom.metric("headline.jobs.succeeded").content
    )
    for value, count in {"positive": 6, "neutral": 4, "negative": 5, "mixed": 1}.items():
        bar = dom.metric(f"sentiment.{value}")
        assert bar.attrs["data-count"] == str(count)
        assert bar.content.startswith(f"{value}: {count} · ")  # tooltip, label, value text
    assert dom.metric("resolution.escalated").attrs["data-count"] == "3"
    mean = dom.metric("sentiment_score.mean")
    assert mean.attrs["data-value"] == "0.140625" and mean.content.endswith("0.141")
    assert dom.metric("compliance_flags.pii_shared.true").attrs["data-count"] == "2"


def test_failures_table_and_cost_box(dom: Dom) -> None:
    timeout = dom.metric("failures.timeout")
    assert timeout.tag == "tr" and timeout.content.startswith("timeout 2 66.7%")
    bad = dom.metric("failures.bad_request")
    assert "transcript too long for the model <b>context</b>" in bad.content  # text, not markup
    assert not dom.find(tag="b")
    assert dom.metric("cost.total_usd").content == "$0.1005"
    assert dom.metric("cost.model.gpt-5").content.startswith("gpt-5 1 1,000 200 $0.0045")
    assert dom.metric("attempts.http_429").content == "1"


def test_llm_text_is_shown_as_text_never_run(dom: Dom) -> None:
    assert not [e for e in dom.elements if e.tag in ("script", "img", "iframe", "object")]
    tooltips = [e.content for e in dom.elements if e.tag == "title"]
    assert any(EVIL_TOPIC in tip for tip in tooltips)


def test_charts_are_inline_svg_and_nothing_references_the_network(dom: Dom) -> None:
    charts = [e for e in dom.elements if e.tag == "svg"]
    assert len(charts) >= 10  # bars, histograms, yes/no bars, sparklines
    assert {"chart bars", "chart histogram", "chart yesno", "chart sparkline"} <= {
        e.attrs.get("class") for e in charts
    }
    assert len(dom.find(class_="bin")) >= 10 and len(dom.find(class_="bar")) >= 12
    assert network_references(dom) == []


def test_screenshot_is_a_real_rendered_page(report_html: Path, tmp_path: Path) -> None:
    screenshot(report_html.as_uri(), tmp_path / "report.png", WINDOW, min_bytes=60_000)
