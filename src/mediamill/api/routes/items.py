"""Items: browse and search a library's items with their latest results; the processors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from mediamill.api.deps import CatalogDep, ReadAuth
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


@router.get("/processors", response_model=ProcessorList, dependencies=[ReadAuth])
def list_processors() -> dict[str, Any]:
    return {"processors": registry.available()}
