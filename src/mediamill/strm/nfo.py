"""Kodi/Jellyfin .nfo documents (``<movie>``, ``<tvshow>``, ``<episodedetails>``) as bytes.

Every value is escaped; characters XML 1.0 forbids (most control characters) are dropped, so
every document parses. The documents are shallow (text children, and the fixed ``<ratings>``
and ``<actor>`` blocks), so they are written as text directly: byte for byte what
``xml.etree`` with ``ET.indent(space="  ")`` gives, at a fraction of its cost (an export
renders one .nfo per file it writes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mediamill import credentials
from mediamill.strm.names import is_placeholder_id

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_GENRE_SPLIT = re.compile(r"\s*[,/|;]\s*")
_CAST_SPLIT = re.compile(r"\s*[,;|]\s*")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ID_KINDS = ("tmdb", "imdb", "tvdb")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = f"{value:g}" if isinstance(value, float) else str(value)
    text = _NOT_XML.sub("", text).strip()
    return text or None


class _Document:
    """One shallow element, serialized like ``ET.indent`` + ``tostring``."""

    __slots__ = ("lines", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.lines: list[str] = []

    def add(self, tag: str, value: Any, attributes: str = "") -> None:
        text = _text(value)
        if text is not None:
            self.lines.append(f"  <{tag}{attributes}>{text.translate(_ESCAPES)}</{tag}>\n")

    def add_ids(self, meta: Mapping[str, Any], prefix: str = "") -> None:
        default = "true"
        for kind in _ID_KINDS:
            value = _text(meta.get(f"{prefix}{kind}_id"))
            # "0" or "tt0000000" is a provider's "none": as a uniqueid it names another title
            if value is not None and not is_placeholder_id(value):
                self.add("uniqueid", value, f' type="{kind}" default="{default}"')
                default = "false"

    def add_rating(self, rating: Any) -> None:
        """The legacy ``<rating>`` (Jellyfin, old Kodi) and Kodi's ``<ratings>`` block; a
        provider's rating is TMDB's vote average as a rule, out of 10."""
        text = _text(rating)
        if text is None:
            return
        self.add("rating", text)
        self.lines.append(
            "  <ratings>\n"
            '    <rating name="themoviedb" max="10" default="true">\n'
            f"      <value>{text.translate(_ESCAPES)}</value>\n"
            "    </rating>\n"
            "  </ratings>\n"
        )

    def add_cast(self, cast: Any) -> None:
        """One ``<actor><name>`` per name of a comma-separated cast."""
        text = _text(cast)
        for name in _CAST_SPLIT.split(text) if text else ():
            if name:
                self.lines.append(
                    f"  <actor>\n    <name>{name.translate(_ESCAPES)}</name>\n  </actor>\n"
                )

    def add_genres(self, genre: Any) -> None:
        text = _text(genre)
        if text is None:
            return
        for part in _GENRE_SPLIT.split(text):
            self.add("genre", part)

    def to_bytes(self) -> bytes:
        if not self.lines:
            return f"{_XML_DECLARATION}<{self.tag} />\n".encode()
        body = "".join(self.lines)
        return f"{_XML_DECLARATION}<{self.tag}>\n{body}</{self.tag}>\n".encode()


def _image(url: Any) -> Any:
    """An image URL as a media server must fetch it: with the credentials that the catalog
    keeps as markers (a provider's logo URL may carry the account, as its streams do)."""
    return credentials.fill(url) if isinstance(url, str) else url


def movie_nfo(meta: Mapping[str, Any], title: str) -> bytes:
    """``<movie>``: title, originaltitle, year, plot, ratings, genre, uniqueid, actor, thumb."""
    doc = _Document("movie")
    doc.add("title", title)
    doc.add("originaltitle", meta.get("originaltitle") or title)
    doc.add("year", meta.get("year"))
    doc.add("plot", meta.get("plot"))
    doc.add_rating(meta.get("rating"))
    doc.add_genres(meta.get("genre"))
    doc.add_ids(meta)
    doc.add_cast(meta.get("cast"))
    doc.add("thumb", _image(meta.get("thumb")), ' aspect="poster"')
    return doc.to_bytes()


def tvshow_nfo(meta: Mapping[str, Any], title: str) -> bytes:
    """``<tvshow>`` from the show-level fields (``show_*``) an episode entry carries."""
    doc = _Document("tvshow")
    doc.add("title", title)
    doc.add("year", meta.get("show_year"))
    doc.add("plot", meta.get("show_plot"))
    doc.add_rating(meta.get("show_rating"))
    doc.add_genres(meta.get("show_genre"))
    doc.add_ids(meta, prefix="show_")
    doc.add_cast(meta.get("show_cast"))
    doc.add("thumb", _image(meta.get("show_thumb")), ' aspect="poster"')
    return doc.to_bytes()


def episode_nfo(meta: Mapping[str, Any], title: str, show_title: str) -> bytes:
    """``<episodedetails>``: title, showtitle, season, episode, plot, aired, rating, uniqueid."""
    doc = _Document("episodedetails")
    doc.add("title", title)
    doc.add("showtitle", show_title)
    doc.add("season", meta.get("season"))
    doc.add("episode", meta.get("episode"))
    doc.add("plot", meta.get("plot"))
    doc.add("aired", meta.get("aired"))
    doc.add_rating(meta.get("rating"))
    doc.add_ids(meta)
    doc.add("thumb", _image(meta.get("thumb")))
    return doc.to_bytes()
