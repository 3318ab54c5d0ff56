"""The probe processor on real files of every format users have, and on broken ones."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from mediamill.processors import base
from mediamill.processors.base import ItemRef, Work
from mediamill.processors.probe import ProbeProcessor
from mediamill.testing import media
from mediamill.testing.media import AudioTags, PhotoExif

MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"
TAGS = AudioTags()

# fmt -> (container as ffprobe names it, codec as ffprobe names it)
AUDIO = {
    "mp3": ("mp3", "mp3"),
    "flac": ("flac", "flac"),
    "m4a-aac": (MP4_FAMILY, "aac"),
    "m4a-alac": (MP4_FAMILY, "alac"),
    "opus": ("ogg", "opus"),
    "ogg": ("ogg", "vorbis"),
    "wav": ("wav", "pcm_s16le"),
}
VIDEO = {
    "mp4": (MP4_FAMILY, "h264", "aac"),
    "webm": ("matroska,webm", "vp9", "opus"),
    "avi": ("avi", "mpeg4", "mp3"),
    "mov": (MP4_FAMILY, "mjpeg", "pcm_s16le"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file per format, plus broken and mislabelled ones."""
    root = tmp_path_factory.mktemp("probe")
    made: dict[str, Path] = {}
    for fmt in AUDIO:
        made[fmt] = media.write_audio(root / f"{fmt}{media.suffix_for(fmt)}", fmt, seconds=0.5)
    for fmt in VIDEO:
        made[fmt] = media.write_video(root / f"clip.{fmt}", fmt, seconds=0.5)
    made["mkv"] = media.write_mkv(root / "movie.mkv", seconds=0.5)
    made["jpg"] = media.write_jpeg(root / "south-east.jpg")
    made["jpg-nw"] = media.write_jpeg(
        root / "north-west.jpg", exif=PhotoExif(lat=48.8584, lon=-2.2945, orientation=6)
    )
    made["png"] = media.write_png(root / "scan.png", alpha=True)
    made["empty"] = media.write_empty(root / "empty.mp3")
    long_mp3 = media.write_audio(root / "long.mp3", "mp3", seconds=1.0)
    long_mp4 = media.write_video(root / "long.mp4", "mp4", seconds=1.0)
    made["truncated-mp3"] = media.write_truncated(long_mp3, root / "truncated.mp3")
    made["truncated-mp4"] = media.write_truncated(long_mp4, root / "truncated.mp4")
    made["corrupt-flac"] = media.write_corrupt(root / "corrupt.flac")
    made["corrupt-mkv"] = media.write_corrupt(root / "corrupt.mkv", seed=1)
    made["flac-as-txt"] = media.write_audio(root / "song.txt", "flac")
    made["flac-as-mp3"] = media.write_audio(root / "song.mp3", "flac")
    made["mp4-as-mkv"] = media.write_video(root / "clip-really-mp4.mkv", "mp4")
    return made


def item_for(path: Path, kind: str = "audio") -> ItemRef:
    return ItemRef(id=1, path=path.name, kind=kind, abspath=str(path), size=path.stat().st_size)


def probe(path: Path, kind: str = "audio", **options: Any) -> dict[str, Any]:
    return ProbeProcessor(options).process(item_for(path, kind))


def test_processor_declares_itself_for_the_runner() -> None:
    assert base.get("probe") is ProbeProcessor
    processor = base.create("probe", {"mutagen": False})
    # cpu: `auto` runs probe in worker processes, where a crash in FFmpeg costs one item
    assert (processor.name, processor.version, processor.work) == ("probe", "2", Work.CPU)
    assert processor.kinds == frozenset({"audio", "video", "image"})
    # process workers rebuild processors from pickles of our own objects
    assert pickle.loads(pickle.dumps(processor)).options == {"mutagen": False}  # noqa: S301


@pytest.mark.parametrize("fmt", list(AUDIO))
def test_audio_file_shows_its_container_codec_and_duration(
    files: dict[str, Path], fmt: str
) -> None:
    data = probe(files[fmt])

    container, codec = AUDIO[fmt]
    assert data["media"] == "audio"
    assert data["container"] == container
    assert data["size"] == files[fmt].stat().st_size
    assert data["duration"] == pytest.approx(0.5, abs=0.06)
    (stream,) = data["streams"]
    assert stream["type"] == "audio"
    assert stream["codec"] == codec
    assert stream["channels"] == 2
    assert stream["sample_rate"] in (44100, 48000)
    assert stream["width"] is None  # every key is present, None when it does not apply
    json.dumps(data)  # the result is stored as JSON


