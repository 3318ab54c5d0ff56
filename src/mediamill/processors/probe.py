"""The ``probe`` processor: what a media file holds, read in-process without decoding.

Audio and video go through PyAV (FFmpeg's demuxers, no ffprobe process, no frame decoded),
tags are topped up with mutagen for audio files, images go through Pillow. ``process``
returns::

    media      "audio" | "video" | "image", decided by content, never by suffix
    container  FFmpeg format name as ffprobe prints it ("mov,mp4,m4a,3gp,3g2,mj2",
               "matroska,webm", "flac", ...); None for images
    duration   seconds (float) or None;  bit_rate  bits/s or None;  size  bytes
    streams    in file order; every stream has every key below, None when it does not
               apply or is unknown: index, type (audio|video|subtitle|data|attachment, or
               unknown as ffprobe says when FFmpeg cannot tell),
               codec (ffprobe's codec_name), profile, language (ISO 639-2, "und" -> None),
               title, default, forced, attached_pic (cover art shown as a video stream),
               channels, channel_layout, sample_rate, bits_per_sample, width, height,
               fps, pix_fmt, bit_rate, duration
               video streams also: bit_depth, color_range, color_space, color_transfer,
               color_primaries (ffprobe's names: "tv", "bt2020nc", "smpte2084", "bt2020"),
               hdr ("HDR10" for PQ, "HLG", "Dolby Vision" from an MP4's sample entry),
               rotation (an MP4/MOV's display matrix, degrees anticlockwise as ffprobe
               prints them: a phone's portrait video is -90), frame_rate_mode
               ("constant" or "variable")
    chapters   [{start, end (seconds), title}], in order; [] for none
    tags       lower-case keys normalised across formats: title, artist, album,
               albumartist, track, track_total, disc, disc_total, year (ints), date,
               genre, composer, comment, ...; other tags keep their name, lower-cased,
               spaces as "_"; values with several entries are joined with "; "
    image      None, or for images (HEIC/HEIF and AVIF too; see processors/photo.py):
               width, height (pixels as stored), orientation (EXIF's 1-8; for HEIF/AVIF
               from their irot/imir boxes), display_width, display_height (as shown, the
               orientation applied), format, mode, make, model, lens, lens_make, iso,
               exposure_time (s), f_number, focal_length (mm), taken_at (ISO 8601 with
               sub-seconds and UTC offset when the camera wrote them), taken_at_tag
               ("DateTimeOriginal" or "CreateDate"), time_zone ("+02:00"), gps {lat, lon
               (signed decimal degrees), alt (metres, negative below sea level)} or None

Option ``mutagen`` (default true): read audio tags with mutagen too; false is faster and
keeps FFmpeg's reading only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from mediamill.processors.base import ItemRef, Processor, Work
from mediamill.processors.photo import AVIF_BRANDS, HEIF_BRANDS, probe_photo

EMPTY_FILE = "empty file (0 bytes): not a media file"
NOT_READABLE = "not a readable media file"

# First bytes that name an FFmpeg demuxer beyond doubt. Forcing the demuxer skips FFmpeg's
# probe of every format it knows, which is half the cost of opening a small file; anything
# not listed here (or that fails to open this way) gets the full probe.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (4, b"ftyp", "mov"),
)
_IMAGE_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"II*\x00"),  # TIFF, little-endian
    (0, b"MM\x00*"),  # TIFF, big-endian
    (0, b"BM"),
)
#: HEIC/HEIF and AVIF photos share ISO-BMFF's ``ftyp`` with MP4 video; their brand tells
_PHOTO_BRANDS = HEIF_BRANDS | AVIF_BRANDS
# A PCM wav is fully described by its header, yet FFmpeg reads 5 MB of it by default.
_CONTAINER_OPTIONS = {"wav": {"probesize": "4096"}}
# a demuxer forced by its short name keeps that name in PyAV; report FFmpeg's full one
_DEMUXER_NAMES = {"mov": "mov,mp4,m4a,3gp,3g2,mj2", "matroska": "matroska,webm"}
# FFmpeg "opens" plain text as a video through its tty demuxer
_NOT_MEDIA_FORMATS = frozenset({"tty"})

_STREAM_KEYS = (
    "index",
    "type",
    "codec",
    "profile",
    "language",
    "title",
    "default",
    "forced",
    "attached_pic",
    "channels",
    "channel_layout",
    "sample_rate",
    "bits_per_sample",
    "width",
    "height",
    "fps",
    "pix_fmt",
    "bit_rate",
    "duration",
    # video: what users filter on, named as ffprobe names it where it has a name
    "bit_depth",
    "color_range",
    "color_space",
    "color_transfer",
    "color_primaries",
    "hdr",
    "rotation",
    "frame_rate_mode",
)

_TAG_ALIASES = {
    "album_artist": "albumartist",
    "album artist": "albumartist",
    "aart": "albumartist",
    "tracknumber": "track",
    "trck": "track",
    "tracktotal": "track_total",
    "totaltracks": "track_total",
    "discnumber": "disc",
    "disk": "disc",
    "tpos": "disc",
    "disctotal": "disc_total",
    "totaldiscs": "disc_total",
    "description": "comment",
    "year": "date",
    "tdrc": "date",
    # Picard's names differ between ID3/MP4 ("MusicBrainz Album Id") and Vorbis comments
    "musicbrainz album id": "musicbrainz_albumid",
    "musicbrainz artist id": "musicbrainz_artistid",
    "musicbrainz album artist id": "musicbrainz_albumartistid",
    "musicbrainz release track id": "musicbrainz_releasetrackid",
    "musicbrainz release group id": "musicbrainz_releasegroupid",
}
# container plumbing, not tags a user set
_NOT_TAGS = frozenset(
    {"major_brand", "minor_version", "compatible_brands", "handler_name", "vendor_id"}
    | {"duration", "language"}
)
_INT_TAGS = ("track", "track_total", "disc", "disc_total")


class ProbeProcessor(Processor):
    """Read container, streams, durations and tags of audio/video files, EXIF of images."""

    name = "probe"
    # 2: HEIC/AVIF photos read as images, taken_at never from the modify date, stored and
    # display sizes, tag bytes that are not UTF-8 read as Latin-1
    version = "2"
    # processes, not threads: PyAV releases the GIL inside FFmpeg, but mutagen and the
    # describing around it are Python, and with threads they queue for the one GIL (at 2
    # cores, 5,000 small files: 3.0-3.2 s in processes against 3.1-3.8 s in threads). A
    # worker process also confines a crash in a C library to the item that caused it.
    work = Work.CPU
    option_names = frozenset({"mutagen"})
    kinds = frozenset({"audio", "video", "image"})
    result_options = ("mutagen",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.use_mutagen = bool(self.options.get("mutagen", True))

    def setup(self) -> None:
        # Pillow warns about odd images (corrupt EXIF, truncated TIFF) through `warnings`,
        # which prints them on the user's terminal; what a file holds is told by its result
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")

    def process(self, item: ItemRef) -> dict[str, Any]:
        if item.abspath is None:
            raise ValueError(f"{item.path} is not a file: nothing to probe")
        return probe_file(Path(item.abspath), kind=item.kind, use_mutagen=self.use_mutagen)


def probe_file(path: Path, *, kind: str | None = None, use_mutagen: bool = True) -> dict[str, Any]:
    """Probe ``path`` by its content; ``kind`` only breaks ties for unrecognised images.

    Raises ``ValueError`` with the cause when the file is empty, unreadable or holds no
    audio, video or image.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise ValueError(EMPTY_FILE)
        head = handle.read(32)
        is_image = (
            any(head.startswith(sig, at) for at, sig in _IMAGE_MAGIC)
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[4:8] == b"ftyp" and head[8:12] in _PHOTO_BRANDS)
        )
        demuxer = None if is_image else _sniff_demuxer(head, handle)
    if is_image or (kind == "image" and demuxer is None):
        return probe_photo(path, size, head)
    return _probe_av(path, size, demuxer, use_mutagen=use_mutagen)


