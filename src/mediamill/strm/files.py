"""Write a file only when its bytes change (an existing file is replaced atomically, a new one
is written in place); find and remove orphaned exports."""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mediamill.strm.layout import UnsafePath, resolve_inside

#: temp files are ``.<name>.<random>.mmtmp`` next to their target
TEMP_SUFFIX = ".mmtmp"
EXPORT_SUFFIXES = (".strm", ".nfo")
#: unique temp names within this process (threads included; itertools.count is atomic in CPython)
_TEMP_IDS = itertools.count()
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)

StrPath = str | os.PathLike[str]


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def compare(path: StrPath, content: bytes) -> Change:
    """What writing ``content`` to ``path`` would change (reads only when sizes match)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return Change.CREATED
    if size != len(content):
        return Change.UPDATED
    try:
        with open(path, "rb") as handle:
            return Change.UNCHANGED if handle.read() == content else Change.UPDATED
    except FileNotFoundError:
        return Change.CREATED


def write_atomic(path: StrPath, content: bytes) -> None:
    """Replace ``path`` with ``content`` through a temp file in the same folder.

    Safe when several threads or processes write the same bytes to one path at once (each
    has its own temp file; ``os.replace`` is atomic), and never leaves a half-written file
    where a whole one was.
    No fsync per file: on a NAS that turns a 2,000 files/s export into a few hundred, and a
    crash can only lose whole files, which the next run writes again (content compare).
    """
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name[:64]}.{os.getpid()}-{next(_TEMP_IDS)}{TEMP_SUFFIX}")
    try:
        fd = os.open(tmp, _OPEN_NEW, 0o644)
    except FileNotFoundError:  # a new folder: make it (only now, not before every write)
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, _OPEN_NEW, 0o644)
    try:
        _write_all(fd, content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_all(fd: int, content: bytes) -> None:
    """Write every byte of ``content`` to ``fd`` (``os.write`` may write less), then close it."""
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_new(path: StrPath, content: bytes) -> bool:
    """Create ``path`` with ``content`` in place, if nothing is there (``False`` if something
    is: nothing is touched then).

    No temp file and rename, which cost a fifth more than the file itself on ext4: there is
    no old version to protect. A crash halfway can leave a short file, but its entry has no
    result yet, so the next run processes it again and the content compare replaces it.
    """
    try:
        fd = os.open(path, _OPEN_NEW, 0o644)
    except FileExistsError:
        return False
    try:
        _write_all(fd, content)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return True


def write_if_changed(
    path: StrPath, content: bytes, *, dry_run: bool = False, missing: bool = False
) -> Change:
    """Write ``content`` unless ``path`` already holds exactly these bytes: a new file in
    place, an existing one through a temp file (:func:`write_atomic`).

    ``missing``: the caller knows nothing is at ``path`` (its folder was just made), so
    there is nothing to compare.
    """
    if missing:
        if dry_run:
            return Change.CREATED
        try:
            if write_new(path, content):
                return Change.CREATED
        except FileNotFoundError:  # the folder went away meanwhile: the general way makes it
            pass
    change = compare(path, content)
    if change is not Change.UNCHANGED and not dry_run:
        write_atomic(path, content)
    return change


@dataclass(slots=True)
class _Folder:
    path: str
    #: for a folder this worker made (or, in a dry run, found missing): the names it has
    #: written into it so far; every other name there is known not to exist
    new_names: set[str] | None = None


class OutputFolders:
    """The folders of an output root as one worker meets them.

    Each folder is checked once: a plain name inside its parent (never ``..``), and a
    symlinked folder is resolved and must stay inside the root. A missing folder is made
    (unless ``create`` is false: a dry run), and the files of a folder this worker made need
    no compare, since nothing can be there yet: one ``lstat`` per new folder instead of a
    ``realpath`` per folder and a ``stat`` per file.
    """

    def __init__(self, root: StrPath, *, create: bool, limit: int = 4096) -> None:
        self.root = os.path.realpath(root)
        self.create = create
        self._limit = limit
        self._known: dict[str, _Folder] = {}

    def file(self, rel: str) -> tuple[str, bool]:
        """``(absolute path, known to be missing)`` of the file at ``rel`` (POSIX, relative)."""
        folder_rel, _, name = rel.rpartition("/")
        _check_name(name, "computed file name is not a plain name")
        folder = self._folder(folder_rel)
        path = os.path.join(folder.path, name)
        if folder.new_names is None or name in folder.new_names:
            return path, False
        folder.new_names.add(name)
        return path, True

    def _folder(self, rel: str) -> _Folder:
        found = self._known.get(rel)
        if found is not None:
            return found
        if rel:
            parent_rel, _, name = rel.rpartition("/")
            _check_name(name, "computed path leaves the output root")
            found = self._child(self._folder(parent_rel), name, rel)
        else:
            found = _Folder(self.root)
        if len(self._known) >= self._limit:  # an entry's files share one folder: a small cache
            self._known.clear()
        self._known[rel] = found
        return found

    def _child(self, parent: _Folder, name: str, rel: str) -> _Folder:
        path = os.path.join(parent.path, name)
        for _attempt in range(2):
            if parent.new_names is None:  # in a new folder, nothing can be there yet
                try:
                    mode = os.lstat(path).st_mode
                except FileNotFoundError:
                    pass
                else:
                    if stat.S_ISLNK(mode):
                        return _Folder(str(resolve_inside(Path(self.root), rel)))
                    return _Folder(path)
            if not self.create:
                return _Folder(path, set())
            try:
                os.mkdir(path)
            except FileExistsError:  # made meanwhile by another writer: look at it again
                parent = _Folder(parent.path)
                continue
            return _Folder(path, set())
        return _Folder(str(resolve_inside(Path(self.root), rel)))


def _check_name(name: str, message: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath(message)


def iter_exported(root: StrPath, trees: Collection[str]) -> Iterator[str]:
    """Relative POSIX paths of every .strm/.nfo (and stale temp file) under ``trees``.

    Symlinked folders are not followed, so nothing outside the output root is listed.
    """
    for tree in trees:
        top = os.path.join(root, tree)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        pending = [(top, tree)]
        while pending:
            folder, rel = pending.pop()
            try:
                listing = os.scandir(folder)
            except OSError:  # gone or unreadable meanwhile: as os.walk, skip it
                continue
            with listing:
                for entry in listing:
                    name = entry.name
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    if is_dir:
                        if not entry.is_symlink():
                            pending.append((entry.path, f"{rel}/{name}"))
                    elif name.endswith(EXPORT_SUFFIXES) or (
                        name.startswith(".") and name.endswith(TEMP_SUFFIX)
                    ):
                        yield f"{rel}/{name}"


def empty_dirs(root: Path, trees: Collection[str], gone: Collection[str] = ()) -> list[Path]:
    """Folders under ``trees`` (not the trees themselves) that hold nothing, deepest first.

    A folder whose only content is empty folders counts as empty; files whose relative
    path is in ``gone`` count as already removed (what a preview of cleanup needs).
    """
    found: list[Path] = []
    for tree in trees:
        top = root / tree
        if not top.is_dir() or top.is_symlink():
            continue
        emptied: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(top, topdown=False, followlinks=False):
            if dirpath == str(top):
                continue
            children = [d for d in dirnames if os.path.join(dirpath, d) not in emptied]
            if gone and filenames:
                rel_dir = Path(dirpath).relative_to(root).as_posix()
                files = [f for f in filenames if f"{rel_dir}/{f}" not in gone]
            else:
                files = filenames
            if not files and not children:
                emptied.add(dirpath)
                found.append(Path(dirpath))
    return found


def emptied_parents(root: Path, trees: Collection[str], gone: Collection[str]) -> list[Path]:
    """The folders that hold nothing but files in ``gone`` (relative paths) and folders that
    empty too, deepest first, looking only at the parents of ``gone``: what
    :func:`empty_dirs` finds for a cleanup that knows which files it removes, without a walk
    over every folder. The trees themselves are never listed."""
    candidates: set[str] = set()
    for rel in gone:
        parts = rel.split("/")
        if parts[0] in trees:
            candidates.update("/".join(parts[:i]) for i in range(2, len(parts)))
    emptied: set[str] = set()
    found: list[Path] = []
    for rel_dir in sorted(candidates, key=lambda d: d.count("/"), reverse=True):
        folder = root / rel_dir
        if folder.is_symlink():
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        if all(f"{rel_dir}/{name}" in gone or f"{rel_dir}/{name}" in emptied for name in names):
            emptied.add(rel_dir)
            found.append(folder)
    return found