@pytest.mark.parametrize("fmt", [f for f in AUDIO if f != "wav"])
def test_audio_tags_read_back_with_the_same_names_in_every_format(
    files: dict[str, Path], fmt: str
) -> None:
    tags = probe(files[fmt])["tags"]

    assert tags["title"] == TAGS.title
    assert tags["artist"] == TAGS.artist
    assert tags["album"] == TAGS.album
    assert tags["albumartist"] == TAGS.albumartist
    assert (tags["track"], tags["track_total"]) == (TAGS.track, TAGS.track_total)
    assert (tags["disc"], tags["disc_total"]) == (TAGS.disc, TAGS.disc_total)
    assert tags["year"] == TAGS.year
    assert tags["date"] == str(TAGS.year)
    assert tags["genre"] == TAGS.genre
    assert tags["composer"] == TAGS.composer


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a-aac", "ogg"])
def test_tags_still_read_without_mutagen(files: dict[str, Path], fmt: str) -> None:
    tags = probe(files[fmt], mutagen=False)["tags"]

    assert (tags["albumartist"], tags["track"], tags["year"]) == (
        TAGS.albumartist,
        TAGS.track,
        TAGS.year,
    )


def test_wav_tags_come_from_riff_info(files: dict[str, Path]) -> None:
    tags = probe(files["wav"])["tags"]

    assert (tags["title"], tags["artist"], tags["album"]) == (TAGS.title, TAGS.artist, TAGS.album)
    assert (tags["track"], tags["year"], tags["genre"]) == (TAGS.track, TAGS.year, TAGS.genre)


def test_every_value_of_a_multi_valued_tag_is_kept(tmp_path: Path) -> None:
    from mutagen.mp4 import MP4

    path = media.write_audio(tmp_path / "duet.m4a", "m4a-aac")
    tagged = MP4(str(path))
    tagged["\xa9ART"] = ["Ana", "Ben"]  # FFmpeg alone reports only "Ana"
    tagged.save()

    assert probe(path)["tags"]["artist"] == "Ana; Ben"


def replace_once(path: Path, old: bytes, new: bytes) -> None:
    """Patch a tag's bytes in place, as an old tagger wrote them (same length)."""
    data = path.read_bytes()
    assert data.count(old) == 1
    assert len(old) == len(new)
    path.write_bytes(data.replace(old, new))


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_a_latin1_byte_in_a_utf8_tag_reads_as_its_latin1_letter(tmp_path: Path, fmt: str) -> None:
    """A FLAC Vorbis comment (or an ID3 frame declared UTF-8) holding a Latin-1 `ö`: the
    file is probed, the `ö` reads as `ö`, even where mutagen reads the tags too."""
    path = media.write_audio(tmp_path / f"latin1{media.suffix_for(fmt)}", fmt)
    replace_once(path, b"Test Artist", b"Test Artis\xf6")
    replace_once(path, b"Electronic", b"Elec;ronic")  # ";" makes the probe ask mutagen too

    tags = probe(path)["tags"]

    assert tags["artist"] == "Test Artisö"
    assert tags["title"] == TAGS.title


def test_lossless_audio_reports_its_bit_depth(files: dict[str, Path]) -> None:
    for fmt in ("flac", "m4a-alac", "wav"):
        assert probe(files[fmt])["streams"][0]["bits_per_sample"] == 16, fmt
    assert probe(files["mp3"])["streams"][0]["bits_per_sample"] is None


@pytest.mark.parametrize("fmt", list(VIDEO))
def test_video_file_shows_picture_and_sound_streams(files: dict[str, Path], fmt: str) -> None:
    data = probe(files[fmt], kind="video")

    container, video_codec, audio_codec = VIDEO[fmt]
    assert data["media"] == "video"
    assert data["container"] == container
    assert data["duration"] == pytest.approx(0.5, abs=0.11)
    assert data["tags"]["title"] == "Test Clip"
    video, audio = data["streams"]
    assert (video["type"], video["codec"], video["width"], video["height"]) == (
        "video",
        video_codec,
        64,
        48,
    )
    assert video["fps"] == pytest.approx(10.0)
    assert video["pix_fmt"] in ("yuv420p", "yuvj420p")
    assert (audio["type"], audio["codec"], audio["channels"]) == ("audio", audio_codec, 2)


