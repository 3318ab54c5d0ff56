"""The ``mediamill`` command line (Typer + Rich): one module per command group."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="mediamill",
    help="Process big media libraries fast and safely: probe, audio analysis, VOD .strm export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (to stderr)."),
) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, console=_stderr())],
    )


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _register() -> None:
    from mediamill.cli import data, jobs, run

    run.register(app)
    data.register(app)
    jobs.register(app)
    for optional in ("playlist", "serve"):
        try:
            module = __import__(f"mediamill.cli.{optional}", fromlist=["register"])
        except ModuleNotFoundError:
            continue
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
