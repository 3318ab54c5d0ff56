"""Write small, real media files (PyAV for audio/video, Pillow for images) on demand.

Every file is genuinely encoded, so FFmpeg, mutagen and Pillow read it back the way they
read a user's library; each one takes a few milliseconds to write. Broken files (empty,
truncated, corrupt, mislabelled) are made from real ones so their failures are realistic.
"""

from __future__ import annotations

import importlib
import math
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

AudioFormat = Literal["mp3", "flac", "m4a-aac", "m4a-alac", "opus", "ogg", "wav"]
VideoFormat = Literal["mp4", "webm", "avi", "mov"]

#: audio formats users have, keyed by what :func:`write_audio` accepts
AUDIO_FORMATS: tuple[AudioFormat, ...] = (
    "mp3",
    "flac",
    "m4a-aac",
    "m4a-alac",
    "opus",
    "ogg",
    "wav",
)
VIDEO_FORMATS: tuple[VideoFormat, ...] = ("mp4", "webm", "avi", "mov")


@dataclass(frozen=True, slots=True)
class _AudioSpec:
    muxer: str
    codec: str
    suffix: str
    sample_rate: int
    sample_format: str | None = None
    options: dict[str, str] = field(default_factory=dict)


_AUDIO: dict[AudioFormat, _AudioSpec] = {
    "mp3": _AudioSpec("mp3", "libmp3lame", ".mp3", 44100),
    "flac": _AudioSpec("flac", "flac", ".flac", 44100, "s16"),
    "m4a-aac": _AudioSpec("ipod", "aac", ".m4a", 44100),
    "m4a-alac": _AudioSpec("ipod", "alac", ".m4a", 44100, "s16p"),
    "opus": _AudioSpec("ogg", "libopus", ".opus", 48000),
    # FFmpeg's own vorbis encoder is flagged experimental and refuses to open without it
    "ogg": _AudioSpec("ogg", "vorbis", ".ogg", 44100, options={"strict": "experimental"}),
    "wav": _AudioSpec("wav", "pcm_s16le", ".wav", 44100),
}


@dataclass(frozen=True, slots=True)
class AudioTags:
    """Tags as a tagger writes them; :func:`write_audio` stores them in each format's own way."""

    title: str = "Test Tone"
    artist: str = "Test Artist"
    album: str = "Test Album"
    albumartist: str = "Various Artists"
    track: int = 3
    track_total: int = 12
    disc: int = 1
    disc_total: int = 2
    year: int = 2021
    genre: str = "Electronic"
    composer: str = "Test Composer"
    comment: str = "made by mediamill.testing"


@dataclass(frozen=True, slots=True)
class PhotoExif:
    """Camera EXIF written into :func:`write_photo` files; south/west are negative degrees.

    ``taken_at`` is DateTimeOriginal, ``create_date`` DateTimeDigitized (exiftool's
    CreateDate), ``modify_date`` IFD0's DateTime (when the file was last changed); None
    leaves a tag out."""

    make: str = "Canon"
    model: str = "Canon EOS R5"
    lens: str = "RF24-105mm F4 L IS USM"
    iso: int = 400
    exposure_time: Fraction = Fraction(1, 250)
    f_number: Fraction = Fraction(4, 1)
    focal_length: Fraction = Fraction(50, 1)
    taken_at: str | None = "2023:07:14 18:30:05"
    lat: float = -33.8568
    lon: float = 151.2153
    orientation: int = 1
    create_date: str | None = None
    modify_date: str | None = "2024:01:02 09:00:00"
    subsec: str | None = None  # SubSecTimeOriginal (and SubSecTimeDigitized)
    offset: str | None = None  # OffsetTimeOriginal (and OffsetTimeDigitized), e.g. "+02:00"
    altitude: float | None = None  # metres; below sea level is negative


def suffix_for(fmt: AudioFormat) -> str:
    """The file suffix users give ``fmt`` (``.m4a`` for both AAC and ALAC)."""
    return _AUDIO[fmt].suffix


