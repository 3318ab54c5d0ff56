"""The few figures of a result that library statistics count (its facets), worked out once
when the result is written and kept beside it (``results.facets``, ``results.media_seconds``):
statistics then group a short text column in SQL instead of reading every result's JSON.

A probe result's facets are its container (or image format) and bit-rate band by the names
people use, and its streams (type, codec, resolution); an audio analysis' are its tempo band
and key. Changing how a facet is named needs a migration that recomputes them (as 0007 did).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

#: FFmpeg's container names as people say them
CONTAINERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4",
    "matroska,webm": "Matroska",
    "mp3": "MP3",
    "flac": "FLAC",
    "ogg": "Ogg",
    "wav": "WAV",
    "aiff": "AIFF",
    "asf": "WMA/WMV",
    "avi": "AVI",
    "mpegts": "MPEG-TS",
    "mpeg": "MPEG-PS",
    "aac": "AAC",
    "flv": "FLV",
}
#: the heights people name a video resolution by, tallest first
RESOLUTIONS = ((2160, "4K"), (1440, "1440p"), (1080, "1080p"), (720, "720p"), (576, "576p"))
#: bit-rate bands in bits per second (upper bound, label)
BIT_RATES = (
    (128_000, "under 128 kb/s"),
    (320_000, "128-320 kb/s"),
    (1_000_000, "320 kb/s-1 Mb/s"),
    (5_000_000, "1-5 Mb/s"),
    (15_000_000, "5-15 Mb/s"),
)
TOP_BIT_RATE = "over 15 Mb/s"
#: at most this many kinds of stream per result (a file with 40 subtitle tracks in 40
#: languages still counts them all, as one kind), and this long a name: a facet stays short
MAX_STREAM_KINDS = 16
MAX_NAME = 48
#: the most bytes a result's facets take (an index entry: PostgreSQL's limit is ~2,700)
MAX_BYTES = 1000


def container_name(name: str | None) -> str:
    """``"mov,mp4,m4a,3gp,3g2,mj2"`` -> ``"MP4"``; an unknown one as FFmpeg says it."""
    if not name:
        return "unknown"
    return CONTAINERS.get(name, name.split(",")[0].upper())


def resolution_name(width: int | None, height: int | None) -> str:
    """The name of a frame size; a film cropped to 1920x800 is still 1080p (by its width)."""
    lines = max(_int(height), _int(width) * 9 // 16)
    if not lines:
        return "unknown"
    for least, label in RESOLUTIONS:
        if lines >= least * 0.95:
            return label
    return "SD"


def bit_rate_band(bit_rate: float | None) -> str:
    if bit_rate is None:
        return "unknown"
    for upper, label in BIT_RATES:
        if bit_rate < upper:
            return label
    return TOP_BIT_RATE


def key_name(key: Any, scale: Any) -> str:
    """``"8A A minor"``: the Camelot code, then the key in letters (``?`` when unknown)."""
    from mediamill.playlists import camelot  # the playlist code, loaded by analysed music only

    try:
        code = str(camelot(key, scale))
    except (ValueError, TypeError):
        code = "?"
    return f"{code} {key} {scale}"


def facets_of(processor: str, data: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    """``(facets as compact JSON, media duration in seconds)`` of one successful result;
    ``(None, None)`` for a processor statistics do not count."""
    if not isinstance(data, Mapping):
        return None, None
    if processor == "probe":
        return _dump(_probe_facets(data)), _number(data.get("duration"))
    if processor == "audio":
        facets: dict[str, Any] = {}
        if data.get("key") is not None:
            facets["key"] = _short(key_name(data.get("key"), data.get("scale")))
        bpm = _number(data.get("bpm"))
        if bpm is not None:
            facets["tempo"] = round(bpm) // 10 * 10  # the 10-BPM band: 120 is 120-129
        return _dump(facets), None
    return None, None


def _probe_facets(data: Mapping[str, Any]) -> dict[str, Any]:
    image = data.get("image")
    name = data.get("container") or (image.get("format") if isinstance(image, Mapping) else None)
    streams: Counter[tuple[str, str, str | None]] = Counter()
    for stream in data.get("streams") or ():
        if not isinstance(stream, Mapping) or stream.get("attached_pic"):
            continue  # cover art is not a stream anyone watches
        kind = _short(stream.get("type") or "other")
        resolution = None
        if kind == "video":
            resolution = resolution_name(stream.get("width"), stream.get("height"))
        streams[(kind, _short(stream.get("codec") or "unknown"), resolution)] += 1
    return {
        "container": _short(container_name(str(name) if name else None)),
        "bit_rate": bit_rate_band(_number(data.get("bit_rate"))),
        "streams": [[*key, n] for key, n in sorted(streams.items(), key=_order)][:MAX_STREAM_KINDS],
    }


def _order(entry: tuple[tuple[str, str, str | None], int]) -> tuple[str, str, str]:
    (kind, codec, resolution), _ = entry
    return kind, codec, resolution or ""


def _dump(facets: dict[str, Any]) -> str:
    text = json.dumps(facets, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    while len(text.encode()) > MAX_BYTES and facets.get("streams"):
        facets["streams"].pop()  # only names of absurd length get here
        text = json.dumps(facets, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text


def _short(value: Any) -> str:
    return str(value)[:MAX_NAME]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0
