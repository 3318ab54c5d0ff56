"""Where each VOD entry's .strm/.nfo files go, in the Kodi/Jellyfin layout, and their bytes.

Paths depend only on the entry's own metadata and the layout options, so the same entry
always maps to the same files: a re-run rewrites nothing and ``finish`` can recompute which
files every present entry owns.

Two titles that clean to the same name would share a path. Sources see their whole list and
flag every member of such a group with ``meta["ambiguous"]`` (``show_ambiguous`` for shows);
the layout then appends `` [id N]`` (the provider id) to each member's name. Every member of
a group is suffixed, never "all but the first", so the name of an entry never depends on
processing order. ``disambiguate="always"`` suffixes every title.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediamill import credentials
from mediamill.strm import nfo
from mediamill.strm.names import (
    DEFAULT_STRIP_PREFIX,
    MAX_COMPONENT_BYTES,
    clean_component,
    strip_prefix,
    truncate_utf8,
)

#: bytes kept for a title inside a name, so that year, id suffix and extension still fit
_TITLE_BYTES = 180
_EXTENSIONS = (".strm", ".nfo")
_FILE_STEM_BYTES = MAX_COMPONENT_BYTES - max(len(ext) for ext in _EXTENSIONS)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
_URL_ORIGIN = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+")
_EMPTY_SEGMENT = re.compile(r"^https?://[^/?#]+[^?#]*//", re.IGNORECASE)


class UnsafePath(ValueError):
    """A computed path would leave the output root."""


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One file of an entry: relative POSIX path, exact bytes, shared by a whole show?"""

    path: str
    content: bytes
    shared: bool = False


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Layout:
    """The layout options; templates are ``str.format`` strings (fields listed per option).

    Every field value is cleaned before formatting and every resulting path component after,
    so a title can never add a directory level or climb out of the output root.
    """

    movies_dir: str = "Movies"
    shows_dir: str = "TV Shows"
    #: fields: title, year, id
    movie_name: str = "{title} ({year})"
    movie_name_no_year: str = "{title}"
    #: fields: title, year, id
    show_name: str = "{title} ({year})"
    show_name_no_year: str = "{title}"
    #: fields: season
    season_dir: str = "Season {season:02d}"
    #: fields: show, season, episode, title, id
    episode_name: str = "{show} S{season:02d}E{episode:02d} - {title}"
    episode_name_untitled: str = "{show} S{season:02d}E{episode:02d}"
    strip_prefix: str | None = DEFAULT_STRIP_PREFIX
    #: "auto": suffix `` [id N]`` to titles the source flagged ambiguous; "always": to all
    disambiguate: str = "auto"
    #: replace scheme://host[:port] of every stream URL (media server sees another address)
    url_base: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Layout:
        """A layout from processor options (unknown keys are ignored); validates templates."""
        templates = options.get("templates") or {}
        if not isinstance(templates, Mapping):
            raise ValueError("option 'templates' must be a mapping of template name to string")
        fields: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name in templates:
                fields[name] = templates[name]
            elif name in options:
                fields[name] = options[name]
        unknown = set(templates) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown templates: {', '.join(sorted(unknown))}")
        layout = cls(**fields)
        layout.validate()
        return layout

    def validate(self) -> None:
        if self.disambiguate not in ("auto", "always"):
            raise ValueError("option 'disambiguate' must be 'auto' or 'always'")
        if self.strip_prefix:
            re.compile(self.strip_prefix)
        sample = {"title": "T", "year": 2000, "id": "1", "show": "S", "season": 1, "episode": 1}
        for template in (
            self.movie_name,
            self.movie_name_no_year,
            self.show_name,
            self.show_name_no_year,
            self.season_dir,
            self.episode_name,
            self.episode_name_untitled,
        ):
            try:
                template.format(**sample)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"bad template {template!r}: {exc}") from None
        for root in (self.movies_dir, self.shows_dir):
            if not _components(root):
                raise ValueError("movies_dir and shows_dir must not be empty")

    @property
    def trees(self) -> tuple[str, ...]:
        """The top folders this layout writes into (what cleanup may touch)."""
        return ("/".join(_components(self.movies_dir)), "/".join(_components(self.shows_dir)))

    # -- names -----------------------------------------------------------------------------

    def display_title(self, raw: Any, fallback: str) -> str:
        """The title shown in .nfo files: provider tags stripped, whitespace tidied."""
        text = str(raw).strip() if raw not in (None, "") else ""
        text = strip_prefix(text, self.strip_prefix) if text else ""
        return " ".join(text.split()) or fallback

    def _name(
        self,
        template: str,
        template_no_year: str,
        title: str,
        year: int | None,
        ident: str,
        *,
        ambiguous: bool,
        max_bytes: int,
    ) -> str:
        values = {"title": _field(title, _TITLE_BYTES), "year": year, "id": _field(ident, 64)}
        name = (template if year else template_no_year).format(**values)
        if ambiguous or self.disambiguate == "always":
            suffix = f" [id {values['id']}]"
            name = truncate_utf8(name, max_bytes - len(suffix.encode())) + suffix
        return clean_component(name, max_bytes=max_bytes)

    def movie_stem(self, key: str, meta: Mapping[str, Any]) -> str:
        """``Movies/Title (Year)/Title (Year)``: the movie's path without extension."""
        return self._movie(key, meta)[1]

    def _movie(self, key: str, meta: Mapping[str, Any]) -> tuple[str, str]:
        """The movie's display title and its stem."""
        title = self.display_title(meta.get("title") or meta.get("name"), _fallback(key))
        name = self._name(
            self.movie_name,
            self.movie_name_no_year,
            title,
            _as_int(meta.get("year")),
            _ident(key, meta.get("id")),
            ambiguous=bool(meta.get("ambiguous")),
            max_bytes=_FILE_STEM_BYTES,
        )
        return title, "/".join([*_components(self.movies_dir), name, name])

    def show_dir(self, key: str, meta: Mapping[str, Any]) -> str:
        """``TV Shows/Show (Year)``: the folder of the entry's show."""
        return self._show(key, meta)[1]

    def _show(self, key: str, meta: Mapping[str, Any]) -> tuple[str, str]:
        """The show's display title and its folder."""
        title = self.display_title(meta.get("show"), _fallback(key, "Show"))
        name = self._name(
            self.show_name,
            self.show_name_no_year,
            title,
            _as_int(meta.get("show_year")),
            _ident(key, meta.get("show_id")),
            ambiguous=bool(meta.get("show_ambiguous")),
            max_bytes=MAX_COMPONENT_BYTES,
        )
        return title, "/".join([*_components(self.shows_dir), name])

    def episode_stem(self, key: str, meta: Mapping[str, Any]) -> str:
        """``TV Shows/Show (Year)/Season 01/Show S01E02 - Title``, without extension."""
        return self._episode(key, meta)[2]

    def _episode(self, key: str, meta: Mapping[str, Any]) -> tuple[str, str, str]:
        """The episode's show title, show folder and stem."""
        show, show_dir = self._show(key, meta)
        season = _as_int(meta.get("season")) or 0
        episode = _as_int(meta.get("episode")) or 0
        title = str(meta.get("title") or "").strip()
        values = {
            "show": _field(show, _TITLE_BYTES),
            "season": season,
            "episode": episode,
            "title": _field(title, _TITLE_BYTES) if title else "",
            "id": _field(_ident(key, meta.get("id")), 64),
        }
        name = (self.episode_name if title else self.episode_name_untitled).format(**values)
        if meta.get("ambiguous") or self.disambiguate == "always":
            suffix = f" [id {values['id']}]"
            name = truncate_utf8(name, _FILE_STEM_BYTES - len(suffix.encode())) + suffix
        name = clean_component(name, max_bytes=_FILE_STEM_BYTES)
        season_dir = _season_dir(self.season_dir, season)
        return show, show_dir, f"{show_dir}/{season_dir}/{name}"

    # -- files -----------------------------------------------------------------------------

    def paths(self, key: str, kind: str, meta: Mapping[str, Any]) -> list[str]:
        """The relative paths an entry owns (cheap: no .nfo is built)."""
        if kind == "movie":
            stem = self.movie_stem(key, meta)
            return [f"{stem}.strm", f"{stem}.nfo"]
        if kind == "episode":
            _show, show_dir, stem = self._episode(key, meta)
            return [f"{stem}.strm", f"{stem}.nfo", f"{show_dir}/tvshow.nfo"]
        raise ValueError(f"the strm layout has no place for items of kind {kind!r}")

    def plan(self, key: str, kind: str, meta: Mapping[str, Any]) -> list[PlannedFile]:
        """Every file of an entry with its exact bytes; the .strm comes first."""
        url = self.stream_url(meta)
        strm = (url + "\n").encode("utf-8")
        if kind == "movie":
            title, stem = self._movie(key, meta)
            return [
                PlannedFile(f"{stem}.strm", strm),
                PlannedFile(f"{stem}.nfo", nfo.movie_nfo(meta, title)),
            ]
        if kind == "episode":
            show, show_dir, stem = self._episode(key, meta)
            title = str(meta.get("title") or "").strip() or _episode_label(meta)
            return [
                PlannedFile(f"{stem}.strm", strm),
                PlannedFile(f"{stem}.nfo", nfo.episode_nfo(meta, title, show)),
                PlannedFile(f"{show_dir}/tvshow.nfo", nfo.tvshow_nfo(meta, show), shared=True),
            ]
        raise ValueError(f"the strm layout has no place for items of kind {kind!r}")

    def stream_url(self, meta: Mapping[str, Any]) -> str:
        """The URL the .strm holds (never put it in a message: it may carry credentials)."""
        url = str(meta.get("url") or "").strip()
        if not _URL.match(url):
            raise ValueError("entry has no usable stream URL")
        url = credentials.fill(url)  # the account, kept out of the catalog
        if _EMPTY_SEGMENT.match(url):
            # ".../movie/alice//1.mkv": a credential that was not there when the URL was made
            raise ValueError("entry's stream URL has an empty path segment (a missing credential?)")
        if self.url_base:
            url = _URL_ORIGIN.sub(self.url_base.rstrip("/"), url, count=1)
        return url


