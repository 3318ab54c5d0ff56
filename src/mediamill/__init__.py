"""mediamill: process big media libraries fast and safely in the background.

The Python interface mirrors the CLI::

    import mediamill
    job = mediamill.run("probe", "/srv/music")          # scan + probe, returns the job status
    catalog = mediamill.Catalog.open()                  # the catalog, for queries
"""

from __future__ import annotations

from typing import Any

__all__ = ["Catalog", "prepare_job", "refresh_library", "resolve_library", "run", "run_job"]


def __getattr__(name: str) -> Any:
    # lazy, so worker processes and `mediamill --help` do not import the whole stack
    if name == "Catalog":
        from mediamill.catalog.db import Catalog

        return Catalog
    if name in __all__:
        from mediamill import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'mediamill' has no attribute {name!r}")
