"""What a dry run would do, worked out without changing the catalog: no library, item,
result or job is added or changed, whichever way it is asked for (``mediamill run
--dry-run``, ``POST /api/jobs`` with ``"dry_run": true``, ``mediamill.run`` with the option).

A processor that only lists what it would process, on a folder, needs no job at all: the
folder is walked and compared with the catalog, read only (:func:`plan_folder`). Anything
else (a source to read, a processor that plans its changes, such as strm or comic) runs for
real against a scratch copy of the library (``ops.dry_run`` with :func:`copy_library`): a
throwaway SQLite catalog holding the library, its items and the processor's results, so the
source is synced, the job made and run, and the processor asked what it would do, exactly
as a run would; then the copy is deleted. The files are never touched: the processors
honour ``dry_run``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from mediamill.catalog.db import Catalog, Selection
from mediamill.catalog.models import Item, Library, Result
from mediamill.core import ItemRef, Outcome
from mediamill.engine.progress import Hook
from mediamill.processors import base as registry
from mediamill.sources.folder import detect_kind
from mediamill.walk import walk

SAMPLE = 50
#: rows copied into a dry run's scratch catalog at a time
COPY_BATCH = 5000


@dataclass(slots=True)
class Plan:
    library: str
    new_library: bool
    found: int = 0
    new: int = 0
    changed: int = 0
    missing: int = 0
    would_process: int = 0
    sample: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "library": self.library,
            "new_library": self.new_library,
            "found": self.found,
            "new": self.new,
            "changed": self.changed,
            "missing": self.missing,
            "would_process": self.would_process,
            "sample": self.sample,
            "problems": [{"path": p, "cause": c} for p, c in self.problems[:SAMPLE]],
            "scan": {
                "found": self.found,
                "new": self.new,
                "changed": self.changed,
                "missing": self.missing,
            },
            "actions": {},
            "plans": [],
        }


def plan_folder(
    catalog: Catalog,
    folder: str,
    processor: str,
    *,
    force: bool = False,
    failed_only: bool = False,
    limit: int | None = None,
) -> Plan:
    """The scan and the job a ``run`` of ``processor`` on ``folder`` would do."""
    root = os.path.abspath(folder)
    library = catalog.library_by_root(root)
    proc = registry.get(processor)
    plan = Plan(library.name if library else os.path.basename(root) or root, library is None)
    known: dict[str, tuple[int, int, int, bool]] = {}
    if library is not None:
        known = {path: (i, size, mtime, present) for path, i, size, mtime, present in
                 catalog.iter_files(library.id)}  # fmt: skip
    to_process: list[str] = []
    seen: set[str] = set()
    for shown, size, mtime_ns, abspath in walk(root, plan.problems):
        plan.found += 1
        seen.add(shown)
        old = known.get(shown)
        if old is not None and old[3] and (old[1], old[2]) == (size, mtime_ns):
            continue  # unchanged: whether it is due is the catalog's answer, below
        if old is None or not old[3]:
            plan.new += 1
        else:
            plan.changed += 1
        if failed_only:
            continue  # a new or changed file has no failure to retry
        kind = detect_kind(os.path.basename(abspath), abspath, size)
        if proc.kinds is None or kind in proc.kinds:
            to_process.append(shown)
    plan.missing = sum(1 for path, row in known.items() if row[3] and path not in seen)
    if library is not None:
        version = registry.create(processor, {}).result_version()
        sel = Selection(library.id, kinds=proc.kinds, only="failed" if failed_only else None)
        changed = set(to_process)
        for item in catalog.iter_pending(sel, proc.name, version, root=root, force=force):
            if item.path in seen and item.path not in changed:
                to_process.append(item.path)
    if limit is not None:
        to_process = to_process[:limit]
    plan.would_process = len(to_process)
    plan.sample = sorted(to_process)[:SAMPLE]
    return plan


def lists_only(processor: str) -> bool:
    """Whether a dry run of ``processor`` only lists the items it would process (it cannot
    describe its changes, unlike strm or comic)."""
    return not registry.get(processor).dry_run_processes


class Plans(Hook):
    """What the processor said it would do, item by item (its ``data["plan"]`` or action)."""

    def __init__(self) -> None:
        self.plans: list[str] = []

    def on_outcome(self, item: ItemRef, outcome: Outcome) -> None:
        data = outcome.data or {}
        plan = data.get("plan") or data.get("action")
        if plan and plan != "unchanged" and len(self.plans) < SAMPLE:
            self.plans.append(f"{item.path}: {plan}")
        elif outcome.error and len(self.plans) < SAMPLE:
            self.plans.append(f"{item.path}: would fail: {outcome.error}")


def copy_library(source: Catalog, scratch: Catalog, library_id: int, processor: str) -> None:
    """The library, its items and ``processor``'s results on them, ids kept, into the empty
    catalog ``scratch``: what a job decides from (which items are due, a source's digest)."""
    queries = (
        (Library, select(Library).where(Library.c.id == library_id)),
        (Item, select(Item).where(Item.c.library_id == library_id)),
        (
            Result,
            select(Result)
            .join(Item, Item.c.id == Result.c.item_id)
            .where(Item.c.library_id == library_id, Result.c.processor == processor),
        ),
    )
    with source.engine.connect() as read, scratch.engine.begin() as write:
        for table, query in queries:
            rows = read.execute(query.execution_options(yield_per=COPY_BATCH)).mappings()
            for part in rows.partitions(COPY_BATCH):
                write.execute(insert(table), [dict(row) for row in part])
