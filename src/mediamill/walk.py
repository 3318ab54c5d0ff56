"""Walk a folder into a listing: every file's path, size and mtime, spooled, with a digest.

This module imports nothing of mediamill's and little of the standard library, so that the
``mediamill run``/``scan`` commands can start walking their folder in a child process
(:func:`start_ahead`) before the rest of mediamill has loaded: on an unchanged rescan of
100,000 files the walk and the imports each take about 0.3 s, and one no longer waits for
the other. The scan (``sources/folder.py``) takes that walk if it is of its library's root
(:func:`take_ahead`), else walks in line (:func:`list_folder`); the two give the same
:class:`Listing`.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import stat
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import IO, Any

from mediamill.names import shown_path

#: names that are NAS or OS housekeeping, never media
IGNORED_NAMES = frozenset(
    {
        "@eaDir",
        "#recycle",
        "#snapshot",
        "$RECYCLE.BIN",
        "lost+found",
        "System Volume Information",
        "Thumbs.db",
        "desktop.ini",
    }
)
#: name endings of files still being written by a browser, a downloader or an editor: never
#: media yet (a ``.part`` renamed to its final name is, and is found then)
TEMP_SUFFIXES = (".part", ".crdownload", ".partial", ".download", ".tmp", ".mmtmp")
CHUNK = 2000  # files per spooled record
PROGRESS_EVERY = 10_000  # files between two progress reports of a walk

#: one file the walk found: (path as the catalog shows it, size, mtime_ns, absolute path)
Found = tuple[str, int, int, str]
#: one file of a listing: (path as the catalog shows it, size, mtime_ns, path from the root),
#: the last ``None`` when it is the shown path (every name that is valid UTF-8)
Record = tuple[str, int, int, str | None]


class ScanError(RuntimeError):
    """The library root itself cannot be walked (gone, not a folder, unreadable)."""


def is_temporary(name: str) -> bool:
    """Whether a file name is hidden or a temp file: dotfiles (``.~lock.x#``, mediamill's own
    ``.name.123.mmtmp``), Office's ``~$x.docx``, and names ending as :data:`TEMP_SUFFIXES`.
    The walk passes over them, and a watcher ignores their events."""
    return name[0] == "." or name.startswith("~$") or name.lower().endswith(TEMP_SUFFIXES)


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


_by_sort_key = itemgetter(0)
#: last characters of :data:`TEMP_SUFFIXES`: a name ending otherwise needs no closer look
_TEMP_ENDS = frozenset("tdlpTDLP")


def _listing(directory: str) -> list[tuple[str, str, bool, os.DirEntry[str]]]:
    """A folder's entries in path order as ``(sort key, shown name, is a folder, entry)``.

    A sub-folder sorts as ``name/``, so walking depth first yields paths in exactly the order
    the catalog sorts them (code points = UTF-8 bytes)."""
    keyed = []
    with os.scandir(directory) as it:
        for entry in it:
            name = entry.name
            if name in IGNORED_NAMES:
                continue
            if name[0] == "." or (
                (name[-1] in _TEMP_ENDS or name[0] == "~") and is_temporary(name)
            ):
                continue
            shown = name if name.isascii() else shown_path(name)
            if entry.is_dir(follow_symlinks=False):
                keyed.append((shown + "/", shown, True, entry))
            else:
                keyed.append((shown, shown, False, entry))
    keyed.sort(key=_by_sort_key)
    return keyed


def walk(root: str, problems: list[tuple[str, str]], under: str = "") -> Iterator[Found]:
    """Every regular file under ``root``, in path order, links resolved inside the root only.

    Folders reached through a link are walked after every real folder (so a folder's own path
    wins over an alias of it); their files come last, out of path order. Files are plain
    tuples, with one ``stat`` each: an unchanged rescan spends its time here. Entries passed
    over (broken links, links out of the root, unreadable ones) go to ``problems``.

    ``under`` (a folder's path from the root, as the catalog shows it) walks only that
    subtree, with paths still from the root: a watcher's scan of one changed folder. A
    subtree that is gone yields nothing.
    """
    real_root = os.path.realpath(root)
    start = os.path.join(real_root, under) if under else real_root
    try:
        root_stat = os.stat(start)
        root_listing = _listing(start)
    except FileNotFoundError:
        if under and os.path.isdir(real_root):
            return
        raise ScanError(f"cannot read library root {root}: no such folder") from None
    except OSError as exc:
        raise ScanError(f"cannot read library root {root}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        if under:
            return  # a file now where the folder was: the parent's scan finds it
        raise ScanError(f"library root {root} is not a folder")
    if under and not inside(os.path.realpath(start), real_root):
        raise ScanError(f"{under} leads out of the library root {root}")
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    # (prefix of the shown paths in a folder, that folder's remaining sorted entries)
    stack: list[tuple[str, Iterator[tuple[str, str, bool, os.DirEntry[str]]]]] = [
        (under + "/" if under else "", iter(root_listing))
    ]
    linked: list[tuple[str, str, tuple[int, int]]] = []  # (path, shown path, folder key)
    is_regular, is_folder = stat.S_ISREG, stat.S_ISDIR

    def descend(path: str, shown: str) -> None:
        try:
            stack.append((shown + "/", iter(_listing(path))))
        except OSError as exc:
            problems.append((shown, f"unreadable folder: {exc.strerror}"))

    while stack or linked:
        if not stack:
            path, shown, key = linked.pop(0)
            if key not in visited:
                visited.add(key)
                descend(path, shown)
            continue
        prefix, entries = stack[-1]
        for _key, name, is_dir, entry in entries:
            shown = prefix + name
            try:
                if is_dir:
                    st = entry.stat(follow_symlinks=False)
                else:
                    if entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if not os.path.exists(target):
                            problems.append((shown, "broken symlink"))
                            continue
                        if not inside(target, real_root):
                            problems.append((shown, "symlink points outside the library root"))
                            continue
                    st = entry.stat()  # follows links (inside the root, checked above)
            except OSError as exc:
                problems.append((shown, f"unreadable: {exc.strerror}"))
                continue
            mode = st.st_mode
            if is_regular(mode):
                yield shown, st.st_size, st.st_mtime_ns, entry.path
            elif is_folder(mode):
                key = (st.st_dev, st.st_ino)
                if key in visited:
                    continue  # a link loop, or the same folder reached twice
                if not is_dir:  # a link to a folder: walked after the real ones
                    linked.append((entry.path, shown, key))
                    continue
                visited.add(key)
                descend(entry.path, shown)
                break  # depth first: this folder's entries resume after the sub-folder's
        else:
            stack.pop()


class Listing:
    """A finished walk of a folder: how many files, what was passed over, and a digest of it
    all; the files themselves wait in an anonymous temp file (``CHUNK`` to a record), so a
    tree of any size costs the same memory.

    Two walks of a tree that did not change have the same ``digest``: same files, sizes,
    mtimes and problems, in the same order. The scan compares it with the one it stored
    after its last complete pass and, when equal, has nothing to compare file by file.
    """

    __slots__ = ("_spool", "count", "digest", "problems", "real_root")

    def __init__(
        self,
        real_root: str,
        count: int,
        digest: str,
        problems: list[tuple[str, str]],
        spool: IO[bytes],
    ) -> None:
        self.real_root, self.count, self.digest = real_root, count, digest
        self.problems, self._spool = problems, spool

    def __iter__(self) -> Iterator[Record]:
        """The files, in the order the walk found them."""
        spool = self._spool
        spool.seek(0)
        while header := spool.read(8):
            # marshal.load on a file reads it a few bytes at a time: 3x slower than this
            yield from marshal.loads(spool.read(int.from_bytes(header, "little")))  # noqa: S302 - our own spool

    def path(self, record: Record) -> str:
        """The absolute path of one of its files."""
        shown, _size, _mtime_ns, rel = record
        return os.path.join(self.real_root, shown if rel is None else rel)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spool_file() -> IO[bytes]:
    """An anonymous read-write temp file (``tempfile`` costs 25 ms to import)."""
    folder = os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - the system's temp dir
    if hasattr(os, "O_TMPFILE"):
        try:
            return os.fdopen(os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600), "w+b")
        except OSError:
            pass  # a file system without O_TMPFILE: a named file, unlinked at once
    import tempfile

    return tempfile.TemporaryFile()


def _walk_into(
    root: str,
    spool: IO[bytes],
    on_found: Callable[[int], None] | None = None,
    under: str = "",
) -> tuple[int, str, list[tuple[str, str]]]:
    """Walk ``root`` into ``spool``: ``(files, digest, problems)``.

    A spooled file is a :data:`Record`; a spool record is its length (8 bytes) and a
    marshalled list of them. The digest is over exactly those lists (marshal format 2 has no
    back-references, so equal data gives equal bytes).
    """
    real_root = os.path.realpath(root)
    skip = len(real_root) + 1
    problems: list[tuple[str, str]] = []
    digest = hashlib.blake2b(digest_size=32)
    chunk: list[Record] = []
    count = 0

    def flush() -> None:
        record = marshal.dumps(chunk, 2)
        digest.update(record)
        spool.write(len(record).to_bytes(8, "little"))
        spool.write(record)
        chunk.clear()

    for shown, size, mtime_ns, path in walk(root, problems, under):
        rel = path[skip:]
        chunk.append((shown, size, mtime_ns, None if rel == shown else rel))
        count += 1
        if len(chunk) == CHUNK:
            flush()
            if on_found is not None and count % PROGRESS_EVERY == 0:
                on_found(count)
    if chunk:
        flush()
    spool.flush()
    digest.update(marshal.dumps(problems, 2))
    return count, digest.hexdigest(), problems


def list_folder(
    root: str, on_found: Callable[[int], None] | None = None, *, under: str = ""
) -> Listing:
    """Walk ``root`` (or only its subtree ``under``) now, in this process. Raises
    :class:`ScanError` if it cannot be read."""
    try:
        spool = _spool_file()
    except OSError as exc:
        raise _spool_error(root, exc) from exc
    try:
        count, digest, problems = _walk_into(root, spool, on_found, under)
    except OSError as exc:  # the walk reports its own; this is the temp file's
        spool.close()
        raise _spool_error(root, exc) from exc
    except BaseException:
        spool.close()
        raise
    return Listing(os.path.realpath(root), count, digest, problems, spool)


def _spool_error(root: str, exc: OSError) -> ScanError:
    return ScanError(
        f"cannot keep the listing of {root} in a temp file ({exc.strerror or exc}): "
        "set TMPDIR to a folder with room (about 70 bytes a file)"
    )


# ------------------------------------------------------------------ walking ahead


class _Ahead:
    """A walk running in a child process: its pid, the pipe it reports on, its spool."""

    __slots__ = ("pid", "real_root", "reports", "spool")

    def __init__(self, pid: int, reports: IO[bytes], real_root: str, spool: IO[bytes]) -> None:
        self.pid, self.reports, self.real_root, self.spool = pid, reports, real_root, spool


#: the walk started ahead in this process, until it is taken or discarded (one at most)
_started: dict[str, _Ahead] = {}

#: options of ``run`` and ``scan`` that take a value (a test checks this against the CLI)
VALUE_OPTIONS = frozenset(
    {
        "--db",
        "--broker",
        "-w",
        "--workers",
        "--batch-size",
        "--rate",
        "-e",
        "--executor",
        "--limit",
        "--timeout",
        "--adaptive-latency",
        "-o",
        "--output",
        "--cleanup",
        "--report",
        "--set",
    }
)


def folder_argument(argv: list[str]) -> str | None:
    """The folder a ``mediamill run PROCESSOR FOLDER …`` or ``mediamill scan FOLDER`` command
    line will scan, or ``None`` for every other command line (or ``--help``)."""
    positionals: list[str] = []
    options_done = False
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif options_done or not arg.startswith("-") or arg == "-":
            positionals.append(arg)
        elif arg == "--":
            options_done = True
        elif arg in ("-h", "--help"):
            return None
        elif arg in VALUE_OPTIONS:
            skip_value = True
    wanted = {"run": 2, "scan": 1}.get(positionals[0] if positionals else "")
    if wanted is None or len(positionals) <= wanted:
        return None
    target = positionals[wanted]
    return target if os.path.isdir(target) else None


def start_ahead(argv: list[str]) -> None:
    """If ``argv`` is a command that scans a folder, start walking it in a child process.

    Call it first thing, before other threads exist (the child is a plain ``fork``). Ctrl-C
    ends the child with the command; a walk nobody takes is killed at exit (:func:`discard`);
    a child whose command was killed outright stops at its next progress report (every
    ``PROGRESS_EVERY`` files), when writing to the closed pipe fails.
    """
    folder = folder_argument(argv)
    if folder is None or _started or not hasattr(os, "fork"):
        return
    import atexit
    import signal

    try:
        spool = _spool_file()
        read_end, write_end = os.pipe()
        pid = os.fork()
    except OSError:
        return  # no temp file or no process to spare: the scan walks in line (and says why)
    if pid == 0:  # the child: walk, report, and leave without running any exit handler
        status = 0
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            report = _walk_and_report(folder, spool, write_end)
            _write_all(write_end, marshal.dumps(report, 2))
        except BaseException:  # noqa: BLE001 - the parent walks in line instead
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    _started["walk"] = _Ahead(pid, os.fdopen(read_end, "rb"), os.path.realpath(folder), spool)
    atexit.register(discard)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _walk_and_report(folder: str, spool: IO[bytes], reports: int) -> tuple[Any, ...]:
    def on_found(count: int) -> None:
        _write_all(reports, marshal.dumps(("found", count), 2))

    try:
        count, digest, problems = _walk_into(folder, spool, on_found)
    except ScanError as exc:
        return ("error", str(exc))
    return ("done", count, digest, problems)


def take_ahead(root: str, on_found: Callable[[int], None] | None = None) -> Listing | None:
    """The walk started ahead of ``root``, once it has finished; ``None`` when there is none
    for that folder (or it broke: then the caller walks in line). A root that cannot be
    read raises :class:`ScanError`, as :func:`list_folder` would."""
    ahead = _started.get("walk")
    if ahead is None:
        return None
    if os.path.realpath(root) != ahead.real_root:
        discard()
        return None
    del _started["walk"]
    report: tuple[Any, ...] = ("broken",)
    try:
        while True:
            message = marshal.load(ahead.reports)  # noqa: S302 - our own child
            if message[0] != "found":
                report = message
                break
            if on_found is not None:
                on_found(message[1])
    except (EOFError, ValueError, TypeError):
        pass  # the child died before it finished
    finally:
        ahead.reports.close()
        _reap(ahead.pid)
    if report[0] == "done":
        _done, count, digest, problems = report
        return Listing(ahead.real_root, count, digest, list(problems), ahead.spool)
    ahead.spool.close()
    if report[0] == "error":
        raise ScanError(report[1])
    return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def discard() -> None:
    """Stop a walk started ahead that nobody took (at exit, or when the command scans
    another folder)."""
    ahead = _started.pop("walk", None)
    if ahead is None:
        return
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(ahead.pid, signal.SIGKILL)
    _reap(ahead.pid)
    ahead.reports.close()
    ahead.spool.close()
