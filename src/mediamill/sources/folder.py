"""Scan a folder library into the catalog, incrementally (size + mtime), streaming in chunks.

The walk (``mediamill/walk.py``) never follows a symlink out of the library root or around a
loop, survives broken links, odd names (newlines, very long, bytes that are not UTF-8) and
unreadable entries, and spools what it finds to a temp file. A tree whose listing has the
digest recorded after the last complete scan is unchanged as a whole; otherwise the listing
is compared file by file, 2,000 files written at a time, remembering one 8-byte id per known
item (to find the missing ones): memory stays flat whatever the size of the tree.
"""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.sources.avsniff import av_kind
from mediamill.walk import CHUNK, Listing, Record, ScanError, list_folder, take_ahead

log = logging.getLogger(__name__)

SNIFF_BYTES = 262  # what filetype needs to recognise every format it knows

_EXTENSIONS = {
    "audio": "mp3 flac m4a m4b aac alac ogg oga opus wav wave aif aiff aifc wma ape wv mka "
    "mpc dsf dff ac3 dts amr au caf tta mp1 mp2 mpa eac3 tak w64 rf64 spx",
    "video": "mp4 m4v mkv webm avi mov wmv flv mpg mpeg m2ts mts ts 3gp 3g2 ogv vob divx "
    "asf rm rmvb f4v mxf",
    "image": "jpg jpeg png gif webp tif tiff heic heif bmp avif jxl cr2 cr3 nef arw dng orf "
    "rw2 raf",
    "comic": "cbz cbr cb7 cbt",
    "document": "pdf epub",
}
KIND_BY_EXTENSION = {ext: kind for kind, exts in _EXTENSIONS.items() for ext in exts.split()}
_AV = frozenset({"audio", "video"})


@dataclass(slots=True)
class ScanReport:
    library: str
    found: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    #: files found under a new path that are known items moved or renamed (results kept)
    moved: int = 0
    #: entries passed over, with the cause: broken links, links out of the root, unreadable
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: ids of the items this scan made (a caller that scans several folders matches moves
    #: across them once, at the end: ``scan_listing(adopt=False)``)
    new_ids: array[int] = field(default_factory=lambda: array("q"))
    missing_ids: array[int] = field(default_factory=lambda: array("q"))
    changed_ids: array[int] = field(default_factory=lambda: array("q"))

    def count_moved(self, moved: list[int]) -> None:
        """Files found new and items found missing that were one file moved."""
        self.moved += len(moved)
        self.new -= len(moved)
        self.missing -= len(set(moved).intersection(self.missing_ids))

    def as_dict(self) -> dict[str, object]:
        return {
            "library": self.library,
            "found": self.found,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "moved": self.moved,
            "problems": [{"path": p, "cause": c} for p, c in self.problems[:1000]],
            "problem_count": len(self.problems),
        }


def kind_from_extension(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return KIND_BY_EXTENSION.get(ext.lower(), "other") if dot else "other"


#: leading bytes of the audio/video containers of most libraries: a file named as audio or
#: video that starts with one of these is what its name says, with no need to ask filetype
_AV_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"ID3"),  # mp3 (and flac/aac with an ID3 tag)
    (0, b"fLaC"),
    (0, b"OggS"),  # ogg, opus, ogv
    (0, b"\x1a\x45\xdf\xa3"),  # matroska, webm
    (4, b"ftyp"),  # mp4, m4a, mov, 3gp
    (0, b"RIFF"),  # wav, avi (webp is RIFF too: checked below)
    (0, b"\x30\x26\xb2\x75"),  # asf, wma, wmv
)


def _head(abspath: str) -> bytes:
    try:
        with open(abspath, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except OSError:
        return b""


def _kind_of_head(head: bytes) -> str | None:
    if not head:
        return None
    import filetype  # only for heads the magic numbers above do not settle

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
    head = _head(abspath)
    if by_name in _AV and _starts_as_av(head):
        return by_name  # the common case, decided without filetype's hundred matchers
    by_content = _kind_of_head(head)
    if by_content is None:
        # neither name nor magic numbers place it: FFmpeg's probe by content has the last word
        return by_name if by_name != "other" else av_kind(abspath, head) or "other"
    if by_content == "archive":
        return by_name if by_name in ("comic", "document") else "other"
    if by_name in _AV and by_content in _AV:
        return by_name  # containers (mp4, ogg, mkv) hold audio or video: the name decides
    return by_content


#: ISO-BMFF brands of still images (HEIF, AVIF): ``ftyp`` alone does not make a video
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})


