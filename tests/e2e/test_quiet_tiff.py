"""libtiff's messages never reach the terminal: TIFFs that make libtiff warn or fail leave
stderr empty under ``-q``, and what libtiff said is in the log at debug level."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

from PIL import Image, TiffImagePlugin

from tests.helpers.cli import cli_env, mediamill

#: opens a TIFF with the libtiff Pillow ships, with libtiff's own handlers (as Pillow
#: leaves them until its first decode): what a user's terminal would get
LIBTIFF_OPEN = """
import ctypes, sys
from mediamill.libtiff import _mapped_libraries
from PIL import Image
lib = ctypes.CDLL(next(p for p in _mapped_libraries() if "libtiff" in p.rsplit("/", 1)[-1]))
lib.TIFFOpen.restype = ctypes.c_void_p
lib.TIFFOpen(sys.argv[1].encode(), b"r")
"""


def tiff_with_unknown_tag(path: Path) -> None:
    """An LZW TIFF carrying a private tag libtiff does not know, as scanners write."""
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[65000] = "scanner private data"
    info.tagtype[65000] = 2  # ASCII
    Image.new("RGB", (64, 48), "teal").save(path, compression="tiff_lzw", tiffinfo=info)


def tiff_with_unsorted_tags(path: Path) -> None:
    """An LZW TIFF whose directory lists its first two tags out of order."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "olive").save(buffer, "TIFF", compression="tiff_lzw")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    first, second = data[ifd + 2 : ifd + 14], data[ifd + 14 : ifd + 26]
    data[ifd + 2 : ifd + 26] = second + first
    path.write_bytes(bytes(data))


def corrupt_lzw_tiff() -> bytes:
    """An LZW TIFF whose compressed pixels are garbage: libtiff fails while decoding."""
    buffer = io.BytesIO()
    Image.effect_noise((128, 128), 64).convert("RGB").save(buffer, "TIFF", compression="tiff_lzw")
    data = bytearray(buffer.getvalue())
    data[200:2000] = b"\xff" * 1800
    return bytes(data)


def test_tiffs_that_make_libtiff_warn_leave_stderr_empty_under_quiet(tmp_path: Path) -> None:
    photos = tmp_path / "scans"
    photos.mkdir()
    tiff_with_unknown_tag(photos / "private-tag.tif")
    tiff_with_unsorted_tags(photos / "unsorted.tif")
    said = subprocess.run(
        [sys.executable, "-c", LIBTIFF_OPEN, str(photos / "unsorted.tif")],
        capture_output=True,
        text=True,
        env=cli_env("sqlite://"),
        check=True,
    )
    assert "Warning" in said.stderr, "the file does make libtiff speak"
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    run = mediamill("run", "probe", str(photos), "-q", db=db)
    assert "2 ok" in run.stdout
    assert run.stderr == ""


def test_a_broken_tiff_page_decoded_for_a_cover_logs_libtiffs_error_at_debug(
    tmp_path: Path,
) -> None:
    """A comic whose cover is a TIFF with broken pixels: the cover fails with a clear
    cause, libtiff's own message goes to the debug log, and nothing to stderr."""
    comic = tmp_path / "Broken 001.cbz"
    with zipfile.ZipFile(comic, "w") as archive:
        archive.writestr("001.tif", corrupt_lzw_tiff())
    script = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
from mediamill.comic import archive
from mediamill.comic.cover import thumbnail
try:
    thumbnail(__import__("pathlib").Path(sys.argv[1]))
except archive.ArchiveError as exc:
    print("cover failed:", exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(comic)],
        capture_output=True,
        text=True,
        env=cli_env("sqlite://"),
        check=True,
    )
    assert "cover failed: the cover page is not a readable image" in out.stdout
    assert "mediamill.libtiff libtiff error:" in out.stdout
    assert out.stderr == ""
