"""``mediamill export`` and ``show``: read results out of the catalog."""

from __future__ import annotations

import csv
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import typer

from mediamill.cli.common import DbOption, add_command, fail, open_catalog
from mediamill.names import b64, shown_path
from mediamill.settings import load


class Format(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    JSON = "json"


def library_for(catalog: Any, target: str) -> Any:
    library = (
        catalog.library_by_root(target)
        if "://" in target or os.path.isdir(target)
        else catalog.library_by_name(target)
    )
    if library is None:
        library = catalog.library_by_name(target)
    if library is None:
        raise fail(f"{target}: not a library in the catalog (run `mediamill scan` or `run` first)")
    return library


def export(
    processor: str = typer.Argument(..., help="Whose results: probe, audio, strm, ..."),
    target: str = typer.Argument(..., help="The library: its folder, source or name."),
    fmt: Format = typer.Option(Format.JSONL, "--format", "-f", help="jsonl, csv or json."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write [default: stdout]."
    ),
    status: str | None = typer.Option(
        None, "--status", help="Only ok, failed, skipped or pending items."
    ),
    db: str | None = DbOption,
) -> None:
    """One row per item of the library with PROCESSOR's result (streamed; any size)."""
    from mediamill.processors import base as registry

    try:
        kinds = registry.get(processor).kinds
    except registry.UnknownProcessor as exc:
        raise fail(str(exc)) from exc
    catalog = open_catalog(load(db=db).db_url())
    library = library_for(catalog, target)
    rows = catalog.iter_export(library.id, processor, kinds=kinds, status=status)
    undecodable = catalog.undecodable_paths(library.id)
    out: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        _write(out, fmt, rows, undecodable)
    finally:
        if output:
            out.close()


def _write(out: IO[str], fmt: Format, rows: Any, undecodable: dict[str, bytes]) -> None:
    def record(row: Any) -> dict[str, Any]:
        path, kind, status, data, error = row
        rec = {"path": path, "kind": kind, "status": status, "error": error, "data": data}
        real = undecodable.get(path)
        if real is not None:  # the name is not UTF-8: its real bytes, losslessly
            rec["path_bytes"] = b64(real)
        return rec

    if fmt is Format.JSONL:
        for row in rows:
            out.write(json.dumps(record(row), ensure_ascii=False) + "\n")
    elif fmt is Format.JSON:
        out.write("[")
        for n, row in enumerate(rows):
            out.write(("," if n else "") + "\n" + json.dumps(record(row), ensure_ascii=False))
        out.write("\n]\n")
    else:
        writer = csv.writer(out)
        writer.writerow(["path", "kind", "status", "error", "data", "path_bytes"])
        for row in rows:
            rec = record(row)
            writer.writerow(
                [
                    rec["path"],
                    rec["kind"],
                    rec["status"],
                    rec["error"] or "",
                    json.dumps(rec["data"], ensure_ascii=False) if rec["data"] else "",
                    rec.get("path_bytes", ""),
                ]
            )


def show(
    file: Path = typer.Argument(..., help="A file inside a scanned library."),
    db: str | None = DbOption,
) -> None:
    """Every processor's latest result for one file, as JSON."""
    catalog = open_catalog(load(db=db).db_url())
    absolute = os.path.abspath(file)
    for library in catalog.libraries():
        root = library.root.rstrip(os.sep) + os.sep
        if library.kind == "folder" and absolute.startswith(root):
            rel = shown_path(Path(os.path.relpath(absolute, library.root)).as_posix())
            found = catalog.item_results(library.id, rel)
            if found is not None:
                typer.echo(json.dumps({"library": library.name, **found}, indent=2, default=str))
                return
            how = "scan" if os.path.exists(absolute) else "check the path; or scan"
            raise fail(
                f"{file}: in library {library.name!r} but not in the catalog yet "
                f"({how}: `mediamill scan {library.root}`)"
            )
    raise fail(f"{file}: not in any scanned library (run `mediamill scan` on its folder)")


def register(app: typer.Typer) -> None:
    add_command(app, export)
    add_command(app, show)