def _starts_as_av(head: bytes) -> bool:
    if head[:4] == b"RIFF" and head[8:12] not in (b"WAVE", b"AVI "):
        return False
    if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
        return False
    return any(head.startswith(magic, at) for at, magic in _AV_MAGIC)


class _Changes:
    """New and changed files, written to the catalog 2,000 at a time."""

    def __init__(
        self,
        catalog: Catalog,
        library: LibraryRef,
        report: ScanReport,
        on_progress: Callable[[ScanReport], None] | None,
        listing: Listing,
    ) -> None:
        self.catalog, self.library, self.report = catalog, library, report
        self.on_progress, self.listing = on_progress, listing
        self.new: list[dict[str, object]] = []
        self.changed: list[dict[str, object]] = []

    def add(self, record: Record, old_id: int | None) -> None:
        shown, size, mtime_ns, rel = record
        abspath = self.listing.path(record)
        row: dict[str, object] = {
            "path": shown,
            # the real name's bytes, when it is not valid UTF-8 (the shown path escapes them)
            "path_bytes": None if rel is None else os.fsencode(rel),
            "size": size,
            "mtime_ns": mtime_ns,
            "fingerprint": f"{size}:{mtime_ns}",
            "kind": detect_kind(os.path.basename(abspath), abspath, size),
        }
        if old_id is None:
            self.new.append(row)
        else:
            self.changed.append({"id": old_id, **row})
        if len(self.new) + len(self.changed) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        self.report.new_ids.extend(self.catalog.insert_items(self.library.id, self.new))
        self.catalog.update_items(self.changed)
        self.report.changed_ids.extend(int(str(row["id"])) for row in self.changed)
        self.report.new += len(self.new)
        self.report.changed += len(self.changed)
        self.new, self.changed = [], []
        if self.on_progress:
            self.on_progress(self.report)


class EmptyFolderError(ScanError):
    """The folder holds no file while the catalog holds some: likely a share or drive that is
    not mounted (the mount point is an empty folder). Nothing is marked missing."""


def scan_folder(
    catalog: Catalog,
    library: LibraryRef,
    on_progress: Callable[[ScanReport], None] | None = None,
    *,
    allow_empty: bool = False,
    under: str = "",
) -> ScanReport:
    """Bring the catalog's items of ``library`` in line with the folder on disk.

    The folder is walked first (or its walk started ahead is taken), into a :class:`Listing`.
    If the listing's digest is the one recorded after the last complete scan, every file is
    as the catalog has it: nothing to compare. Otherwise the listing is compared with the
    catalog and the digest recorded once the catalog matches it (forgotten before, so a scan
    that stops halfway is never taken for complete).

    ``under`` scans one folder's subtree only (what a watcher does when that folder changed):
    the library's digest is forgotten, as the catalog no longer matches the listing it sums.

    A folder that is now empty while the catalog holds files of it raises
    :class:`EmptyFolderError` (an unmounted NAS share must not mark a library missing),
    unless ``allow_empty``. For a subtree, that is asked of the library root.
    """
    if under:
        with list_folder(library.root, under=under) as listing:
            return scan_listing(catalog, library, listing, under=under, allow_empty=allow_empty)
    report = ScanReport(library=library.name)

    def on_found(count: int) -> None:
        report.found = count
        if on_progress:
            on_progress(report)

    with take_ahead(library.root, on_found) or list_folder(library.root, on_found) as listing:
        return scan_listing(
            catalog, library, listing, report=report, on_progress=on_progress,
            allow_empty=allow_empty,
        )  # fmt: skip


