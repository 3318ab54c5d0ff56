"""Walk a folder library into the catalog, incrementally (size + mtime), streaming in chunks.

The walk never follows a symlink out of the library root or around a loop, survives broken
links, odd names (newlines, very long, bytes that are not UTF-8) and unreadable entries, and
never holds the tree in memory: found files go to the catalog 2,000 at a time, and what it
remembers across the walk is one 8-byte id per known item (to find the missing ones).
"""

from __future__ import annotations

import logging
import os
import stat
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import filetype

from mediamill.catalog.db import Catalog, LibraryRef

log = logging.getLogger(__name__)

CHUNK = 2000
SNIFF_BYTES = 262  # what filetype needs to recognise every format it knows

_EXTENSIONS = {
    "audio": "mp3 flac m4a m4b aac alac ogg oga opus wav wave aif aiff aifc wma ape wv mka "
    "mpc dsf dff ac3 dts amr au caf tta",
    "video": "mp4 m4v mkv webm avi mov wmv flv mpg mpeg m2ts mts ts 3gp 3g2 ogv vob divx "
    "asf rm rmvb f4v mxf",
    "image": "jpg jpeg png gif webp tif tiff heic heif bmp avif jxl cr2 cr3 nef arw dng orf "
    "rw2 raf",
    "comic": "cbz cbr cb7 cbt",
    "document": "pdf epub",
}
KIND_BY_EXTENSION = {ext: kind for kind, exts in _EXTENSIONS.items() for ext in exts.split()}
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
_AV = frozenset({"audio", "video"})


class ScanError(RuntimeError):
    """The library root itself cannot be walked (gone, not a folder, unreadable)."""


@dataclass(slots=True)
class ScanReport:
    library: str
    found: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    #: entries passed over, with the cause: broken links, links out of the root, unreadable
    problems: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "library": self.library,
            "found": self.found,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "problems": [{"path": p, "cause": c} for p, c in self.problems[:1000]],
            "problem_count": len(self.problems),
        }


@dataclass(slots=True)
class FoundFile:
    path: str  # display/key path, POSIX, relative to the root
    path_bytes: bytes | None  # set when the name is not valid UTF-8
    abspath: str
    size: int
    mtime_ns: int