def _sniff_demuxer(head: bytes, handle: BinaryIO) -> str | None:
    for at, sig, demuxer in _MAGIC:
        if head.startswith(sig, at):
            return demuxer
    if head[:4] == b"RIFF":
        return {b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head[:3] == b"ID3" and len(head) >= 10:
        # an ID3v2 tag leads mp3 files, and sometimes flac or AAC ones: look past it
        tag_size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        tag_size += 20 if head[5] & 0x10 else 10
        handle.seek(tag_size)
        after = handle.read(4)
        if after == b"fLaC":
            return "flac"
        return "mp3" if _is_mpeg_audio_header(after) else None
    return "mp3" if _is_mpeg_audio_header(head[:4]) else None


def _is_mpeg_audio_header(data: bytes) -> bool:
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return False
    version, layer = (data[1] >> 3) & 3, (data[1] >> 1) & 3
    bitrate, rate = data[2] >> 4, (data[2] >> 2) & 3
    # layer 0 is AAC's ADTS header, which shares the sync word
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _open_av(path: Path, demuxer: str | None) -> Any:
    import av

    if demuxer is not None:
        try:
            return av.open(
                str(path),
                format=demuxer,
                container_options=_CONTAINER_OPTIONS.get(demuxer),
                metadata_errors="surrogateescape",
            )
        except av.FFmpegError:
            pass  # the magic bytes misled us; FFmpeg's own probe decides below
    try:
        return av.open(str(path), metadata_errors="surrogateescape")
    except av.FFmpegError as error:
        message = str(error.strerror or error)
        cause = _ffmpeg_cause(path)
        raise ValueError(f"{NOT_READABLE}: {message}" + (f" ({cause})" if cause else "")) from error


_LOG_LOCK = threading.Lock()


def _ffmpeg_cause(path: Path) -> str | None:
    """FFmpeg's own reason for refusing ``path`` ("moov atom not found"), from its log.

    PyAV keeps FFmpeg quiet, which leaves only a generic error ("Invalid data found when
    processing input"). Only for a file that failed, the open is tried again with the log
    captured: the lock keeps threads from switching the global log level under each other,
    and what other threads log meanwhile is swallowed, as it is when logging is off."""
    import av
    import av.logging

    with _LOG_LOCK:
        prior, skipping = av.logging.get_level(), av.logging.get_skip_repeated()
        if prior is None:
            av.logging.set_level(av.logging.WARNING)
        # PyAV drops a line equal to the last one logged: the same cause for a second file
        av.logging.set_skip_repeated(False)
        try:
            with (
                av.logging.Capture(local=False),
                av.logging.Capture() as logs,
                contextlib.suppress(av.FFmpegError),
            ):
                av.open(str(path)).close()
        finally:
            av.logging.set_skip_repeated(skipping)
            if prior is None:
                av.logging.set_level(None)
    return _worst_line(logs)


def _worst_line(logs: list[tuple[int, str, str]]) -> str | None:
    """The last of the most severe lines FFmpeg logged, without its trailing newline."""
    lines = [(level, message.strip().rstrip(".")) for level, _, message in logs if message.strip()]
    if not lines:
        return None
    worst = min(level for level, _ in lines)
    return [message for level, message in lines if level == worst][-1]


def _probe_av(path: Path, size: int, demuxer: str | None, *, use_mutagen: bool) -> dict[str, Any]:
    with _open_av(path, demuxer) as container:
        container_name = _DEMUXER_NAMES.get(container.format.name, container.format.name)
        if container_name in _NOT_MEDIA_FORMATS:
            raise ValueError(f"{NOT_READABLE}: FFmpeg sees plain text ({container_name})")
        streams = [_describe_stream(stream) for stream in container.streams]
        duration = _container_duration(container.duration, streams)
        bit_rate = container.bit_rate or None
        if bit_rate is None and duration:
            bit_rate = round(size * 8 / duration)  # what ffprobe prints for such files
        chapters = [_chapter(chapter) for chapter in container.chapters()]
        raw_tags: list[Mapping[str, str]] = [container.metadata]
        audio_streams = [s for s in container.streams if s.type == "audio"]
        if audio_streams:
            # Ogg keeps its Vorbis comments on the stream, not the container
            raw_tags.append(audio_streams[0].metadata)
    playable = [s for s in streams if _is_playable(s)]
    if not playable:
        raise ValueError(f"{NOT_READABLE}: {_why_nothing_playable(container_name, streams)}")
    media = "video" if any(s["type"] == "video" for s in playable) else "audio"
    if media == "video" and container_name.startswith("mov,mp4"):
        _add_mp4_tracks(path, streams)
    tags = _normalise_tags(raw_tags)
    if use_mutagen and media == "audio" and _ffmpeg_loses_something(container_name, streams, tags):
        _merge_mutagen(path, container_name, streams, tags)
    return {
        "media": media,
        "container": container_name,
        "duration": duration,
        "bit_rate": bit_rate,
        "size": size,
        "streams": streams,
        "tags": tags,
        "chapters": chapters,
        "image": None,
    }


def _chapter(chapter: Mapping[str, Any]) -> dict[str, Any]:
    base = chapter["time_base"]
    scale = float(base) if base else 1.0
    title = chapter["metadata"].get("title")
    return {
        "start": round(chapter["start"] * scale, 6),
        "end": round(chapter["end"] * scale, 6),
        "title": _clean(title) or None if title else None,
    }


def _add_mp4_tracks(path: Path, streams: list[dict[str, Any]]) -> None:
    """Rotation and Dolby Vision of an MP4/MOV's video tracks, which PyAV does not give."""
    from mediamill.processors.mp4boxes import read_tracks

    with open(path, "rb") as handle:
        tracks = read_tracks(handle)
    if len(tracks) != len(streams):
        return  # FFmpeg made streams of tracks otherwise than one each: no guessing
    for stream, track in zip(streams, tracks, strict=True):
        if stream["type"] == "video":
            stream["rotation"] = track.rotation
            if track.dolby_vision:
                stream["hdr"] = "Dolby Vision"


def _container_duration(microseconds: int | None, streams: list[dict[str, Any]]) -> float | None:
    """The container's duration, else its longest stream's; never negative or zero."""
    if microseconds and microseconds > 0:
        return microseconds / 1_000_000
    lengths = [s["duration"] for s in streams if s["duration"]]
    return max(lengths) if lengths else None


@functools.cache
def _disposition_bits() -> tuple[int, int, int]:
    from av.stream import Disposition

    return int(Disposition.default), int(Disposition.forced), int(Disposition.attached_pic)


def _describe_stream(stream: Any) -> dict[str, Any]:
    info: dict[str, Any] = dict.fromkeys(_STREAM_KEYS)
    default, forced, attached_pic = _disposition_bits()
    disposition = int(stream.disposition)
    context = stream.codec_context
    language = stream.language
    metadata = stream.metadata  # PyAV builds a new dict on every access
    stream_type = stream.type
    info.update(
        index=stream.index,
        type=stream_type,
        codec=_codec_name(stream, context),
        profile=stream.profile,
        language=None if language in (None, "", "und") else language,
        title=_clean(metadata["title"]) or None if "title" in metadata else None,
        default=bool(disposition & default),
        forced=bool(disposition & forced),
        attached_pic=bool(disposition & attached_pic),
        duration=_stream_duration(stream, metadata),
    )
    if context is None:
        return info
    info["bit_rate"] = context.bit_rate
    if stream_type == "audio":
        layout = context.layout.name
        info.update(
            channels=context.channels or None,
            # "2 channels" is FFmpeg's name for channels without positions (ffprobe: unknown)
            channel_layout=None if _UNPOSITIONED.fullmatch(layout) else layout,
            sample_rate=context.sample_rate or None,
            bits_per_sample=_bits_per_sample(info["codec"], context),
        )
    elif stream_type == "video":
        _describe_picture(stream, context, info)
    return info


# FFmpeg's names of the ITU-T H.273 code points (av_color_*_name), as ffprobe prints them
_COLOR_RANGES = {1: "tv", 2: "pc"}
_COLOR_SPACES = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
    13: "chroma-derived-c", 14: "ictcp",
}  # fmt: skip
_COLOR_TRANSFERS = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
    14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}  # fmt: skip
