"""Jobs: create, list, get, per-item results, pause/resume/cancel, delete, undo (comic)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mediamill import ops
from mediamill.api.deps import CatalogDep, ReadAuth, SettingsDep, WriteAuth
from mediamill.api.paths import ForbiddenPath, UnsafePath, check_job_paths, check_relative
from mediamill.api.routes.libraries import allowed_or_403, library_or_404
from mediamill.api.schemas import ERRORS, DryRunOut, ItemList, JobIn, JobList, JobOut, UndoOut
from mediamill.catalog.db import Catalog, LibraryRef, Selection
from mediamill.jobs import manager
from mediamill.jobs.status import FINISHED
from mediamill.processors import base as registry
from mediamill.processors.base import Processor
from mediamill.settings import Settings, data_dir

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERRORS)

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
JobStatusFilter = Literal["queued", "running", "paused", "completed", "failed", "cancelled"]


def _job_or_404(catalog: Catalog, job_id: str) -> dict[str, Any]:
    try:
        return manager.get_job(catalog, job_id)
    except manager.JobNotFound as exc:
        raise HTTPException(404, detail=f"no job {job_id}") from exc


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    dependencies=[WriteAuth],
    responses={
        200: {
            "model": DryRunOut,
            "description": "A dry run (``options.dry_run``): what the job would do. No job "
            "is made and nothing is changed, the catalog included.",
        }
    },
)
async def create_job(body: JobIn, catalog: CatalogDep, settings: SettingsDep) -> Any:
    """Queue a job; a folder library is scanned first (incrementally). The library, and the
    files and folders the options name (``output``, ``report``, ``model_path``), must lie
    under the server's ``allowed_roots`` (403); a report goes to the data dir or the output.

    With ``options.dry_run`` nothing is queued: the answer (200, :class:`DryRunOut`) says
    what the job would do, worked out on a scratch copy of the library, and may take as long
    as reading the library does (a source is read from its provider)."""
    module_allowed_or_403(body.processor, settings.allowed_processor_modules)
    try:
        proc_cls = registry.get(body.processor)
    except (registry.UnknownProcessor, ImportError, TypeError, AttributeError) as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    options = ops.job_options(
        body.options.model_dump(exclude_none=True) if body.options else {}, proc_cls.name
    )
    named = catalog.library_by_name(body.library)
    source = named.root if named is not None and named.kind == "source" else None
    try:
        ops.validate_options(proc_cls.name, options, source=source)
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, detail=f"invalid options: {exc}") from exc
    lib = library_or_404(catalog, body.library)
    allowed_or_403(lib.root, settings.allowed_roots)
    try:
        check_job_paths(options, settings.allowed_roots, str(data_dir()))
    except ForbiddenPath as exc:
        raise HTTPException(403, detail=str(exc)) from exc
    selection: dict[str, Any] = {}
    if body.items is not None:
        # thousands of paths each resolved on disk: in a thread, never in the event loop
        selection["paths"] = await run_in_threadpool(_checked_paths, lib, body.items)
    if body.filter:
        selection["only"] = body.filter
    if options.get("dry_run"):
        plan = await run_in_threadpool(
            _plan, catalog, proc_cls.name, lib, selection, options, settings
        )
        return JSONResponse(DryRunOut.model_validate(plan).model_dump(mode="json"))
    try:
        await run_in_threadpool(ops.refresh_library, catalog, lib)
    except Exception as exc:
        raise HTTPException(422, detail=f"scan failed: {exc}") from exc
    return await run_in_threadpool(_queue, catalog, proc_cls, lib, selection, options, body)


def module_allowed_or_403(processor: str, allowed: list[str]) -> None:
    """A processor named ``module:Class`` is imported only when the server's settings allow
    its module (``allowed_processor_modules``): a request must not import any installed
    module. Checked before anything is imported."""
    if ":" not in processor:
        return
    module = processor.partition(":")[0]
    if not any(module == root or module.startswith(root + ".") for root in allowed):
        raise HTTPException(
            403,
            detail=f"processor module {module!r} is not allowed on this server "
            "(setting allowed_processor_modules)",
        )


def _plan(
    catalog: Catalog,
    processor: str,
    lib: LibraryRef,
    selection: dict[str, Any],
    options: dict[str, Any],
    settings: Settings,
) -> dict[str, Any]:
    try:
        return ops.plan(
            catalog,
            processor,
            lib.name,
            options=options,
            library=lib,
            selection=selection,
            settings=settings,
        )
    except Exception as exc:
        raise HTTPException(422, detail=f"dry run failed: {exc}") from exc


def _checked_paths(lib: LibraryRef, items: list[str]) -> list[str]:
    try:
        return sorted({check_relative(lib.root, p) for p in items})
    except UnsafePath as exc:
        raise HTTPException(422, detail=str(exc)) from exc


def _queue(
    catalog: Catalog,
    proc_cls: type[Processor],
    lib: LibraryRef,
    selection: dict[str, Any],
    options: dict[str, Any],
    body: JobIn,
) -> dict[str, Any]:
    if "paths" in selection:
        known = catalog.existing_items(lib.id, selection["paths"])
        unknown = [p for p in selection["paths"] if p not in known]
        if unknown:
            raise HTTPException(422, detail=f"not items of {lib.name}: {', '.join(unknown[:20])}")
    job_id = ops.create_job(
        catalog,
        proc_cls.name,
        lib,
        options=options,
        selection=selection,
        priority=body.priority,
        queued=True,
        validated=True,
    )
    sel = Selection(
        lib.id,
        kinds=proc_cls.kinds,
        paths=tuple(selection.get("paths", ())) if "paths" in selection else None,
        only=selection.get("only"),
    )
    total = (
        catalog.count_selection(sel)
        if sel.only is None
        else catalog.count_pending(sel, proc_cls.name, proc_cls.version)
    )
    catalog.update_job(job_id, total_items=total)
    return manager.get_job(catalog, job_id)


@router.get("", response_model=JobList, dependencies=[ReadAuth])
def list_jobs(
    catalog: CatalogDep,
    status: JobStatusFilter | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    jobs, total = manager.list_jobs(catalog, status=status, limit=limit, offset=offset)
    return {"jobs": jobs, "total": total}


@router.get("/{job_id}", response_model=JobOut, dependencies=[ReadAuth])
def get_job(job_id: str, catalog: CatalogDep) -> dict[str, Any]:
    return _job_or_404(catalog, job_id)


@router.get("/{job_id}/items", response_model=ItemList, dependencies=[ReadAuth])
def job_items(
    job_id: str,
    catalog: CatalogDep,
    status: Literal["ok", "failed", "skipped"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The per-item results this job wrote: item, success, error, details."""
    _job_or_404(catalog, job_id)
    items, total = catalog.job_items(job_id, status=status, limit=limit, offset=offset)
    return {"items": items, "total": total}


