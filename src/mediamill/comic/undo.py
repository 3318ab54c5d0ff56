"""Undo a comic job: put back every file's ComicInfo.xml and name as the history recorded them.

Each change the job recorded (``item_changes``) is undone, newest first, only if the file is
still as that job left it (same path, same ComicInfo.xml): a file changed since, by another
job or by hand, is reported and left alone. The ComicInfo.xml goes back through the same
verified, atomic rewrite; the name goes back with a rename that never overwrites. A converted
RAR cannot become a RAR again: its tags and name come back, as a .cbz.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mediamill.comic import archive as arc
from mediamill.comic import safe
from mediamill.comic.options import ComicError
from mediamill.comic.work import rewrite_comicinfo
from mediamill.core import ItemUpdate


@dataclass(slots=True)
class Undone:
    """One change's undo: the paths, what was (or would be) done, or why not."""

    path: str
    restored_path: str
    action: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "restored_path": self.restored_path,
            "action": self.action,
            "error": self.error,
        }


def undo_job(catalog: Any, job_id: str, *, dry_run: bool = False) -> list[Undone]:
    """Undo what job ``job_id`` changed; with ``dry_run`` only say what would be done."""
    report = []
    for entry in reversed(catalog.item_changes(job_id)):
        library = catalog.library(entry["library_id"])
        try:
            report.append(_undo_one(catalog, Path(library.root), entry, dry_run=dry_run))
        except (ComicError, arc.ArchiveError, OSError) as exc:
            change = entry["change"]
            report.append(Undone(entry["path"], change["path_before"], "failed", str(exc)))
    return report


def _undo_one(catalog: Any, root: Path, entry: dict[str, Any], *, dry_run: bool) -> Undone:
    change = entry["change"]
    current: str = entry["path"]
    before: str = change["path_before"]
    wanted = _restorable(before, change["path_after"])
    if not entry["present"] or current != change["path_after"]:
        return Undone(current, wanted, "skipped", "the file moved since this job; left alone")
    path = root / current
    with arc.ComicArchive(path) as archive:
        now = archive.comicinfo()
    after_raw = _raw(change["comicinfo_after"])
    if now != after_raw:
        return Undone(current, wanted, "skipped", "its ComicInfo.xml changed since this job")
    before_raw = _raw(change["comicinfo_before"])
    actions = []
    if before_raw != after_raw:
        actions.append("retag")
    if wanted != current:
        actions.append("rename")
        if os.path.lexists(root / wanted):
            return Undone(current, wanted, "failed", f"{wanted} exists; nothing was changed")
    if dry_run or not actions:
        return Undone(current, wanted, "+".join(actions) or "unchanged")
    if before_raw != after_raw:
        rewrite_comicinfo(path, before_raw)
    if wanted != current:
        safe.rename_no_replace(path, root / wanted)
    stat = os.stat(root / wanted)
    cause = catalog.record_undo(
        entry["id"],
        entry["item_id"],
        ItemUpdate(
            path=wanted if wanted != current else None,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
        ),
    )
    return Undone(current, wanted, "+".join(actions), cause)


def _restorable(before: str, after: str) -> str:
    """The old path, with the new suffix when the file was converted (RAR is never written)."""
    old, new = PurePosixPath(before), PurePosixPath(after)
    if old.suffix.lower() != new.suffix.lower():
        return str(old.with_suffix(new.suffix))
    return before


def _raw(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")
