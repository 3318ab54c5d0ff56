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


def walk(root: str, problems: list[tuple[str, str]]) -> Iterator[FoundFile]:
    """Every regular file under ``root`` (depth first), links resolved inside the root only."""
    real_root = os.path.realpath(root)
    try:
        root_stat = os.stat(real_root)
    except OSError as exc:
        raise ScanError(f"cannot read library root {root}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise ScanError(f"library root {root} is not a folder")
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    stack: list[tuple[str, str]] = [(real_root, "")]
    # folders reached through a link are walked after every real folder, so a folder's own
    # path wins over an alias of it
    linked: list[tuple[str, str, tuple[int, int]]] = []
    first = True
    while stack or linked:
        if not stack:
            path, rel, key = linked.pop(0)
            if key not in visited:
                visited.add(key)
                stack.append((path, rel))
            continue
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            if first:
                raise ScanError(f"cannot read library root {root}: {exc.strerror}") from exc
            problems.append((rel_dir or ".", f"unreadable folder: {exc.strerror}"))
            continue
        first = False
        subdirs = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in IGNORED_NAMES:
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not os.path.exists(target):
                        problems.append((rel, "broken symlink"))
                        continue
                    if not _inside(target, real_root):
                        problems.append((rel, "symlink points outside the library root"))
                        continue
                st = entry.stat()  # follows links (inside the root, checked above)
            except OSError as exc:
                problems.append((rel, f"unreadable: {exc.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in visited:
                    continue  # a link loop, or the same folder reached twice
                if entry.is_symlink():
                    linked.append((entry.path, rel, key))
                else:
                    visited.add(key)
                    subdirs.append((entry.path, rel))
            elif stat.S_ISREG(st.st_mode):
                path, raw = _rel_key(rel)
                yield FoundFile(path, raw, entry.path, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))


def scan_folder(
    catalog: Catalog, library: LibraryRef, on_progress: Callable[[ScanReport], None] | None = None
) -> ScanReport:
    """Bring the catalog's items of ``library`` in line with the folder on disk."""
    report = ScanReport(library=library.name)
    seen = array("q")

    def flush(chunk: list[FoundFile]) -> None:
        known = catalog.existing_items(library.id, [f.path for f in chunk])
        new, changed = [], []
        for f in chunk:
            old = known.get(f.path)
            if old is not None:
                item_id, size, mtime_ns, present = old
                seen.append(item_id)
                if size == f.size and mtime_ns == f.mtime_ns and present:
                    report.unchanged += 1
                    continue
            row = {
                "path": f.path,
                "path_bytes": f.path_bytes,
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                "fingerprint": f"{f.size}:{f.mtime_ns}",
                "kind": detect_kind(os.path.basename(f.abspath), f.abspath, f.size),
            }
            if old is None:
                new.append(row)
            else:
                changed.append({"id": old[0], **row})
        seen.extend(catalog.insert_items(library.id, new))
        catalog.update_items(changed)
        report.new += len(new)
        report.changed += len(changed)
        if on_progress:
            on_progress(report)

    chunk: list[FoundFile] = []
    for found in walk(library.root, report.problems):
        report.found += 1
        chunk.append(found)
        if len(chunk) >= CHUNK:
            flush(chunk)
            chunk = []
    flush(chunk)
    missing = catalog.missing_ids(library.id, seen)
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
