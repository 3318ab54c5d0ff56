"""What the probe reads from a photo: size, orientation and EXIF (camera, lens, exposure,
date taken with its time zone, GPS), for JPEG, TIFF, PNG, WebP, GIF, BMP, HEIC/HEIF and AVIF.

Pillow reads every format; HEIC/HEIF go through the pillow-heif plugin, imported only when
such a file is met (it costs 60 ms). Names follow exiftool's where they can.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: ISO-BMFF brands of still images and image sequences (HEIF, AVIF): ``ftyp`` alone is no video
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc", b"hevx"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})

# EXIF tag numbers (the EXIF 2.32 specification), named as exiftool names them
_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_EXPOSURE_TIME, _F_NUMBER, _ISO = 0x829A, 0x829D, 0x8827
_FOCAL_LENGTH, _LENS_MAKE, _LENS_MODEL = 0x920A, 0xA433, 0xA434
_OFFSET_TIME = 0x9010
#: where a photo's date comes from, best first: (exiftool's name, date, sub-seconds, offset)
_DATE_TAGS = (
    ("DateTimeOriginal", 0x9003, 0x9291, 0x9011),
    ("CreateDate", 0x9004, 0x9292, 0x9012),  # EXIF's DateTimeDigitized
)
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_GPS_ALT_REF, _GPS_ALT = 5, 6


def probe_photo(path: Path, size: int, head: bytes) -> dict[str, Any]:
    """The probe's result for a photo; ``head`` is the file's first bytes (its format)."""
    from PIL import Image, UnidentifiedImageError

    from mediamill.libtiff import route_messages

    route_messages()  # libtiff's messages on odd TIFFs go to the log, not the terminal
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    formats = None
    if brand in HEIF_BRANDS:
        _register_heif()
        formats = ["HEIF"]
    elif brand in AVIF_BRANDS:
        formats = ["AVIF"]
    try:
        with Image.open(path, formats=formats) as image:
            info = describe_image(image)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,  # over Pillow's pixel limit (179 MP by default)
    ) as error:
        raise ValueError(f"not a readable image: {error}") from error
    if brand:
        _orient_heif(path, info, stored_is_shown=formats == ["HEIF"])
    return {
        "media": "image",
        "container": None,
        "duration": None,
        "bit_rate": None,
        "size": size,
        "streams": [],
        "tags": {},
        "chapters": [],
        "image": info,
    }


@functools.cache
def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    # no thumbnails: the probe never decodes pixels, and listing them costs time
    register_heif_opener(thumbnails=False)


def describe_image(image: Any) -> dict[str, Any]:
    """Size, orientation and EXIF of an open Pillow image (no pixel is decoded)."""
    exif = image.getexif()
    details = exif.get_ifd(_EXIF_IFD)
    gps = exif.get_ifd(_GPS_IFD)
    iso = details.get(_ISO)
    if isinstance(iso, tuple):
        iso = iso[0] if iso else None
    taken_at, source, zone = _taken_at(details)
    orientation = _orientation(exif.get(_ORIENTATION))
    width, height = image.width, image.height
    if image.format == "TIFF" and orientation is not None and orientation >= 5:
        # Pillow's TIFF plugin gives a TIFF turned a quarter by its orientation the size
        # as shown; every other format's size is as stored (and exiftool's too)
        width, height = height, width
    return {
        "width": width,
        "height": height,
        "orientation": orientation,
        **_display_size(width, height, orientation),
        "format": image.format,
        "mode": image.mode,
        "make": clean_text(exif.get(_MAKE)),
        "model": clean_text(exif.get(_MODEL)),
        "lens": clean_text(details.get(_LENS_MODEL)),
        "lens_make": clean_text(details.get(_LENS_MAKE)),
        "iso": _int(iso),
        "exposure_time": _number(details.get(_EXPOSURE_TIME)),
        "f_number": _number(details.get(_F_NUMBER)),
        "focal_length": _number(details.get(_FOCAL_LENGTH)),
        "taken_at": taken_at,
        "taken_at_tag": source,
        "time_zone": zone or _offset(details.get(_OFFSET_TIME)),
        "gps": _gps(gps),
    }


def _display_size(width: int, height: int, orientation: int | None) -> dict[str, int]:
    turned = orientation is not None and orientation >= 5  # 5-8 turn the picture a quarter
    return {
        "display_width": height if turned else width,
        "display_height": width if turned else height,
    }


def _orientation(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and 1 <= number <= 8 else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(value: Any) -> str | None:
    """An EXIF string as exiftool shows it: cut at the first NUL, UTF-8 when its bytes are,
    control characters and edge spaces gone; None when nothing is left."""
    if value is None:
        return None
    if isinstance(value, bytes):
        raw = value
    else:
        text = str(value)
        try:
            raw = text.encode("latin-1")  # Pillow decodes EXIF ASCII as Latin-1
        except UnicodeEncodeError:
            raw = text.encode("utf-8")
    raw = raw.split(b"\x00", 1)[0]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = _CONTROL.sub("", text).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


_EXIF_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _taken_at(details: Mapping[int, Any]) -> tuple[str | None, str | None, str | None]:
    """(ISO 8601 date taken, the tag it came from, the camera's UTC offset): the first of
    DateTimeOriginal and CreateDate that is a real date, with its sub-seconds and offset.
    IFD0's DateTime is when the file was last changed, not when the photo was taken."""
    for name, date_tag, subsec_tag, offset_tag in _DATE_TAGS:
        stamp = _exif_date(details.get(date_tag))
        if stamp is None:
            continue
        subsec = clean_text(details.get(subsec_tag))
        if subsec and subsec.isdigit():
            stamp += f".{subsec}"
        zone = _offset(details.get(offset_tag))
        return (stamp + zone if zone else stamp), name, zone
    return None, None, None


def _exif_date(value: Any) -> str | None:
    match = _EXIF_DATE.fullmatch(clean_text(value) or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        when = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None  # 2017:08:21 15:08:70, 0000:00:00 00:00:00
    return when.isoformat()


def _offset(value: Any) -> str | None:
    match = _OFFSET.fullmatch(clean_text(value) or "")
    if not match or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        return None
    return match.group(0)


def _gps(gps: Mapping[int, Any]) -> dict[str, float | None] | None:
    lat = _degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S")
    lon = _degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    altitude = _number(gps.get(_GPS_ALT))
    if altitude is not None:
        ref = gps.get(_GPS_ALT_REF)
        below = ref in (1, b"\x01") or _int(ref) == 1  # 1: below sea level
        altitude = round(-altitude if below else altitude, 3)
    return {"lat": lat, "lon": lon, "alt": altitude}


def _degrees(dms: Any, ref: Any, negative: str) -> float | None:
    try:
        degrees, minutes, seconds = (float(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    sign = -1 if (clean_text(ref) or "").upper() == negative else 1
    return round(sign * value, 7)


# HEIF and AVIF say how to show the picture with `irot` (turn anticlockwise) and `imir`
# (mirror) properties of the primary image; EXIF's Orientation there is only informative.
# Orientations as (a, b, c, d): where a pixel at (x, y) is shown, x right and y down:
# (a x + b y, c x + d y).
_ORIENTATION_MATRIX = {
    1: (1, 0, 0, 1),
    2: (-1, 0, 0, 1),
    3: (-1, 0, 0, -1),
    4: (1, 0, 0, -1),
    5: (0, 1, 1, 0),
    6: (0, -1, 1, 0),
    7: (0, -1, -1, 0),
    8: (0, 1, -1, 0),
}
_MATRIX_ORIENTATION = {matrix: key for key, matrix in _ORIENTATION_MATRIX.items()}
_QUARTER_ANTICLOCKWISE = _ORIENTATION_MATRIX[8]
_MIRRORS = {0: _ORIENTATION_MATRIX[2], 1: _ORIENTATION_MATRIX[4]}  # axis 0: vertical


def _then(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, int, int, int]:
    a, b, c, d = second
    e, f, g, h = first
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


def _orient_heif(path: Path, info: dict[str, Any], *, stored_is_shown: bool) -> None:
    """Set the orientation of a HEIF/AVIF image from its ``irot``/``imir`` properties.

    libheif (pillow-heif) gives the size as shown, with the turn applied; Pillow's AVIF
    plugin gives the size as stored. Either way the result says both."""
    with open(path, "rb") as handle:
        transforms = heif_transforms(handle.read(1 << 16))  # meta comes first: a few kB
    matrix = _ORIENTATION_MATRIX[1]
    for kind, value in transforms:
        step = _MIRRORS[value & 1] if kind == "imir" else _QUARTER_ANTICLOCKWISE
        for _ in range(1 if kind == "imir" else value & 3):
            matrix = _then(matrix, step)
    orientation = _MATRIX_ORIENTATION[matrix]
    width, height = info["width"], info["height"]
    if stored_is_shown and orientation >= 5:
        width, height = height, width
    info.update(
        width=width,
        height=height,
        orientation=orientation,
        **_display_size(width, height, orientation),
    )


def heif_transforms(data: bytes) -> list[tuple[str, int]]:
    """The ``irot`` (quarter turns) and ``imir`` (axis) properties of the primary item, in
    the order they apply, from the first bytes of a HEIF/AVIF file (its ``meta`` box);
    none when the boxes are cut short or damaged (the picture is then shown as stored)."""
    try:
        return _heif_transforms(data)
    except (struct.error, IndexError):
        return []


def _heif_transforms(data: bytes) -> list[tuple[str, int]]:
    meta = _child(data, 0, len(data), b"meta")
    if meta is None:
        return []
    start, end = meta[0] + 4, meta[1]  # a full box: version and flags first
    primary = _primary_item(data, start, end)
    iprp = _child(data, start, end, b"iprp")
    if iprp is None:
        return []
    ipco = _child(data, iprp[0], iprp[1], b"ipco")
    ipma = _child(data, iprp[0], iprp[1], b"ipma")
    if ipco is None or ipma is None:
        return []
    properties = list(_boxes(data, ipco[0], ipco[1]))
    found: list[tuple[str, int]] = []
    for index in _associations(data, ipma[0], ipma[1], primary):
        if 1 <= index <= len(properties):
            kind, body, _ = properties[index - 1]
            if kind in (b"irot", b"imir") and body < len(data):
                found.append((kind.decode(), data[body]))
    return found


def _boxes(data: bytes, start: int, end: int) -> Any:
    """(type, body start, body end) of each ISO-BMFF box between ``start`` and ``end``."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        body = at + 8
        if size == 1 and at + 16 <= end:
            size = struct.unpack_from(">Q", data, at + 8)[0]
            body = at + 16
        elif size == 0:
            size = end - at
        if size < body - at:
            return
        yield kind, body, min(at + size, end)
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body, stop in _boxes(data, start, end):
        if found == kind:
            return body, stop
    return None


def _primary_item(data: bytes, start: int, end: int) -> int | None:
    pitm = _child(data, start, end, b"pitm")
    if pitm is None or pitm[0] + 6 > len(data):
        return None
    version = data[pitm[0]]
    if version == 0:
        return int(struct.unpack_from(">H", data, pitm[0] + 4)[0])
    return int(struct.unpack_from(">I", data, pitm[0] + 4)[0])


def _associations(data: bytes, start: int, end: int, item: int | None) -> list[int]:
    """Property indexes (1-based) associated with ``item`` in an ``ipma`` box."""
    version, flags = data[start], int.from_bytes(data[start + 1 : start + 4], "big")
    at = start + 4
    (count,) = struct.unpack_from(">I", data, at)
    at += 4
    id_size, wide = (2 if version == 0 else 4), bool(flags & 1)
    for _ in range(count):
        if at + id_size + 1 > end:
            break
        item_id = int.from_bytes(data[at : at + id_size], "big")
        n = data[at + id_size]
        at += id_size + 1
        width = 2 if wide else 1
        raw = [int.from_bytes(data[at + i * width : at + (i + 1) * width], "big") for i in range(n)]
        at += n * width
        if item is None or item_id == item:
            mask = 0x7FFF if wide else 0x7F  # the top bit says "essential"
            return [value & mask for value in raw]
    return []
