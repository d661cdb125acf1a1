"""`tbatch migrate | worker`."""

from __future__ import annotations

import click

from models.migrate import upgrade
from worker.cli.help import examples
from worker.settings import get_settings


@click.command(
    "migrate", epilog=examples("TBATCH_DATABASE_URL=postgresql+psycopg://db/tbatch tbatch migrate")
)
def migrate_command() -> None:
    """Bring the database to the latest schema (Alembic)."""
    url = get_settings().database_url
    upgrade(url)
    click.echo("database is at the latest schema", err=True)


@click.command(
    "worker",
    epilog=examples("tbatch worker --concurrency 128", "tbatch worker --no-background"),
)
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="task threads")
@click.option(
    "--pool",
    type=click.Choice(["threads", "prefork", "solo"]),
    default=None,
    help="Celery pool  [default: TBATCH_WORKER_POOL, threads]",
)
@click.option(
    "--loglevel",
    default=None,
    help="log level (DEBUG, INFO, WARNING, ...)  [default: TBATCH_LOG_LEVEL]",
)
@click.option("--no-background", is_flag=True, help="run no dispatcher/reconciler here")
def worker_command(
    concurrency: int | None, pool: str | None, loglevel: str | None, no_background: bool
) -> None:
    """A Celery worker with tbatch's configuration (plus dispatcher, reconciler, heartbeat)."""
    from worker.celery_app import get_app
    from worker.logs import configure_logging

    settings = get_settings()
    if no_background:
        settings.run_background = False
    if concurrency:
        settings.worker_concurrency = concurrency
    if pool:
        settings.worker_pool = pool
    configure_logging(loglevel or settings.log_level, settings.log_format)  # type: ignore[arg-type]
    app = get_app()
    app.worker_main(
        [
            "worker",
            "--loglevel",
            loglevel or settings.log_level,
            "--pool",
            settings.worker_pool,
            "--concurrency",
            str(settings.worker_concurrency),
            "--queues",
            "tbatch",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@click.command("dispatch", epilog=examples("tbatch dispatch"))
@click.option("--parent-pid", type=int, default=None, help="exit when this process is gone")
def dispatch_command(parent_pid: int | None) -> None:
    """Run the dispatcher and reconciler alone (one per machine, or as a worker's child)."""
    import os
    import signal
    import sys

    from worker.background import BackgroundLoops
    from worker.celery_app import get_app
    from worker.logs import configure_logging
    from worker.publisher import Publisher
    from worker.runtime import get_runtime

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    if settings.metrics_port:
        from worker.metrics import serve

        serve(settings.metrics_port + 1)  # the worker beside it serves the port itself
    loops = BackgroundLoops(get_runtime(), Publisher(get_app()))
    signal.signal(signal.SIGTERM, lambda *_: loops.stop())
    loops.start(dispatch=True, heartbeat=False)

    def alive() -> bool:
        return parent_pid is None or os.getppid() == parent_pid

    loops.wait(alive)
    sys.exit(0)


COMMANDS = [migrate_command, worker_command, dispatch_command]
