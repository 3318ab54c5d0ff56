"""``mediamill worker``: run batches of jobs that use ``--executor celery`` on this machine."""

from __future__ import annotations

import typer

from mediamill.cli.common import err_console, fail


def worker(
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Batches at once, one worker process each [default: 1].",
    ),
    queues: list[str] = typer.Option(
        [],
        "--queues",
        "-Q",
        help="Queues to take batches from, comma-separated [default: mediamill.io,mediamill.cpu].",
    ),
    path_map: list[str] = typer.Option(
        [],
        "--path-map",
        help="SRC=DST: the runner's path SRC is DST on this machine (repeatable; longest "
        "prefix wins). Every DST must exist and be readable, or the worker does not start.",
    ),
    broker: str | None = typer.Option(
        None,
        "--broker",
        envvar="MEDIAMILL_BROKER_URL",
        help="Broker URL: redis://host:6379/0 or amqp://user:pass@host:5672// "
        "[default: redis://127.0.0.1:6379/0].",
        show_default=False,
    ),
    verbose_celery: bool = typer.Option(False, "--celery-log", help="Log Celery's own INFO lines."),
) -> None:
    """Start a worker: it takes batches from the broker, runs them through local worker
    processes and sends the outcomes back to the job's runner. It needs the media (through
    --path-map if its paths differ), not the catalog."""
    from mediamill.executors.celery import CeleryConfig, PathMap
    from mediamill.executors.celery_worker import WorkerError, serve
    from mediamill.settings import load

    settings = load(broker_url=broker, worker_concurrency=concurrency)
    mapping = dict(settings.path_map)
    try:
        mapping.update(PathMap.parse(path_map))
    except ValueError as exc:
        raise fail(str(exc)) from exc
    config = CeleryConfig.from_settings(settings)
    chosen = [q.strip() for spec in queues for q in spec.split(",") if q.strip()]
    chosen = chosen or settings.worker_queues or config.default_queues()
    try:
        code = serve(
            config,
            concurrency=settings.worker_concurrency,
            queues=chosen,
            path_map=PathMap(mapping),
            loglevel="INFO" if verbose_celery else "WARNING",
        )
    except WorkerError as exc:
        raise fail(f"worker not started: {exc}") from exc
    if code:
        err_console.print(f"worker ended with code {code}")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(worker)