_COLOR_PRIMARIES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "jedec-p22",
}  # fmt: skip
#: transfer functions of HDR video: PQ (HDR10, and Dolby Vision's base layer) and HLG
_HDR_TRANSFERS = {"smpte2084": "HDR10", "arib-std-b67": "HLG"}


def _describe_picture(stream: Any, context: Any, info: dict[str, Any]) -> None:
    rate = stream.average_rate or stream.guessed_rate
    transfer = _COLOR_TRANSFERS.get(context.color_trc)
    fmt = context.format
    info.update(
        width=context.width or None,
        height=context.height or None,
        fps=float(rate) if rate and not info["attached_pic"] else None,
        pix_fmt=context.pix_fmt,
        bit_depth=fmt.components[0].bits if fmt is not None and fmt.components else None,
        color_range=_COLOR_RANGES.get(context.color_range),
        color_space=_COLOR_SPACES.get(context.colorspace),
        color_transfer=transfer,
        color_primaries=_COLOR_PRIMARIES.get(context.color_primaries),
        hdr=_HDR_TRANSFERS.get(transfer or ""),
        frame_rate_mode=_frame_rate_mode(stream),
    )


def _frame_rate_mode(stream: Any) -> str | None:
    """ "constant" when the average rate is the stream's base rate (FFmpeg's r_frame_rate,
    the lowest rate all timestamps fit), "variable" when frames come at other intervals."""
    average, base = stream.average_rate, stream.base_rate
    if not average or not base:
        return None
    return "constant" if abs(float(average) / float(base) - 1) < 0.01 else "variable"


