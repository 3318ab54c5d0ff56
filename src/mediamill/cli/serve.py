"""``mediamill serve``: the API, the web page and a job coordinator in one process."""

from __future__ import annotations

import typer

from mediamill.cli.common import BrokerOption, DbOption, add_command, console, err_console


def serve(
    host: str | None = typer.Option(
        None,
        "--host",
        help="Address to listen on [default: "
        "127.0.0.1]. Beyond loopback every request needs the token.",
    ),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port [default: 8484]."),
    no_coordinator: bool = typer.Option(
        False, "--no-coordinator", help="Serve the API only; run no jobs in this process."
    ),
    db: str | None = DbOption,
    broker: str | None = BrokerOption,
) -> None:
    """Serve the HTTP API, live events and the web page, and run queued jobs."""
    import uvicorn

    from mediamill.api.app import create_app
    from mediamill.api.deps import load_or_create_token
    from mediamill.settings import data_dir, load

    settings = load(db=db, host=host, port=port, broker_url=broker)
    token, created = load_or_create_token(settings)
    if created:
        err_console.print(
            f"New API token (kept in {data_dir() / 'api-token'}, mode 0600):\n  {token}"
        )
    app = create_app(settings, coordinator=not no_coordinator)
    console.print(
        f"mediamill on http://{settings.host}:{settings.port}/  (catalog: {app.state.catalog.url})"
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


def register(app: typer.Typer) -> None:
    add_command(app, serve)
