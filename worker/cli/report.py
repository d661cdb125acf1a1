"""`tbatch report BATCH`: report.json, report.csv and a self-contained report.html."""

from __future__ import annotations

import json
from pathlib import Path

import click

from worker.cli.common import db, print_json
from worker.cli.help import examples
from worker.errors import InputError
from worker.reports import build_report
from worker.reports.build import JSON_NAME


@click.command(
    "report",
    epilog=examples("tbatch report 42 --out reports/42 --previous reports/41/report.json"),
)
@click.argument("batch_id", type=int)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="directory for the three files  [default: ./report-BATCH]",
)
@click.option(
    "--previous",
    "previous",
    multiple=True,
    type=click.Path(),
    help="a previous night's report.json (or its directory) to compare with; repeatable",
)
@click.option("--title", default=None, help="page title  [default: from the batch name]")
@click.option("--json", "as_json", is_flag=True, help="print paths and headline numbers as JSON")
def report_command(
    batch_id: int,
    out_dir: str | None,
    previous: tuple[str, ...],
    title: str | None,
    as_json: bool,
) -> None:
    """Aggregate a batch's validated results: counts, averages, top items, failures, cost."""
    out = Path(out_dir or f"report-{batch_id}")
    earlier = [Path(p) / JSON_NAME if Path(p).is_dir() else Path(p) for p in previous]
    try:
        with db() as session:
            files = build_report(session, batch_id, out, previous_reports=earlier, title=title)
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror}", source=str(out)) from None
    if not as_json:
        for path in (files.html_path, files.json_path, files.csv_path):
            click.echo(str(path))
        return
    report = json.loads(files.json_path.read_text(encoding="utf-8"))
    jobs, cost = report["jobs"], report["cost"]
    print_json(
        {
            "batch_id": batch_id,
            "html": str(files.html_path),
            "json": str(files.json_path),
            "csv": str(files.csv_path),
            "jobs": jobs["total"],
            "succeeded": jobs["by_status"]["succeeded"],
            "failed": jobs["by_status"]["failed"],
            "success_rate": jobs["success_rate"],
            "results": jobs["results"],
            "cost_usd": cost["total_usd"],
        }
    )


COMMANDS = [report_command]
