"""``mediamill jobs``: list, show, pause, resume, cancel and delete persistent jobs."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mediamill.catalog.db import Catalog
from mediamill.cli.common import Command, DbOption, Group, console, fail, open_catalog
from mediamill.jobs import manager
from mediamill.settings import load

jobs_app = typer.Typer(
    help="List and control jobs (the same ones the API and web page show).",
    no_args_is_help=True,
    cls=Group,
)


@jobs_app.command("list", cls=Command)
def list_(
    status: str | None = typer.Option(None, "--status", help="Only jobs in this state."),
    limit: int = typer.Option(20, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Status objects as JSON."),
    db: str | None = DbOption,
) -> None:
    """The newest jobs first."""
    catalog = open_catalog(load(db=db).db_url())
    jobs, total = manager.list_jobs(catalog, status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps({"total": total, "jobs": jobs}))
        return
    table = Table(
        "id",
        "status",
        "processor",
        "library",
        "progress",
        "ok",
        "failed",
        "skipped",
        "created",
        title=f"{total} job(s)",
        title_justify="left",
    )
    whole = not console.is_terminal  # a script reading a pipe wants ids it can use
    for job in jobs:
        table.add_row(
            job["job_id"] if whole else job["job_id"][:8],
            job["status"],
            job["processor"],
            job["library"] or "",
            f"{job['processed_items']}/{job['total_items']}",
            str(job["succeeded"]),
            str(job["failed"]),
            str(job["skipped"]),
            (job["created_at"] or "")[:19],
        )
    console.print(table)


def _resolve(catalog: Catalog, job_id: str) -> str:
    """Accept a unique prefix of a job id, as `jobs list` prints it."""
    if len(job_id) == 36:
        return job_id
    jobs, _ = manager.list_jobs(catalog, limit=10_000)
    found = [j["job_id"] for j in jobs if j["job_id"].startswith(job_id)]
    if len(found) != 1:
        raise fail(f"{job_id}: {'no job' if not found else 'several jobs'} with that id")
    return str(found[0])


@jobs_app.command(cls=Command)
def show(
    job_id: str,
    as_json: bool = typer.Option(False, "--json", help="One line of JSON (for scripts)."),
    db: str | None = DbOption,
) -> None:
    """One job's status object, as JSON (indented on a terminal)."""
    catalog = open_catalog(load(db=db).db_url())
    try:
        job = manager.get_job(catalog, _resolve(catalog, job_id))
    except manager.JobNotFound as exc:
        raise fail(f"no job {job_id}") from exc
    if as_json or not console.is_terminal:
        typer.echo(json.dumps(job))
    else:
        console.print_json(data=job)


def _act(action: str, job_id: str, db: str | None) -> None:
    catalog = open_catalog(load(db=db).db_url())
    try:
        job = manager.request(catalog, _resolve(catalog, job_id), action)
    except manager.JobNotFound as exc:
        raise fail(f"no job {job_id}") from exc
    except manager.InvalidRequest as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"{job['job_id']}: {job['status']}"
        + (f" ({job['requested']} requested)" if job["requested"] else "")
    )


@jobs_app.command(cls=Command)
def pause(job_id: str, db: str | None = DbOption) -> None:
    """Pause a job after the items in progress; `resume` continues it."""
    _act("pause", job_id, db)


@jobs_app.command(cls=Command)
def resume(job_id: str, db: str | None = DbOption) -> None:
    """Queue a paused job again (a coordinator, e.g. `mediamill serve`, picks it up)."""
    _act("resume", job_id, db)


@jobs_app.command(cls=Command)
def cancel(job_id: str, db: str | None = DbOption) -> None:
    """Cancel a job; what was done is kept."""
    _act("cancel", job_id, db)


@jobs_app.command(cls=Command)
def delete(job_id: str, db: str | None = DbOption) -> None:
    """Delete a finished job's record (its results stay in the catalog)."""
    catalog = open_catalog(load(db=db).db_url())
    try:
        manager.delete_job(catalog, _resolve(catalog, job_id))
    except manager.JobNotFound as exc:
        raise fail(f"no job {job_id}") from exc
    except manager.InvalidRequest as exc:
        raise fail(str(exc)) from exc
    console.print(f"deleted {job_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
