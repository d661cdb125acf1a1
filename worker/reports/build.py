"""The report service: one batch in, ``report.json``, ``report.csv`` and ``report.html`` out."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from worker.errors import InputError
from worker.reports.collect import collect_report
from worker.reports.csvout import write_csv
from worker.reports.html import render_html
from worker.reports.spec import FieldSpec
from worker.reports.trends import compare

JSON_NAME, CSV_NAME, HTML_NAME = "report.json", "report.csv", "report.html"


@dataclass(frozen=True)
class ReportFiles:
    json_path: Path
    csv_path: Path
    html_path: Path


def build_report(
    session: Session,
    batch_id: int,
    out_dir: Path,
    *,
    specs: Sequence[FieldSpec] | None = None,
    previous_reports: Sequence[Path] | None = None,
    title: str | None = None,
    now: datetime | None = None,
) -> ReportFiles:
    """Aggregate ``batch_id`` (any size: results are streamed) and write the three files.

    ``specs`` defaults to :func:`~worker.reports.spec.fields_from_schema` over the batch's
    schemas; ``previous_reports`` are earlier ``report.json`` files to compare with.
    """
    previous = [load_report(path) for path in previous_reports or ()]
    report = collect_report(session, batch_id, specs=specs, title=title, now=now)
    if previous:
        report["trends"] = compare(report, previous)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / JSON_NAME, out_dir / CSV_NAME, out_dir / HTML_NAME)
    _write(files.json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _write(files.csv_path, _csv_text(report))
    _write(files.html_path, render_html(report))
    return files


def load_report(path: Path) -> dict[str, Any]:
    """A previous night's ``report.json``; InputError names the file when it is not one."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read previous report: {exc.strerror}", source=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"previous report is not JSON: {exc}", source=str(path)) from None
    if not isinstance(report, dict) or "jobs" not in report or "fields" not in report:
        raise InputError("not a tbatch report.json (no jobs/fields)", source=str(path))
    return report


def _csv_text(report: dict[str, Any]) -> str:
    buffer = io.StringIO(newline="")
    write_csv(report, buffer)
    return buffer.getvalue()


def _write(path: Path, text: str) -> None:
    """Write beside the target and rename, so a reader never opens half a report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)