def _tone(seconds: float, rate: int, channels: int, freq: float) -> np.ndarray[Any, Any]:
    t = np.arange(round(seconds * rate), dtype=np.float32) / rate
    wave = (0.3 * np.sin(2 * math.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[np.newaxis, :], channels, axis=0)


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: float,
    freq: float,
) -> None:
    rate = stream.codec_context.sample_rate
    channels = stream.codec_context.channels
    samples = _tone(seconds, rate, channels, freq)
    layout = "stereo" if channels == 2 else "mono"
    chunk = 1024
    for start in range(0, samples.shape[1], chunk):
        part = np.ascontiguousarray(samples[:, start : start + chunk])
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _add_audio_stream(
    container: av.container.OutputContainer,
    codec: str,
    rate: int,
    *,
    channels: int = 2,
    sample_format: str | None = None,
    options: dict[str, str] | None = None,
) -> av.audio.stream.AudioStream:
    stream = container.add_stream(codec, rate=rate, options=dict(options or {}))
    assert isinstance(stream, av.audio.stream.AudioStream)
    stream.layout = "stereo" if channels == 2 else "mono"
    if sample_format:
        stream.format = sample_format
    return stream


def write_audio(
    path: Path,
    fmt: AudioFormat,
    *,
    seconds: float = 0.5,
    tags: AudioTags | None = AudioTags(),
    channels: int = 2,
    freq: float = 440.0,
) -> Path:
    """Encode a ``seconds``-long tone as ``fmt`` at ``path`` and tag it; returns ``path``.

    The format comes from ``fmt``, never from the suffix, so a flac named ``.txt`` is easy
    to make. Tags are written the way taggers write them: ID3v2.4 frames (TPE2, TRCK
    ``3/12``...) for mp3, Vorbis comments (ALBUMARTIST, TRACKNUMBER, TRACKTOTAL...) for
    flac/ogg/opus, iTunes atoms (aART, trkn, disk...) for m4a, RIFF INFO for wav (which
    has no album artist, disc or composer field).
    """
    spec = _AUDIO[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=spec.muxer) as out:
        if fmt == "wav" and tags is not None:
            out.metadata.update(_riff_info(tags))
        stream = _add_audio_stream(
            out,
            spec.codec,
            spec.sample_rate,
            channels=channels,
            sample_format=spec.sample_format,
            options=spec.options,
        )
        _encode_audio(out, stream, seconds, freq)
    if tags is not None and fmt != "wav":
        _tag_with_mutagen(path, fmt, tags)
    return path


def _riff_info(tags: AudioTags) -> dict[str, str]:
    # FFmpeg's wav muxer maps these generic keys onto INAM/IART/IPRD/ICRD/IGNR/IPRT/ICMT
    return {
        "title": tags.title,
        "artist": tags.artist,
        "album": tags.album,
        "date": str(tags.year),
        "genre": tags.genre,
        "track": str(tags.track),
        "comment": tags.comment,
    }


def _mutagen(module: str) -> Any:
    # mutagen's API is untyped; holding its modules as Any keeps mypy strict elsewhere
    return importlib.import_module(f"mutagen.{module}")