def resolve_inside(root: Path, relpath: str) -> Path:
    """``root / relpath`` resolved, or :class:`UnsafePath` if it is not inside ``root``."""
    base = root.resolve()
    target = (base / relpath).resolve()
    if target == base or not target.is_relative_to(base):
        raise UnsafePath("computed path leaves the output root")
    return target


@functools.lru_cache(maxsize=64)
def _components(path: str) -> tuple[str, ...]:
    parts = [p for p in path.replace("\\", "/").split("/") if p.strip()]
    return tuple(clean_component(p) for p in parts)


@functools.lru_cache(maxsize=256)
def _season_dir(template: str, season: int) -> str:
    return clean_component(template.format(season=season))


def _field(value: str, max_bytes: int) -> str:
    return clean_component(value, max_bytes=max_bytes)


def _ident(key: str, ident: Any) -> str:
    text = str(ident).strip() if ident not in (None, "") else ""
    return text or key.rsplit("/", 1)[-1]


def _fallback(key: str, what: str = "Untitled") -> str:
    return f"{what} {key.rsplit('/', 1)[-1]}"


def _episode_label(meta: Mapping[str, Any]) -> str:
    """An untitled episode's title in its .nfo: "Episode 3", as TMDB and TheTVDB name them
    (players show it after the season and number they already display)."""
    return f"Episode {_as_int(meta.get('episode')) or 0}"
