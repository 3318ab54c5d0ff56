"""A library's statistics: the figures of the page's statistics view, aggregated in SQL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from mediamill.api.deps import CatalogDep, ReadAuth
from mediamill.api.routes.libraries import library_or_404
from mediamill.api.schemas import ERRORS, LibraryStats
from mediamill.stats import library_stats

router = APIRouter(prefix="/api/libraries", tags=["libraries"], responses=ERRORS)


@router.get("/{name}/stats", response_model=LibraryStats, dependencies=[ReadAuth])
async def get_stats(name: str, catalog: CatalogDep) -> dict[str, Any]:
    """Items by kind, container, codec, resolution and bit rate; total size and duration;
    failures by cause per processor; tempo and key of analysed music."""
    lib = library_or_404(catalog, name)
    figures = await run_in_threadpool(library_stats, catalog, lib.id)
    return {"library": lib.name, **figures}