def _tag_with_mutagen(path: Path, fmt: AudioFormat, tags: AudioTags) -> None:
    # mutagen writes the canonical form of each tag system (what Picard/beets produce);
    # FFmpeg's muxers write e.g. TRACKNUMBER=3/12 in Vorbis comments instead.
    if fmt == "mp3":
        id3 = _mutagen("id3")
        frames = id3.ID3()
        for frame, text in (
            ("TIT2", tags.title),
            ("TPE1", tags.artist),
            ("TALB", tags.album),
            ("TPE2", tags.albumartist),
            ("TRCK", f"{tags.track}/{tags.track_total}"),
            ("TPOS", f"{tags.disc}/{tags.disc_total}"),
            ("TDRC", str(tags.year)),
            ("TCON", tags.genre),
            ("TCOM", tags.composer),
        ):
            frames.add(getattr(id3, frame)(encoding=3, text=text))
        frames.add(id3.COMM(encoding=3, lang="eng", desc="", text=tags.comment))
        frames.save(str(path), v2_version=4)
        return
    if fmt in ("m4a-aac", "m4a-alac"):
        mp4 = _mutagen("mp4").MP4(str(path))
        mp4.update(
            {
                "\xa9nam": [tags.title],
                "\xa9ART": [tags.artist],
                "\xa9alb": [tags.album],
                "aART": [tags.albumartist],
                "trkn": [(tags.track, tags.track_total)],
                "disk": [(tags.disc, tags.disc_total)],
                "\xa9day": [str(tags.year)],
                "\xa9gen": [tags.genre],
                "\xa9wrt": [tags.composer],
                "\xa9cmt": [tags.comment],
            }
        )
        mp4.save()
        return
    # chosen by format, not mutagen.File: it trusts the suffix of a mislabelled file
    module, cls = {"flac": ("flac", "FLAC"), "opus": ("oggopus", "OggOpus")}.get(
        fmt, ("oggvorbis", "OggVorbis")
    )
    audio = getattr(_mutagen(module), cls)(str(path))
    if audio.tags is None:
        audio.add_tags()
    audio.tags.update(
        {
            "TITLE": tags.title,
            "ARTIST": tags.artist,
            "ALBUM": tags.album,
            "ALBUMARTIST": tags.albumartist,
            "TRACKNUMBER": str(tags.track),
            "TRACKTOTAL": str(tags.track_total),
            "DISCNUMBER": str(tags.disc),
            "DISCTOTAL": str(tags.disc_total),
            "DATE": str(tags.year),
            "GENRE": tags.genre,
            "COMPOSER": tags.composer,
            "COMMENT": tags.comment,
        }
    )
    audio.save()


def _add_video_stream(
    container: av.container.OutputContainer,
    codec: str,
    fps: int,
    size: tuple[int, int],
    pix_fmt: str,
    options: dict[str, str] | None = None,
) -> av.video.stream.VideoStream:
    stream = container.add_stream(codec, rate=fps, options=dict(options or {}))
    assert isinstance(stream, av.video.stream.VideoStream)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    return stream


def _encode_video(
    container: av.container.OutputContainer,
    stream: av.video.stream.VideoStream,
    seconds: float,
    fps: int,
) -> None:
    width, height = stream.width, stream.height
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    for i in range(max(1, round(seconds * fps))):
        # a sliding gradient: cheap to make and not trivially compressible to nothing
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[..., 0] = np.roll(ramp, i * 4)[np.newaxis, :]
        rgb[..., 1] = (i * 20) % 256
        rgb[..., 2] = ramp[::-1][np.newaxis, :]
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@dataclass(frozen=True, slots=True)
class _VideoSpec:
    muxer: str
    video: str
    pix_fmt: str
    audio: str
    sample_rate: int
    video_options: dict[str, str] = field(default_factory=dict)


_X264 = {"preset": "ultrafast", "tune": "zerolatency"}
_VIDEO: dict[VideoFormat, _VideoSpec] = {
    "mp4": _VideoSpec("mp4", "libx264", "yuv420p", "aac", 48000, _X264),
    "webm": _VideoSpec(
        "webm",
        "libvpx-vp9",
        "yuv420p",
        "libopus",
        48000,
        {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
    ),
    "avi": _VideoSpec("avi", "mpeg4", "yuv420p", "libmp3lame", 44100),
    # an older camera's .mov: motion JPEG with PCM sound
    "mov": _VideoSpec("mov", "mjpeg", "yuvj420p", "pcm_s16le", 48000),
}


def write_video(
    path: Path,
    fmt: VideoFormat,
    *,
    seconds: float = 0.5,
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    title: str | None = "Test Clip",
) -> Path:
    """Encode a clip with one video and one audio stream as ``fmt`` at ``path``.

    ``mp4`` is h264 + aac, ``webm`` vp9 + opus, ``avi`` mpeg4 + mp3, ``mov`` mjpeg +
    pcm_s16le. The container format comes from ``fmt``, never from the suffix.
    """
    spec = _VIDEO[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=spec.muxer) as out:
        if title:
            out.metadata["title"] = title
        video = _add_video_stream(out, spec.video, fps, size, spec.pix_fmt, spec.video_options)
        audio = _add_audio_stream(out, spec.audio, spec.sample_rate)
        _encode_video(out, video, seconds, fps)
        _encode_audio(out, audio, seconds, 440.0)
    return path


_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
    b"OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, "
    b"Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    b"\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
    b"Text\n"
)