def test_mkv_lists_every_audio_and_subtitle_track_with_its_language(
    files: dict[str, Path],
) -> None:
    data = probe(files["mkv"], kind="video")

    streams = data["streams"]
    assert data["container"] == "matroska,webm"
    assert data["tags"]["title"] == "Test Movie"
    assert [s["index"] for s in streams] == list(range(7))
    assert [s["type"] for s in streams] == ["video"] + ["audio"] * 3 + ["subtitle"] * 3
    assert [(s["codec"], s["language"]) for s in streams[1:]] == [
        ("aac", "eng"),
        ("opus", "fra"),
        ("aac", "jpn"),
        ("subrip", "eng"),
        ("ass", "fra"),
        ("subrip", "spa"),
    ]
    assert [s["title"] for s in streams[1:4]] == ["English 2.0", "Français", None]
    assert [s["default"] for s in streams[1:]] == [True, False, False, True, False, False]
    assert [s["forced"] for s in streams[4:]] == [False, False, True]
    # Matroska keeps track lengths in tags; they still come out as seconds
    assert streams[1]["duration"] == pytest.approx(0.5, abs=0.06)


def test_photo_exif_is_read_with_signed_gps(files: dict[str, Path]) -> None:
    data = probe(files["jpg"], kind="image")

    image = data["image"]
    exif = PhotoExif()
    assert data["media"] == "image"
    assert (data["container"], data["duration"], data["streams"]) == (None, None, [])
    assert (image["width"], image["height"], image["format"]) == (64, 48, "JPEG")
    assert (image["make"], image["model"], image["lens"]) == (exif.make, exif.model, exif.lens)
    assert image["iso"] == exif.iso
    assert image["exposure_time"] == pytest.approx(1 / 250)
    assert image["f_number"] == pytest.approx(4.0)
    assert image["focal_length"] == pytest.approx(50.0)
    assert image["taken_at"] == "2023-07-14T18:30:05"
    assert image["gps"] == {
        "lat": pytest.approx(exif.lat, abs=1e-4),
        "lon": pytest.approx(exif.lon, abs=1e-4),
        "alt": None,
    }
    assert image["gps"]["lat"] < 0 < image["gps"]["lon"]  # south, east


def test_photo_north_west_of_greenwich_has_negative_longitude(files: dict[str, Path]) -> None:
    image = probe(files["jpg-nw"], kind="image")["image"]

    assert image["gps"]["lon"] < 0 < image["gps"]["lat"]
    assert image["orientation"] == 6


def test_png_without_exif_reports_size_and_mode_only(files: dict[str, Path]) -> None:
    image = probe(files["png"], kind="image")["image"]

    assert (image["width"], image["height"], image["format"], image["mode"]) == (
        64,
        48,
        "PNG",
        "RGBA",
    )
    assert image["make"] is None
    assert image["gps"] is None


def test_empty_file_fails_as_not_media(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"^empty file \(0 bytes\): not a media file$"):
        probe(files["empty"])


@pytest.mark.parametrize("name", ["corrupt-flac", "corrupt-mkv"])
def test_random_bytes_fail_as_unreadable(files: dict[str, Path], name: str) -> None:
    with pytest.raises(ValueError, match=r"^not a readable media file: \S"):
        probe(files[name])


def test_corrupt_file_that_starts_like_a_flac_fails_with_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "bad.flac"
    path.write_bytes(b"fLaC" + bytes(range(256)) * 8)

    with pytest.raises(ValueError, match=r"^not a readable media file: "):
        probe(path)


def test_truncated_mp4_without_its_index_fails_with_ffmpeg_cause(files: dict[str, Path]) -> None:
    """FFmpeg's own reason from its log, not only the generic error PyAV raises; FFmpeg's
    logging is left as it was (off)."""
    import av.logging

    with pytest.raises(
        ValueError,
        match=r"^not a readable media file: Invalid data found when processing input "
        r"\(moov atom not found\)$",
    ):
        probe(files["truncated-mp4"], kind="video")
    assert av.logging.get_level() is None
    with pytest.raises(ValueError, match=r"\(moov atom not found\)$"):
        probe(files["truncated-mp4"], kind="video")  # the same cause twice in a row


