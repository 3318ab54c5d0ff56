"""``mediamill watch``: watch folder libraries and run their processors on new and changed
files, until stopped (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import typer

from mediamill.cli.common import DbOption, add_command, console, fail, open_catalog


def watch(
    targets: list[str] = typer.Argument(
        None,
        help="Folders or library names [default: every library with processors to run].",
        show_default=False,
    ),
    run: str | None = typer.Option(
        None,
        "--run",
        help="Processors to run on new and changed files, in order (probe,comic); "
        "default: each library's own.",
    ),
    poll: float | None = typer.Option(
        None,
        "--poll",
        min=0.1,
        help="Poll every SECONDS instead of native events [default: native events, "
        "polling on network file systems].",
    ),
    settle: float | None = typer.Option(
        None, "--settle", min=0.1, help="Seconds without change before a folder is scanned [5]."
    ),
    db: str | None = DbOption,
) -> None:
    """Watch folders: new and changed files are scanned and processed by themselves."""
    from mediamill.engine.coordinator import Coordinator
    from mediamill.settings import load
    from mediamill.watch.watcher import Watcher, WatchState

    settings = load(db=db)
    catalog = open_catalog(db)
    try:
        specs = _specs(catalog, targets or [], run, poll, settle or settings.watch_settle_seconds)
    except ValueError as exc:
        raise fail(str(exc)) from exc

    def show(state: WatchState) -> None:
        colour = "red" if state.state == "failed" else "green"
        console.print(f"{state.library}: [{colour}]{state.line()}[/]")

    watcher = Watcher(catalog, on_state=show)
    for spec in specs:
        watcher.add(spec)
    coordinator = Coordinator(catalog, settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"watching {', '.join(s.library.name for s in specs)} (Ctrl-C stops)")
    coordinator.start()
    watcher.start()
    stop.wait()
    console.print("stopping…")
    watcher.stop()
    coordinator.stop()
    catalog.close()


def _specs(
    catalog: Any, targets: list[str], run: str | None, poll: float | None, settle: float
) -> list[Any]:
    """What to watch: each target's library with its processors, or every library that has
    processors to run."""
    from mediamill.ops import TargetError, resolve_library
    from mediamill.settings import load
    from mediamill.watch.queue import check_processors
    from mediamill.watch.watcher import WatchSpec

    processors = check_processors([p.strip() for p in run.split(",") if p.strip()]) if run else []
    libraries = []
    for target in targets:
        try:
            libraries.append(resolve_library(catalog, target))
        except TargetError as exc:
            raise ValueError(str(exc)) from exc
    if not targets:
        raise ValueError("name the folders or libraries to watch")
    specs = []
    for library in libraries:
        if library.kind != "folder":
            raise ValueError(f"{library.name} is not a folder library: nothing to watch")
        if not processors:
            raise ValueError(f"{library.name}: no processors to run (give --run probe,...)")
        fallback = load().watch_poll_seconds
        specs.append(
            WatchSpec(library, tuple(processors), poll=poll, settle=settle, fallback_poll=fallback)
        )
    return specs


def register(app: typer.Typer) -> None:
    add_command(app, watch)
