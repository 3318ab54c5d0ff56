"""M3U/M3U8 playlist (a file or an http(s) URL) of VOD entries: movies and episodes.

An entry is an ``#EXTINF:-1 tvg-id=".." tvg-name=".." tvg-logo=".." group-title="..",Name``
line followed by its URL. Episodes are told from movies by the URL path (``/series/`` vs
``/movie/``), a ``Show S01E02`` name, or a series-like group title; live channels
(``/live/``, no video file extension) are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mediamill.sources._http import HttpFetcher
from mediamill.sources._vod import as_str, compact, mark_ambiguous, movie_group, title_and_year
from mediamill.sources.base import SourceEntry, SourceError
from mediamill.strm.names import split_episode, split_year, title_key

log = logging.getLogger(__name__)

_ATTR = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"')
_XTREAM_PATH = re.compile(r"/(movie|series)/[^/]+/[^/]+/([^/.]+)\.[A-Za-z0-9]+$")
_VIDEO_EXT = re.compile(r"\.(mp4|mkv|avi|mov|m4v|wmv|flv|webm|mpe?g|divx|ogv|3gp)$", re.I)
_SERIES_GROUP = re.compile(r"series|tv ?shows?|s[ée]ries|serien|serie\b", re.I)


def display_name(location: str) -> str:
    """``m3u+file:///path`` or ``m3u+https://host/path`` (no credentials, no query)."""
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        port = f":{parts.port}" if parts.port else ""
        return f"m3u+{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    return f"m3u+file://{Path(location).as_posix()}"


class M3USource:
    """Entries of one playlist; ``default_kind`` (``"skip"`` or ``"movie"``) decides entries
    that look like neither a movie nor an episode."""

    def __init__(
        self,
        location: str,
        *,
        default_kind: str = "skip",
        rate: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 120.0,
    ) -> None:
        if default_kind not in ("skip", "movie"):
            raise ValueError("default_kind must be 'skip' or 'movie'")
        parts = urlsplit(location)
        self.is_remote = parts.scheme in ("http", "https")
        if not self.is_remote and not Path(location).is_absolute():
            raise ValueError("an M3U file path must be absolute")
        self.location = location
        self.name = display_name(location)
        self.default_kind = default_kind
        secrets = [parts.username or "", parts.password or ""]
        secrets += [value for _key, value in parse_qsl(parts.query) if len(value) >= 3]
        self._secrets = secrets
        self._http_options: dict[str, Any] = {
            "rate": rate, "retries": retries, "backoff": backoff, "timeout": timeout,
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"M3USource({self.name!r})"

    def _text(self) -> str:
        if self.is_remote:
            http = HttpFetcher(self.name, secrets=self._secrets, **self._http_options)
            try:
                body = http.get_bytes(self.location, "the playlist")
            finally:
                http.close()
        else:
            try:
                body = Path(self.location).read_bytes()
            except OSError as exc:
                raise SourceError(
                    f"{self.name}: cannot read the playlist ({exc.strerror})"
                ) from None
        text = body.decode("utf-8-sig", errors="replace")
        if "#EXTINF" not in text and "#EXTM3U" not in text:
            raise SourceError(f"{self.name}: this is not an M3U playlist (no #EXTM3U/#EXTINF)")
        return text

    def iter_entries(self) -> Iterator[SourceEntry]:
        movies: list[dict[str, Any]] = []
        episodes: list[dict[str, Any]] = []
        skipped = 0
        for attrs, name, url in _parse(self._text()):
            entry = self._classify(attrs, name, url)
            if entry is None:
                skipped += 1
            elif entry[0] == "movie":
                movies.append(entry[1])
            else:
                episodes.append(entry[1])
        if skipped:
            log.info("%s: %d playlist entries are neither movies nor episodes", self.name, skipped)
        mark_ambiguous(movies, movie_group, lambda m: str(m["id"]))
        self._finish_shows(episodes)
        for meta in movies:
            yield SourceEntry(key=f"movie/{meta['id']}", kind="movie", meta=meta)
        for meta in episodes:
            yield SourceEntry(key=f"episode/{meta['id']}", kind="episode", meta=meta)

    def _classify(
        self, attrs: dict[str, str], name: str, url: str
    ) -> tuple[str, dict[str, Any]] | None:
        path = urlsplit(url).path
        xtream = _XTREAM_PATH.search(path)
        if "/live/" in path:
            return None
        display = name or attrs.get("tvg-name", "")
        group = attrs.get("group-title", "")
        parsed = split_episode(display) or split_episode(attrs.get("tvg-name", ""))
        is_episode = (xtream is not None and xtream.group(1) == "series") or (
            parsed is not None and (xtream is None or xtream.group(1) != "movie")
        )
        if not is_episode and _SERIES_GROUP.search(group) and parsed is not None:
            is_episode = True
        ident = (
            xtream.group(2)
            if xtream
            else hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:16]
        )
        if is_episode:
            if parsed is None:
                return None
            show_name, season, episode, title = parsed
            show, show_year = split_year(show_name)
            return "episode", compact(
                {
                    "id": ident,
                    "show": show or "Unknown show",
                    "show_year": show_year,
                    "season": season,
                    "episode": episode,
                    "title": title,
                    "thumb": as_str(attrs.get("tvg-logo")),
                    "category": as_str(group),
                    "url": url,
                }
            )
        looks_like_movie = (xtream is not None) or bool(_VIDEO_EXT.search(path))
        if not looks_like_movie and self.default_kind == "skip":
            return None
        title, year = title_and_year(display)
        return "movie", compact(
            {
                "id": ident,
                "name": display,
                "title": title,
                "year": year,
                "thumb": as_str(attrs.get("tvg-logo")),
                "category": as_str(group),
                "url": url,
            }
        )

    @staticmethod
    def _finish_shows(episodes: list[dict[str, Any]]) -> None:
        """Show-level fields, identical for every episode of a show (one tvshow.nfo)."""
        thumbs: dict[str, str] = {}
        for meta in episodes:
            key = title_key(meta["show"], meta.get("show_year"))
            meta["show_id"] = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:10]
            if "thumb" in meta:
                thumbs.setdefault(key, meta["thumb"])
        for meta in episodes:
            thumb = thumbs.get(title_key(meta["show"], meta.get("show_year")))
            if thumb:
                meta["show_thumb"] = thumb
        mark_ambiguous(
            episodes,
            lambda m: f"{m['show_id']}/{m['season']}x{m['episode']}",
            lambda m: str(m["id"]),
        )


def _parse(text: str) -> Iterator[tuple[dict[str, str], str, str]]:
    """``(attributes, name, url)`` per ``#EXTINF`` entry."""
    pending: tuple[dict[str, str], str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXTINF"):
            header, _, name = _split_extinf(line)
            pending = (dict(_ATTR.findall(header)), name.strip())
        elif line.startswith("#"):
            continue
        elif pending is not None:
            yield pending[0], pending[1], line
            pending = None


def _split_extinf(line: str) -> tuple[str, str, str]:
    """Split ``#EXTINF:-1 a="x,y",Name`` at the first comma outside quotes."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return line[:index], ",", line[index + 1 :]
    return line, "", ""
