"""The probe on photos as phones and cameras write them: HEIC, AVIF, JPEG and TIFF, with
orientation, date taken and its time zone, GPS altitude, and messy EXIF strings."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image

from mediamill.processors.base import ItemRef
from mediamill.processors.photo import clean_text, heif_transforms
from mediamill.processors.probe import ProbeProcessor
from mediamill.testing import media
from mediamill.testing.media import PhotoExif

PHOTO_FORMATS: dict[str, media.PhotoFormat] = {
    "heic": "HEIF",
    "avif": "AVIF",
    "jpg": "JPEG",
    "tif": "TIFF",
}
IPHONE = PhotoExif(
    make="Apple",
    model="iPhone 15 Pro",
    lens="iPhone 15 Pro back triple camera 6.765mm f/1.78",
    orientation=6,  # held upright: the sensor's picture is turned a quarter clockwise
    subsec="042",
    offset="+02:00",
    altitude=-12.5,
)


def probe(path: Path) -> dict[str, Any]:
    return ProbeProcessor().process(ItemRef(id=1, path=path.name, kind="image", abspath=str(path)))


@pytest.mark.parametrize("suffix", list(PHOTO_FORMATS))
def test_a_phone_photo_is_an_image_with_camera_date_and_place(tmp_path: Path, suffix: str) -> None:
    """An iPhone HEIC (and the same photo as AVIF, JPEG or TIFF) is an image, never a video
    of hevc "streams": camera, lens, date taken with sub-seconds and time zone, GPS with
    altitude below sea level, and its size as stored and as shown."""
    path = media.write_photo(tmp_path / f"IMG_0001.{suffix}", PHOTO_FORMATS[suffix], exif=IPHONE)

    data = probe(path)

    image = data["image"]
    assert (data["media"], data["streams"], data["container"]) == ("image", [], None)
    assert image["format"] == PHOTO_FORMATS[suffix]
    assert (image["make"], image["model"], image["lens"]) == (
        IPHONE.make,
        IPHONE.model,
        IPHONE.lens,
    )
    assert (image["taken_at"], image["taken_at_tag"]) == (
        "2023-07-14T18:30:05.042+02:00",
        "DateTimeOriginal",
    )
    assert image["time_zone"] == "+02:00"
    assert image["gps"] == {
        "lat": pytest.approx(IPHONE.lat, abs=1e-4),
        "lon": pytest.approx(IPHONE.lon, abs=1e-4),
        "alt": -12.5,
    }
    # stored 64x48, shown turned a quarter: 48x64; nobody has to turn it twice
    assert (image["width"], image["height"], image["orientation"]) == (64, 48, 6)
    assert (image["display_width"], image["display_height"]) == (48, 64)


def test_a_heic_turned_by_its_irot_box_shows_as_the_box_says(tmp_path: Path) -> None:
    """HEIF turns a picture with `irot`, whatever EXIF says: pillow-heif shows the picture
    turned; the probe still reports the stored size and the orientation that turns it."""
    path = media.write_photo(tmp_path / "turned.heic", "HEIF", exif=IPHONE, size=(128, 64))
    with Image.open(path) as shown:
        assert shown.size == (64, 128)  # libheif applied the turn

    image = probe(path)["image"]

    assert (image["width"], image["height"]) == (128, 64)
    assert (image["orientation"], image["display_width"], image["display_height"]) == (6, 64, 128)


def test_a_photo_without_date_original_takes_create_date_never_the_modify_date(
    tmp_path: Path,
) -> None:
    only_modified = media.write_jpeg(tmp_path / "edited.jpg", exif=PhotoExif(taken_at=None))
    digitized = media.write_jpeg(
        tmp_path / "scan.jpg",
        exif=PhotoExif(taken_at=None, create_date="2001:02:03 04:05:06"),
    )

    assert probe(only_modified)["image"]["taken_at"] is None
    image = probe(digitized)["image"]
    assert (image["taken_at"], image["taken_at_tag"]) == ("2001-02-03T04:05:06", "CreateDate")


@pytest.mark.parametrize(
    "bad", ["2017:08:21 15:08:70", "0000:00:00 00:00:00", "2019:02:30 10:00:00", "    "]
)
def test_an_impossible_date_taken_is_dropped_for_the_next_tag(tmp_path: Path, bad: str) -> None:
    path = media.write_jpeg(
        tmp_path / "odd.jpg", exif=PhotoExif(taken_at=bad, create_date="2017:08:21 15:08:07")
    )

    image = probe(path)["image"]

    assert (image["taken_at"], image["taken_at_tag"]) == ("2017-08-21T15:08:07", "CreateDate")


def test_camera_strings_are_cleaned_as_exiftool_shows_them(tmp_path: Path) -> None:
    """`ION230\\0F` is `ION230` (a C string ends at its NUL), a lone byte that is no text
    is no make, and UTF-8 bytes read as UTF-8."""
    path = tmp_path / "odd.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = b"\x8c"
    exif[ExifTags.Base.Model] = b"ION230\x00F"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.LensModel] = "Leica µ 25mm  ".encode()
    Image.new("RGB", (8, 8)).save(path, exif=exif)

    image = probe(path)["image"]

    assert (image["make"], image["model"], image["lens"]) == (None, "ION230", "Leica µ 25mm")
    assert clean_text(b"Leica \xc2\xb5") == "Leica µ"
    assert clean_text("Leica \xc2\xb5") == "Leica µ"  # Pillow's Latin-1 reading of UTF-8


def test_heif_boxes_cut_or_damaged_anywhere_give_no_turn_and_no_error(tmp_path: Path) -> None:
    path = media.write_photo(tmp_path / "ok.heic", "HEIF", exif=IPHONE)
    data = path.read_bytes()
    assert heif_transforms(data) == [("irot", 3)]  # three quarter turns anticlockwise

    for cut in range(len(data)):
        assert heif_transforms(data[:cut]) in ([], [("irot", 3)])
    wrecked = bytearray(data)
    at = wrecked.index(b"ipma")
    wrecked[at + 8 : at + 12] = b"\xff\xff\xff\xff"  # an entry count far past the box
    assert heif_transforms(bytes(wrecked)) in ([], [("irot", 3)])


def test_a_truncated_heic_fails_with_the_cause(tmp_path: Path) -> None:
    path = media.write_photo(tmp_path / "ok.heic", "HEIF", exif=IPHONE)
    cut = tmp_path / "cut.heic"
    cut.write_bytes(path.read_bytes()[:300])

    with pytest.raises(ValueError, match=r"^not a readable image: "):
        probe(cut)


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
@pytest.mark.parametrize("suffix", list(PHOTO_FORMATS))
def test_photo_fields_match_exiftool(tmp_path: Path, suffix: str) -> None:
    # 128x64: whole HEVC blocks, so HEIF's stored size (ispe) has no padding to crop
    path = media.write_photo(
        tmp_path / f"p.{suffix}", PHOTO_FORMATS[suffix], exif=IPHONE, size=(128, 64)
    )
    shown = json.loads(
        subprocess.run(
            ["exiftool", "-json", "-n", "-fast", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )[0]

    image = probe(path)["image"]

    assert (image["width"], image["height"]) == (shown["ImageWidth"], shown["ImageHeight"])
    assert (image["make"], image["model"], image["lens"]) == (
        shown["Make"],
        shown["Model"],
        shown["LensModel"],
    )
    assert image["iso"] == shown["ISO"]
    assert image["f_number"] == pytest.approx(shown["FNumber"])
    assert image["exposure_time"] == pytest.approx(shown["ExposureTime"])
    assert image["focal_length"] == pytest.approx(shown["FocalLength"])
    # exiftool: "2023:07:14 18:30:05.042+02:00"
    assert (
        image["taken_at"].replace("-", ":", 2).replace("T", " ") == shown["SubSecDateTimeOriginal"]
    )
    assert image["time_zone"] == shown["OffsetTimeOriginal"]
    assert image["gps"]["lat"] == pytest.approx(shown["GPSLatitude"], abs=1e-6)
    assert image["gps"]["lon"] == pytest.approx(shown["GPSLongitude"], abs=1e-6)
    assert image["gps"]["alt"] == pytest.approx(shown["GPSAltitude"])
    if "Rotation" in shown:  # HEIF/AVIF: the irot box, degrees anticlockwise
        assert {270: 6, 90: 8, 180: 3}[shown["Rotation"]] == image["orientation"]
    else:
        assert image["orientation"] == shown["Orientation"]