#: what a running job is doing once asked to stop, until its items in progress finish
ENDING = {"cancel": "cancelling", "pause": "pausing"}


def _act(catalog: Catalog, job_id: str, action: str) -> dict[str, Any]:
    _job_or_404(catalog, job_id)
    try:
        job = manager.request(catalog, job_id, action)
    except manager.InvalidRequest as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    if job["status"] == "running" and job["requested"] == action and action in ENDING:
        job["status"] = ENDING[action]  # it stops after the items in progress
    return job


@router.post("/{job_id}/cancel", response_model=JobOut, dependencies=[WriteAuth])
def cancel_job(job_id: str, catalog: CatalogDep) -> dict[str, Any]:
    return _act(catalog, job_id, "cancel")


@router.post("/{job_id}/pause", response_model=JobOut, dependencies=[WriteAuth])
def pause_job(job_id: str, catalog: CatalogDep) -> dict[str, Any]:
    return _act(catalog, job_id, "pause")


@router.post("/{job_id}/resume", response_model=JobOut, dependencies=[WriteAuth])
def resume_job(job_id: str, catalog: CatalogDep) -> dict[str, Any]:
    return _act(catalog, job_id, "resume")


@router.post("/{job_id}/undo", response_model=UndoOut, dependencies=[WriteAuth])
async def undo_job(
    job_id: str,
    catalog: CatalogDep,
    settings: SettingsDep,
    dry_run: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    """Put back the ComicInfo.xml and names a comic job changed (``?dry_run=true``: only say
    what would be done). Files changed since the job are left alone and listed. Only a
    finished job undoes (409), and only in a library under ``allowed_roots`` (403)."""
    from mediamill.comic.undo import undo_job as undo

    job = _job_or_404(catalog, job_id)
    if job["processor"] != "comic":
        raise HTTPException(
            409, detail=f"job {job_id} is a {job['processor']} job: only comic jobs undo"
        )
    if job["status"] not in FINISHED:
        raise HTTPException(
            409, detail=f"job {job_id} is {job['status']}: cancel it or let it finish first"
        )
    library = catalog.library(job["library_id"]) if job["library_id"] else None
    if library is not None:
        allowed_or_403(library.root, settings.allowed_roots)
    report = await run_in_threadpool(undo, catalog, job_id, dry_run=dry_run)
    return {
        "job_id": job_id,
        "dry_run": dry_run,
        "undone": sum(1 for e in report if e.error is None and e.action != "unchanged"),
        "changes": [e.as_dict() for e in report],
    }


@router.delete("/{job_id}", status_code=204, dependencies=[WriteAuth])
def delete_job(job_id: str, catalog: CatalogDep) -> None:
    _job_or_404(catalog, job_id)
    try:
        manager.delete_job(catalog, job_id)
    except manager.InvalidRequest as exc:
        raise HTTPException(409, detail=str(exc)) from exc
