"""Libraries: add, list, get, delete, scan."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from mediamill import ops
from mediamill.api.deps import CatalogDep, ReadAuth, SettingsDep, WriteAuth
from mediamill.api.paths import ForbiddenPath, check_library
from mediamill.api.schemas import (
    ERRORS,
    AutomationIn,
    LibraryIn,
    LibraryList,
    LibraryOut,
    ScanOut,
)
from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.walk import ScanError

router = APIRouter(prefix="/api/libraries", tags=["libraries"], responses=ERRORS)


def _out(catalog: Catalog, lib: LibraryRef) -> dict[str, Any]:
    from mediamill.watch import automation as auto

    return {
        "id": lib.id,
        "name": lib.name,
        "root": lib.root,
        "kind": lib.kind,
        "scanned_at": lib.scanned_at.isoformat() if lib.scanned_at else None,
        "counts": catalog.library_counts(lib.id),
        "automation": auto.automation(catalog, lib.id).as_dict(),
        "watch": auto.watch_state(catalog, lib.id),
    }


def library_or_404(catalog: Catalog, name: str) -> LibraryRef:
    lib = catalog.library_by_name(name)
    if lib is None:
        raise HTTPException(404, detail=f"no library named {name!r}")
    return lib


def allowed_or_403(spec: str, roots: list[str]) -> None:
    """A folder or ``m3u+file`` library the server may read (see ``allowed_roots``)."""
    try:
        check_library(spec, roots)
    except ForbiddenPath as exc:
        raise HTTPException(403, detail=str(exc)) from exc


@router.post("", status_code=201, response_model=LibraryOut, dependencies=[WriteAuth])
def add_library(body: LibraryIn, catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    """Add a folder (absolute path) or a source (``xtream+http://…``) as a library. A folder
    or an ``m3u+file`` playlist must lie under the server's ``allowed_roots`` (403)."""
    if not ops.is_source(body.path) and not body.path.startswith("/"):
        raise HTTPException(422, detail="path must be an absolute folder path or a source spec")
    allowed_or_403(body.path, settings.allowed_roots)
    if body.name and catalog.library_by_name(body.name) is not None:
        existing = catalog.library_by_name(body.name)
        assert existing is not None
        if existing.root != body.path.rstrip("/"):
            raise HTTPException(409, detail=f"a library named {body.name!r} already exists")
    try:
        lib = ops.resolve_library(catalog, body.path, name=body.name)
    except (ops.TargetError, ScanError, ValueError) as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    if body.name and lib.name != body.name:
        raise HTTPException(
            409, detail=f"{body.path} is already the library {lib.name!r}; it keeps that name"
        )
    return _out(catalog, lib)


@router.get("", response_model=LibraryList, dependencies=[ReadAuth])
def list_libraries(catalog: CatalogDep) -> dict[str, Any]:
    return {"libraries": [_out(catalog, lib) for lib in catalog.libraries()]}


@router.get("/{name}", response_model=LibraryOut, dependencies=[ReadAuth])
def get_library(name: str, catalog: CatalogDep) -> dict[str, Any]:
    return _out(catalog, library_or_404(catalog, name))


@router.delete("/{name}", status_code=204, dependencies=[WriteAuth])
def delete_library(name: str, catalog: CatalogDep) -> None:
    """Forget a library and its items and results (files are not touched)."""
    catalog.delete_library(library_or_404(catalog, name).id)


@router.post("/{name}/scan", response_model=ScanOut, dependencies=[WriteAuth])
async def scan_library(
    name: str, catalog: CatalogDep, settings: SettingsDep, force: bool = False
) -> dict[str, Any]:
    """Scan a folder library (or re-read a source) incrementally. A folder that is now empty
    while the catalog has files of it is refused (an unmounted share) unless ``force``. A
    library outside the server's ``allowed_roots`` (added from the CLI) is refused (403)."""
    lib = library_or_404(catalog, name)
    allowed_or_403(lib.root, settings.allowed_roots)
    try:
        report = await run_in_threadpool(ops.refresh_library, catalog, lib, full=force)
    except Exception as exc:
        raise HTTPException(422, detail=f"scan failed: {exc}") from exc
    return {"report": report}


@router.put("/{name}/automation", response_model=LibraryOut, dependencies=[WriteAuth])
def set_automation(
    name: str, body: AutomationIn, catalog: CatalogDep, settings: SettingsDep
) -> dict[str, Any]:
    """Change what runs by itself for a folder library: the processors for new and changed
    files (in order), how it is watched, its schedule. ``mediamill serve`` picks it up
    within seconds. A library outside the server's ``allowed_roots`` is refused (403)."""
    from mediamill.watch import automation as auto

    lib = library_or_404(catalog, name)
    if lib.kind != "folder":
        raise HTTPException(422, detail=f"{name} is not a folder library")
    allowed_or_403(lib.root, settings.allowed_roots)
    wanted = {**auto.automation(catalog, lib.id).as_dict(), **body.model_dump(exclude_unset=True)}
    try:
        auto.set_automation(catalog, lib.id, auto.Automation.from_dict(wanted))
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return _out(catalog, lib)
