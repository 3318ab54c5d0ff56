"""What ``run --dry-run`` on a folder would do, worked out without writing anything: the
folder is walked and compared with the catalog (read only), and the items a job would
process are listed. No library, item, result or job is added or changed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mediamill.catalog.db import Catalog, Selection
from mediamill.processors import base as registry
from mediamill.sources.folder import detect_kind
from mediamill.walk import walk

SAMPLE = 50


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