@dataclass(frozen=True, slots=True)
class Track:
    """One audio or subtitle track of :func:`write_mkv`."""

    language: str
    title: str | None = None
    default: bool = False
    codec: str = ""
    forced: bool = False


DEFAULT_MKV_AUDIO: tuple[Track, ...] = (
    Track("eng", "English 2.0", default=True, codec="aac"),
    Track("fra", "Français", codec="libopus"),
    Track("jpn", None, codec="aac"),
)
DEFAULT_MKV_SUBTITLES: tuple[Track, ...] = (
    Track("eng", "English", default=True, codec="subrip"),
    Track("fra", "Français", codec="ass"),
    Track("spa", "Español (forced)", codec="subrip", forced=True),
)


def write_mkv(
    path: Path,
    *,
    seconds: float = 0.5,
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    title: str | None = "Test Movie",
    audio: Sequence[Track] = DEFAULT_MKV_AUDIO,
    subtitles: Sequence[Track] = DEFAULT_MKV_SUBTITLES,
) -> Path:
    """Write a Matroska movie: one h264 video, then ``audio`` tracks, then ``subtitles``.

    Each track carries its language (ISO 639-2), title and default flag. Audio codecs are
    FFmpeg encoder names (``aac``, ``libopus``...), subtitle codecs ``subrip`` or ``ass``;
    every subtitle track gets two cues.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska") as out:
        if title:
            out.metadata["title"] = title
        video = _add_video_stream(out, "libx264", fps, size, "yuv420p", _X264)
        video.disposition = av.stream.Disposition.default
        audio_streams = []
        for track in audio:
            codec = track.codec or "aac"
            stream = _add_audio_stream(out, codec, 48000)
            _describe(stream, track)
            audio_streams.append(stream)
        subtitle_streams = []
        for track in subtitles:
            sub = out.add_stream(track.codec or "subrip")
            assert isinstance(sub, av.subtitles.stream.SubtitleStream)
            # text subtitle encoders refuse to open without an ASS header to work from
            sub.codec_context.subtitle_header = _ASS_HEADER
            _describe(sub, track)
            subtitle_streams.append(sub)
        _encode_video(out, video, seconds, fps)
        for stream in audio_streams:
            _encode_audio(out, stream, seconds, 330.0)
        for n, sub in enumerate(subtitle_streams):
            _write_cues(out, sub, seconds, f"Line {n}")
    return path


def _describe(stream: av.stream.Stream, track: Track) -> None:
    # Stream.language is read-only in PyAV; the muxer takes it from the metadata
    stream.metadata["language"] = track.language
    if track.title:
        stream.metadata["title"] = track.title
    flags = av.stream.Disposition(0)
    if track.default:
        flags |= av.stream.Disposition.default
    if track.forced:
        flags |= av.stream.Disposition.forced
    stream.disposition = flags


def _write_cues(
    container: av.container.OutputContainer,
    stream: av.subtitles.stream.SubtitleStream,
    seconds: float,
    text: str,
) -> None:
    from av.subtitles.subtitle import SubtitleSet

    # Matroska counts subtitle time in milliseconds
    half = max(1, int(seconds * 500))
    for cue, start in enumerate((0, half)):
        dialogue = f"{cue},0,Default,,0,0,0,,{text} #{cue + 1}".encode()
        packet = stream.codec_context.encode_subtitle(SubtitleSet.create(dialogue, 0, half))
        packet.stream = stream
        packet.pts = packet.dts = start
        packet.duration = half
        container.mux(packet)


def write_jpeg(
    path: Path,
    *,
    exif: PhotoExif | None = PhotoExif(),
    size: tuple[int, int] = (64, 48),
) -> Path:
    """Save a JPEG photo with camera EXIF (make, model, lens, exposure, date, GPS)."""
    return write_photo(path, "JPEG", exif=exif, size=size)


PhotoFormat = Literal["JPEG", "HEIF", "AVIF", "TIFF"]


def write_photo(
    path: Path,
    fmt: PhotoFormat,
    *,
    exif: PhotoExif | None = PhotoExif(),
    size: tuple[int, int] = (64, 48),
) -> Path:
    """Save a photo with camera EXIF as a phone or camera would: HEIF (HEIC, through
    pillow-heif) and AVIF (Pillow) turn the picture with an ``irot`` box as the EXIF
    orientation says, as iPhones do; JPEG and TIFF keep the orientation in EXIF only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _gradient(size)
    options: dict[str, Any] = {"quality": 80} if fmt != "TIFF" else {}
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
        options["quality"] = 50
    if exif is not None:
        # pillow-heif writes `irot` from the image's own EXIF, not from an exif= argument
        image.info["exif"] = _exif_block(exif).tobytes()
        if fmt != "HEIF":
            options["exif"] = image.info["exif"]
    image.save(path, format=fmt, **options)
    return path


