"""The ``mediamill`` command line (Typer + Rich): one module per command group."""

from __future__ import annotations

import logging
import sys

import typer

from mediamill.cli.common import Group

app = typer.Typer(
    name="mediamill",
    help="Process big media libraries fast and safely: probe, audio analysis, VOD .strm export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"mediamill {version('mediamill')}")
        raise typer.Exit


@app.callback()
def _root(
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        metavar="",
        show_default=False,
        help="Log what happens to stderr (-vv: debug).",
    ),
    _show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    from mediamill import logs
    from mediamill.settings import load

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logs.setup(level)  # reading the settings may warn (an unknown key)
    logs.setup(level, load())


def _register() -> None:
    from mediamill.cli import comic, config, data, jobs, run, stats

    run.register(app)
    data.register(app)
    jobs.register(app)
    config.register(app)
    comic.register(app)
    stats.register(app)
    for optional in ("playlist", "serve", "watch", "worker"):
        try:
            module = __import__(f"mediamill.cli.{optional}", fromlist=["register"])
        except ModuleNotFoundError:
            continue
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    from mediamill.settings import ConfigError

    try:
        app()
    except KeyboardInterrupt:
        _exit(130)
    except ConfigError as exc:  # one line per bad setting, never a traceback
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        _exit(2)
    except SystemExit as done:  # Typer ends every command this way
        _exit(done.code)


def _exit(code: int | str | None) -> None:
    """End the process as ``sys.exit(code)`` would, minus the interpreter's teardown.

    Freeing every module and object at exit takes 0.1-0.2 s after a command that loaded
    SQLAlchemy, Typer and Rich, a tenth of an unchanged rescan of 100,000 files.
    Exit handlers still run (logging, multiprocessing, weakref finalizers) and the standard
    streams are flushed; the teardown is kept while another non-daemon thread runs, and
    under a profiler or tracer (``python -m cProfile`` writes its figures after the program).
    """
    import atexit
    import os
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others) or sys.getprofile() or sys.gettrace():
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1  # a closed or broken pipe: what sys.exit would report
    os._exit(status)
