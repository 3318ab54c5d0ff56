"""Comic archives: read .cbz (zip), .cbr (rar4/rar5), .cb7 (7z) and .cbt (tar); write zip and 7z.

The format is told by the content, never by the suffix (a ``.cbr`` that is a zip is read as a
zip). Zip goes through ``zipfile`` (random access, members copied without recompressing);
rar, 7z and tar through libarchive (``libarchive-c`` over the system's libarchive), 7z is
written with ``py7zr``. RAR is never written. Archives libarchive cannot read faithfully
(encrypted, multi-volume, solid RAR4) are refused up front with a cause that says so, from
their headers, rather than with libarchive's decoder errors.
"""

from __future__ import annotations

import hashlib
import operator
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mediamill.comic.comicinfo import FILENAME as COMICINFO

IMAGE_SUFFIXES = frozenset(
    {"jpg", "jpeg", "png", "gif", "webp", "avif", "jxl", "bmp", "tif", "tiff"}
)
_RAR4_SIG = b"Rar!\x1a\x07\x00"
_RAR5_SIG = b"Rar!\x1a\x07\x01\x00"
_7Z_SIG = b"7z\xbc\xaf\x27\x1c"
CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive that cannot be read or written, with the cause."""


@dataclass(frozen=True, slots=True)
class Member:
    """One file of an archive and the digest of its content (blake2b, 16 bytes)."""

    name: str
    size: int
    digest: str


def sniff(path: Path) -> str:
    """``zip``, ``rar``, ``7z`` or ``tar``, by content; :class:`ArchiveError` otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise ArchiveError(f"cannot read the file: {exc.strerror or exc}") from None
    return _sniff_head(head)


def _sniff_head(head: bytes) -> str:
    """The format of an archive whose first 512 bytes are ``head``."""
    if not head:
        raise ArchiveError("empty file (0 bytes): not a comic archive")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((_RAR4_SIG, _RAR5_SIG)):
        return "rar"
    if head.startswith(_7Z_SIG):
        return "7z"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"%PDF"):
        raise ArchiveError("a PDF, not a comic archive")
    raise ArchiveError("not a zip, rar, 7z or tar archive")