def kind_from_extension(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return KIND_BY_EXTENSION.get(ext.lower(), "other") if dot else "other"


def sniff_kind(abspath: str) -> str | None:
    """The kind a file's first bytes say, or ``None`` when they say nothing we know."""
    try:
        with open(abspath, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return None
    if not head:
        return None
    guess = filetype.guess(head)
    if guess is None:
        return None
    family = str(guess.mime).split("/", 1)[0]
    if family in ("audio", "video", "image"):
        return family
    if guess.extension in ("zip", "rar", "7z", "tar"):
        return "archive"
    if guess.extension in ("pdf", "epub"):
        return "document"
    return None


def detect_kind(name: str, abspath: str, size: int) -> str:
    """Media kind from the extension, corrected by the content where the extension lies."""
    by_name = kind_from_extension(name)
    if size == 0:
        return by_name
    by_content = sniff_kind(abspath)
    if by_content is None:
        return by_name
    if by_content == "archive":
        return by_name if by_name in ("comic", "document") else "other"
    if by_name in _AV and by_content in _AV:
        return by_name  # containers (mp4, ogg, mkv) hold audio or video: the name decides
    return by_content


def _rel_key(rel: str) -> tuple[str, bytes | None]:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        return raw.decode("utf-8", "backslashreplace"), raw
    return rel, None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _listing(directory: str) -> list[tuple[str, os.DirEntry[str]]]:
    """A folder's entries in path order, each with its display name (undecodable bytes
    escaped). A sub-folder sorts as ``name/``, so walking depth first yields paths in exactly
    the order the catalog sorts them (code points = UTF-8 bytes)."""
    keyed = []
    with os.scandir(directory) as it:
        for entry in it:
            name = entry.name
            if name.startswith(".") or name in IGNORED_NAMES:
                continue
            keyed.append((_rel_key(name)[0], entry))
    keyed.sort(key=lambda pair: pair[0] + "/" if pair[1].is_dir(follow_symlinks=False) else pair[0])
    return keyed


def walk(root: str, problems: list[tuple[str, str]]) -> Iterator[FoundFile]:
    """Every regular file under ``root``, in path order, links resolved inside the root only.

    Folders reached through a link are walked after every real folder (so a folder's own path
    wins over an alias of it); their files come last, out of path order.
    """
    real_root = os.path.realpath(root)
    try:
        root_stat = os.stat(real_root)
        root_listing = _listing(real_root)
    except OSError as exc:
        raise ScanError(f"cannot read library root {root}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise ScanError(f"library root {root} is not a folder")
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    # (relative path as the OS has it, as the catalog shows it, the folder's sorted entries)
    stack: list[tuple[str, str, Iterator[tuple[str, os.DirEntry[str]]]]] = [
        ("", "", iter(root_listing))
    ]
    linked: list[tuple[str, str, str, tuple[int, int]]] = []
    while stack or linked:
        if not stack:
            path, rel, shown, key = linked.pop(0)
            if key in visited:
                continue
            visited.add(key)
            try:
                stack.append((rel, shown, iter(_listing(path))))
            except OSError as exc:
                problems.append((shown, f"unreadable folder: {exc.strerror}"))
            continue
        rel_dir, shown_dir, entries = stack[-1]
        pair = next(entries, None)
        if pair is None:
            stack.pop()
            continue
        shown_name, entry = pair
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        shown = f"{shown_dir}/{shown_name}" if shown_dir else shown_name
        try:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not os.path.exists(target):
                    problems.append((shown, "broken symlink"))
                    continue
                if not _inside(target, real_root):
                    problems.append((shown, "symlink points outside the library root"))
                    continue
            st = entry.stat()  # follows links (inside the root, checked above)
        except OSError as exc:
            problems.append((shown, f"unreadable: {exc.strerror}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in visited:
                continue  # a link loop, or the same folder reached twice
            if entry.is_symlink():
                linked.append((entry.path, rel, shown, key))
                continue
            visited.add(key)
            try:
                stack.append((rel, shown, iter(_listing(entry.path))))
            except OSError as exc:
                problems.append((shown, f"unreadable folder: {exc.strerror}"))
        elif stat.S_ISREG(st.st_mode):
            raw = os.fsencode(rel) if shown != rel else None
            yield FoundFile(shown, raw, entry.path, st.st_size, st.st_mtime_ns)


class _Changes:
    """New and changed files, written to the catalog 2,000 at a time."""

    def __init__(
        self,
        catalog: Catalog,
        library: LibraryRef,
        report: ScanReport,
        on_progress: Callable[[ScanReport], None] | None,
    ) -> None:
        self.catalog, self.library, self.report = catalog, library, report
        self.on_progress = on_progress
        self.new: list[dict[str, object]] = []
        self.changed: list[dict[str, object]] = []

    def add(self, found: FoundFile, old_id: int | None) -> None:
        row: dict[str, object] = {
            "path": found.path,
            "path_bytes": found.path_bytes,
            "size": found.size,
            "mtime_ns": found.mtime_ns,
            "fingerprint": f"{found.size}:{found.mtime_ns}",
            "kind": detect_kind(os.path.basename(found.abspath), found.abspath, found.size),
        }
        if old_id is None:
            self.new.append(row)
        else:
            self.changed.append({"id": old_id, **row})
        if len(self.new) + len(self.changed) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        self.catalog.insert_items(self.library.id, self.new)
        self.catalog.update_items(self.changed)
        self.report.new += len(self.new)
        self.report.changed += len(self.changed)
        self.new, self.changed = [], []
        if self.on_progress:
            self.on_progress(self.report)


def scan_folder(
    catalog: Catalog, library: LibraryRef, on_progress: Callable[[ScanReport], None] | None = None
) -> ScanReport:
    """Bring the catalog's items of ``library`` in line with the folder on disk.

    A merge join: the walk yields files in path order and the catalog streams the library's
    items in the same order, so each file is matched without a query of its own and memory
    stays flat whatever the size of the tree. Files that arrive out of order (through folder
    links) are matched by lookup at the end.
    """
    report = ScanReport(library=library.name)
    changes = _Changes(catalog, library, report, on_progress)
    # only items that existed before this scan (a thread reading ahead was tried: the GIL
    # makes it slower than reading page by page in line)
    known = (row for page in catalog.iter_file_pages(library.id) for row in page)
    current = next(known, None)
    unmatched = array("q")  # present items the walk went past: missing, unless found late
    stragglers: list[FoundFile] = []
    last = ""
    for found in walk(library.root, report.problems):
        report.found += 1
        if found.path < last:
            stragglers.append(found)
            continue
        last = found.path
        while current is not None and current[0] < found.path:
            if current[4]:
                unmatched.append(current[1])
            current = next(known, None)
        if current is not None and current[0] == found.path:
            _path, item_id, size, mtime_ns, present = current
            current = next(known, None)
            if size == found.size and mtime_ns == found.mtime_ns and present:
                report.unchanged += 1
            else:
                changes.add(found, item_id)
        else:
            changes.add(found, None)
    while current is not None:
        if current[4]:
            unmatched.append(current[1])
        current = next(known, None)
    late: set[int] = set()
    for start in range(0, len(stragglers), CHUNK):
        chunk = stragglers[start : start + CHUNK]
        rows = catalog.existing_items(library.id, [f.path for f in chunk])
        for found in chunk:
            old = rows.get(found.path)
            if old is None:
                changes.add(found, None)
                continue
            late.add(old[0])
            if old[1] == found.size and old[2] == found.mtime_ns and old[3]:
                report.unchanged += 1
            else:
                changes.add(found, old[0])
    changes.flush()
    missing = [item_id for item_id in unmatched if item_id not in late]
    unreadable = [p for p, cause in report.problems if cause.startswith("unreadable folder")]
    if missing and unreadable:
        # items under a folder we could not read are not gone, just out of sight this time
        missing = catalog.ids_outside(missing, unreadable)
    catalog.mark_missing(missing)
    report.missing = len(missing)
    catalog.mark_scanned(library.id)
    return report


def library_for_folder(
    catalog: Catalog, path: str | os.PathLike[str], name: str | None = None
) -> LibraryRef:
    """The library whose root is ``path`` (created on first use)."""
    root = os.path.abspath(os.fspath(path))
    if not Path(root).is_dir():
        raise ScanError(f"{path} is not a folder")
    return catalog.add_library(root, name=name)
