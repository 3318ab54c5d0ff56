"""Write small, real comic archives (.cbz, .cb7, .cbt) of Pillow-made pages, on demand.

Each page is a genuine JPEG or PNG whose pixels depend on the page number and a seed, so two
archives made with the same seed hold the same pages byte for byte and others do not. RAR
cannot be written with free tools: tests use the committed fixtures of tests/data/comic.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw


def page_bytes(
    number: int, *, seed: int = 0, size: tuple[int, int] = (64, 96), fmt: str = "JPEG"
) -> bytes:
    """One page image: a coloured panel with the page number drawn on it."""
    colour = ((number * 37 + seed * 11) % 256, (number * 17 + seed * 5) % 256, (seed * 53) % 256)
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, size[0] - 5, size[1] - 5), outline=(255 - colour[0], 0, 0))
    draw.text((8, 8), f"{number}/{seed}", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, fmt, quality=80) if fmt == "JPEG" else image.save(out, fmt)
    return out.getvalue()


def page_set(pages: int, *, seed: int = 0) -> list[tuple[str, bytes]]:
    """``pages`` page files named ``page001.jpg``, ...; the first is a PNG cover."""
    out = []
    for number in range(1, pages + 1):
        fmt, suffix = ("PNG", "png") if number == 1 else ("JPEG", "jpg")
        out.append((f"page{number:03d}.{suffix}", page_bytes(number, seed=seed, fmt=fmt)))
    return out


def write_comic(
    path: Path,
    *,
    pages: int = 4,
    seed: int = 0,
    comicinfo: bytes | str | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
    fmt: str | None = None,
) -> Path:
    """Write a comic archive at ``path``; its format is ``fmt`` or the suffix's."""
    fmt = fmt or path.suffix.lower().lstrip(".")
    members = page_set(pages, seed=seed) + list(extra)
    if comicinfo is not None:
        raw = comicinfo.encode() if isinstance(comicinfo, str) else comicinfo
        members.append(("ComicInfo.xml", raw))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("cbz", "zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                # as comic tools do: images stored (they do not deflate), the rest deflated
                stored = name.endswith((".jpg", ".png"))
                zf.writestr(name, data, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    elif fmt in ("cb7", "7z"):
        import py7zr

        with py7zr.SevenZipFile(path, "w") as sz:
            for name, data in members:
                sz.writestr(data, name)
    elif fmt in ("cbt", "tar"):
        with tarfile.open(path, "w") as tf:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    else:
        raise ValueError(f"cannot write {fmt!r} comics (RAR has no free writer)")
    return path
