"""The operations every interface shares (CLI, HTTP API, Python): resolve a library, scan it,
create or resume a job, run it. ``import mediamill`` re-exports the public ones."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mediamill import dryrun
from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.catalog.models import Job
from mediamill.engine import runner as engine
from mediamill.engine.progress import Hook
from mediamill.jobs import manager
from mediamill.jobs.status import JobStatus
from mediamill.processors import base as registry
from mediamill.redact import job_secret_names, processor_secrets, secret_names, strip_secrets
from mediamill.settings import Settings, load
from mediamill.sources.folder import ScanReport, library_for_folder, scan_folder

log = logging.getLogger(__name__)


class TargetError(ValueError):
    """A run target is neither a folder nor a source spec we can read."""


def is_source(target: str) -> bool:
    """Whether ``target`` names a VOD source (``xtream+http://…``) rather than a folder."""
    from mediamill.sources import is_source_spec

    return is_source_spec(target)


def resolve_library(
    catalog: Catalog,
    target: str,
    *,
    name: str | None = None,
    source_options: Mapping[str, Any] | None = None,
) -> LibraryRef:
    """The library for a folder path, a source spec, or an existing library's name."""
    if is_source(target):
        source = _open_source(target, source_options)
        return catalog.add_library(
            source.name, name=name or source_label(source.name), kind="source"
        )
    if os.path.isdir(target):
        return library_for_folder(catalog, target, name=name)
    by_name = catalog.library_by_name(target)
    if by_name is not None:
        return by_name
    raise TargetError(f"{target}: no such folder, source or library")


def refresh_library(
    catalog: Catalog,
    library: LibraryRef,
    *,
    source_options: Mapping[str, Any] | None = None,
    spec: str | None = None,
    on_progress: Callable[[ScanReport], None] | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """Scan a folder library, or read a source library's entries, into the catalog.

    ``spec`` is the source as the user gave it (it may carry credentials, which the library's
    stored root never does); without it, credentials come from options or the environment.
    A source whose answers are byte for byte those of the last complete sync is not parsed
    again (``"source_unchanged": True`` in the counts) unless ``full``. A folder that is now
    empty while the catalog has files of it is refused (an unmounted share), unless ``full``.
    """
    if library.kind == "source":
        from mediamill.sources.base import read_source

        source = _open_source(spec or library.root, source_options)
        since = None if full else catalog.source_digest(library.id)
        read = read_source(source, since)
        if read.entries is None:
            catalog.mark_scanned(library.id)
            present = sum(catalog.library_counts(library.id).values())
            return {"new": 0, "changed": 0, "unchanged": present, "missing": 0,
                    "source_unchanged": True}  # fmt: skip
        with catalog.syncing_to(library.id, read.digest):
            counts: dict[str, Any] = dict(catalog.sync_entries(library.id, read.entries))
        notes = getattr(source, "notes", None)  # what the read did not do as asked, and why
        if notes:
            counts["notes"] = list(notes)
        return counts
    return scan_folder(catalog, library, on_progress=on_progress, allow_empty=full).as_dict()


def source_label(spec: str) -> str:
    """A readable library name for a source: ``xtream 10.0.0.5:8080``, ``m3u vod.m3u``."""
    from urllib.parse import urlsplit

    family, _, rest = spec.partition("+")
    parts = urlsplit(rest)
    where = parts.netloc.rsplit("@", 1)[-1] if parts.scheme != "file" else ""
    return f"{family} {where or os.path.basename(parts.path) or rest}".strip()


def _open_source(spec: str, options: Mapping[str, Any] | None) -> Any:
    from mediamill.sources import open_source, source_options

    return open_source(spec, options=source_options(spec, options or {}))


def find_resumable(
    catalog: Catalog,
    processor: str,
    library_id: int,
    selection: Mapping[str, Any],
    lease_seconds: float,
) -> str | None:
    """An unfinished job of the same processor and selection that nobody runs: paused, or
    running with a dead owner (Ctrl-C, kill -9, power loss). Running it again resumes it."""
    stale = set(manager.stale_running_jobs(catalog, lease_seconds))
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(Job.c.id, Job.c.status, Job.c.selection)
            .where(
                Job.c.processor == processor,
                Job.c.library_id == library_id,
                Job.c.status.in_(["paused", "running"]),
            )
            .order_by(Job.c.created_at.desc())
        ).all()
    for job_id, status, job_selection in rows:
        if (job_selection or {}) == dict(selection) and (status == "paused" or job_id in stale):
            return str(job_id)
    return None


def prepare_job(
    catalog: Catalog,
    processor: str,
    library: LibraryRef,
    *,
    options: Mapping[str, Any],
    selection: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    resume: bool = True,
) -> tuple[str, bool]:
    """Create a job for this run, or take over the interrupted one. Returns (id, resumed)."""
    validate_options(processor, options, source=library.root if library.kind == "source" else None)
    settings = settings or load()
    selection = dict(selection or {})
    if resume:
        job_id = find_resumable(catalog, processor, library.id, selection, settings.lease_seconds)
        if job_id is not None and manager.take_over(
            catalog, job_id, options=job_options(options, processor)
        ):
            return job_id, True
    job_id = create_job(
        catalog, processor, library, options=options, selection=selection, validated=True
    )
    return job_id, False


def create_job(
    catalog: Catalog,
    processor: str,
    library: LibraryRef,
    *,
    options: Mapping[str, Any],
    selection: Mapping[str, Any] | None = None,
    priority: int = 0,
    queued: bool = False,
    validated: bool = False,
    summary: Mapping[str, Any] | None = None,
) -> str:
    """The one way a job is made (CLI and Python through :func:`prepare_job`, the API):
    its options checked (:func:`validate_options`) and stored without their secrets. A job
    made ``queued`` waits for a coordinator; otherwise it is made running, owned by this
    process, which runs it now (:func:`run_job`)."""
    if not validated:
        validate_options(
            processor, options, source=library.root if library.kind == "source" else None
        )
    return manager.create_job(
        catalog,
        processor,
        library.id,
        selection=selection,
        options=job_options(options, processor),
        priority=priority,
        status=JobStatus.QUEUED if queued else JobStatus.RUNNING,
        summary=summary,
    )


def job_options(options: Mapping[str, Any], processor: str | None = None) -> dict[str, Any]:
    """The options a job record keeps: everything but secrets, at any depth (sources'
    credentials, and ``processor``'s own secret options such as strm's ``refresh.token``)."""
    names = secret_names() if processor is None else job_secret_names(processor)
    kept: dict[str, Any] = strip_secrets(options, names)
    return kept


def job_secrets(processor: str, options: Mapping[str, Any]) -> Any:
    """What of ``options`` the processor needs but a job never stores (for :func:`run_job`
    in this process; a job run elsewhere reads its secrets from the environment)."""
    return processor_secrets(registry.get(processor), options)


class UnknownOptions(ValueError):
    """Options that belong to neither the engine, the processor nor the source."""


def validate_options(
    processor: str, options: Mapping[str, Any], *, source: str | None = None
) -> None:
    """Refuse options that nothing reads (:class:`UnknownOptions`: a typo is never silently
    ignored), then build the processor once with its options, so an unknown processor or a
    bad option fails now, with its message, before anything is written. ``source`` is the
    spec of the job's source library, whose options are allowed too.

    A processor that does not declare its options (``option_names`` is ``None``: a plug-in
    written before they were declared; every built-in declares its own) is given the options
    nothing else reads unchecked, with a warning naming them: refusing them would break it,
    passing them silently would hide a typo."""
    from mediamill.options import ENGINE_OPTION_NAMES
    from mediamill.sources import source_option_names

    proc_cls = registry.get(processor)
    rest = {k: v for k, v in options.items() if k not in ENGINE_OPTION_NAMES}
    from_source = source_option_names(source) if source is not None else frozenset()
    if proc_cls.option_names is None:
        unchecked = sorted(set(rest) - from_source)
        if unchecked:
            log.warning(
                "%s does not declare its options (Processor.option_names): %s given to it "
                "unchecked",
                proc_cls.name,
                ", ".join(unchecked),
            )
    else:
        known = set(proc_cls.option_names) | from_source
        unknown = sorted(set(rest) - known)
        if unknown:
            takes = [f"{proc_cls.name} takes {', '.join(sorted(proc_cls.option_names)) or '—'}"]
            if source is not None:
                takes.append(f"the source takes {', '.join(sorted(known - proc_cls.option_names))}")
            takes.append(f"the engine takes {', '.join(sorted(ENGINE_OPTION_NAMES))}")
            raise UnknownOptions(f"unknown option {', '.join(unknown)}: " + "; ".join(takes))
        rest = {k: v for k, v in rest.items() if k in proc_cls.option_names}
    registry.create(processor, rest)


def run_job(
    catalog: Catalog,
    job_id: str,
    *,
    settings: Settings | None = None,
    hooks: Sequence[Hook] = (),
    should_stop: Callable[[], str | None] | None = None,
    secrets: Any = None,
    flags: Collection[str] = (),
) -> dict[str, Any]:
    """Run a job to its end in this process; returns its final status object. ``secrets``
    (:func:`job_secrets`) are the processor's secret options, held in memory only; ``flags``
    the options given on the command line (the run plan says they came from a flag)."""
    engine.run_job(
        catalog,
        job_id,
        settings=settings or load(),
        hooks=hooks,
        should_stop=should_stop,
        secrets=secrets,
        flags=flags,
    )
    # the job's record went with a deleted or replaced catalog file: say so, not "completed"
    catalog.check_file()
    return manager.get_job(catalog, job_id)


def plan(
    catalog: Catalog,
    processor: str,
    target: str,
    *,
    options: Mapping[str, Any],
    library: LibraryRef | None = None,
    selection: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    hooks: Sequence[Hook] = (),
    secrets: Any = None,
) -> dict[str, Any]:
    """What a run would do, the catalog only read: a folder and a processor that only lists
    its items are compared read only (``dryrun.plan_folder``); anything else runs on a
    scratch copy (:func:`dry_run`). Both answers have ``dry_run``, ``library``,
    ``new_library``, ``scan``, ``would_process``, ``sample``, ``actions`` and ``plans``."""
    selection = dict(selection or {})
    if library is not None:
        folder = library.root if library.kind == "folder" else None
    else:
        folder = None if is_source(target) else target
    if (
        dryrun.lists_only(processor)
        and folder is not None
        and os.path.isdir(folder)
        and set(selection) <= {"only"}
        and selection.get("only") in (None, "failed")
    ):
        return dryrun.plan_folder(
            catalog,
            folder,
            processor,
            force=bool(options.get("force")),
            failed_only=selection.get("only") == "failed",
            limit=options.get("limit"),
        ).as_dict()
    return dry_run(
        catalog,
        processor,
        target,
        options=options,
        library=library,
        selection=selection,
        settings=settings,
        hooks=hooks,
        secrets=secrets,
    )


def dry_run(
    catalog: Catalog,
    processor: str,
    target: str,
    *,
    options: Mapping[str, Any],
    library: LibraryRef | None = None,
    selection: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    hooks: Sequence[Hook] = (),
    secrets: Any = None,
) -> dict[str, Any]:
    """Run ``processor`` on ``target`` (a folder, a source spec or a library name) against a
    scratch copy of its library, and say what the run would do; ``catalog`` is only read.

    ``library``: the library, when the caller has it (the API). The answer has the scan's
    counts (``scan``), the items the job would process (``would_process``, ``sample``), the
    actions the processor reported (``actions``: ``would_create`` ...), its plan lines
    (``plans``), and the scratch job's status, counters and ``summary``."""
    library = library or find_library(catalog, target, options)
    options = {**options, "dry_run": True}
    with tempfile.TemporaryDirectory(prefix="mediamill-dry-run-") as scratch_dir:
        scratch = Catalog.open(f"sqlite:///{Path(scratch_dir) / 'catalog.db'}")
        try:
            if library is not None:  # ids kept: the same reference names the copy
                dryrun.copy_library(catalog, scratch, library.id, registry.get(processor).name)
                lib = library
            else:
                lib = resolve_library(scratch, target, source_options=options)
            spec = target if is_source(target) else None
            full = bool(options.get("force"))
            scan = refresh_library(scratch, lib, source_options=options, spec=spec, full=full)
            job_id, _ = prepare_job(
                scratch,
                processor,
                lib,
                options=job_options(options, processor),
                selection=selection,
                settings=settings,
                resume=False,
            )
            plans = dryrun.Plans()
            job = run_job(
                scratch, job_id, settings=settings, hooks=[*hooks, plans], secrets=secrets
            )
        finally:
            scratch.close()
    summary = dict(job.get("summary") or {})
    done = int(job["processed_items"]) - int(summary.get("fresh_skipped", 0))
    counters = ("total_items", "processed_items", "succeeded", "failed", "skipped")
    return {
        "dry_run": True,
        "library": lib.name,
        "new_library": library is None,
        "processor": processor,
        "scan": scan,
        "would_process": int(summary.get("would_process", done)),
        "sample": summary.get("sample", []),
        "actions": summary.get("actions", {}),
        "plans": plans.plans,
        "status": job["status"],
        "error": job.get("error"),
        **{k: job[k] for k in counters},
        "summary": summary,
    }


def find_library(
    catalog: Catalog, target: str, source_options: Mapping[str, Any] | None = None
) -> LibraryRef | None:
    """The library a run on ``target`` would use, ``None`` when it would add one; read only.
    A name that is neither a folder, a source nor a library is a :class:`TargetError`."""
    if is_source(target):
        return catalog.library_by_root(_open_source(target, source_options).name)
    if os.path.isdir(target):
        return catalog.library_by_root(os.path.abspath(target))
    found = catalog.library_by_name(target)
    if found is None:
        raise TargetError(f"{target}: no such folder, source or library")
    return found


def run(
    processor: str,
    target: str,
    *,
    db: str | None = None,
    options: Mapping[str, Any] | None = None,
    hooks: Sequence[Hook] = (),
) -> dict[str, Any]:
    """Scan ``target`` and run ``processor`` over it: the Python twin of ``mediamill run``.
    With option ``dry_run``, nothing is changed, the catalog included: the answer says what
    the run would do (:func:`plan`) instead of being a job's status."""
    settings = load(db=db)
    catalog = Catalog.open(settings.db_url())
    try:
        if (options or {}).get("dry_run"):
            secrets = job_secrets(processor, options or {})
            kept = dict(options or {})
            return plan(
                catalog,
                processor,
                target,
                options=kept,
                settings=settings,
                hooks=hooks,
                secrets=secrets,
            )
        library = resolve_library(catalog, target, source_options=options)
        refresh_library(catalog, library, source_options=options, spec=target)
        kept = job_options(options or {}, processor)
        job_id, _ = prepare_job(catalog, processor, library, options=kept, settings=settings)
        secrets = job_secrets(processor, options or {})
        return run_job(catalog, job_id, settings=settings, hooks=hooks, secrets=secrets)
    finally:
        catalog.close()


__all__ = [
    "JobStatus",
    "TargetError",
    "create_job",
    "dry_run",
    "plan",
    "prepare_job",
    "refresh_library",
    "resolve_library",
    "run",
    "run_job",
]