def natural_key(name: str) -> list[object]:
    """Sort key that puts ``page2`` before ``page10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_page(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    if base.startswith(".") or name.startswith("__MACOSX/") or "/__MACOSX/" in name:
        return False
    return base.rpartition(".")[2].lower() in IMAGE_SUFFIXES


_COMICINFO_LOWER = COMICINFO.lower()


def is_comicinfo(name: str) -> bool:
    return len(name) == len(_COMICINFO_LOWER) and name.lower() == _COMICINFO_LOWER


class ComicArchive:
    """A comic archive opened for reading (zip: random access; others: one pass at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        # one open file for the sniff and the zip reader (a retag opens archives three times)
        self._fh: BinaryIO | None = None
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 (kept open for the zip reader)
            head = self._fh.read(512)
        except OSError as exc:
            self.close()
            raise ArchiveError(f"cannot read the file: {exc.strerror or exc}") from None
        try:
            self.format = _sniff_head(head)
            if self.format == "zip":
                self._open_zip()
            else:
                self.close()  # libarchive opens the other formats by their path
                if self.format == "rar":
                    check_rar(self.path)
        except BaseException:
            self.close()
            raise

    def _open_zip(self) -> None:
        assert self._fh is not None
        try:
            self._fh.seek(0)
            self._zip = zipfile.ZipFile(self._fh)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"damaged zip archive ({exc})") from None
        if any(info.flag_bits & 0x1 for info in self._zip.infolist()):
            raise ArchiveError("encrypted zip archive: it cannot be read without its password")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ComicArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self) -> list[str]:
        """Every file member, in archive order."""
        if self._zip is not None:
            return [i.filename for i in self._zip.infolist() if not i.is_dir()]
        return [name for name, _ in self._stream(want=lambda _: False)]

    def pages(self) -> list[str]:
        """Image members in reading order."""
        return sorted((n for n in self.names() if is_page(n)), key=natural_key)

    def page_count(self) -> int:
        """How many image members there are (:meth:`pages` without the sort)."""
        return sum(1 for n in self.names() if is_page(n))

    def comicinfo(self) -> bytes | None:
        """The raw ComicInfo.xml at the archive's root, or ``None``."""
        if self._zip is not None:
            for info in self._zip.infolist():
                if is_comicinfo(info.filename):
                    return self._read_zip(info)
            return None
        for _name, data in self._stream(want=is_comicinfo):
            if data is not None:
                return data
        return None

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._read_zip(self._zip.getinfo(name))
        for _member, data in self._stream(want=lambda n: n == name):
            if data is not None:
                return data
        raise ArchiveError(f"no member {name!r}")

    def members(self) -> Iterator[tuple[str, bytes]]:
        """Every file member with its content, in archive order (one member in memory)."""
        if self._zip is not None:
            for info in self._zip.infolist():
                if not info.is_dir():
                    yield info.filename, self._read_zip(info)
            return
        for name, data in self._stream(want=lambda _: True):
            assert data is not None
            yield name, data

    def digests(self) -> dict[str, Member]:
        """Every file member's size and content digest, by name."""
        out = {}
        for name, data in self.members():
            out[name] = Member(name, len(data), _digest(data))
        return out

    def _read_zip(self, info: zipfile.ZipInfo) -> bytes:
        assert self._zip is not None
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ArchiveError(f"damaged member {info.filename!r} ({exc})") from None
        except NotImplementedError as exc:
            raise ArchiveError(f"member {info.filename!r}: {exc}") from None

    def _stream(self, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes | None]]:
        """(name, content if ``want(name)`` else None) of every file member, via libarchive."""
        import libarchive
        from libarchive.exception import ArchiveError as LibArchiveError

        try:
            with libarchive.file_reader(str(self.path)) as reader:
                for entry in reader:
                    if not entry.isfile:
                        continue
                    name = entry.pathname
                    if want(name):
                        yield name, b"".join(entry.get_blocks())
                    else:
                        yield name, None
        except LibArchiveError as exc:
            cause = str(exc).split(" (errno=", 1)[0]
            raise ArchiveError(f"damaged or unsupported {self.format} archive ({cause})") from None


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# --------------------------------------------------------------------- RAR header checks
def check_rar(path: Path) -> None:
    """Refuse RAR archives libarchive cannot read faithfully, naming the cause."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(_RAR5_SIG):
            _check_rar5(fh)
        else:
            fh.seek(len(_RAR4_SIG))
            _check_rar4(fh)


def _check_rar4(fh: BinaryIO) -> None:
    while True:
        block = fh.read(7)
        if len(block) < 7:
            return
        kind, flags = block[2], int.from_bytes(block[3:5], "little")
        size = int.from_bytes(block[5:7], "little")
        if size < 7:
            raise ArchiveError("damaged RAR4 archive (a block header is too short)")
        rest = fh.read(size - 7)
        add = 0
        if flags & 0x8000 or kind == 0x74:
            add = int.from_bytes(rest[:4], "little")
        if kind == 0x73:  # main header
            if flags & 0x0080:
                raise ArchiveError("encrypted RAR archive (its headers need a password)")
            if flags & 0x0001:
                raise ArchiveError(
                    "multi-volume RAR archive: only whole single-file archives are read; "
                    "join the volumes into one archive first"
                )
            if flags & 0x0008:
                raise ArchiveError(
                    "solid RAR4 archive: libarchive cannot read these reliably; "
                    "repack it (e.g. as .cbz) with a RAR tool"
                )
        elif kind == 0x74:  # file header
            if flags & 0x0004:
                raise ArchiveError("encrypted RAR archive (its files need a password)")
        elif kind == 0x7B:  # end of archive
            return
        fh.seek(add, 1)


def _vint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(buf):
        byte = buf[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ArchiveError("damaged RAR5 archive (a header is cut short)")


def _check_rar5(fh: BinaryIO) -> None:
    for _ in range(4096):
        crc_and_size = fh.read(4 + 3)
        if len(crc_and_size) < 5:
            return
        size, at = _vint(crc_and_size, 4)
        fh.seek(-(len(crc_and_size) - at), 1)
        header = fh.read(size)
        kind, pos = _vint(header, 0)
        flags, pos = _vint(header, pos)
        extra_size = data_size = 0
        if flags & 0x1:
            extra_size, pos = _vint(header, pos)
        if flags & 0x2:
            data_size, pos = _vint(header, pos)
        if kind == 4:
            raise ArchiveError("encrypted RAR archive (its headers need a password)")
        if kind == 1:
            archive_flags, _ = _vint(header, pos)
            if archive_flags & 0x1:
                raise ArchiveError(
                    "multi-volume RAR archive: only whole single-file archives are read; "
                    "join the volumes into one archive first"
                )
        elif kind == 2 and _rar5_file_encrypted(header, extra_size):
            raise ArchiveError("encrypted RAR archive (its files need a password)")
        elif kind == 5:
            return
        fh.seek(data_size, 1)


def _rar5_file_encrypted(header: bytes, extra_size: int) -> bool:
    """Whether a RAR5 file header carries an encryption record in its extra area."""
    pos = len(header) - extra_size
    while extra_size and pos < len(header):
        record_size, after = _vint(header, pos)
        record_type, _ = _vint(header, after)
        if record_type == 0x01:
            return True
        pos = after + record_size
    return False


# --------------------------------------------------------------------------- writing
def write_zip(
    source: ComicArchive, dest: Path, comicinfo: bytes | None, *, keep_comicinfo: bool = False
) -> dict[str, Member]:
    """Write ``source``'s members and ``comicinfo`` (last) as a zip at ``dest``; returns the
    source's members as they were read on the way (for :func:`verify`).

    From a zip, members are copied as they are stored (no recompression): a retag costs a
    copy. From other formats, pages are stored (images do not deflate), other files deflated.
    """
    members: dict[str, Member] = {}
    with open(dest, "wb") as out, zipfile.ZipFile(out, "w") as zout:
        if source._zip is not None:
            members = _copy_zip_members(source, out, zout, keep_comicinfo=keep_comicinfo)
        else:
            for name, data in source.members():
                members[name] = Member(name, len(data), _digest(data))
                if is_comicinfo(name) and not keep_comicinfo:
                    continue
                method = zipfile.ZIP_STORED if is_page(name) else zipfile.ZIP_DEFLATED
                zout.writestr(_zip_info(name, method), data)
        if comicinfo is not None:
            zout.writestr(_zip_info(COMICINFO, zipfile.ZIP_DEFLATED), comicinfo)
    return members


def append_comicinfo(source: ComicArchive, dest: Path, comicinfo: bytes) -> int | None:
    """The fast retag of a zip whose members all lie before its ComicInfo.xml (or that has
    none), as comic tools write them: the bytes before it are copied by the kernel
    (``copy_file_range``), the new ComicInfo.xml and central directory are written after.
    Returns how many bytes were copied as they are (for :func:`verify_prefix`), or ``None``
    (nothing written) when the archive is not laid out so."""
    if source._zip is None:
        return None
    infos = source._zip.infolist()
    kept = [i for i in infos if not is_comicinfo(i.filename)]
    prefix = min(
        [i.header_offset for i in infos if is_comicinfo(i.filename)] + [source._zip.start_dir]
    )
    if any(i.header_offset >= prefix or i.flag_bits & 0x08 for i in kept):
        return None
    with open(source.path, "rb") as src, open(dest, "wb") as out:
        _copy_prefix(src, out, prefix)
        with zipfile.ZipFile(out, "w") as zout:
            # the members stay where they were: the original's entries are listed as they
            # are (zipfile's writer only reads an entry to write the central directory)
            zout.filelist.extend(kept)
            zout.NameToInfo.update((info.filename, info) for info in kept)
            zout.writestr(_zip_info(COMICINFO, zipfile.ZIP_DEFLATED), comicinfo)
    return prefix


def _copy_prefix(src: BinaryIO, out: BinaryIO, length: int) -> None:
    """Copy the first ``length`` bytes in the kernel where it can, else through memory."""
    done = 0
    try:
        while done < length:
            sent = os.copy_file_range(src.fileno(), out.fileno(), length - done, done, done)
            if sent == 0:
                break
            done += sent
    except OSError:
        pass  # no copy_file_range across these file systems: copy what is left by hand
    src.seek(done)
    out.seek(done)
    _copy_range(src, out, length - done)


#: what a member's central directory entry must keep when its bytes are copied as they are
_LISTED = operator.attrgetter(
    "filename", "header_offset", "CRC", "compress_size", "file_size", "compress_type"
)


def verify_prefix(original: ComicArchive, written: Path, prefix: int, comicinfo: bytes) -> None:
    """Check a zip made by :func:`append_comicinfo`: it opens, lists exactly the original's
    members (same offsets, sizes and CRCs) plus ``comicinfo``, its first ``prefix`` bytes
    (every member's stored bytes) are the original's byte for byte, and its ComicInfo.xml
    reads back as ``comicinfo``. Raises :class:`ArchiveError` otherwise."""
    assert original._zip is not None
    with ComicArchive(written) as archive:
        assert archive._zip is not None
        if archive.comicinfo() != comicinfo:
            raise ArchiveError("verification failed: ComicInfo.xml differs from what was written")
        got = [_LISTED(i) for i in archive._zip.infolist() if not is_comicinfo(i.filename)]
    want = [_LISTED(i) for i in original._zip.infolist() if not is_comicinfo(i.filename)]
    if got != want:
        raise ArchiveError("verification failed: the members differ from the original's")
    with open(original.path, "rb") as a, open(written, "rb") as b:
        left = prefix
        while left > 0:
            size = min(CHUNK, left)
            if a.read(size) != b.read(size):
                raise ArchiveError("verification failed: a member's bytes differ from the original")
            left -= size


def _zip_info(name: str, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = method
    info.external_attr = 0o644 << 16
    return info


def _copy_zip_members(
    source: ComicArchive, out: BinaryIO, zout: zipfile.ZipFile, *, keep_comicinfo: bool
) -> dict[str, Member]:
    """Copy each member's local header and data byte for byte, and list it in ``zout``;
    returns each copied member's content digest, taken from the bytes on their way.

    ``zipfile`` has no raw copy; its writer only needs each member's ``ZipInfo`` (with the
    new ``header_offset``) in ``filelist`` to write the central directory at close.
    """
    assert source._zip is not None
    members = {}
    with open(source.path, "rb") as src:
        for info in source._zip.infolist():
            if info.is_dir() or (is_comicinfo(info.filename) and not keep_comicinfo):
                continue
            src.seek(info.header_offset)
            local = src.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ArchiveError(f"damaged zip archive (bad local header of {info.filename!r})")
            header = (
                30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
            )
            src.seek(info.header_offset)
            offset = out.tell()
            _copy_range(src, out, header)
            members[info.filename] = _copy_data(source, src, out, info)
            if info.flag_bits & 0x08:  # a data descriptor follows the data
                at = info.header_offset + header + info.compress_size
                length = _descriptor_length(src, info, at)
                src.seek(at)
                _copy_range(src, out, length)
            copied = _copy_info(info)
            copied.header_offset = offset
            zout.filelist.append(copied)
            zout.NameToInfo[copied.filename] = copied
        zout.start_dir = out.tell()
    return members


def _copy_data(source: ComicArchive, src: BinaryIO, out: BinaryIO, info: zipfile.ZipInfo) -> Member:
    """Copy one member's stored bytes and digest its content (inflated when deflated)."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        at = src.tell()
        data = source._read_zip(info)  # bzip2, lzma: zipfile decompresses
        src.seek(at)
        _copy_range(src, out, info.compress_size)
        return Member(info.filename, len(data), _digest(data))
    inflate = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    digest = hashlib.blake2b(digest_size=16)
    size, left = 0, info.compress_size
    try:
        while left > 0:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise ArchiveError(f"damaged zip archive ({info.filename!r} is cut short)")
            out.write(chunk)
            left -= len(chunk)
            data = inflate.decompress(chunk) if inflate is not None else chunk
            digest.update(data)
            size += len(data)
        if inflate is not None:
            tail = inflate.flush()
            digest.update(tail)
            size += len(tail)
    except zlib.error as exc:
        raise ArchiveError(f"damaged member {info.filename!r} ({exc})") from None
    return Member(info.filename, size, digest.hexdigest())


