"""Queue a library's processors for what is new or changed: one job per processor and
library at most waits in the queue; later changes join it instead of adding jobs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import islice

from sqlalchemy import select, update

from mediamill.catalog.db import Catalog, LibraryRef, Selection
from mediamill.catalog.models import Job
from mediamill.ops import create_job
from mediamill.processors import base as registry

log = logging.getLogger(__name__)

#: most paths a queued job names; beyond, it covers every item of its library not fresh
MAX_PATHS = 5000
#: what a job the watcher queued says in its summary: only such jobs take later changes
QUEUED_BY = {"queued_by": "watch"}


def check_processors(names: Sequence[str]) -> list[str]:
    """The processor names, each known and buildable without options, or ``ValueError``
    naming the one that is not."""
    for name in names:
        try:
            registry.create(name, {})
        except Exception as exc:
            raise ValueError(f"processor {name!r} cannot run by itself: {exc}") from exc
    return list(names)


def queue_processors(
    catalog: Catalog,
    library: LibraryRef,
    processors: Sequence[str],
    *,
    item_ids: Sequence[int] | None = None,
) -> list[str]:
    """Queue each processor, in order, for the library's items that are not fresh: those of
    ``item_ids`` (what a scan found new or changed), or all of them (``None``: catching up).

    A queued job of the same library and processor that has not started takes the new
    paths (a job that covers every item needs nothing), so a copy of thousands of files
    makes one job per processor, not thousands. Nothing is queued when nothing is pending.
    Catching up names the pending items themselves when they are few (up to
    :data:`MAX_PATHS`), so its job counts only them, not every fresh item as skipped.
    Returns the ids of the jobs that will do the work.
    """
    paths = None if item_ids is None else catalog.paths_of(list(item_ids))
    if paths is not None and len(paths) > MAX_PATHS:
        paths = None
    jobs = []
    for name in processors:
        proc_cls = registry.get(name)
        version = registry.create(name, {}).result_version()
        sel = Selection(
            library_id=library.id,
            kinds=proc_cls.kinds,
            paths=None if paths is None else tuple(paths),
        )
        pending = catalog.count_pending(sel, name, version)
        if pending == 0:
            continue
        chosen = paths
        if chosen is None and pending <= MAX_PATHS:
            refs = catalog.iter_pending(sel, name, version, root=None)
            chosen = [ref.path for ref in islice(refs, MAX_PATHS)]
        job_id = _join_queued(catalog, library.id, name, chosen)
        if job_id is None:
            selection = {} if chosen is None else {"paths": chosen}
            job_id = create_job(
                catalog,
                name,
                library,
                options={},
                selection=selection,
                queued=True,
                summary=QUEUED_BY,
            )
            log.info("queued %s for %s (job %s)", name, library.name, job_id)
        jobs.append(job_id)
    return jobs


def _join_queued(
    catalog: Catalog, library_id: int, processor: str, paths: list[str] | None
) -> str | None:
    """Add ``paths`` (``None``: every item) to a queued job of the library and processor,
    if one waits that has not started; its id, else ``None``."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(Job.c.id, Job.c.selection, Job.c.options, Job.c.summary).where(
                Job.c.library_id == library_id,
                Job.c.processor == processor,
                Job.c.status == "queued",
                Job.c.started_at.is_(None),
            )
        ).all()
    for job_id, stored, options, summary in rows:
        selection = dict(stored or {})
        ours = (summary or {}).get("queued_by") == QUEUED_BY["queued_by"] and not options
        if not ours or set(selection) - {"paths"}:
            continue  # a job someone asked for, with its own options: not ours to change
        if "paths" not in selection:
            return str(job_id)  # it covers every item already
        merged: dict[str, object] = {}
        if paths is not None:
            union = sorted(set(selection["paths"]).union(paths))
            if len(union) <= MAX_PATHS:
                merged = {"paths": union}
        with catalog.engine.begin() as conn:
            joined = conn.execute(
                update(Job)
                .where(Job.c.id == job_id, Job.c.status == "queued", Job.c.started_at.is_(None))
                .values(selection=merged)
            ).rowcount
        if joined:
            return str(job_id)
    return None
