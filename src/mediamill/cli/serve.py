"""``mediamill serve``: the API, the web page and a job coordinator in one process."""

from __future__ import annotations

import logging

import typer

from mediamill import logs
from mediamill.cli.common import BrokerOption, DbOption, add_command, console, err_console


def _reachable(host: str) -> str:
    """The address a browser on this machine opens for a server listening on ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming it, not binding it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


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
    # a server says what it does: requests and jobs on stderr (and in the log file)
    logs.setup(min(logs.stderr_level(), logging.INFO), settings)
    token, created = load_or_create_token(settings)
    app = create_app(settings, coordinator=not no_coordinator)
    page = f"http://{_reachable(settings.host)}:{settings.port}/"
    console.print(f"mediamill on {page}  (catalog: {app.state.catalog.url})")
    if created:
        err_console.print(
            f"New API token (kept in {data_dir() / 'api-token'}, mode 0600). "
            f"Open the page once with it:\n  {page}#token={token}"
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
