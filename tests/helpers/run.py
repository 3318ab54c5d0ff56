"""Run a processor over a folder the way `mediamill run` does, without the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.settings import load


def run_folder(
    catalog: Catalog,
    root: Path,
    processor: str,
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Scan ``root`` and run ``processor`` with job ``options``, under ``settings``."""
    library = ops.resolve_library(catalog, str(root))
    ops.refresh_library(catalog, library)
    job_id, _ = ops.prepare_job(catalog, processor, library, options=options)
    return ops.run_job(catalog, job_id, settings=load(db=catalog.url, **(settings or {})))


def results(catalog: Catalog, root: Path, processor: str) -> dict[str, tuple[str, Any, Any]]:
    """``path -> (status, data, error)`` of every item of the folder's library."""
    library = catalog.library_by_root(root)
    assert library is not None
    return {
        path: (status, data, error)
        for path, _kind, status, data, error in catalog.iter_export(library.id, processor)
    }
