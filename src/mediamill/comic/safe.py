"""Change files so that a crash at any moment leaves the old file or the new one, never neither.

A rewrite goes to a hidden temp file next to the original (dot-prefixed, so Komga and Kavita
never list it), is flushed to disk, checked by the caller, and only then replaces the original
in one ``rename``. The folder is not flushed after a replace or a rename: that only makes the
new name durable sooner, and a power cut before the folder reaches the disk leaves the old
entry, whose file is whole (the next scan sees the file as it is). It is flushed before a
converted file's original is removed. A rename never overwrites: it uses
``renameat2(RENAME_NOREPLACE)`` where the kernel has it, else a hard link and an unlink (both
refuse an existing target), else a check then ``rename`` (a race-free guarantee is then not
possible).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_MARK = ".mediamill-"
TEMP_SUFFIX = ".tmp"
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _temp_prefix(final: Path) -> str:
    # a name of up to 255 bytes must leave room for the mark and the random part
    name = final.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    return f".{name}{TEMP_MARK}"


def temp_path_for(final: Path) -> Path:
    """A hidden temp file in ``final``'s folder, unique to this call."""
    return final.parent / f"{_temp_prefix(final)}{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"


def stale_temps(final: Path) -> list[Path]:
    """Temp files an interrupted rewrite of ``final`` left behind."""
    prefix = _temp_prefix(final)
    try:
        names = os.listdir(final.parent)
    except OSError:
        return []
    return [final.parent / n for n in names if n.startswith(prefix) and n.endswith(TEMP_SUFFIX)]


#: what ``fsync`` answers on a file system that cannot flush (some FUSE, SMB mounts)
_CANNOT_FLUSH = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """Flush ``path`` to disk. A file system that cannot flush (or open a folder) is let be;
    a flush that fails otherwise (``EIO``: the data may not be on the disk) raises, so that
    the original is not replaced by it."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some file systems (SMB, some FUSE) cannot open folders: nothing to flush
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _CANNOT_FLUSH:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(final: Path) -> Iterator[Path]:
    """A temp path next to ``final`` that is removed unless the caller moved it away."""
    tmp = temp_path_for(final)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def replace_with(
    final: Path, write: Callable[[Path], None], check: Callable[[Path], None]
) -> os.stat_result:
    """Write a new version of ``final`` with ``write(tmp)``, ``check(tmp)`` it, then swap it
    in atomically; returns the new file's stat. The original is untouched on any error.
    """
    with temp_file(final) as tmp:
        write(tmp)
        fsync_path(tmp)
        check(tmp)
        _keep_mode(final, tmp)
        os.replace(tmp, final)
    return os.stat(final)


def move_new(tmp: Path, final: Path) -> None:
    """Move a finished temp file to a new name that must not exist yet, and flush the
    folder (the caller removes the original next: the new name must be on disk first)."""
    rename_no_replace(tmp, final)
    fsync_path(final.parent, directory=True)


def _keep_mode(original: Path, new: Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(new, os.stat(original).st_mode & 0o7777)


def rename_no_replace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; raise ``FileExistsError`` if ``dst`` exists (never overwrite),
    ``NotADirectoryError`` if a file is where one of its folders should be."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # not "the name is taken": the folder cannot be made
        raise NotADirectoryError(
            errno.ENOTDIR, "a file is where a folder should be", exc.filename
        ) from None
    if _renameat2(src, dst):
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        # no hard links here (SMB, FAT, some FUSE): check, then rename
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "file exists", str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _renameat2(src: Path, dst: Path) -> bool:
    """True when renamed; False when this system has no ``renameat2`` for this file system."""
    func = getattr(_libc(), "renameat2", None)
    if func is None:
        return False
    result = func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(src))
