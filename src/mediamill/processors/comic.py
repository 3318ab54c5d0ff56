"""The ``comic`` processor: ComicInfo.xml from file and folder names, template renames,
conversions to .cbz/.cb7, each done safely and recorded so that it can be undone.

Options (``--set KEY=VALUE``):

* ``rules``: the ComicInfo fields to fill from the names, among series, number, volume, year,
  month, count, title, format (default ``series,number,volume,year``). A field that already
  has a value is kept unless ``overwrite`` is true (``--force`` redoes fresh items; it does
  not overwrite values).
* ``rename``: a template such as ``{series} #{issue:03} ({year})`` (off by default).
* ``convert``: ``cbz`` or ``cb7``: write other formats (RAR, tar) as this; RAR is never
  written, so a RAR that needs tags is left alone until converted.
* ``duplicates``: a folder (relative to the library root) where a file whose new name is
  taken is moved.

``process`` returns, as ``data``: ``action`` (unchanged, tagged, renamed, converted,
duplicate, conflict, read-only, joined with ``+``), ``format``, ``pages``, ``comicinfo``
(every field after the change), ``parsed`` (what the name says), ``changes`` (field →
[old, new]), ``rename`` ({from, to}) and ``change`` (what undo needs: both ComicInfo.xml and
both paths). A changed file is returned with an :class:`~mediamill.core.ItemUpdate` (its new
path, size and mtime), written with the result, so the next scan sees no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mediamill.comic import work
from mediamill.core import ItemRef, ItemUpdate, Processed, Work
from mediamill.processors.base import Processor


class ComicProcessor(Processor):
    """Tag, rename and convert comic archives; see the module docstring."""

    name = "comic"
    version = "1"
    # rewriting an archive is mostly copying bytes (I/O), and zipfile/zlib release the GIL
    work = Work.IO
    # each rewrite waits on fsync (10-20 ms on a busy disk): more threads than cores overlap
    # those waits
    default_workers = 4
    kinds = frozenset({"comic"})
    dry_run_processes = True
    result_options = ("rules", "overwrite", "rename", "convert", "duplicates")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings = work.Options.from_mapping(self.options)
        self.dry_run = bool(self.options.get("dry_run"))

    def process(self, item: ItemRef) -> dict[str, Any] | Processed:
        if item.abspath is None:
            raise ValueError(f"{item.path} is not a file")
        root = _library_root(item)
        plan = work.plan(root, item.path, self.settings)
        data = work.describe(plan)
        if self.dry_run:
            data["action"] = _planned_action(plan)
            data["plan"] = _plan_line(plan, data["action"])
            return data
        applied = work.apply(root, plan, self.settings)
        data["action"] = (
            "read-only" if plan.blocked and applied.action == "unchanged" else applied.action
        )
        if applied.note:
            data["note"] = applied.note
        if applied.change is None or applied.stat is None:
            return data
        data["change"] = applied.change
        update = ItemUpdate(
            path=applied.relpath if applied.relpath != item.path else None,
            size=applied.stat.st_size,
            mtime_ns=applied.stat.st_mtime_ns,
        )
        return Processed(data, update)


def _library_root(item: ItemRef) -> Path:
    """The library root, from the file's absolute path and its path relative to the root."""
    assert item.abspath is not None
    abspath = Path(item.abspath)
    depth = len(Path(item.path).parts)
    root = abspath
    for _ in range(depth):
        root = root.parent
    return root


def _plan_line(plan: work.Plan, action: str) -> str:
    """``tag: Number: (none) → 7, Year: (none) → 2013; rename → Saga #007 (2013).cbz``."""
    parts = [
        f"{name}: {old if old is not None else '(none)'} → {new}"
        for name, (old, new) in plan.changes.items()
    ]
    line = action + (": " + ", ".join(parts) if parts else "")
    if plan.new_relpath:
        line += f"; rename → {plan.new_relpath}"
    if plan.blocked:
        line += f" ({plan.blocked})"
    return line


def _planned_action(plan: work.Plan) -> str:
    parts = []
    if plan.rewrite:
        parts.append("convert" if plan.write_format != plan.format else "tag")
    if plan.new_relpath:
        parts.append("rename")
    if plan.blocked:
        parts.append("read-only")
    return "+".join(parts) or "unchanged"