def _codec_name(stream: Any, context: Any) -> str | None:
    if context is not None:
        return str(context.codec.canonical_name)
    # data streams (chapter tracks, GoPro telemetry) have no decoder; ffprobe names their
    # codec all the same ("bin_data", "bin_data")
    name = getattr(stream, "name", None) if stream.type == "data" else None
    return str(name) if name else None


_UNPOSITIONED = re.compile(r"\d+ channels?")
_HMS = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


def _stream_duration(stream: Any, metadata: Mapping[str, str]) -> float | None:
    duration, time_base = stream.duration, stream.time_base
    if duration and duration > 0 and time_base:
        # int / int is correctly rounded: the same float as float(duration * time_base)
        return float(duration * time_base.numerator / time_base.denominator)
    # Matroska stores each track's length only as a "DURATION" tag, e.g. 00:00:00.521000000
    tag = metadata.get("DURATION") or metadata.get("duration")
    match = _HMS.fullmatch(tag.strip()) if tag else None
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _bits_per_sample(codec: str | None, context: Any) -> int | None:
    if codec is None:
        return None
    if codec.startswith("pcm_"):
        digits = re.search(r"\d+", codec)
        return int(digits.group()) if digits else None
    if codec in {"flac", "alac", "wavpack", "ape", "tta", "truehd", "mlp"}:
        # the decoder's sample format: 24-bit audio decodes to s32; mutagen refines it
        fmt = context.format
        return int(fmt.bits) if fmt is not None else None
    return None  # lossy codecs have no bit depth


