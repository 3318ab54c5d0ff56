"""``mediamill comic undo JOB_ID``: put back the tags and names a comic job changed."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from mediamill.cli.common import Command, DbOption, Group, console, fail, open_catalog
from mediamill.settings import load

comic_app = typer.Typer(
    help="Comic archives: undo a comic job's changes.", no_args_is_help=True, cls=Group
)


@comic_app.command("undo", cls=Command)
def undo(
    job_id: str = typer.Argument(..., help="The comic job whose changes to undo."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be undone; change nothing."
    ),
    db: str | None = DbOption,
) -> None:
    """Put back every file's ComicInfo.xml and name as they were before JOB_ID.

    A file changed since the job (moved, retagged) is left alone and listed. Exits 1 when
    some change could not be undone.
    """
    from mediamill.comic.undo import undo_job
    from mediamill.jobs import manager

    catalog = open_catalog(load(db=db).db_url())
    try:
        job = manager.get_job(catalog, job_id)
    except LookupError as exc:
        raise fail(str(exc)) from exc
    if job["processor"] != "comic":
        raise fail(f"job {job_id} is a {job['processor']} job, not a comic job")
    report = undo_job(catalog, job_id, dry_run=dry_run)
    table = Table("file", "now", "undo", "note", title_justify="left")
    for entry in report:
        table.add_row(
            Text(entry.path), Text(entry.restored_path), entry.action, Text(entry.error or "")
        )
    if report:
        console.print(table)
    done = sum(1 for e in report if e.error is None and e.action != "unchanged")
    verb = "would undo" if dry_run else "undid"
    console.print(f"{verb} {done} of {len(report)} change(s) of job {job_id}")
    if any(e.action == "failed" for e in report):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(comic_app, name="comic")
