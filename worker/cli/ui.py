"""`tbatch ui | batches`: the operator's view, in a browser and in the terminal."""

from __future__ import annotations

import click

from worker.cli.common import db
from worker.runtime import get_runtime
from worker.services.batch_views import list_batches


@click.command("ui", epilog="Example: tbatch ui --port 8700, then open http://127.0.0.1:8700/")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8700,
    show_default=True,
    help="port to listen on",
)
def ui_command(host: str, port: int) -> None:
    """A read-only web view of batches, jobs and nightly reports (JSON under /api)."""
    import uvicorn

    from worker.ui.app import View, create_app
    from worker.ui.auth import required_token

    runtime = get_runtime()
    secret = runtime.settings.ui_token
    token = required_token(host, None if secret is None else secret.get_secret_value())
    app = create_app(View(runtime.sessions, runtime.limiter.limit), token=token)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"tbatch ui on http://{shown}:{port}/" + (" (bearer token required)" if token else ""),
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")


@click.command("batches", epilog="Example: tbatch batches --limit 10; tbatch batches --json | jq")
@click.option("--json", "as_json", is_flag=True, help="one JSON array on stdout (ISO 8601 times)")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="newest N"
)
def batches_command(as_json: bool, limit: int) -> None:
    """Every batch, newest first: progress, state, ETA and cost."""
    limiter = get_runtime().limiter
    with db() as session:
        rows = list_batches(session, limiter.limit, limit=limit)
    if as_json:
        import sys

        from worker.ui.jsonout import dumps

        sys.stdout.write(dumps(rows) + "\n")
        return
    from worker.cli.render_batches import render_batches  # rich: only for people

    render_batches(rows)


COMMANDS = [ui_command, batches_command]
