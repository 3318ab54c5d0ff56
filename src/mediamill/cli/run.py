"""``mediamill run``, ``scan`` and ``demo``: do the work, with a progress bar."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.text import Text

from mediamill import ops
from mediamill.catalog.db import CatalogError
from mediamill.cli.common import (
    BrokerOption,
    DbOption,
    RichProgressHook,
    add_command,
    console,
    err_console,
    fail,
    open_catalog,
    spinner,
)
from mediamill.jobs.status import JobStatus
from mediamill.logs import JobLog
from mediamill.settings import MAX_BATCH_SIZE, MAX_WORKERS, load, private_data_dir
from mediamill.stats import causes_line

if TYPE_CHECKING:
    from mediamill.sources.folder import ScanReport


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run(
    processor: str = typer.Argument(..., help="What to do: probe, audio, strm, ..."),
    target: str = typer.Argument(
        ..., help="A folder, a source (xtream+http://…, m3u+file://…) or a library name."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, max=MAX_WORKERS, help="Parallel workers [default: cores]."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, max=MAX_BATCH_SIZE, help="Items per batch."
    ),
    rate: float | None = typer.Option(
        None, "--rate", min=0.001, help="At most this many items per second."
    ),
    executor: str | None = typer.Option(
        None,
        "--executor",
        "-e",
        help="auto, serial, threads, processes or celery (on `mediamill worker`s).",
    ),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Process at most N items."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Redo items whose result is fresh; re-read a source in full even when its "
        "answers are unchanged; accept a folder that is now empty (its files go missing).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Change nothing; report what would be done."
    ),
    item_timeout: float | None = typer.Option(
        None, "--timeout", min=0.001, help="Seconds one item may take."
    ),
    adaptive_latency: float | None = typer.Option(
        None,
        "--adaptive-latency",
        help="Adapt concurrency to keep per-item seconds near this (gentle on a NAS).",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output folder (strm)."),
    cleanup: str | None = typer.Option(None, "--cleanup", help="strm: off, preview or apply."),
    report: Path | None = typer.Option(
        None, "--report", help="Write a CSV/JSON report of the actions (strm)."
    ),
    sets: list[str] = typer.Option([], "--set", help="Processor option KEY=VALUE (repeatable)."),
    failed_only: bool = typer.Option(False, "--failed", help="Only retry items that failed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(
        False, "--json", help="Print only the finished job's status object, as JSON."
    ),
    db: str | None = DbOption,
    broker: str | None = BrokerOption,
) -> None:
    """Scan TARGET and run PROCESSOR over every item that is not fresh.

    Exits 0 when the job completed (even if some items failed: their count is printed),
    1 when the job failed, 130 when interrupted (run the same command again to resume).
    """
    from mediamill.processors import base as registry

    try:
        registry.get(processor)
    except registry.UnknownProcessor as exc:
        raise fail(str(exc)) from exc
    settings = load(db=db, broker_url=broker)
    catalog = open_catalog(settings.db_url())
    options: dict[str, Any] = {
        "workers": workers,
        "batch_size": batch_size,
        "rate": rate,
        "executor": executor,
        "limit": limit,
        "force": force or None,
        "dry_run": dry_run or None,
        "item_timeout": item_timeout,
        "adaptive_latency": adaptive_latency,
        "output": str(output.resolve()) if output else None,
        "cleanup": cleanup,
        "report": str(report.resolve()) if report else None,
        **_parse_sets(sets),
    }
    options = {k: v for k, v in options.items() if v is not None}
    say = err_console if as_json else console  # with --json, stdout is the JSON alone
    if dry_run:
        # a processor that describes its own changes (strm, comic), or a source to read,
        # runs on a scratch copy of the library; the rest only lists the items, read only
        from mediamill.dryrun import lists_only

        if lists_only(processor) and not ops.is_source(target) and os.path.isdir(target):
            _dry_run(catalog, target, processor, force, failed_only, limit, as_json)
        else:
            _dry_run_copy(catalog, processor, target, options, failed_only, quiet, as_json)
        return
    try:
        ops.validate_options(processor, options, source=target if ops.is_source(target) else None)
        library = ops.resolve_library(catalog, target, source_options=options)
        with spinner(say, f"Reading {target} …", spinner="dots") as shown:
            scanned = ops.refresh_library(
                catalog,
                library,
                source_options=options,
                spec=target,
                full=force,
                on_progress=_scan_progress(shown, f"Reading {target}"),
            )
    except Exception as exc:
        raise fail(str(exc)) from exc
    if not as_json:
        console.print(_scan_line(library.name, scanned))
    selection = {"only": "failed"} if failed_only else {}
    job_id, resumed = ops.prepare_job(
        catalog,
        processor,
        library,
        options=ops.job_options(options, processor),
        selection=selection,
        settings=settings,
    )
    if resumed:
        say.print(f"Resuming interrupted job {job_id}")
    hook = RichProgressHook(f"{processor} {library.name}", quiet=quiet or as_json)
    interrupted = {"n": 0}

    def on_sigint(_sig: int, _frame: Any) -> None:
        interrupted["n"] += 1
        if interrupted["n"] > 1:
            raise KeyboardInterrupt
        err_console.print("\nStopping after the items in progress (Ctrl-C again to quit now)…")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        job = ops.run_job(
            catalog,
            job_id,
            settings=settings,
            hooks=[hook, JobLog(library.name)],
            should_stop=lambda: "pause" if interrupted["n"] else None,
            secrets=ops.job_secrets(processor, options),
            flags=frozenset(options),  # every option of this run is on its command line
        )
    except CatalogError as exc:
        raise fail(f"job {job_id} failed: {exc}", 1) from exc
    finally:
        signal.signal(signal.SIGINT, previous)
    if as_json:
        typer.echo(json.dumps(job, default=str))
    else:
        _print_outcome(job, hook, _still_failed(catalog, job, processor, library.id))
    status = JobStatus(job["status"])
    if status is JobStatus.COMPLETED:
        return
    if status in (JobStatus.PAUSED, JobStatus.CANCELLED):
        err_console.print("Interrupted: what was done is kept; run the same command to resume.")
        raise typer.Exit(130)
    raise typer.Exit(1)


def _dry_run(
    catalog: Any,
    folder: str,
    processor: str,
    force: bool,
    failed_only: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """Say what a run would do without writing anything, the catalog included."""
    from mediamill.dryrun import plan_folder

    try:
        with spinner(err_console, f"Reading {folder} …"):
            plan = plan_folder(
                catalog, folder, processor, force=force, failed_only=failed_only, limit=limit
            )
    except Exception as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(plan.as_dict()))
        return
    where = "a new library" if plan.new_library else "the catalog"
    console.print(
        Text(
            f"Dry run: nothing was changed. {plan.library} ({where}): {plan.found} files, "
            f"{plan.new} new, {plan.changed} changed, {plan.missing} missing. "
            f"Would run {processor} on {plan.would_process} item(s)."
        )
    )
    for path in plan.sample[:20]:
        console.print(Text(f"  {path}"))
    if plan.would_process > 20:
        console.print(Text(f"  … and {plan.would_process - 20} more"))


def _dry_run_copy(
    catalog: Any,
    processor: str,
    target: str,
    options: dict[str, Any],
    failed_only: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """A dry run that reads a source or asks the processor what it would change: on a
    scratch copy of the library (``ops.dry_run``); the catalog is only read."""
    hook = RichProgressHook(f"{processor} (dry run)", quiet=quiet or as_json)
    try:
        ops.validate_options(processor, options, source=target if ops.is_source(target) else None)
        with spinner(err_console, f"Reading {target} (dry run) …", spinner="dots"):
            library = ops.find_library(catalog, target, options)
        plan = ops.dry_run(
            catalog,
            processor,
            target,
            options=options,
            library=library,
            selection={"only": "failed"} if failed_only else {},
            hooks=[hook],
            secrets=ops.job_secrets(processor, options),
        )
    except Exception as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(plan, default=str))
        return
    where = "a new library" if plan["new_library"] else "the catalog"
    console.print(Text(f"Dry run: nothing was changed. {plan['library']} ({where}):"))
    console.print(_scan_line(plan["library"], plan["scan"]))
    line = f"Would run {processor} on {plan['would_process']} item(s)"
    if plan["failed"]:
        line += f", {plan['failed']} of which would fail"
    console.print(Text(line + "."))
    for path in plan["sample"][:20]:
        console.print(Text(f"  {path}"))
    for text in plan["plans"][:20] or hook.plans[:20]:
        console.print(Text(f"  {text}"), soft_wrap=True)
    if plan["actions"]:
        console.print(Text("  " + ", ".join(f"{n} {a}" for a, n in plan["actions"].items())))
    if plan.get("error"):
        err_console.print(Text(f"the run would fail: {plan['error']}"))
    for text in finish_lines(plan["summary"].get("finish") or {}):
        console.print(Text(text))


def _scan_progress(shown: Any, doing: str) -> Callable[[ScanReport], None]:
    """Counts on the spinner while a big folder is walked (minutes on a slow NAS)."""

    def update(report: ScanReport) -> None:
        text = f"{doing} … {report.found:,} files"
        if report.new or report.changed:
            text += f", {report.new:,} new, {report.changed:,} changed"
        shown.update(Text(text))

    return update


def _scan_line(name: str, scanned: dict[str, Any]) -> str:
    parts = [f"{scanned.get(k, 0)} {k}" for k in ("new", "changed", "unchanged", "missing")]
    problems = scanned.get("problem_count", 0)
    text = f"[bold]{name}[/]: " + ", ".join(parts)
    if problems:
        text += f", [yellow]{problems} passed over[/] (see `mediamill scan`)"
    if scanned.get("source_unchanged"):
        text += " (the provider answered exactly as last time)"
    for note in scanned.get("notes", ()):
        text += f"\n[yellow]{escape(str(note))}[/]"
    return text


def _still_failed(catalog: Any, job: dict[str, Any], processor: str, library_id: int) -> int:
    """Items whose latest result is a failure from an earlier run (this run skipped them)."""
    failed_now = catalog.count_results(processor, library_id).get("failed", 0)
    return max(0, int(failed_now) - int(job["failed"]))


def _print_outcome(job: dict[str, Any], hook: RichProgressHook, still_failed: int = 0) -> None:
    summary = job.get("summary") or {}
    line = (
        f"[bold]{job['status']}[/]: {job['processed_items']}/{job['total_items']} items, "
        f"[green]{job['succeeded']} ok[/], [red]{job['failed']} failed[/], "
        f"{job['skipped']} skipped"
    )
    if summary.get("fresh_skipped"):
        line += f" ({summary['fresh_skipped']} already up to date)"
    console.print(line)
    classes = summary.get("failures") or {}
    if classes.get("transient"):
        console.print(
            f"  {classes['transient']} failed for a passing cause (disk full, I/O, time-out, "
            f"network, permission): the next run tries them again; "
            f"{classes.get('permanent', 0)} for the file itself (`--failed` retries those)"
        )
    if still_failed:
        console.print(
            f"[yellow]{still_failed} still failed[/] from an earlier run (use --failed to retry)"
        )
    if job.get("error"):
        err_console.print(f"[red]job failed:[/] {job['error']}")
    if hook.failures:
        from rich.table import Table

        table = Table(
            "failed item", "cause", title=f"{hook.failure_count} failure(s)", title_justify="left"
        )
        for path, cause in hook.failures[:10]:
            table.add_row(Text(path), Text(cause))  # paths are data, never Rich markup
        console.print(table)
        console.print(Text("causes: " + causes_line(hook.causes.most_common())))
        if hook.failure_count > 10:
            console.print("  … `mediamill export PROCESSOR TARGET --status failed` lists them all")
    for text in finish_lines(summary.get("finish") or {}):
        console.print(Text(text))


def finish_lines(finish: dict[str, Any], shown: int = 10) -> list[str]:
    """A processor's ``finish`` summary as lines a person reads: ``would remove: 3`` and the
    first paths, not a Python dict. Empty lists and zero counts say nothing."""
    lines = []
    for key, value in finish.items():
        label = key.replace("_", " ")
        if isinstance(value, list):
            if value:
                lines.append(f"{label}: {len(value)}")
                lines.extend(f"  {v}" for v in value[:shown])
                if len(value) > shown:
                    lines.append(f"  … and {len(value) - shown} more")
        elif isinstance(value, dict):
            if value:
                lines.append(f"{label}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        elif value not in (None, 0, ""):
            lines.append(f"{label}: {value}")
    return lines


def scan(
    path: Path = typer.Argument(..., help="The folder to scan."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Accept a folder that is now empty: its files are recorded as missing "
        "(refused otherwise, as an unmounted share looks the same).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scan report as JSON."),
    db: str | None = DbOption,
) -> None:
    """Scan a folder into the catalog (incremental: new, changed and missing files)."""
    catalog = open_catalog(load(db=db).db_url())
    say = err_console if as_json else console
    try:
        library = ops.resolve_library(catalog, str(path))
        with spinner(say, f"Scanning {path} …") as shown:
            progress = _scan_progress(shown, f"Scanning {path}")
            report = ops.refresh_library(catalog, library, full=force, on_progress=progress)
    except Exception as exc:
        raise fail(str(exc)) from exc
    kinds = catalog.library_counts(library.id)
    if as_json:
        typer.echo(json.dumps({"library": library.name, **report, "kinds": kinds}, default=str))
        return
    console.print(_scan_line(library.name, report))
    for problem in report.get("problems", [])[:50]:
        console.print(Text(f"  passed over {problem['path']!r}: {problem['cause']}"))
    console.print("  " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


def demo(
    folder: Path | None = typer.Argument(
        None, help="Where to make the demo library [default: in the data dir]."
    ),
    db: str | None = DbOption,
) -> None:
    """Make a small library of real media files and probe it: mediamill in one command."""
    from mediamill.testing.media import make_library

    folder = folder or private_data_dir() / "demo-library"
    folder.mkdir(parents=True, exist_ok=True)
    with spinner(console, "Making demo media …"):
        files = make_library(folder)
    console.print(f"Made {len(files)} media files in {folder}")
    run(
        processor="probe",
        target=str(folder),
        workers=None,
        batch_size=None,
        rate=None,
        executor=None,
        limit=None,
        force=False,
        dry_run=False,
        item_timeout=None,
        adaptive_latency=None,
        output=None,
        cleanup=None,
        report=None,
        sets=[],
        failed_only=False,
        quiet=False,
        as_json=False,
        db=db,
        broker=None,  # every parameter: one left out would be Typer's OptionInfo, not None
    )
    console.print(f"\nNext: [bold]mediamill export probe {folder} --format jsonl[/]")


def register(app: typer.Typer) -> None:
    add_command(app, run)
    add_command(app, scan)
    add_command(app, demo)
