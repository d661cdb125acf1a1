"""report.html in a real headless Chromium: what a team lead sees when opening the file.

Chromium is required (CI installs it with `apt-get install -y chromium`); without it these tests
fail with that message rather than skip, so a missing browser cannot pass unnoticed.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from models.db import make_engine, make_session_factory
from tests.fixtures.reports import EVIL_TOPIC, seed_batch
from worker.reports import build_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get update && apt-get install -y chromium"
WINDOW = (1280, 3000)
URL = re.compile(r"\b(?:https?:)?//", re.IGNORECASE)


def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"headless Chromium is required for this test and was not found; run: {INSTALL}")


def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="tbatch-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)

    @property
    def content(self) -> str:
        return " ".join("".join(self.text).split())


class Dom(HTMLParser):
    """Every element with its attributes and the text inside it (nested text included)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in ("meta", "link", "br", "img", "input", "hr"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text.append(data)

    def find(self, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def metric(self, name: str) -> Element:
        found = self.find(data_metric=name)
        assert len(found) == 1, f"expected one element with data-metric={name!r}, found {found}"
        return found[0]


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
    proc = run_chromium("--dump-dom", report_html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<html" in proc.stdout, f"no DOM from Chromium: {proc.stderr[-2000:]}"
    return Dom(proc.stdout)


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
    for element in dom.elements:
        for name, value in element.attrs.items():
            if name in ("src", "href", "xlink:href", "action", "poster", "data", "style", "xmlns"):
                assert not URL.search(value), f"<{element.tag} {name}={value!r}>"
    styles = " ".join(e.content for e in dom.elements if e.tag == "style")
    assert "url(" not in styles and "@import" not in styles


def test_screenshot_is_a_real_rendered_page(report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    width, height = WINDOW
    proc = run_chromium(
        f"--window-size={width},{height}", f"--screenshot={shot}", report_html.as_uri()
    )
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == WINDOW
    assert len(data) > 60_000, f"screenshot is only {len(data)} bytes: a blank page?"
