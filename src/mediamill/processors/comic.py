"""The ``comic`` processor: ComicInfo.xml from file and folder names, template renames,
conversions to .cbz/.cb7, each done safely and recorded so that it can be undone.

Options (``--set KEY=VALUE``):

* ``rules``: the ComicInfo fields to fill from the names, among series, number, volume, year,
  month, count, title, format (default ``series,number,volume,year``). A field that already
  has a value is kept unless ``overwrite`` is true or the job runs with ``--force``.
* ``rename``: a template such as ``{series} #{issue:03} ({year})`` (off by default).
* ``convert``: ``cbz`` or ``cb7``: write other formats (RAR, tar) as this; RAR is never
  written, so a RAR that needs tags is left alone until converted.
* ``duplicates``: a folder (relative to the library root) where a file whose new name is
  taken is moved.

A library sets its own defaults in ``.mediamill-comic.toml`` at its root (the same keys, e.g.
``rules = "series,number"`` and ``rename = "{series} #{issue:03}"``; hidden, so never an
item); the job's options win over it.

``process`` returns, as ``data``: ``action`` (unchanged, tagged, renamed, converted,
duplicate, conflict, read-only, joined with ``+``), ``format``, ``pages``, ``comicinfo``
(every field after the change), ``parsed`` (what the name says), ``changes`` (field →
[old, new]), ``rename`` ({from, to}) and ``change`` (what undo needs: both ComicInfo.xml and
both paths). A changed file is returned with an :class:`~mediamill.core.ItemUpdate` (its new
path, size and mtime), written with the result, so the next scan sees no change.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediamill.comic.options import ComicError, Options
from mediamill.core import ItemRef, ItemUpdate, Processed, Work
from mediamill.processors.base import Processor

if TYPE_CHECKING:
    from mediamill.comic.work import Plan


class ComicProcessor(Processor):
    """Tag, rename and convert comic archives; see the module docstring."""

    name = "comic"
    version = "1"
    # processes: about 3 ms of Python a file (planning, the ComicInfo XML, checking the copy)
    # holds the GIL, so threads use one core (2,000 files: 9 s on threads, 6 s on processes,
    # bench/comic.py); and a hostile archive that crashes libarchive costs one item, not the job
    work = Work.CPU
    # each rewrite also waits on fsync (10-20 ms on a busy disk): more processes than cores
    # overlap those waits
    default_workers = 4
    kinds = frozenset({"comic"})
    dry_run_processes = True
    result_options = ("rules", "overwrite", "rename", "convert", "duplicates")  # = OPTION_KEYS
    option_names = frozenset(result_options)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        # the job's own options, checked now so that a bad one fails the job at once
        self.job_options = {k: v for k, v in self.options.items() if k in OPTION_KEYS}
        if self.options.get("force"):
            self.job_options["overwrite"] = True
        Options.from_mapping(self.job_options)
        self.dry_run = bool(self.options.get("dry_run"))
        self._by_root: dict[Path, Options] = {}

    def settings_for(self, root: Path) -> Options:
        """The options for a library: its ``.mediamill-comic.toml``, then the job's."""
        settings = self._by_root.get(root)
        if settings is None:
            merged = {**_library_config(root), **self.job_options}
            settings = self._by_root[root] = Options.from_mapping(merged)
        return settings

    def process(self, item: ItemRef) -> dict[str, Any] | Processed:
        if item.abspath is None:
            raise ValueError(f"{item.path} is not a file")
        # the archive, XML and name-parsing code is loaded by the first item, not by a job
        # that has none to process (an unchanged re-run)
        from mediamill.comic import archive as arc
        from mediamill.comic import work as comic_work

        root = _library_root(item)
        settings = self.settings_for(root)
        # opened once: the plan reads it, a rewrite copies from it
        with arc.ComicArchive(Path(item.abspath)) as archive:
            plan = comic_work.plan(root, item.path, settings, archive)
            data = comic_work.describe(plan)
            if self.dry_run:
                data["action"] = _planned_action(plan)
                data["plan"] = _plan_line(plan, data["action"])
                return data
            applied = comic_work.apply(root, plan, settings, archive)
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


OPTION_KEYS = ("rules", "overwrite", "rename", "convert", "duplicates")
LIBRARY_CONFIG = ".mediamill-comic.toml"


def _library_config(root: Path) -> dict[str, Any]:
    path = root / LIBRARY_CONFIG
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ComicError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(config) - set(OPTION_KEYS))
    if unknown:
        raise ComicError(f"{path}: unknown key(s) {', '.join(unknown)}")
    return config


def _library_root(item: ItemRef) -> Path:
    """The library root, from the file's absolute path and its path relative to the root."""
    assert item.abspath is not None
    abspath = Path(item.abspath)
    depth = len(Path(item.path).parts)
    root = abspath
    for _ in range(depth):
        root = root.parent
    return root


def _plan_line(plan: Plan, action: str) -> str:
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


def _planned_action(plan: Plan) -> str:
    parts = []
    if plan.rewrite:
        parts.append("convert" if plan.write_format != plan.format else "tag")
    if plan.new_relpath:
        parts.append("rename")
    if plan.blocked:
        parts.append("read-only")
    return "+".join(parts) or "unchanged"