def scan_listing(
    catalog: Catalog,
    library: LibraryRef,
    listing: Listing,
    *,
    under: str = "",
    report: ScanReport | None = None,
    on_progress: Callable[[ScanReport], None] | None = None,
    allow_empty: bool = False,
    adopt: bool = True,
) -> ScanReport:
    """The second half of :func:`scan_folder`: bring the catalog in line with a listing
    already walked (of the whole library, or of its subtree ``under``). With ``adopt``, new
    files that are missing items moved take those items (:meth:`Catalog.adopt_moved`)."""
    report = report or ScanReport(library=library.name)
    report.found, report.problems = listing.count, listing.problems
    digest = scan_digest(listing)
    present = sum(catalog.library_counts(library.id).values())
    if present and not allow_empty and (listing.count == 0 if not under else _empty(library)):
        raise EmptyFolderError(
            f"{library.root} holds no files now, but the catalog has {present} of them: "
            "nothing was marked missing. Is the drive or share mounted? If the files "
            "are really gone, scan with force (mediamill scan --force, or POST "
            f"/api/libraries/{library.name}/scan?force=true)."
        )
    if under:
        with catalog.syncing_to(library.id, None):
            _compare(catalog, library, listing, report, on_progress, under)
    elif digest == catalog.source_digest(library.id) and listing.count == present:
        report.unchanged = listing.count
    else:
        with catalog.syncing_to(library.id, digest):
            _compare(catalog, library, listing, report, on_progress)
    catalog.mark_scanned(library.id)
    # a full scan marked every file it did not find missing: with none missing, no move
    if adopt and report.new_ids and (under or catalog.has_missing(library.id)):
        report.count_moved(adopt_moved(catalog, library, report.new_ids))
    return report


def adopt_moved(catalog: Catalog, library: LibraryRef, new_ids: Sequence[int]) -> list[int]:
    """Give files found new that are known items moved their items back (with results):
    :meth:`Catalog.adopt_moved`, where an item still present is moved only when its file is
    gone from disk (its own folder's scan has not run yet)."""
    root = library.root

    def gone(path: str) -> bool:
        return not os.path.lexists(os.path.join(root, path))

    return catalog.adopt_moved(library.id, new_ids, gone)


def _empty(library: LibraryRef) -> bool:
    """Whether the library root holds nothing at all (a share that is not mounted)."""
    try:
        with os.scandir(library.root) as entries:
            return next(entries, None) is None
    except OSError:
        return True


def scan_digest(listing: Listing) -> str:
    """The listing's digest, seeded with the scan's own version (how it reads a tree)."""
    from mediamill.sources.base import AnswerDigest

    digest = AnswerDigest("folder", listing.real_root)
    digest.add(listing.digest.encode())
    return digest.hexdigest()


def _compare(
    catalog: Catalog,
    library: LibraryRef,
    listing: Listing,
    report: ScanReport,
    on_progress: Callable[[ScanReport], None] | None,
    under: str = "",
) -> None:
    """A merge join: the listing holds files in path order and the catalog streams the
    library's items in the same order, so each file is matched without a query of its own.
    Files that came out of order (through folder links) are matched by lookup at the end."""
    changes = _Changes(catalog, library, report, on_progress, listing)
    known = catalog.iter_files(library.id, under)  # only items that existed before this scan
    current = next(known, None)
    unmatched = array("q")  # present items the walk went past: missing, unless found late
    stragglers: list[Record] = []
    last = ""
    for found in listing:
        path = found[0]
        if path < last:
            stragglers.append(found)
            continue
        last = path
        while current is not None and current[0] < path:
            if current[4]:
                unmatched.append(current[1])
            current = next(known, None)
        if current is not None and current[0] == path:
            _path, item_id, size, mtime_ns, present = current
            current = next(known, None)
            if size == found[1] and mtime_ns == found[2] and present:
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
        rows = catalog.existing_items(library.id, [f[0] for f in chunk])
        for found in chunk:
            old = rows.get(found[0])
            if old is None:
                changes.add(found, None)
                continue
            late.add(old[0])
            if old[1] == found[1] and old[2] == found[2] and old[3]:
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
    report.missing_ids.extend(missing)


def library_for_folder(
    catalog: Catalog, path: str | os.PathLike[str], name: str | None = None
) -> LibraryRef:
    """The library whose root is ``path`` (created on first use)."""
    root = os.path.abspath(os.fspath(path))
    if not Path(root).is_dir():
        raise ScanError(f"{path} is not a folder")
    return catalog.add_library(root, name=name)
