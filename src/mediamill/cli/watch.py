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
        help="Folders or library names [default: every library with automation].",
        show_default=False,
    ),
    run: str | None = typer.Option(
        None,
        "--run",
        help="Processors to run on new and changed files, in order (probe,comic); "
        "default: each library's automation.",
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
    from mediamill.watch.service import state_saver
    from mediamill.watch.watcher import Watcher, WatchState

    settings = load(db=db)
    catalog = open_catalog(db)
    try:
        specs = _specs(catalog, settings, targets or [], run, poll, settle)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    save = state_saver(catalog)

    def show(state: WatchState) -> None:
        save(state)
        if state.state != "starting":
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
    catalog: Any,
    settings: Any,
    targets: list[str],
    run: str | None,
    poll: float | None,
    settle: float | None,
) -> list[Any]:
    """What to watch: each target's library with its processors (``--run``, else its
    automation's), or every library whose automation runs something."""
    from mediamill.ops import TargetError, resolve_library
    from mediamill.watch.automation import automation, automations
    from mediamill.watch.queue import check_processors
    from mediamill.watch.service import spec_for

    processors = check_processors([p.strip() for p in run.split(",") if p.strip()]) if run else []
    if targets:
        libraries = []
        for target in targets:
            try:
                libraries.append(resolve_library(catalog, target))
            except TargetError as exc:
                raise ValueError(str(exc)) from exc
    else:
        libraries = [catalog.library(i) for i in sorted(automations(catalog))]
        if not libraries:
            raise ValueError(
                "no library has automation: name folders with --run probe,..., or set it "
                "with mediamill automation LIBRARY --run probe,..."
            )
    specs = []
    for library in libraries:
        if library.kind != "folder":
            raise ValueError(f"{library.name} is not a folder library: nothing to watch")
        auto = automation(catalog, library.id)
        if not processors and not auto.processors:
            raise ValueError(f"{library.name}: no processors to run (give --run probe,...)")
        spec = spec_for(
            library, auto, settings, processors=tuple(processors) or None, poll=poll, settle=settle
        )
        spec.events = True  # watching is what was asked for
        specs.append(spec)
    return specs


def automation(
    library: str = typer.Argument(..., help="Library name or folder."),
    run: str | None = typer.Option(
        None, "--run", help="Processors for new and changed files, in order ('' for none)."
    ),
    watch_mode: str | None = typer.Option(
        None, "--watch", help="auto (native events, polling on network shares), native, poll, off."
    ),
    poll: float | None = typer.Option(None, "--poll", min=0.1, help="Polling interval (s)."),
    settle: float | None = typer.Option(None, "--settle", min=0.1, help="Settle time (s)."),
    schedule: str | None = typer.Option(
        None, "--schedule", help="Cron-like full rescan + processors, e.g. '0 3 * * *' ('' none)."
    ),
    db: str | None = DbOption,
) -> None:
    """Show or change what runs by itself for a library (watched by serve and watch)."""
    import json

    from mediamill.ops import TargetError, resolve_library
    from mediamill.watch import automation as store

    catalog = open_catalog(db)
    try:
        lib = resolve_library(catalog, library)
    except TargetError as exc:
        raise fail(str(exc)) from exc
    current = store.automation(catalog, lib.id).as_dict()
    changes = {
        "processors": None if run is None else [p.strip() for p in run.split(",") if p.strip()],
        "watch": watch_mode,
        "poll_seconds": poll,
        "settle_seconds": settle,
        "schedule": schedule,
    }
    wanted = {**current, **{k: v for k, v in changes.items() if v is not None}}
    if wanted != current:
        try:
            store.set_automation(catalog, lib.id, store.Automation.from_dict(wanted))
        except ValueError as exc:
            raise fail(f"{lib.name}: {exc}") from exc
    shown = {
        "library": lib.name,
        "automation": store.automation(catalog, lib.id).as_dict(),
        "watch": store.watch_state(catalog, lib.id),
    }
    console.print_json(json.dumps(shown))
    catalog.close()


def register(app: typer.Typer) -> None:
    add_command(app, watch)
    add_command(app, automation)
