"""A comic's cover as a small JPEG thumbnail (the page ComicInfo marks ``FrontCover``, else
the first page), for the web page's item browser."""

from __future__ import annotations

import io
from pathlib import Path

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci

MAX_SIZE = 600


def cover_page(archive: arc.ComicArchive) -> str:
    """The member name of the cover; :class:`~mediamill.comic.archive.ArchiveError` if none."""
    pages = archive.pages()
    if not pages:
        raise arc.ArchiveError("no page images in the archive")
    raw = archive.comicinfo()
    if raw is not None:
        try:
            info = ci.parse(raw)
        except ci.ComicInfoError:
            return pages[0]
        for page in info.pages:
            index = page.get("Image", "")
            is_cover = "FrontCover" in page.get("Type", "").split()
            if is_cover and index.isdigit() and int(index) < len(pages):
                return pages[int(index)]
    return pages[0]


def thumbnail(path: Path, size: int = 240) -> bytes:
    """The cover of the comic at ``path``, at most ``size`` pixels on its longer side."""
    from PIL import Image, UnidentifiedImageError

    from mediamill.libtiff import route_messages

    route_messages()  # a TIFF page's libtiff messages go to the log, not the terminal
    size = max(16, min(size, MAX_SIZE))
    with arc.ComicArchive(path) as archive:
        data = archive.read(cover_page(archive))
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((size, size))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=80)
    except (UnidentifiedImageError, OSError) as exc:
        raise arc.ArchiveError(f"the cover page is not a readable image ({exc})") from None
    return out.getvalue()