def _exif_block(exif: PhotoExif) -> Image.Exif:
    data = Image.Exif()
    data[ExifTags.Base.Make] = exif.make
    data[ExifTags.Base.Model] = exif.model
    data[ExifTags.Base.Orientation] = exif.orientation
    if exif.modify_date:
        data[ExifTags.Base.DateTime] = exif.modify_date
    sub = data.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.ExposureTime] = _rational(exif.exposure_time)
    sub[ExifTags.Base.FNumber] = _rational(exif.f_number)
    sub[ExifTags.Base.ISOSpeedRatings] = exif.iso
    if exif.taken_at:
        sub[ExifTags.Base.DateTimeOriginal] = exif.taken_at
    if exif.create_date:
        sub[ExifTags.Base.DateTimeDigitized] = exif.create_date
    if exif.subsec:
        sub[ExifTags.Base.SubsecTimeOriginal] = exif.subsec
        sub[ExifTags.Base.SubsecTimeDigitized] = exif.subsec
    if exif.offset:
        sub[ExifTags.Base.OffsetTimeOriginal] = exif.offset
        sub[ExifTags.Base.OffsetTimeDigitized] = exif.offset
    sub[ExifTags.Base.FocalLength] = _rational(exif.focal_length)
    sub[ExifTags.Base.LensModel] = exif.lens
    gps = data.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[ExifTags.GPS.GPSLatitudeRef] = "S" if exif.lat < 0 else "N"
    gps[ExifTags.GPS.GPSLatitude] = _dms(exif.lat)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W" if exif.lon < 0 else "E"
    gps[ExifTags.GPS.GPSLongitude] = _dms(exif.lon)
    if exif.altitude is not None:
        gps[ExifTags.GPS.GPSAltitudeRef] = b"\x01" if exif.altitude < 0 else b"\x00"
        gps[ExifTags.GPS.GPSAltitude] = IFDRational(round(abs(exif.altitude) * 100), 100)
    return data


def _rational(value: Fraction) -> IFDRational:
    # Pillow serialises its own IFDRational, not fractions.Fraction
    return IFDRational(value.numerator, value.denominator)


