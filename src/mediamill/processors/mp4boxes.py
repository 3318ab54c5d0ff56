"""What FFmpeg reads from an MP4/MOV but PyAV does not hand over: each track's display
matrix (a phone video's rotation) and whether its sample entry carries Dolby Vision.

Only small boxes are read (``tkhd`` and ``stsd`` of each track), by seeking past the rest:
an index (``moov``) of 20 MB at the end of a two-hour film costs a few reads.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

#: sample entries and configuration boxes that say Dolby Vision (Dolby's ISO-BMFF spec)
_DOLBY_ENTRIES = frozenset({b"dvh1", b"dvhe", b"dvav", b"dva1", b"dav1"})
_DOLBY_BOXES = frozenset({b"dvcC", b"dvvC", b"dvwC"})
#: a visual sample entry's own fields before its child boxes (ISO 14496-12: 8 + 70 bytes)
_VISUAL_ENTRY_HEADER = 78
_MAX_SMALL_BOX = 1 << 20
#: a phone video's moov is tens of kB; a long film's, megabytes (then read box by box)
_MAX_MOOV_IN_MEMORY = 2 << 20  # tkhd and stsd are bytes to kB; anything bigger is not what we want


@dataclass(slots=True)
class Track:
    """One ``trak`` of the movie, in file order (FFmpeg's stream order)."""

    rotation: int | None = None  # as ffprobe's side data says: degrees, anticlockwise
    dolby_vision: bool = False


def read_tracks(handle: BinaryIO) -> list[Track]:
    """Every track of the file's ``moov`` box; none when the boxes are damaged."""
    try:
        size = handle.seek(0, 2)
        moov = next((b for b in _children(handle, 0, size) if b[0] == b"moov"), None)
        if moov is None:
            return []
        _, start, end = moov
        if end - start <= _MAX_MOOV_IN_MEMORY:  # one read, then seeks in memory: no syscalls
            handle.seek(start)
            handle, start, end = io.BytesIO(handle.read(end - start)), 0, end - start
        traks = [(start, end) for kind, start, end in _children(handle, start, end)
                 if kind == b"trak"]  # fmt: skip
        return [_track(handle, start, end) for start, end in traks]
    except (OSError, struct.error, ValueError):
        return []


def _children(handle: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, end) of each box between ``start`` and ``end``, read as asked (a
    fragmented MP4 has thousands of boxes after its ``moov``)."""
    at = start
    while at + 8 <= end:
        handle.seek(at)
        header = handle.read(16)
        if len(header) < 8:
            break
        size, kind = struct.unpack_from(">I4s", header)
        body = at + 8
        if size == 1 and len(header) == 16:
            size, body = struct.unpack_from(">Q", header, 8)[0], at + 16
        elif size == 0:
            size = end - at
        if size < body - at:
            break
        yield kind, body, min(at + size, end)
        at += size


def _child(handle: BinaryIO, start: int, end: int, path: tuple[bytes, ...]) -> tuple[int, int]:
    """The body of the box found by following ``path`` down from ``start``..``end``."""
    for kind in path:
        found = next((b for b in _children(handle, start, end) if b[0] == kind), None)
        if found is None:
            raise ValueError(f"no {kind!r} box")
        start, end = found[1], found[2]
    return start, end


def _read(handle: BinaryIO, start: int, end: int) -> bytes:
    if end - start > _MAX_SMALL_BOX:
        raise ValueError("box too big")
    handle.seek(start)
    return handle.read(end - start)


def _track(handle: BinaryIO, start: int, end: int) -> Track:
    track = Track()
    try:
        tkhd = _read(handle, *_child(handle, start, end, (b"tkhd",)))
        track.rotation = _rotation(tkhd)
    except ValueError:
        pass
    try:
        stsd = _child(handle, start, end, (b"mdia", b"minf", b"stbl", b"stsd"))
        track.dolby_vision = _says_dolby_vision(_read(handle, *stsd))
    except ValueError:
        pass
    return track


def _rotation(tkhd: bytes) -> int | None:
    # version 1 widens the three times and the duration to 64 bits
    matrix_at = 40 if tkhd[0] == 0 else 52
    a, b = struct.unpack_from(">ii", tkhd, matrix_at)
    if a == 0 and b == 0:
        return None
    # FFmpeg's av_display_rotation_get: the anticlockwise angle, which ffprobe prints
    return round(-math.degrees(math.atan2(b, a))) or 0  # 0, never -0


def _says_dolby_vision(stsd: bytes) -> bool:
    at = 8  # version, flags, entry count
    while at + 8 <= len(stsd):
        size, kind = struct.unpack_from(">I4s", stsd, at)
        if size < 8:
            return False
        if kind in _DOLBY_ENTRIES:
            return True
        inner = at + 8 + _VISUAL_ENTRY_HEADER
        while inner + 8 <= at + size:
            child_size, child = struct.unpack_from(">I4s", stsd, inner)
            if child in _DOLBY_BOXES:
                return True
            if child_size < 8:
                break
            inner += child_size
        at += size
    return False