def _descriptor_length(src: BinaryIO, info: zipfile.ZipInfo, at: int) -> int:
    src.seek(at)
    head = src.read(4)
    body = 20 if info.compress_size > 0xFFFFFFFF or info.file_size > 0xFFFFFFFF else 12
    return body + 4 if head == b"PK\x07\x08" else body


def _copy_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    copied = zipfile.ZipInfo(info.filename, info.date_time)
    for attr in (
        "compress_type",
        "comment",
        "extra",
        "create_system",
        "create_version",
        "extract_version",
        "flag_bits",
        "volume",
        "internal_attr",
        "external_attr",
        "CRC",
        "compress_size",
        "file_size",
    ):
        setattr(copied, attr, getattr(info, attr))
    return copied


def _copy_range(src: BinaryIO, out: BinaryIO, length: int) -> None:
    while length > 0:
        chunk = src.read(min(CHUNK, length))
        if not chunk:
            raise ArchiveError("damaged zip archive (a member is cut short)")
        out.write(chunk)
        length -= len(chunk)


def write_7z(source: ComicArchive, dest: Path, comicinfo: bytes | None) -> dict[str, Member]:
    """Write ``source``'s members and ``comicinfo`` as a 7z archive at ``dest``; returns the
    source's members as they were read on the way (for :func:`verify`)."""
    import py7zr

    members = {}
    with py7zr.SevenZipFile(dest, "w") as zout:
        for name, data in source.members():
            members[name] = Member(name, len(data), _digest(data))
            if not is_comicinfo(name):
                zout.writestr(data, name)
        if comicinfo is not None:
            zout.writestr(comicinfo, COMICINFO)
    return members


def verify(original: dict[str, Member], written: Path, comicinfo: bytes | None) -> None:
    """Check the archive at ``written`` opens and holds every member of ``original`` byte
    for byte, plus exactly ``comicinfo``; raises :class:`ArchiveError` otherwise."""
    with ComicArchive(written) as archive:
        found = {}
        for name, data in archive.members():
            found[name] = Member(name, len(data), _digest(data))
    expected = {n: m for n, m in original.items() if not is_comicinfo(n)}
    if comicinfo is not None:
        expected[COMICINFO] = Member(COMICINFO, len(comicinfo), _digest(comicinfo))
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ArchiveError(f"verification failed: {len(missing)} member(s) missing ({missing[0]})")
    changed = sorted(n for n in expected if expected[n].digest != found[n].digest)
    if changed:
        raise ArchiveError(f"verification failed: {changed[0]!r} differs from the original")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ArchiveError(f"verification failed: unexpected member {extra[0]!r}")