def test_mp3_without_two_frames_in_a_row_fails_with_ffmpeg_cause(tmp_path: Path) -> None:
    path = tmp_path / "silence.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + bytes(range(256)) * 4)

    with pytest.raises(ValueError, match=r"\(Failed to find two consecutive MPEG audio frames\)$"):
        probe(path)


def test_truncated_mp3_is_probed_from_what_remains(files: dict[str, Path]) -> None:
    data = probe(files["truncated-mp3"])

    assert data["container"] == "mp3"
    assert data["streams"][0]["codec"] == "mp3"
    assert data["tags"]["title"] == TAGS.title


@pytest.mark.parametrize(
    ("name", "container", "media_kind"),
    [
        ("flac-as-txt", "flac", "audio"),
        ("flac-as-mp3", "flac", "audio"),
        ("mp4-as-mkv", MP4_FAMILY, "video"),
    ],
)
def test_mislabelled_file_is_probed_by_its_content(
    files: dict[str, Path], name: str, container: str, media_kind: str
) -> None:
    data = probe(files[name])

    assert (data["container"], data["media"]) == (container, media_kind)
    if media_kind == "audio":
        assert data["tags"]["albumartist"] == TAGS.albumartist


def test_plain_text_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("shopping list\n- milk\n- bread\n" * 10)

    with pytest.raises(ValueError, match=r"^not a readable media file: "):
        probe(path)


def test_file_with_only_subtitles_fails_with_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "movie.srt"
    path.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n"
    )

    with pytest.raises(ValueError, match=r"no audio or video stream, only subtitle"):
        probe(path, kind="video")


def test_item_that_is_not_a_file_fails_with_the_cause() -> None:
    item = ItemRef(id=7, path="movie/123", kind="video", abspath=None)

    with pytest.raises(ValueError, match="not a file"):
        ProbeProcessor().process(item)


def test_missing_file_fails_with_the_cause(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "gone.flac")


def test_demo_library_holds_every_kind_and_probes_as_expected(tmp_path: Path) -> None:
    library = media.make_library(tmp_path)

    suffixes = {p.suffix for p in library}
    assert {".mp3", ".flac", ".m4a", ".opus", ".ogg", ".wav"} <= suffixes
    assert {".mp4", ".mkv", ".webm", ".avi", ".mov", ".jpg", ".png"} <= suffixes
    outcomes: dict[str, str] = {}
    for path in library:
        try:
            outcomes[path.relative_to(tmp_path).as_posix()] = probe(path)["media"]
        except ValueError:
            outcomes[path.relative_to(tmp_path).as_posix()] = "failed"
    broken = {p for p, outcome in outcomes.items() if outcome == "failed"}
    assert broken == {"Broken/empty.mp3", "Broken/truncated.mp4", "Broken/corrupt.flac"}
    assert outcomes["Aurora Lane/Night Drive/01 Intro.mp3"] == "audio"
    assert outcomes["Photos/2023/IMG_0001.jpg"] == "image"
    assert media.make_library(tmp_path / "small", count=3) == sorted(
        (tmp_path / "small").rglob("*.*")
    )


def test_benchmark_corpus_has_n_distinct_probeable_files(tmp_path: Path) -> None:
    corpus = media.make_corpus(tmp_path, 30, unique=4)

    assert len(corpus) == len(set(corpus)) == 30
    assert all(path.is_file() for path in corpus)
    assert {probe(path)["media"] for path in corpus[:4]} == {"audio"}


FFPROBE = ("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json")


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
def test_container_and_codec_names_match_ffprobe(files: dict[str, Path]) -> None:
    readable = [*AUDIO, *VIDEO, "mkv", "flac-as-txt", "mp4-as-mkv"]
    for name in readable:
        shown = json.loads(
            subprocess.run(
                [*FFPROBE, str(files[name])],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        data = probe(files[name])
        assert data["container"] == shown["format"]["format_name"], name
        assert [s["codec"] for s in data["streams"]] == [
            s["codec_name"] for s in shown["streams"]
        ], name
        languages = [s.get("tags", {}).get("language") for s in shown["streams"]]
        # "und" (undetermined) is reported as no language
        assert [s["language"] for s in data["streams"]] == [
            None if language == "und" else language for language in languages
        ], name


def ffprobe_json(path: Path, *sections: str) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", *sections, "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout))


