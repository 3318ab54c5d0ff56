"""Kodi/Jellyfin .nfo documents (``<movie>``, ``<tvshow>``, ``<episodedetails>``) as bytes.

Built with ``xml.etree`` so every value is escaped; characters XML 1.0 forbids (most control
characters) are dropped, so every document parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = f"{value:g}" if isinstance(value, float) else str(value)
    text = _NOT_XML.sub("", text).strip()
    return text or None


def _add(parent: ET.Element, tag: str, value: Any, **attrib: str) -> None:
    text = _text(value)
    if text is not None:
        ET.SubElement(parent, tag, attrib).text = text


def _add_ids(parent: ET.Element, meta: Mapping[str, Any], prefix: str = "") -> None:
    default = "true"
    for kind in ("tmdb", "imdb", "tvdb"):
        value = _text(meta.get(f"{prefix}{kind}_id"))
        if value is not None:
            _add(parent, "uniqueid", value, type=kind, default=default)
            default = "false"


def _add_genres(parent: ET.Element, genre: Any) -> None:
    text = _text(genre)
    if text is None:
        return
    for part in re.split(r"\s*[,/|;]\s*", text):
        _add(parent, "genre", part)


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return _XML_DECLARATION + body + b"\n"


def movie_nfo(meta: Mapping[str, Any], title: str) -> bytes:
    """``<movie>``: title, originaltitle, year, plot, rating, genre, uniqueid, thumb."""
    root = ET.Element("movie")
    _add(root, "title", title)
    _add(root, "originaltitle", meta.get("originaltitle") or title)
    _add(root, "year", meta.get("year"))
    _add(root, "plot", meta.get("plot"))
    _add(root, "rating", meta.get("rating"))
    _add_genres(root, meta.get("genre"))
    _add_ids(root, meta)
    _add(root, "thumb", meta.get("thumb"), aspect="poster")
    return _serialize(root)


def tvshow_nfo(meta: Mapping[str, Any], title: str) -> bytes:
    """``<tvshow>`` from the show-level fields (``show_*``) an episode entry carries."""
    root = ET.Element("tvshow")
    _add(root, "title", title)
    _add(root, "year", meta.get("show_year"))
    _add(root, "plot", meta.get("show_plot"))
    _add(root, "rating", meta.get("show_rating"))
    _add_genres(root, meta.get("show_genre"))
    _add_ids(root, meta, prefix="show_")
    _add(root, "thumb", meta.get("show_thumb"), aspect="poster")
    return _serialize(root)


def episode_nfo(meta: Mapping[str, Any], title: str, show_title: str) -> bytes:
    """``<episodedetails>``: title, showtitle, season, episode, plot, aired, rating, uniqueid."""
    root = ET.Element("episodedetails")
    _add(root, "title", title)
    _add(root, "showtitle", show_title)
    _add(root, "season", meta.get("season"))
    _add(root, "episode", meta.get("episode"))
    _add(root, "plot", meta.get("plot"))
    _add(root, "aired", meta.get("aired"))
    _add(root, "rating", meta.get("rating"))
    _add_ids(root, meta)
    _add(root, "thumb", meta.get("thumb"))
    return _serialize(root)