def _dms(degrees: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(degrees)
    whole = int(value)
    minutes = int((value - whole) * 60)
    hundredths = round((value - whole - minutes / 60) * 3600 * 100)
    return IFDRational(whole, 1), IFDRational(minutes, 1), IFDRational(hundredths, 100)


def write_png(path: Path, *, size: tuple[int, int] = (64, 48), alpha: bool = False) -> Path:
    """Save a PNG image (RGBA when ``alpha``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _gradient(size)
    if alpha:
        image = image.convert("RGBA")
    image.save(path, format="PNG")
    return path


def _gradient(size: tuple[int, int]) -> Image.Image:
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.uint8)[np.newaxis, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, np.newaxis].repeat(width, axis=1)
    return Image.fromarray(np.dstack([x, y, 255 - x]), "RGB")


def write_empty(path: Path) -> Path:
    """A zero-byte file (an interrupted copy, a placeholder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_truncated(source: Path, path: Path, *, keep: float = 0.3) -> Path:
    """The first ``keep`` fraction of ``source`` at ``path`` (an interrupted download)."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def write_corrupt(path: Path, *, size: int = 4096, seed: int = 0) -> Path:
    """``size`` random bytes under a media suffix (bit rot, a wrongly named blob)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def make_library(root: Path, *, count: int | None = None, seed: int = 0) -> list[Path]:
    """Write a small mixed library under ``root`` and return its files, sorted.

    It holds every audio format in ``Artist/Album/NN Title.ext`` folders, every video
    format plus a multi-track mkv under ``Movies/``, photos under ``Photos/`` and broken
    files under ``Broken/`` (empty, truncated, corrupt, mislabelled). ``count`` limits it
    to the first ``count`` files of that plan (for quick demos); ``seed`` varies the
    tones, image sizes and corrupt bytes so two libraries differ in content.
    """
    rng = random.Random(seed)
    written: list[Path] = []
    plan = _library_plan(rng)
    if count is not None:
        plan = plan[:count]
    for relpath, make in plan:
        target = root / relpath
        make(target)
        written.append(target)
    return sorted(written)


def _library_plan(rng: random.Random) -> list[tuple[str, Any]]:
    plan: list[tuple[str, Any]] = []
    albums = [
        ("Aurora Lane", "Night Drive", ["mp3", "mp3", "flac"]),
        ("The Quiet Hours", "Lossless Sessions", ["flac", "m4a-alac", "wav"]),
        ("Mira Okafor", "Open Air", ["m4a-aac", "opus", "ogg"]),
    ]
    titles = ["Intro", "City Lights", "Slow Return", "Outro"]
    for artist, album, formats in albums:
        for n, fmt in enumerate(formats, start=1):
            tags = AudioTags(
                title=titles[n - 1],
                artist=artist,
                album=album,
                albumartist=artist,
                track=n,
                track_total=len(formats),
                disc=1,
                disc_total=1,
                year=2015 + n,
                genre="Ambient",
            )
            freq = rng.choice([220.0, 330.0, 440.0, 550.0])
            name = f"{artist}/{album}/{n:02d} {titles[n - 1]}{suffix_for(fmt)}"  # type: ignore[arg-type]
            plan.append((name, _audio_maker(fmt, tags, freq)))  # type: ignore[arg-type]
    for fmt in VIDEO_FORMATS:
        plan.append((f"Movies/Clips/clip.{fmt}", _video_maker(fmt)))
    plan.append(("Movies/Big Movie (2019)/Big Movie (2019).mkv", write_mkv))
    width = rng.choice([64, 80, 96])
    plan.append(("Photos/2023/IMG_0001.jpg", lambda p: write_jpeg(p, size=(width, width * 3 // 4))))
    plan.append(
        (
            "Photos/2023/IMG_0002.jpg",
            lambda p: write_jpeg(p, exif=PhotoExif(lat=48.8584, lon=-2.2945, iso=100)),
        )
    )
    plan.append(("Photos/scans/scan.png", lambda p: write_png(p, alpha=True)))
    corrupt_seed = rng.randrange(1 << 30)
    plan += [
        ("Broken/empty.mp3", write_empty),
        ("Broken/truncated.mp3", lambda p: _truncated_copy(p, "mp3")),
        ("Broken/truncated.mp4", lambda p: _truncated_copy(p, "mp4")),
        ("Broken/corrupt.flac", lambda p: write_corrupt(p, seed=corrupt_seed)),
        ("Broken/flac named.txt", lambda p: write_audio(p, "flac")),
        ("Broken/flac named.mp3", lambda p: write_audio(p, "flac")),
        ("Broken/mp4 named.mkv", lambda p: write_video(p, "mp4")),
    ]
    return plan


def _audio_maker(fmt: AudioFormat, tags: AudioTags, freq: float) -> Any:
    return lambda p: write_audio(p, fmt, tags=tags, freq=freq)


def _video_maker(fmt: VideoFormat) -> Any:
    return lambda p: write_video(p, fmt)


def _truncated_copy(path: Path, fmt: Literal["mp3", "mp4"]) -> Path:
    whole = path.with_name(f".whole-{path.name}")
    if fmt == "mp3":
        write_audio(whole, "mp3", seconds=1.0)
    else:
        write_video(whole, "mp4", seconds=1.0)
    try:
        return write_truncated(whole, path)
    finally:
        whole.unlink()


def make_corpus(root: Path, n: int, *, unique: int = 12, link: bool = True) -> list[Path]:
    """Write ``n`` audio and video files under ``root`` quickly, for benchmarks.

    The first ``unique`` files are really encoded, cycling through every audio format,
    every video format and the multi-track mkv; the rest are hard links to them (copies
    when ``link`` is false or the filesystem refuses links) under their own names, in
    folders of 100 files.
    """
    makers: list[tuple[str, Any]] = [
        (suffix_for(fmt), _audio_maker(fmt, AudioTags(), 440.0)) for fmt in AUDIO_FORMATS
    ]
    makers += [(f".{fmt}", _video_maker(fmt)) for fmt in VIDEO_FORMATS]
    makers.append((".mkv", write_mkv))
    files: list[Path] = []
    for i in range(n):
        folder = root / f"set{i // 100:04d}"
        if i < unique:
            suffix, make = makers[i % len(makers)]
            files.append(make(folder / f"file{i:06d}{suffix}"))
            continue
        source = files[i % unique]
        target = folder / f"file{i:06d}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a corpus written again over an older one
        _link_or_copy(source, target, link=link)
        files.append(target)
    return files


def make_photo_corpus(
    root: Path, n: int, *, unique: int = 8, size: tuple[int, int] = (4032, 3024)
) -> list[Path]:
    """``n`` phone and camera photos under ``root``, half HEIC and half JPEG, at a phone's
    12 MP by default, with EXIF (camera, date, time zone, GPS, orientation): the first
    ``unique`` really encoded (noisy enough to weigh what real ones weigh), the rest hard
    links to them, in folders of 100."""
    rng = np.random.default_rng(0)
    files: list[Path] = []
    for i in range(n):
        folder = root / f"set{i // 100:04d}"
        if i < unique:
            files.append(_write_big_photo(folder, i, size, rng))
            continue
        source = files[i % unique]
        target = folder / f"IMG_{i:06d}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        _link_or_copy(source, target, link=True)
        files.append(target)
    return files


def _write_big_photo(folder: Path, i: int, size: tuple[int, int], rng: np.random.Generator) -> Path:
    fmt: PhotoFormat = "HEIF" if i % 2 == 0 else "JPEG"
    exif = PhotoExif(
        make="Apple" if fmt == "HEIF" else "Canon",
        model="iPhone 15 Pro" if fmt == "HEIF" else "Canon EOS R5",
        orientation=(1, 6, 3, 8)[i % 4],
        offset="+02:00",
        subsec=f"{i:03d}",
        altitude=float(i * 10),
    )
    width, height = size
    noise = rng.integers(0, 24, (height, width, 3), dtype=np.uint8)
    picture = Image.fromarray(noise + np.asarray(_gradient(size).convert("RGB")) // 2)
    picture.info["exif"] = _exif_block(exif).tobytes()
    path = folder / f"IMG_{i:06d}.{'heic' if fmt == 'HEIF' else 'jpg'}"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
        # x265's fastest preset: 12 MP take seconds, not a minute, and weigh the same
        picture.save(path, format=fmt, quality=50, enc_params={"preset": "ultrafast"})
    else:
        picture.save(path, format=fmt, quality=85, exif=picture.info["exif"])
    return path


def _link_or_copy(source: Path, target: Path, *, link: bool) -> None:
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # other filesystem, or no hard links there: copying is just slower
    shutil.copyfile(source, target)


def write_tone(path: Path, muxer: str, codec: str, *, seconds: float = 0.5) -> Path:
    """A stereo 440 Hz tone in any container and codec FFmpeg can write (``"mp2"``,
    ``"eac3"``, ``"w64"`` with ``"pcm_s16le"``, ...), for formats :func:`write_audio` does
    not cover."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 48000
    with av.open(str(path), "w", format=muxer) as out:
        stream = _add_audio_stream(out, codec, rate)
        context = stream.codec_context
        resampler = av.AudioResampler(format=context.format.name, layout="stereo", rate=rate)
        step = context.frame_size or 1024
        signal = _tone(seconds, rate, 2, 440.0)  # (channels, samples)
        for start in range(0, signal.shape[1] - step + 1, step):
            chunk = np.ascontiguousarray(signal[:, start : start + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    return path
