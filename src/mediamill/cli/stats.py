"""``mediamill stats LIBRARY``: what a library holds, as tables (or ``--json``)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from mediamill.cli.common import DbOption, add_command, console, fail, open_catalog
from mediamill.cli.data import library_for
from mediamill.settings import load


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def _hours(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:,}:{rest // 60:02d}:{rest % 60:02d}"


def _table(title: str, rows: list[dict[str, Any]], total: int | None = None) -> Table:
    table = Table("", "count", "share", title=title, title_justify="left")
    whole = total or sum(r["count"] for r in rows) or 1
    for row in rows:
        table.add_row(Text(str(row["name"])), f"{row['count']:,}", f"{row['count'] / whole:.0%}")
    return table


def stats(
    target: str = typer.Argument(..., help="The library: its folder, source or name."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    db: str | None = DbOption,
) -> None:
    """What a library holds: kinds, containers, codecs, resolutions, bit rates, size,
    duration, failures by cause, and the tempo and keys of analysed music."""
    from mediamill.stats import library_stats

    catalog = open_catalog(load(db=db).db_url())
    library = library_for(catalog, target)
    figures = {"library": library.name, **library_stats(catalog, library.id)}
    if as_json:
        typer.echo(json.dumps(figures))
        return
    console.print(
        f"[bold]{library.name}[/]: {figures['items']:,} items, {_size(figures['size'])}, "
        f"{_hours(figures['duration'])} of media"
    )
    for title, key in (
        ("kinds", "kinds"),
        ("containers", "containers"),
        ("video resolutions", "resolutions"),
        ("bit rates", "bit_rates"),
        ("tempo (BPM)", "tempo"),
        ("keys", "keys"),
    ):
        if figures[key]:
            console.print(_table(title, figures[key]))
    for kind, rows in figures["codecs"].items():
        console.print(_table(f"{kind} codecs (streams)", rows))
    for processor, rows in figures["failures"].items():
        console.print(_table(f"{processor} failures by cause", rows))
    if not figures["items"]:
        raise fail(f"{library.name}: no items yet (run `mediamill scan {library.root}`)", code=1)


def register(app: typer.Typer) -> None:
    add_command(app, stats)