def write_id3v2_and_v1(path: Path) -> Path:
    """An mp3 with an ID3v2.3 tag and a different, older ID3v1 tag at its end."""
    from mutagen.id3 import ID3, TALB, TIT2, TYER

    media.write_audio(path, "mp3", tags=None)
    tag = ID3()
    tag.add(TIT2(encoding=3, text="V2 Title"))
    tag.add(TALB(encoding=3, text="V2 Album"))
    tag.add(TYER(encoding=3, text="2021"))
    tag.save(str(path), v2_version=3, v1=0)
    v1 = b"".join(field.ljust(30, b"\x00") for field in (b"V1 Title", b"V1 Artist", b"V1 Album"))
    with path.open("ab") as handle:
        handle.write(b"TAG" + v1 + b"1999" + bytes(30) + b"\x0c")
    return path


def test_id3v2_wins_over_id3v1_and_v1_adds_nothing(tmp_path: Path) -> None:
    """As ffprobe reads it: ID3v1 only counts in a file without an ID3v2 tag."""
    tags = probe(write_id3v2_and_v1(tmp_path / "both.mp3"))["tags"]

    assert (tags["title"], tags["album"], tags["date"], tags["year"]) == (
        "V2 Title",
        "V2 Album",
        "2021",
        2021,
    )
    assert "artist" not in tags
    assert "genre" not in tags


def test_a_placeholder_date_0000_gives_no_year(tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "zero.flac", "flac")
    replace_once(path, b"DATE=2021", b"DATE=0000")

    tags = probe(path)["tags"]

    assert tags["date"] == "0000"
    assert "year" not in tags


def write_with_chapters(path: Path) -> Path:
    """An mp4 (h264 + aac) with two chapters, which the mp4 muxer keeps in a data track."""
    import av

    source = media.write_video(path.with_suffix(".src.mp4"), "mp4", seconds=2.0)
    chapters: list[Any] = [
        {"id": 1, "start": 0, "end": 1000, "time_base": Fraction(1, 1000)},
        {"id": 2, "start": 1000, "end": 2000, "time_base": Fraction(1, 1000)},
    ]
    for chapter, title in zip(chapters, ("Opening", "Ending"), strict=True):
        chapter["metadata"] = {"title": title}
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        out.set_chapters(chapters)
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


def test_a_chapter_track_is_a_data_stream_named_as_ffprobe_names_it(tmp_path: Path) -> None:
    data = probe(write_with_chapters(tmp_path / "chapters.mp4"), kind="video")

    assert [(s["type"], s["codec"]) for s in data["streams"]] == [
        ("video", "h264"),
        ("audio", "aac"),
        ("data", "bin_data"),
    ]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
def test_tags_durations_and_data_streams_match_ffprobe(tmp_path: Path) -> None:
    both = write_id3v2_and_v1(tmp_path / "both.mp3")
    shown = ffprobe_json(both, "-show_format")["format"]
    tags = probe(both)["tags"]
    assert {k: tags[k] for k in ("title", "album", "date")} == shown["tags"]

    chaptered = write_with_chapters(tmp_path / "chapters.mp4")
    shown_streams = ffprobe_json(chaptered, "-show_streams")["streams"]
    data = probe(chaptered, kind="video")
    assert [(s["type"], s["codec"]) for s in data["streams"]] == [
        (s["codec_type"], s.get("codec_name")) for s in shown_streams
    ]
    assert all(s["duration"] is None or s["duration"] > 0 for s in data["streams"])


def test_chapters_come_with_their_times_and_titles(tmp_path: Path) -> None:
    path = write_with_chapters(tmp_path / "film.mp4")

    chapters = probe(path, kind="video")["chapters"]

    assert chapters == [
        {"start": 0.0, "end": 1.0, "title": "Opening"},
        {"start": 1.0, "end": 2.0, "title": "Ending"},
    ]
    assert probe(path.with_suffix(".src.mp4"), kind="video")["chapters"] == []
    if shutil.which("ffprobe"):
        shown = ffprobe_json(path, "-show_chapters")["chapters"]
        assert [
            (float(c["start_time"]), float(c["end_time"]), c["tags"]["title"]) for c in shown
        ] == [(c["start"], c["end"], c["title"]) for c in chapters]
