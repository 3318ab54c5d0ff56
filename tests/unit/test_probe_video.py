"""The probe on what video users filter on: HDR (PQ, HLG, Dolby Vision), bit depth, colour,
a phone video's rotation, variable frame rate and chapters, compared with ffprobe."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mediamill.processors.base import ItemRef
from mediamill.processors.probe import ProbeProcessor

PQ, HLG = 16, 18  # ITU-T H.273 transfer characteristics
BT2020 = 9  # primaries and matrix coefficients


def write_clip(
    path: Path,
    *,
    codec: str = "libx265",
    pix_fmt: str = "yuv420p10le",
    transfer: int | None = PQ,
    rotation: float | None = None,
    steps_ms: tuple[int, ...] = (100,),
    tag: str | None = None,
) -> Path:
    """Ten 64x48 frames, 10-bit BT.2020 by default, with frame intervals cycling through
    ``steps_ms``; ``rotation`` is written as the track's display matrix."""
    with av.open(str(path), "w") as out:
        options = {"x265-params": "log-level=error"} if codec == "libx265" else {}
        stream = out.add_stream(codec, rate=10, options=options)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        stream.time_base = Fraction(1, 1000)
        context = stream.codec_context
        context.max_b_frames = 0  # frames in order: uneven intervals mux as they come
        context.time_base = Fraction(1, 1000)  # milliseconds, not 1/rate
        if transfer is not None:
            context.color_trc, context.color_range = transfer, 1
            context.color_primaries, context.colorspace = BT2020, BT2020
        if tag:
            context.codec_tag = tag
        if rotation is not None:
            stream.set_display_rotation(rotation)
        pts = 0
        for i in range(10):
            picture = np.full((48, 64, 3), i * 20, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += steps_ms[i % len(steps_ms)]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def probe(path: Path) -> dict[str, Any]:
    return ProbeProcessor().process(ItemRef(id=1, path=path.name, kind="video", abspath=str(path)))


def video_stream(path: Path) -> dict[str, Any]:
    data = probe(path)
    assert data["media"] == "video"
    return dict(data["streams"][0])


def test_an_hdr10_phone_video_says_pq_10_bit_bt2020_and_its_rotation(tmp_path: Path) -> None:
    """An iPhone-style HEVC: PQ transfer (HDR10), 10-bit, BT.2020, held upright (-90)."""
    video = video_stream(write_clip(tmp_path / "IMG_0002.mov", rotation=-90, tag="hvc1"))

    assert (video["codec"], video["bit_depth"], video["hdr"]) == ("hevc", 10, "HDR10")
    assert (video["color_transfer"], video["color_primaries"]) == ("smpte2084", "bt2020")
    assert (video["color_space"], video["color_range"]) == ("bt2020nc", "tv")
    assert video["rotation"] == -90
    assert video["frame_rate_mode"] == "constant"


def test_an_hlg_broadcast_recording_says_hlg(tmp_path: Path) -> None:
    video = video_stream(write_clip(tmp_path / "match.mkv", transfer=HLG))

    assert (video["hdr"], video["color_transfer"], video["rotation"]) == (
        "HLG",
        "arib-std-b67",
        None,  # no display matrix outside MP4/MOV
    )


def test_sdr_8_bit_video_is_not_hdr_and_unturned(tmp_path: Path) -> None:
    video = video_stream(
        write_clip(tmp_path / "plain.mp4", codec="libx264", pix_fmt="yuv420p", transfer=None)
    )

    assert (video["hdr"], video["bit_depth"], video["color_transfer"]) == (None, 8, None)
    assert video["rotation"] == 0


def test_dolby_vision_is_read_from_the_mp4_sample_entry(tmp_path: Path) -> None:
    """Dolby Vision profile 5 files store HEVC under a `dvh1` sample entry."""
    path = write_clip(tmp_path / "dv.mp4", tag="hvc1")
    data = path.read_bytes()
    assert data.count(b"hvc1") == 1
    path.write_bytes(data.replace(b"hvc1", b"dvh1"))

    video = video_stream(path)

    assert (video["codec"], video["hdr"]) == ("hevc", "Dolby Vision")


def test_frames_at_uneven_intervals_are_variable_frame_rate(tmp_path: Path) -> None:
    video = video_stream(
        write_clip(
            tmp_path / "screen.mp4",
            codec="libx264",
            pix_fmt="yuv420p",
            transfer=None,
            steps_ms=(40, 160, 70),
        )
    )

    assert video["frame_rate_mode"] == "variable"


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("pq.mov", {"rotation": -90, "tag": "hvc1"}),
        ("turned.mp4", {"rotation": 90, "tag": "hvc1"}),
        ("hlg.mkv", {"transfer": HLG}),
    ],
)
def test_colour_and_rotation_match_ffprobe(
    tmp_path: Path, name: str, options: dict[str, Any]
) -> None:
    path = write_clip(tmp_path / name, **options)
    shown = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["streams"][0]

    video = video_stream(path)

    for key in ("color_range", "color_space", "color_transfer", "color_primaries"):
        assert video[key] == shown[key], key
    matrices = [s for s in shown.get("side_data_list", []) if "rotation" in s]
    assert video["rotation"] == (matrices[0]["rotation"] if matrices else None)
