"""The ``strm`` processor: export VOD entries as .strm + .nfo files, incrementally.

``process`` writes an entry's files only when their bytes change (an existing file is
replaced atomically), so a re-run touches nothing. ``finish`` recomputes, from the catalog,
the files every present entry owns and removes (``cleanup="apply"``) or lists
(``"preview"``) the other .strm/.nfo files under the Movies and TV Shows trees, then the
folders left empty. A renamed entry thus ends with its new files written by ``process``
and its old ones reported or removed by ``finish``.

The output root holds :data:`MARKER`, a small hidden JSON file: the id of the export the
folder holds (part of every result's version, so an emptied or replaced folder is exported
again) and, per library, what the last cleanup established: when the last full walk found
no stray but files of missing entries (later cleanups check only those, until a full walk
is due again after :data:`FULL_WALK_EVERY`), and the catalog state at which no stray was
left at all (while nothing has changed since, ``finish`` skips the cleanup).

Options:

* ``output`` (required): the output root; created if missing when its parent exists.
* ``cleanup``: ``"off"``, ``"preview"`` (default) or ``"apply"``.
* ``dry_run``: write nothing; actions become ``would_create``/``would_update``.
* layout: ``movies_dir``, ``shows_dir``, ``strip_prefix`` (regex, ``""`` disables),
  ``disambiguate`` (``"auto"``/``"always"``), ``url_base``, and ``templates`` (a mapping of
  ``movie_name``, ``movie_name_no_year``, ``show_name``, ``show_name_no_year``,
  ``season_dir``, ``episode_name``, ``episode_name_untitled``); see
  :class:`mediamill.strm.layout.Layout`.
* ``report``: a ``.json`` or ``.csv`` file that ``finish`` writes with every change.
* ``refresh``: ``{"kind": "jellyfin"|"emby"|"plex", "url": ..., "token": ...}`` (token may
  come from ``MEDIAMILL_REFRESH_TOKEN``): ask the media server to rescan after ``finish``;
  a failure is reported in the summary, never fatal.

``process`` returns ``{"action": "created"|"updated"|"unchanged"|"would_create"|
"would_update", "files": [relative paths the entry owns], "written": n, "changed": [...]}``;
``finish`` returns ``{"cleanup", "removed", "would_remove", "removed_dirs",
"would_remove_dirs", "collisions", ...}``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from mediamill.processors.base import FinishContext, ItemRef, Processor, Skip, Work
from mediamill.strm.files import (
    Change,
    OutputFolders,
    emptied_parents,
    empty_dirs,
    iter_exported,
    write_atomic,
    write_if_changed,
)
from mediamill.strm.layout import Layout, UnsafePath, resolve_inside

log = logging.getLogger(__name__)

_CLEANUP_MODES = ("off", "preview", "apply")
_REPORT_LOCK = threading.Lock()
_PARTS_SUFFIX = ".parts.jsonl"
_WOULD = {"created": "would_create", "updated": "would_update", "moved": "would_move"}
#: in the output root: which export this folder holds, and when its last cleanup found it clean
MARKER = ".mediamill-strm.json"
#: after a clean cleanup, the next ones look only at the files of entries that went missing;
#: every file is walked again once this many seconds have passed since the last full walk
#: (strays of other origins: a crash between writing a file and recording it, a copied file)
FULL_WALK_EVERY = 24 * 3600.0


class StrmProcessor(Processor):
    """Writes ``Movies/...`` and ``TV Shows/...`` .strm/.nfo files; see the module docstring."""

    name = "strm"
    # 2: .nfo files carry <ratings> and <actor>, no placeholder uniqueid, "Episode N" titles
    version = "2"
    work = Work.IO
    option_names = frozenset(
        {"output", "cleanup", "report", "refresh", "templates", *Layout.__dataclass_fields__}
    )
    kinds = frozenset({"movie", "episode"})
    #: a dry run plans every file and reports would_create/would_update and the cleanup
    dry_run_processes = True
    # creating files is bound by the file system (metadata locks, writeback), not by this
    # process: more writers add contention, and one steady writer is what a NAS wants.
    # --workers still raises it.
    default_workers = 1
    # an entry takes well under a millisecond when the file system is fast: big batches keep
    # the worker busy while the runner collects outcomes in rounds
    batch_size = 256
    # a renamed title's old files are known from its last result: process moves them
    wants_previous = True
    # another output folder, layout or URL base makes other files: results made for the old
    # ones are not fresh
    #: the media server's token: used by this run, never stored (a job run by the server
    #: reads it from ``MEDIAMILL_REFRESH_TOKEN``)
    secret_options = ("refresh.token",)
    result_options = (
        "output",
        "movies_dir",
        "shows_dir",
        "strip_prefix",
        "disambiguate",
        "url_base",
        "url_mode",
        "templates",
    )

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        output = self.options.get("output")
        if not output or not isinstance(output, (str, os.PathLike)):
            raise ValueError("the strm processor needs option 'output' (the output root)")
        self.root = Path(output).expanduser().absolute()
        self.cleanup = str(self.options.get("cleanup", "preview"))
        if self.cleanup not in _CLEANUP_MODES:
            raise ValueError("option 'cleanup' must be 'off', 'preview' or 'apply'")
        self.dry_run = bool(self.options.get("dry_run", False))
        self.layout = Layout.from_options(self.options)
        self._folders: OutputFolders | None = None
        report = self.options.get("report")
        self.report = Path(report).expanduser().absolute() if report else None
        refresh = self.options.get("refresh")
        if refresh is not None and not isinstance(refresh, Mapping):
            raise ValueError("option 'refresh' must be a mapping with kind, url and token")
        if refresh and refresh.get("kind") not in ("jellyfin", "emby", "plex"):
            raise ValueError("refresh kind must be 'jellyfin', 'emby' or 'plex'")

    def result_version(self) -> str:
        """The version, layout options, and the output folder's export id (kept in
        :data:`MARKER`): a folder that was emptied or replaced (no marker) gets a new id, so
        every entry is exported into it again rather than taken for up to date."""
        return f"{super().result_version()}@{self._export_id()}"

    def _export_id(self) -> str:
        marker = self._read_marker()
        if isinstance(marker.get("export"), str):
            return str(marker["export"])
        if self.dry_run:
            return "new"
        export = uuid.uuid4().hex[:12]
        try:
            self.setup()
            self._write_marker({"export": export})
        except (OSError, RuntimeError) as exc:
            log.warning("strm: cannot keep %s in %s (%s)", MARKER, self.root, exc)
            return "new"
        return export

    def _read_marker(self) -> dict[str, Any]:
        try:
            marker = json.loads((self.root / MARKER).read_bytes())
        except (OSError, ValueError):
            return {}
        return marker if isinstance(marker, dict) else {}

    def _write_marker(self, marker: Mapping[str, Any]) -> None:
        content = json.dumps(marker, indent=1, sort_keys=True).encode() + b"\n"
        write_atomic(self.root / MARKER, content)

    def setup(self) -> None:
        if self.dry_run or self.root.is_dir():
            return
        try:
            self.root.mkdir(parents=False, exist_ok=True)
        except FileNotFoundError:
            raise RuntimeError(
                f"output root {self.root} cannot be created: its parent folder does not exist"
            ) from None

    # -- per item --------------------------------------------------------------------------

    def process(self, item: ItemRef) -> dict[str, Any]:
        if item.kind not in self.kinds:
            raise Skip(f"the strm processor does not export items of kind {item.kind!r}")
        planned = self.layout.plan(item.path, item.kind, item.meta or {})
        folders = self._folders
        if folders is None:  # made on first use: setup has made the root by then
            folders = self._folders = OutputFolders(self.root, create=not self.dry_run)
        changed: list[str] = []
        strm_change = Change.UNCHANGED
        for index, planned_file in enumerate(planned):
            target, missing = folders.file(planned_file.path)
            change = write_if_changed(
                target, planned_file.content, dry_run=self.dry_run, missing=missing
            )
            if index == 0:
                strm_change = change
            if change is not Change.UNCHANGED:
                changed.append(planned_file.path)
        files = [planned_file.path for planned_file in planned]
        moved = self._remove_old_files(item, set(files))
        if strm_change is Change.CREATED:
            action = "moved" if moved else "created"
        elif changed:
            action = "updated"
        else:
            action = "unchanged"
        if self.dry_run and action != "unchanged":
            action = _WOULD[action]
        if (changed or moved) and self.report is not None:
            self._journal({"action": action, "key": item.path, "files": changed + moved})
        return {
            "action": action,
            "files": files,
            "written": len(changed),
            "changed": changed,
            "moved_from": moved,
            "root": str(self.root),
        }

    def _remove_old_files(self, item: ItemRef, current: set[str]) -> list[str]:
        """The entry's files from its last export that its new name no longer uses (a
        renamed title): removed, with folders they leave empty. Only in the same output root,
        and never a show's tvshow.nfo (other episodes share it; cleanup sees to it)."""
        previous = item.previous or {}
        if previous.get("root") != str(self.root):
            return []
        old = [
            rel
            for rel in previous.get("files", ())
            if isinstance(rel, str) and rel not in current and not rel.endswith("/tvshow.nfo")
        ]
        for rel in old:
            try:
                target = resolve_inside(self.root, rel)
            except UnsafePath:
                continue
            if self.dry_run:
                continue
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            folder = target.parent
            while self.root not in (folder, folder.parent):  # keep the root and its trees
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        return old

    def _journal(self, row: Mapping[str, Any]) -> None:
        """Append one change to the report's journal (one line, safe across threads)."""
        assert self.report is not None
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        parts = self.report.with_name(self.report.name + _PARTS_SUFFIX)
        with _REPORT_LOCK:
            parts.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(parts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    # -- per job ---------------------------------------------------------------------------

    def finish(self, ctx: FinishContext) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "cleanup": self.cleanup,
            "removed": [],
            "would_remove": [],
            "removed_dirs": 0,
            "would_remove_dirs": 0,
            "collisions": [],
        }
        dry_run = self.dry_run or ctx.dry_run
        if self.cleanup != "off":
            self._cleanup(ctx, summary, dry_run=dry_run)
        if self.report is not None:
            summary["report"] = str(self.report)
            self._write_report(summary)
        refresh = self.options.get("refresh")
        if refresh and not dry_run:
            summary["refresh"] = refresh_media_server(refresh)
        return summary

    def _owned(self, ctx: FinishContext, summary: dict[str, Any]) -> tuple[dict[str, str], int]:
        """Every file a present entry owns (path -> entry key), and how many entries own some."""
        owners: dict[str, str] = {}
        collisions: list[dict[str, str]] = []
        entries = 0
        # every pending entry was processed before finish, so an ok result's file list is
        # current; entries without one (failed, limited, or a dry run) are laid out again
        # from their metadata, which is decoded only for them
        for key, kind, status, data, meta in ctx.catalog.iter_results_raw_meta(
            ctx.library_id, self.name
        ):
            if kind not in self.kinds:
                continue
            if not ctx.dry_run and status == "ok" and data:
                paths = list(data.get("files", ()))
            else:
                try:
                    paths = self.layout.paths(key, kind, json.loads(meta) if meta else {})
                except ValueError:
                    continue
            entries += 1
            for path in paths:
                owner = owners.setdefault(path, key)
                if owner != key and not path.endswith("/tvshow.nfo"):
                    collisions.append({"path": path, "keys": f"{owner} {key}"})
        summary["collisions"] = collisions
        return owners, entries

    def _cleanup(self, ctx: FinishContext, summary: dict[str, Any], *, dry_run: bool) -> None:
        if ctx.catalog is None:
            summary["cleanup_skipped"] = "no catalog to list the present entries"
            return
        if not self.root.is_dir():
            return
        # the walk over every exported file is skipped when it cannot find anything: the
        # last one left no stray file, and since then no entry, no result and no layout
        # option changed, and this job exported nothing. When something changed, only the
        # files of entries that went missing are looked at, until a full walk is due.
        marker = self._read_marker()
        stamp = self._cleanup_stamp(ctx)
        clean = marker.get("clean")
        clean = clean if isinstance(clean, dict) else {}
        key = str(ctx.library_root or ctx.library_id)
        state = clean.get(key)
        state = state if isinstance(state, dict) else {}
        exported = ctx.counters.get("ok", 0) + ctx.counters.get("failed", 0)
        if not exported and state.get("stamp") == stamp:
            summary["cleanup_skipped"] = (
                "nothing changed since the last cleanup, which found no stray files"
            )
            return
        walked = state.get("walked")
        targeted = isinstance(walked, (int, float)) and time.time() - walked < FULL_WALK_EVERY
        summary["cleanup_scope"] = "files of missing entries" if targeted else "every file"
        left = self._walk(ctx, summary, dry_run=dry_run, targeted=targeted)
        if dry_run:
            return
        # what later cleanups may rely on: "walked" while every stray file left is one of a
        # missing entry (a targeted cleanup finds those), "stamp" while none is left at all
        if not targeted and left:
            gone = set(self._gone_files(ctx))
            known = all(path in gone for path in left)
        else:
            known = True
        state = {}
        if known:
            state["walked"] = walked if targeted else time.time()
        if not left and not summary["collisions"]:
            state["stamp"] = stamp
        if state:
            clean[key] = state
        else:
            clean.pop(key, None)
        if marker.get("clean") != clean and isinstance(marker.get("export"), str):
            marker["clean"] = clean
            with contextlib.suppress(OSError):
                self._write_marker(marker)

    def _cleanup_stamp(self, ctx: FinishContext) -> str:
        """What the cleanup's outcome depends on besides the output folder itself."""
        catalog_state = ctx.catalog.export_stamp(ctx.library_id, self.name)
        return f"{self.result_version()}:{catalog_state}"

    def _walk(
        self, ctx: FinishContext, summary: dict[str, Any], *, dry_run: bool, targeted: bool
    ) -> list[str]:
        """Find (and in ``apply`` mode remove) stray files; returns those still there.
        ``targeted``: look only at the files of entries that went missing."""
        owned, entries = self._owned(ctx, summary)
        found = self._gone_files(ctx) if targeted else iter_exported(self.root, self.layout.trees)
        orphans = sorted(
            path
            for path in found
            if path not in owned and unicodedata.normalize("NFC", path) not in owned
        )
        if entries == 0 and orphans:
            summary["cleanup_skipped"] = (
                "the library has no entries: refusing to remove every exported file "
                "(an empty or failed provider listing looks the same)"
            )
            summary["would_remove"] = orphans
            return orphans
        if self.cleanup == "preview" or dry_run:
            summary["would_remove"] = orphans
            if orphans:  # only removals empty a folder
                emptied = self._emptied(set(orphans), targeted=targeted)
                summary["would_remove_dirs"] = len(emptied)
            return orphans
        removed: list[str] = []
        left: list[str] = []
        for path in orphans:
            try:
                resolve_inside(self.root, path).unlink()
                removed.append(path)
            except FileNotFoundError:
                continue
            except UnsafePath:
                left.append(path)
            except OSError as exc:
                left.append(path)
                log.warning("strm cleanup could not remove %s: %s", path, exc.strerror)
        summary["removed"] = removed
        removed_dirs = 0
        for folder in self._emptied(set(removed), targeted=targeted) if removed else ():
            with contextlib.suppress(OSError):
                folder.rmdir()
                removed_dirs += 1
        summary["removed_dirs"] = removed_dirs
        return left

    def _emptied(self, gone: set[str], *, targeted: bool) -> list[Path]:
        """The folders left empty once the files ``gone`` are removed (they may be already):
        looking only at their parents when the cleanup is targeted, else at every folder."""
        trees = self.layout.trees
        if targeted:
            return emptied_parents(self.root, trees, gone)
        return empty_dirs(self.root, trees, gone=gone)

    def _gone_files(self, ctx: FinishContext) -> Iterator[str]:
        """The files that entries which went missing had here (from their last result, or
        laid out from their metadata) and that are still there."""
        trees = set(self.layout.trees)
        seen: set[str] = set()
        for key, kind, status, data, meta in ctx.catalog.iter_results_raw_meta(
            ctx.library_id, self.name, present=False
        ):
            if kind not in self.kinds:
                continue
            if status == "ok" and data and data.get("root") == str(self.root):
                paths = [p for p in data.get("files", ()) if isinstance(p, str)]
            else:
                try:
                    paths = self.layout.paths(key, kind, json.loads(meta) if meta else {})
                except ValueError:
                    continue
            for path in paths:
                if path in seen or path.split("/", 1)[0] not in trees:
                    continue
                seen.add(path)
                try:
                    if os.path.lexists(resolve_inside(self.root, path)):
                        yield path
                except UnsafePath:
                    continue

    def _write_report(self, summary: Mapping[str, Any]) -> None:
        assert self.report is not None
        rows: list[dict[str, str]] = []
        parts = self.report.with_name(self.report.name + _PARTS_SUFFIX)
        with _REPORT_LOCK:
            try:
                lines = parts.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                lines = []
            for line in lines:
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    rows.extend(
                        {"action": entry["action"], "key": entry["key"], "path": path}
                        for path in entry["files"]
                    )
            for action in ("removed", "would_remove"):
                rows.extend({"action": action, "key": "", "path": p} for p in summary[action])
            if self.report.suffix.lower() == ".csv":
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=["action", "key", "path"])
                writer.writeheader()
                writer.writerows(rows)
                content = buffer.getvalue().encode("utf-8")
            else:
                content = (json.dumps(rows, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
            write_atomic(self.report, content)
            parts.unlink(missing_ok=True)


def refresh_media_server(refresh: Mapping[str, Any], *, timeout: float = 15.0) -> dict[str, Any]:
    """Ask Jellyfin/Emby (``POST /Library/Refresh``) or Plex (scan all sections) to rescan.

    Returns ``{"ok": bool, "detail": str}``; never raises, never puts the token in ``detail``.
    """
    kind = str(refresh.get("kind"))
    url = str(refresh.get("url") or "").rstrip("/")
    token = str(refresh.get("token") or os.environ.get("MEDIAMILL_REFRESH_TOKEN", ""))
    if not url or not token:
        return {"ok": False, "detail": "refresh needs a url and a token"}
    try:
        with httpx.Client(timeout=timeout) as client:
            if kind == "plex":
                response = client.get(
                    f"{url}/library/sections/all/refresh", headers={"X-Plex-Token": token}
                )
            else:
                response = client.post(f"{url}/Library/Refresh", headers={"X-Emby-Token": token})
    except httpx.HTTPError as exc:
        return {"ok": False, "detail": f"{kind} refresh failed: {type(exc).__name__}"}
    if response.is_success:
        return {"ok": True, "detail": f"{kind} refresh requested (HTTP {response.status_code})"}
    return {"ok": False, "detail": f"{kind} refresh answered HTTP {response.status_code}"}
