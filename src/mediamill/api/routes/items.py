"""Items: browse and search a library's items with their latest results, comic covers; the
processors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool

from mediamill.api.deps import CatalogDep, ReadAuth
from mediamill.api.paths import UnsafePath, check_relative
from mediamill.api.routes.libraries import library_or_404
from mediamill.api.schemas import ERRORS, ItemList, ProcessorList
from mediamill.processors import base as registry

router = APIRouter(prefix="/api", tags=["items"], responses=ERRORS)


@router.get("/items", response_model=ItemList, dependencies=[ReadAuth])
def list_items(
    catalog: CatalogDep,
    library: Annotated[str, Query(min_length=1, max_length=255)],
    processor: Annotated[str, Query(min_length=1, max_length=200)] = "probe",
    q: Annotated[str | None, Query(max_length=1000)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    status: Literal["ok", "failed", "skipped", "pending"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """A page of items whose path contains ``q``, with ``processor``'s latest result."""
    lib = library_or_404(catalog, library)
    items, total = catalog.search_items(
        lib.id, processor, q=q, kind=kind, status=status, limit=limit, offset=offset
    )
    return {"items": items, "total": total}


@router.get(
    "/cover",
    dependencies=[ReadAuth],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The cover, as a JPEG"}},
)
async def comic_cover(
    catalog: CatalogDep,
    library: Annotated[str, Query(min_length=1, max_length=255)],
    path: Annotated[str, Query(min_length=1, max_length=4096)],
    size: Annotated[int, Query(ge=16, le=600)] = 240,
) -> Response:
    """A comic item's cover thumbnail (its FrontCover page, else its first page)."""
    from mediamill.comic.archive import ArchiveError
    from mediamill.comic.cover import thumbnail

    lib = library_or_404(catalog, library)
    try:
        check_relative(lib.root, path)
    except UnsafePath as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    if catalog.item_id(lib.id, path) is None:
        raise HTTPException(404, detail=f"no item {path!r} in {library!r}")
    try:
        jpeg = await run_in_threadpool(thumbnail, Path(lib.root) / path, size)
    except (ArchiveError, OSError) as exc:
        raise HTTPException(422, detail=f"{path}: {exc}") from exc
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})


@router.get("/processors", response_model=ProcessorList, dependencies=[ReadAuth])
def list_processors() -> dict[str, Any]:
    return {"processors": registry.available()}