def _is_playable(stream: Mapping[str, Any]) -> bool:
    if stream["type"] == "audio":
        return bool(stream["sample_rate"] and stream["channels"])
    if stream["type"] == "video":
        return bool(stream["width"] and stream["height"]) and not stream["attached_pic"]
    return False


def _why_nothing_playable(container: str, streams: list[dict[str, Any]]) -> str:
    if not streams:
        return f"no stream found in {container} data"
    broken = [s for s in streams if s["type"] in ("audio", "video")]
    if broken:
        first = broken[0]
        return f"{first['codec']} {first['type']} stream has no usable parameters (corrupt data?)"
    types = ", ".join(sorted({str(s["type"]) for s in streams}))
    return f"no audio or video stream, only {types}"


def _normalise_tags(sources: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge raw tag mappings (later ones do not override earlier ones) into our names."""
    tags: dict[str, Any] = {}
    for source in sources:
        for raw_key, raw_value in source.items():
            key = _tag_name(raw_key)
            if key in _NOT_TAGS or key in tags:
                continue
            value = _clean(raw_value) if type(raw_value) is str else _tag_value(raw_value)
            if value:
                tags[key] = value
    return _typed_tags(tags)


#: bytes that are not UTF-8 reach us escaped as lone surrogates (U+DC80-U+DCFF); read each
#: as the Latin-1 character of the same value, as taggers that wrote them meant (0xF6: ö)
_LATIN1_FALLBACK = {0xDC00 + byte: byte for byte in range(0x80, 0x100)}


def _clean(value: str) -> str:
    """A tag or title as text: stray bytes read as Latin-1, NULs and edge spaces gone."""
    if not value.isascii():
        value = value.translate(_LATIN1_FALLBACK)
    return value.strip(_STRIP)


_STRIP = " \t\r\n\x00"


def _tag_name(raw: str) -> str:
    key = raw.strip().lower()
    key = _TAG_ALIASES.get(key, key)
    return key.replace(" ", "_")


def _tag_value(raw: Any) -> str:
    if isinstance(raw, list | tuple):
        return "; ".join(text for text in (_clean(str(v)) for v in raw) if text)
    return _clean(str(raw))


def _typed_tags(tags: dict[str, Any]) -> dict[str, Any]:
    for key, total in (("track", "track_total"), ("disc", "disc_total")):
        value = tags.get(key)
        if isinstance(value, str) and "/" in value:
            number, _, of = value.partition("/")
            tags[key] = number
            tags.setdefault(total, of)
    for key in _INT_TAGS:
        if key in tags:
            as_int = _leading_int(tags[key])
            if as_int is None:
                del tags[key]
            else:
                tags[key] = as_int
    date = tags.get("date")
    if isinstance(date, str):
        year = re.match(r"\s*(\d{4})", date)
        if year and int(year.group(1)):  # "0000" is a tagger's placeholder, not year 0
            tags["year"] = int(year.group(1))
    return tags


def _leading_int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    match = re.match(r"\s*(\d+)", str(value))
    return int(match.group(1)) if match else None


def _ffmpeg_loses_something(
    container: str, streams: list[dict[str, Any]], tags: Mapping[str, Any]
) -> bool:
    """Whether mutagen would read more than FFmpeg did: FFmpeg keeps only the first value of
    a multi-valued ID3 frame or MP4 atom, joins Vorbis comments with a bare ';', and reports
    24-bit lossless audio as 32-bit. Elsewhere mutagen's second read of the file adds
    nothing, and skipping it saves a fifth of the probe's time."""
    if container == "mp3" or container.startswith("mov,mp4"):
        return True
    if any(isinstance(value, str) and ";" in value for value in tags.values()):
        return True
    return any(s["type"] == "audio" and s.get("bits_per_sample") == 32 for s in streams)


def _merge_mutagen(
    path: Path, container: str, streams: list[dict[str, Any]], tags: dict[str, Any]
) -> None:
    """Overlay mutagen's reading, chosen by content: it keeps every value of a tag."""
    codecs = {s["codec"] for s in streams if s["type"] == "audio"}
    reader = _mutagen_reader(container, codecs)
    if reader is None:
        return
    from mutagen import MutagenError

    try:
        audio = reader(str(path))
    except MutagenError:
        return  # FFmpeg read the file; mutagen's stricter parser adds nothing here
    depth = getattr(getattr(audio, "info", None), "bits_per_sample", None)
    if depth:
        for stream in streams:
            if stream["type"] == "audio" and stream["bits_per_sample"]:
                stream["bits_per_sample"] = int(depth)
                break
    # mutagen.id3.ID3 is itself the tag mapping; the other readers hold theirs in .tags
    found = getattr(audio, "tags", audio)
    if found:
        for key, value in _normalise_tags([_mutagen_fields(found)]).items():
            # mutagen reads bytes that are not UTF-8 as U+FFFD; FFmpeg's reading kept them
            if not (key in tags and isinstance(value, str) and "\ufffd" in value):
                tags[key] = value


def _mutagen_reader(container: str, codecs: set[str]) -> Any:
    # the plain readers: the Easy* wrappers cost more than the whole FFmpeg open
    module, cls = "", ""
    if container == "mp3":
        # the ID3v2 tag only: no scan of MPEG frames, and no ID3v1 values mixed in (FFmpeg,
        # like ffprobe, reads ID3v1 only when a file has no ID3v2 tag)
        return functools.partial(importlib.import_module("mutagen.id3").ID3, load_v1=False)
    if container == "flac":
        module, cls = "flac", "FLAC"
    elif container.startswith("mov,mp4"):
        module, cls = "mp4", "MP4"
    elif container == "ogg":
        module, cls = next(
            (
                pair
                for codec, pair in (
                    ("opus", ("oggopus", "OggOpus")),
                    ("vorbis", ("oggvorbis", "OggVorbis")),
                    ("flac", ("oggflac", "OggFLAC")),
                )
                if codec in codecs
            ),
            ("", ""),
        )
    if not module:
        return None
    return getattr(importlib.import_module(f"mutagen.{module}"), cls)


_ID3_FRAMES = {
    "TIT2": "title",
    "TPE1": "artist",
    "TALB": "album",
    "TPE2": "albumartist",
    "TRCK": "track",
    "TPOS": "disc",
    "TDRC": "date",
    "TCON": "genre",
    "TCOM": "composer",
    "TCMP": "compilation",
    "TBPM": "bpm",
    "TSRC": "isrc",
    "TPUB": "publisher",
    "TCOP": "copyright",
}
_MP4_ATOMS = {
    "\xa9nam": "title",
    "\xa9ART": "artist",
    "\xa9alb": "album",
    "aART": "albumartist",
    "\xa9day": "date",
    "\xa9gen": "genre",
    "\xa9wrt": "composer",
    "\xa9cmt": "comment",
    "cpil": "compilation",
    "tmpo": "bpm",
    "cprt": "copyright",
}


def _mutagen_fields(found: Any) -> dict[str, list[str]]:
    """Raw tag name -> every value, from ID3 frames, MP4 atoms or Vorbis comments."""
    if hasattr(found, "as_dict"):  # Vorbis comments (FLAC, Ogg)
        return {key: [str(v) for v in values] for key, values in found.as_dict().items()}
    fields: dict[str, list[str]] = {}
    for key, value in found.items():
        if hasattr(value, "FrameID"):  # an ID3 frame
            _id3_field(value, fields)
        elif key in ("trkn", "disk") and value:
            number, total = value[0]
            name = "track" if key == "trkn" else "disc"
            fields[name] = [str(number)] if number else []
            fields[f"{name}_total"] = [str(total)] if total else []
        elif key.startswith("----:"):  # iTunes free-form atom: ----:mean:name
            fields[key.rsplit(":", 1)[-1]] = [_text_of(v) for v in value]
        elif key in _MP4_ATOMS:
            values = value if isinstance(value, list) else [value]
            fields[_MP4_ATOMS[key]] = [_text_of(v) for v in values]
    return fields


def _id3_field(frame: Any, fields: dict[str, list[str]]) -> None:
    frame_id = frame.FrameID
    if frame_id == "TCON":
        fields["genre"] = list(frame.genres)  # resolves ID3v1 numbers: "(17)" -> Rock
    elif frame_id in _ID3_FRAMES:
        fields[_ID3_FRAMES[frame_id]] = [str(text) for text in frame.text]
    elif frame_id == "TXXX":
        fields[frame.desc] = [str(text) for text in frame.text]
    elif frame_id == "COMM" and not frame.desc:
        fields["comment"] = [str(text) for text in frame.text]


def _text_of(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
