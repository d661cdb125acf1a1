"""`tbatch demo`: the whole pipeline on one machine with no servers installed.

SQLite for state, Celery's filesystem broker, the in-memory rate limiter, the gateway emulator
as a child process and a real Celery worker as another. It lists ~200 synthetic call transcripts
through the transcript API, enqueues them with the bundled call-analytics template and schema,
shows progress, then a table of results and where the files are.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.env import service_settings
from harness.procs import WorkerProcess
from harness.wait import poll
from worker.cli.help import examples
from worker.cli.render import cost_text
from worker.settings import reset_settings

DEMO_MODEL = "claude-haiku-4-5-20251001"
DEMO_FALLBACK = "gemini-2.5-flash"
DEMO_KEY = "demo-key-not-secret"
# Faults at the rates real models show them, so the demo shows repairs, re-asks and retries.
DEMO_FAULTS = ("malformed=0.08", "schema_violation=0.04", "5xx=0.03", "refusal=0.01")


def asset(name: str) -> Path:
    return Path(str(resources.files("worker.assets").joinpath(name)))


@click.command(
    "demo", epilog=examples("tbatch demo", "tbatch demo --transcripts 50 --dir /tmp/demo")
)
@click.option(
    "--dir",
    "workdir",
    default="tbatch-demo",
    show_default=True,
    type=click.Path(),
    help="folder for the database, results and the worker log",
)
@click.option(
    "--transcripts",
    "count",
    default=200,
    show_default=True,
    type=click.IntRange(1, 5000),
    help="how many jobs to run",
)
@click.option(
    "--concurrency",
    default=32,
    show_default=True,
    type=click.IntRange(1, 512),
    help="the worker's task threads",
)
@click.option("--timeout-s", default=900.0, show_default=True, help="give up if not done by then")
def demo(workdir: str, count: int, concurrency: int, timeout_s: float) -> None:
    """Run ~200 synthetic calls through the whole pipeline on this machine."""
    from emulator.routes.server import EmulatorProcess

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # logs and CI: no terminal to measure
    out = Path(workdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("tbatch.sqlite3", "tbatch.sqlite3-wal", "tbatch.sqlite3-shm", "worker.log"):
        (out / stale).unlink(missing_ok=True)
    emulator_args = [
        "--transcripts",
        str(int(count * 1.15) + 5),
        "--seed",
        "7",
        "--api-key",
        DEMO_KEY,
        "--latency-ms",
        "250",
        "--latency-jitter-ms",
        "200",
        "--rate-limit",
        "900",
        "--window-s",
        "60",
        *[arg for fault in DEMO_FAULTS for arg in ("--fault", fault)],
    ]
    console.print("[bold]tbatch demo[/]: starting the gateway emulator ...")
    with EmulatorProcess(*emulator_args) as emu:
        env = _demo_env(out, emu.url)
        os.environ.update(env)
        reset_settings()
        _reset_runtime()
        from models.migrate import upgrade
        from worker.settings import get_settings

        upgrade(get_settings().database_url)
        ids_file = _write_transcript_ids(out, count)
        batch_id, jobs = _enqueue(ids_file)
        console.print(
            f"enqueued batch {batch_id}: {jobs} jobs on {DEMO_MODEL} (fallback {DEMO_FALLBACK})"
        )
        worker_env = {**os.environ, **env}
        with WorkerProcess(worker_env, out / "worker.log", concurrency, stop_timeout_s=30):
            status = _watch(batch_id, jobs, timeout_s, console)
        _report(batch_id, status, out, console)


def _demo_env(out: Path, emulator_url: str) -> dict[str, str]:
    services = service_settings(
        database_url=f"sqlite:///{out / 'tbatch.sqlite3'}",
        broker_url="filesystem://",
        redis_url="",
        gateway_url=emulator_url,
        api_key=DEMO_KEY,
    )
    return {
        **services,
        "TBATCH_BROKER_FOLDER": str(out / "broker"),
        "TBATCH_DEFAULT_RATE_LIMIT": "900/60s",
        "TBATCH_RETRY_BACKOFF_BASE_S": "0.5",
        "TBATCH_LOG_LEVEL": "WARNING",
    }


def _reset_runtime() -> None:
    from worker.runtime import reset_runtime

    reset_runtime()


def _write_transcript_ids(out: Path, count: int) -> Path:
    from worker.gateway.transcripts import TranscriptLister
    from worker.settings import get_settings

    ids: list[str] = []
    with TranscriptLister(get_settings()) as lister:
        for item in lister.iter_transcripts(created_on=None, status="completed"):
            ids.append(item.id)
            if len(ids) >= count:
                break
    path = out / "transcript_ids.txt"
    path.write_text("\n".join(ids) + "\n", encoding="utf-8")
    return path


def _enqueue(ids_file: Path) -> tuple[int, int]:
    from worker.cli.common import db
    from worker.gateway.types import Region
    from worker.runtime import get_runtime
    from worker.services.enqueue import EnqueueRequest, enqueue, load_schema_text

    schema_path, template_path = asset("call_analytics.schema.json"), asset("call_analytics.j2")
    req = EnqueueRequest(
        transcripts_source=str(ids_file),
        template_text=template_path.read_text(encoding="utf-8"),
        template_source=str(template_path),
        schema=load_schema_text(schema_path.read_text(encoding="utf-8"), source=str(schema_path)),
        schema_source=str(schema_path),
        model=DEMO_MODEL,
        fallbacks=(DEMO_FALLBACK,),
        name="demo",
        canary_jobs=get_runtime().settings.canary_calls,
    )
    gateway = get_runtime().gateway
    with ids_file.open(encoding="utf-8") as lines, db() as session:
        result = enqueue(
            session, req, lines, catalog=lambda r: gateway.list_models(cast(Region, r))
        )
    return result.batch_id, result.jobs


def _watch(batch_id: int, total: int, timeout_s: float, console: Console) -> dict[str, Any]:
    from worker.cli.common import db
    from worker.services.queries import batch_status

    columns = (
        TextColumn("[bold]processing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("jobs", total=total, detail="")

        def refresh() -> dict[str, Any]:
            with db() as session:
                status = batch_status(session, batch_id)
            c = status["counts"]
            detail = f"ok {c['succeeded']}  failed {c['failed']}  running {c['running']}"
            progress.update(task, completed=status["done"], detail=detail)
            return status

        # Every 0.5 s is a display refresh, not synchronisation; _report says if it timed out.
        return poll(refresh, lambda status: status["final"], timeout_s, every_s=0.5)


def _report(batch_id: int, status: dict[str, Any], out: Path, console: Console) -> None:
    from worker.cli.common import db
    from worker.services.export import write_results
    from worker.services.queries import iter_results

    with db() as session, (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        write_results(iter_results(session, batch_id), "jsonl", fh)
    with db() as session, (out / "results.csv").open("w", encoding="utf-8", newline="") as fh:
        write_results(iter_results(session, batch_id), "csv", fh)
    with db() as session:
        records = list(iter_results(session, batch_id))
    table = Table(title=f"batch {batch_id}: first 15 of {len(records)} results")
    widths = {
        "job": 5,
        "transcript": 13,
        "status": 9,
        "sentiment": 9,
        "resolution": 10,
        "topics": 26,
        "fixed": 8,
        "request_id / error": 36,
    }
    for name, width in widths.items():
        table.add_column(name, no_wrap=True, overflow="ellipsis", min_width=width)
    for rec in records[:15]:
        data = json.loads(rec["result"]) if rec["result"] else {}
        table.add_row(
            str(rec["job_id"]),
            rec["transcript_id"][:13],
            rec["status"],
            str(data.get("sentiment", "")),
            str(data.get("resolution", "")),
            ", ".join(data.get("topics", [])[:2]),
            "repaired" if rec["repaired"] else "",
            (rec["request_id"] or rec["error"] or "")[:36],
        )
    console.print(table)
    c = status["counts"]
    console.print(
        f"succeeded {c['succeeded']}, failed {c['failed']} {status['failures'] or ''}; "
        f"{status['attempts']} gateway calls, {status['input_tokens']} input tokens, "
        f"est. {cost_text(status)}"
    )
    console.print(
        f"results: {out / 'results.jsonl'}\n         {out / 'results.csv'}\n"
        f"database: {out / 'tbatch.sqlite3'}\nworker log: {out / 'worker.log'}"
    )
    if not status["final"]:
        raise SystemExit("demo timed out before the batch was final")
