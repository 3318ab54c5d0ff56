"""What the command groups share: the catalog flag, the console, the live progress bar."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from mediamill.catalog.db import Catalog, CatalogError
from mediamill.core import ItemRef, Outcome, Status
from mediamill.engine.progress import Hook
from mediamill.engine.progress import Progress as JobProgress
from mediamill.stats import cause_of


def _console(*, stderr: bool = False) -> Console:
    """A terminal gets Rich's wrapping; a pipe or file gets whole lines (no 80-column wrap,
    no cut table cells) unless ``COLUMNS`` asks for a width."""
    made = Console(stderr=stderr)
    if made.is_terminal or os.environ.get("COLUMNS"):
        return made
    return Console(stderr=stderr, width=100_000, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)


class _NoSpinner:
    """A spinner nobody sees: :func:`spinner` where output is not a terminal."""

    def update(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def __enter__(self) -> _NoSpinner:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


def spinner(out: Console, text: str, **kwargs: Any) -> Any:
    """``out.status(text)``, Rich's transient spinner, on a terminal; elsewhere (a pipe, a
    file, a cron job) one that does nothing, as Rich's would, without loading its live
    display. Either has ``update(text)``."""
    if not out.is_terminal:
        return _NoSpinner()
    return out.status(text, **kwargs)


def _readable(params: list[Any]) -> list[Any]:
    """Help as a user reads it: arguments by their upper-case names (``PROCESSOR TARGET``),
    flags without a ``<bool>`` value, and a written ``[default: …]`` kept (Rich would take it
    for markup and drop it)."""
    for param in params:
        if isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()
        elif isinstance(param, TyperOption):
            if param.is_flag and param.metavar is None:
                param.metavar = ""
            if param.help and "\\[default:" not in param.help:
                param.help = param.help.replace("[default:", "\\[default:")
    return params


class Command(TyperCommand):
    """A command with :func:`_readable` help, and ``PROCESSOR TARGET`` in its usage line
    rather than Typer's ``{processor} {target}``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces: list[str] = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


class Group(TyperGroup):
    """A command group with :func:`_readable` help."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable(super().get_params(ctx))


def add_command(app: typer.Typer, function: Any, name: str | None = None) -> None:
    """Register ``function`` as a command of ``app`` with the help of :class:`Command`."""
    app.command(name, cls=Command)(function)


DbOption = typer.Option(
    None,
    "--db",
    envvar="MEDIAMILL_DB",
    help="Catalog URL (SQLAlchemy); default: SQLite in the user data dir.",
    show_default=False,
)


BrokerOption = typer.Option(
    None,
    "--broker",
    envvar="MEDIAMILL_BROKER_URL",
    help="Celery broker of the celery executor: redis://host:6379/0 or amqp://user:pass@host//.",
    show_default=False,
)


def open_catalog(db: str | None) -> Catalog:
    try:
        return Catalog.open(db)
    except CatalogError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class RichProgressHook(Hook):
    """A Rich progress bar: done/total, ok/failed/skipped, rate, ETA and worker busy share."""

    def __init__(self, label: str, *, quiet: bool = False) -> None:
        self.quiet = quiet or (
            not console.is_terminal and os.environ.get("MEDIAMILL_PROGRESS") != "1"
        )
        self.label = label
        self.failures: list[tuple[str, str]] = []
        self.failure_count = 0
        self.causes: Counter[str] = Counter()
        #: a dry run's plan lines (``data["plan"]`` of processors that give one: comic)
        self.plans: list[str] = []
        self._bar: Any = None
        self._task: Any = None

    def on_start(self, progress: JobProgress) -> None:
        if self.quiet:
            return
        from rich.progress import (  # only for a bar shown: a quiet run never loads it
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            self.label,
            total=progress.total,
            completed=progress.processed,
            counts="",
            speed="",
            eta="--:--",
        )

    def on_outcome(self, item: ItemRef, outcome: Outcome) -> None:
        plan = (outcome.data or {}).get("plan")
        if plan:
            self.plans.append(f"{item.path}: {plan}")
        if outcome.status is Status.FAILED:
            self.failure_count += 1
            self.causes[cause_of(outcome.error)] += 1  # grouped: one key per cause
            if len(self.failures) < 20:
                self.failures.append((item.path, outcome.error or "failed"))

    def on_progress(self, progress: JobProgress) -> None:
        if self._task is None:
            return
        busy = "/".join(f"{share:.0%}" for share in progress.busy.values())
        self._bar.update(
            self._task,
            completed=progress.processed,
            total=progress.total,
            counts=f"[green]{progress.ok} ok[/] [red]{progress.failed} failed[/] "
            f"[dim]{progress.skipped} skipped[/]",
            speed=f"{progress.rate:,.0f}/s" + (f" busy {busy}" if busy else ""),
            eta=_eta(progress.eta_seconds),
        )

    def on_finish(self, progress: JobProgress) -> None:
        if self._task is not None:
            self.on_progress(progress)
            self._bar.stop()
