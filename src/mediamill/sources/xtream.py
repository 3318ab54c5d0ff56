"""Xtream Codes provider (``player_api.php``): VOD movies and series episodes as entries.

Provider JSON is messy: numbers arrive as strings or ints, fields go missing, ``episodes``
is a dict keyed by season or a list (of lists or of episodes). Everything is read through
tolerant converters; a response of the wrong overall shape is a :class:`SourceError`.

The lists (``get_vod_streams`` can hold hundreds of thousands of movies) are downloaded to a
temp file and parsed row by row (ijson), never as one document in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import ijson  # type: ignore[import-untyped]

from mediamill import credentials
from mediamill.sources._http import HttpFetcher
from mediamill.sources._vod import (
    AnswerSpool,
    as_ext_id,
    as_id,
    as_int,
    as_rating,
    as_str,
    as_year,
    compact,
    episode_entries,
    episode_title,
    fetch_series_answers,
    first_text,
    flag_duplicates,
    mark_ambiguous,
    movie_group,
    show_group,
    title_and_year,
)
from mediamill.sources.base import (
    AnswerDigest,
    SourceEntry,
    SourceError,
    SourceRead,
    secret_digest,
)
from mediamill.strm.files import write_atomic

log = logging.getLogger(__name__)

_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,8}$")
#: where an episode's ``info`` keeps its air date, by how common the spelling is
_AIRED = ("releasedate", "release_date", "releaseDate", "air_date")
_UNQUOTED = re.compile(r"^[A-Za-z0-9_.~-]+$")
#: how stream URLs are made, part of the answers' digest: catalogs whose entries carried the
#: account in their URLs are parsed again, and their metadata rewritten without it
URLS = "urls with a credentials marker"


def display_name(server: str) -> str:
    """``xtream+http://host:port[/path]`` without credentials."""
    parts = urlsplit(server)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"xtream+{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


class XtreamSource:
    """Movies (``get_vod_streams``) then episodes (``get_series`` + ``get_series_info``).

    Options: ``vod_info`` fetches ``get_vod_info`` per movie for richer metadata (one request
    per movie, so off by default); ``movies``/``series`` choose what to list; ``rate`` caps
    requests per second; ``retries``/``backoff``/``timeout`` tune retrying;
    ``on_series_error`` is ``"fail"`` (default: one broken series fails the scan, so its
    episodes are not mistaken for removed) or ``"skip"``.

    ``series_refresh`` is ``"always"`` (default: every series' ``get_series_info`` is asked
    for on every read) or ``"modified"``: a series whose ``get_series`` row is byte for byte
    what it was when its answer was last fetched (the row carries ``last_modified``) reuses
    that answer, kept in ``cache_dir``, for up to ``series_max_age`` days. At the default
    rate limit of 5 requests/s, 1,000 series cost 200 s on every read; with ``"modified"``,
    only the series that changed. Panels that do not update ``last_modified`` when they add
    an episode show it within ``series_max_age`` days.
    """

    def __init__(
        self,
        server: str,
        username: str,
        password: str,
        *,
        vod_info: bool = False,
        movies: bool = True,
        series: bool = True,
        rate: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 30.0,
        on_series_error: str = "fail",
        series_refresh: str = "always",
        series_max_age: float = 7.0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("Xtream server must be an http(s) URL with a host")
        if not username or not password:
            raise ValueError("Xtream needs a username and a password")
        if on_series_error not in ("fail", "skip"):
            raise ValueError("on_series_error must be 'fail' or 'skip'")
        if series_refresh not in ("always", "modified"):
            raise ValueError("series_refresh must be 'always' or 'modified'")
        if series_refresh == "modified" and cache_dir is None:
            raise ValueError("series_refresh='modified' needs a cache_dir for the answers")
        self.server = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}".rstrip("/")
        self.name = display_name(server)
        self._username = username
        self._password = password
        self._url_auth: str | None = None  # made on first use: see _url
        self.vod_info = vod_info
        self.movies = movies
        self.series = series
        self.on_series_error = on_series_error
        self._series_cache = (
            _SeriesCache(Path(cache_dir), series_max_age * 86400.0)
            if series_refresh == "modified" and cache_dir is not None
            else None
        )
        self._http_options: dict[str, Any] = {
            "rate": rate, "retries": retries, "backoff": backoff, "timeout": timeout,
        }  # fmt: skip
        self.requests = 0

    def __repr__(self) -> str:
        return f"XtreamSource({self.name!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _query(self, action: str | None, params: Mapping[str, str]) -> dict[str, str]:
        query = {"username": self._username, "password": self._password, **params}
        if action:
            query["action"] = action
        return query

    def _check_account(self, info: Mapping[str, Any]) -> None:
        """Raise when ``user_info`` says the credentials or the account are not good."""
        if as_int(info.get("auth")) != 1:
            raise SourceError(
                f"{self.name}: the provider rejected the username or password "
                "(user_info.auth is not 1)"
            )
        status = as_str(info.get("status"))
        if status and status.lower() != "active":
            raise SourceError(f"{self.name}: the provider account is {status}")

    def _call(self, http: HttpFetcher, action: str | None, **params: str) -> Any:
        what = action or "the account check"
        data = http.get_json(f"{self.server}/player_api.php", what, self._query(action, params))
        if isinstance(data, dict) and isinstance(data.get("user_info"), dict):
            self._check_account(data["user_info"])
        return data

    def _fetch(self, http: HttpFetcher, action: str, digest: AnswerDigest) -> IO[bytes]:
        """A list answer, downloaded to a temp file (the caller closes it) and digested."""
        body = http.download(f"{self.server}/player_api.php", action, self._query(action, {}))
        digest.add(action.encode())
        digest.add_file(body)
        return body

    def _rows(self, http: HttpFetcher, body: IO[bytes], action: str) -> Iterator[dict[str, Any]]:
        """The rows of a downloaded list answer, parsed as they are read. Some panels answer
        ``{"0": {...}, "1": {...}}`` instead of a list; empty answers have no rows."""
        start = _first_byte(body)
        try:
            if start == b"[":
                for row in ijson.items(body, "item"):
                    if isinstance(row, dict):
                        yield row
                return
            if start == b"{":
                for key, value in ijson.kvitems(body, ""):
                    if key == "user_info" and isinstance(value, dict):
                        self._check_account(value)
                    if not isinstance(value, dict):
                        raise SourceError(f"{self.name}: {action} answered dict, not a list")
                    yield value
                return
        except ijson.JSONError as exc:
            body.seek(0)
            raise http.not_json(action, _parse_error(exc), body.read(60)) from None
        data = http.decode_json(body.read(), action)
        if data is not None and data != "":
            raise SourceError(f"{self.name}: {action} answered {type(data).__name__}, not a list")

    def _categories(self, http: HttpFetcher, body: IO[bytes], action: str) -> dict[str, str]:
        names: dict[str, str] = {}
        with body:
            for row in self._rows(http, body, action):
                ident, name = as_id(row.get("category_id")), as_str(row.get("category_name"))
                if ident and name:
                    names[ident] = name
        return names

    def _url(self, kind: str, stream_id: str, extension: Any) -> str:
        ext = as_str(extension) or "mp4"
        if not _EXTENSION.match(ext):
            ext = "mp4"
        ident = stream_id if _UNQUOTED.match(stream_id) else quote(stream_id, safe="")
        if self._url_auth is None:
            # the account stays out of the catalog: a marker in its place, the account in the
            # data dir (the strm export fills it in)
            self._url_auth = credentials.marker(self.server, self._username, self._password)
        return f"{self.server}/{kind}/{self._url_auth}/{ident}.{ext}"

    # -- entries ---------------------------------------------------------------------------

    def iter_entries(self) -> Iterator[SourceEntry]:
        entries = self.read().entries
        assert entries is not None  # without ``since`` every entry is parsed
        yield from entries

    def read(self, since: str | None = None) -> SourceRead:
        """Fetch every answer first (the lists to temp files, each series' answer to a
        spool), digest them, and parse them into entries only when the digest is not
        ``since``. With ``vod_info`` (one request per movie, made while parsing) there is no
        digest."""
        http = HttpFetcher(
            self.name, secrets=(self._username, self._password), **self._http_options
        )
        bodies: list[Callable[[], None]] = []  # what closes the answers
        try:
            self._call(http, None)  # the account check; its answer carries the time of day
            digest = AnswerDigest(
                "xtream", self.server, secret_digest(self._username, self._password), URLS,
                self.movies, self.series, self.on_series_error,
            )  # fmt: skip
            categories: dict[str, str] = {}
            streams = shows = None
            if self.movies:
                action = "get_vod_categories"
                categories = self._categories(http, self._fetch(http, action, digest), action)
                streams = self._fetch(http, "get_vod_streams", digest)
                bodies.append(streams.close)
            spool = AnswerSpool()  # each series' get_series_info answer, under its id
            bodies.append(spool.close)
            if self.series:
                shows = self._fetch_series(http, digest, spool)
            answers = None if self.vod_info else digest.hexdigest()
            if answers is not None and answers == since:
                self._close(http, bodies)
                return SourceRead(answers, None)
            entries = self._entries(http, categories, streams, shows, spool, bodies)
            return SourceRead(answers, entries)
        except BaseException:
            self._close(http, bodies)
            raise

    def _close(self, http: HttpFetcher, bodies: list[Callable[[], None]]) -> None:
        for close in bodies:
            close()
        self.requests += http.requests
        http.close()

    def _entries(
        self,
        http: HttpFetcher,
        categories: Mapping[str, str],
        streams: IO[bytes] | None,
        shows: list[dict[str, Any]] | None,
        spool: AnswerSpool,
        bodies: list[Callable[[], None]],
    ) -> Iterator[SourceEntry]:
        try:
            if streams is not None:
                yield from self._movies(http, categories, streams)
            if shows is not None:
                yield from episode_entries(
                    self.name,
                    shows,
                    lambda show: self._series_episodes(http, show, spool.get(str(show["show_id"]))),
                    self.on_series_error,
                )
        finally:
            self._close(http, bodies)

    def _movies(
        self, http: HttpFetcher, categories: Mapping[str, str], streams: IO[bytes]
    ) -> Iterator[SourceEntry]:
        def metas() -> Iterator[dict[str, Any]]:
            skipped = 0
            for row in self._rows(http, streams, "get_vod_streams"):
                meta = self._movie_meta(row, categories)
                if meta is None:
                    skipped += 1
                else:
                    yield meta
            if skipped:
                log.warning("%s: %d movies without a stream id were skipped", self.name, skipped)

        # the whole list is read (to find duplicate titles) before the first entry comes
        # out, but only one id per title stays in memory: the metas wait in a temp file
        for meta in flag_duplicates(metas(), movie_group, _meta_id):
            if self.vod_info:
                self._add_vod_info(http, meta)
            yield SourceEntry(key=f"movie/{meta['id']}", kind="movie", meta=meta)

    def _movie_meta(
        self, row: Mapping[str, Any], categories: Mapping[str, str]
    ) -> dict[str, Any] | None:
        stream_id = as_id(row.get("stream_id"))
        if not stream_id:
            return None
        name = as_str(row.get("name")) or as_str(row.get("title")) or ""
        year = row.get("year") or row.get("releaseDate") or row.get("release_date")
        title, year = title_and_year(name, year)
        return compact(
            {
                "id": stream_id,
                "name": name,
                "title": title,
                "year": year,
                "plot": as_str(row.get("plot")),
                "rating": as_rating(row.get("rating"), row.get("rating_5based")),
                "genre": as_str(row.get("genre")),
                "tmdb_id": as_ext_id(row.get("tmdb") or row.get("tmdb_id")),
                "imdb_id": as_ext_id(row.get("imdb") or row.get("imdb_id")),
                "thumb": as_str(row.get("stream_icon")),
                "category": categories.get(as_id(row.get("category_id")) or ""),
                "url": self._url("movie", stream_id, row.get("container_extension")),
                "stream_id": stream_id,
            }
        )

    def _add_vod_info(self, http: HttpFetcher, meta: dict[str, Any]) -> None:
        try:
            data = self._call(http, "get_vod_info", vod_id=str(meta["id"]))
        except SourceError as exc:
            log.warning(
                "%s: richer metadata unavailable for movie %s: %s", self.name, meta["id"], exc
            )
            return
        info = data.get("info") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            return
        extra = compact(
            {
                "plot": as_str(info.get("plot") or info.get("description")),
                "genre": as_str(info.get("genre")),
                "rating": as_rating(info.get("rating"), info.get("rating_5based")),
                "tmdb_id": as_ext_id(info.get("tmdb_id") or info.get("tmdb")),
                "imdb_id": as_ext_id(info.get("imdb_id")),
                "thumb": as_str(info.get("movie_image") or info.get("cover_big")),
                "originaltitle": as_str(info.get("o_name")),
                "cast": first_text(info, "cast", "actors"),
            }
        )
        if "year" not in meta:
            year = as_year(info.get("releasedate") or info.get("release_date"))
            if year:
                extra["year"] = year
        for key, value in extra.items():
            meta.setdefault(key, value)

    def _fetch_series(
        self, http: HttpFetcher, digest: AnswerDigest, spool: AnswerSpool
    ) -> list[dict[str, Any]]:
        """The shows of ``get_series`` whose ``get_series_info`` answer came, each answer in
        ``spool`` (see :func:`fetch_series_answers`); with a series cache, an answer kept
        under the same ``get_series`` row is taken instead of asking."""
        action = "get_series_categories"
        categories = self._categories(http, self._fetch(http, action, digest), action)
        shows: list[dict[str, Any]] = []
        rows: dict[str, str] = {}  # series id -> its row, as a stamp for the cache
        with self._fetch(http, "get_series", digest) as body:
            for row in self._rows(http, body, "get_series"):
                show = self._show(row, categories)
                if show is not None:
                    shows.append(show)
                    rows[str(show["show_id"])] = json.dumps(row, sort_keys=True, default=str)
        mark_ambiguous(shows, show_group, lambda m: str(m["show_id"]), flag="show_ambiguous")
        cache = self._series_cache

        def answer(show: dict[str, Any]) -> bytes:
            series_id = str(show["show_id"])
            kept = cache.get(series_id, rows[series_id]) if cache is not None else None
            if kept is not None:
                return kept
            data = http.get_bytes(
                f"{self.server}/player_api.php",
                "get_series_info",
                self._query("get_series_info", {"series_id": series_id}),
            )
            if cache is not None:
                cache.put(series_id, rows[series_id], data)
            return data

        return fetch_series_answers(self.name, shows, answer, self.on_series_error, digest, spool)

    def _show(self, row: Mapping[str, Any], categories: Mapping[str, str]) -> dict[str, Any] | None:
        series_id = as_id(row.get("series_id"))
        if not series_id:
            return None
        name = as_str(row.get("name")) or as_str(row.get("title")) or ""
        title, year = title_and_year(name, row.get("year") or row.get("releaseDate"))
        return compact(
            {
                "show": title or f"Series {series_id}",
                "show_year": year,
                "show_id": series_id,
                "show_plot": as_str(row.get("plot")),
                "show_genre": as_str(row.get("genre")),
                "show_rating": as_rating(row.get("rating"), row.get("rating_5based")),
                "show_thumb": as_str(row.get("cover")),
                "show_tmdb_id": as_ext_id(row.get("tmdb") or row.get("tmdb_id")),
                "show_imdb_id": as_ext_id(row.get("imdb") or row.get("imdb_id")),
                "category": categories.get(as_id(row.get("category_id")) or ""),
            }
        )

    def _series_episodes(
        self, http: HttpFetcher, show: Mapping[str, Any], body: bytes
    ) -> list[dict[str, Any]]:
        """The episodes in one show's ``get_series_info`` answer."""
        data = http.decode_json(body, "get_series_info")
        if isinstance(data, dict) and isinstance(data.get("user_info"), dict):
            self._check_account(data["user_info"])
        if data is None or data in ([], {}):
            return []
        if not isinstance(data, dict):
            raise SourceError(
                f"{self.name}: get_series_info for series {show['show_id']} answered "
                f"{type(data).__name__}, not an object"
            )
        show = {**show, **_show_details(data.get("info"))}  # the detail answer wins
        episodes: list[dict[str, Any]] = []
        for season_hint, row in _episode_rows(data.get("episodes"), self.name, show["show_id"]):
            meta = self._episode_meta(row, season_hint, show)
            if meta is not None:
                episodes.append(meta)
        mark_ambiguous(episodes, lambda m: f"{m['season']}x{m['episode']}", lambda m: str(m["id"]))
        return episodes

    def _episode_meta(
        self, row: Mapping[str, Any], season_hint: int | None, show: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        episode_id = as_id(row.get("id") or row.get("stream_id"))
        if not episode_id:
            return None
        raw_info = row.get("info")
        info: Mapping[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        raw_title = as_str(row.get("title")) or as_str(info.get("name")) or ""
        title, title_season, title_number = episode_title(raw_title, str(show.get("show", "")))
        season = as_int(row.get("season"))
        if season is None:
            season = season_hint if season_hint is not None else (title_season or 1)
        number = as_int(row.get("episode_num"))
        if number is None:
            number = title_number or 0
        return compact(
            {
                **show,
                "id": episode_id,
                "title": title,
                "season": season,
                "episode": number,
                "plot": first_text(info, "plot", "overview"),
                "aired": first_text(info, *_AIRED),
                "rating": as_rating(info.get("rating"), info.get("rating_5based")),
                "tmdb_id": as_ext_id(info.get("tmdb_id") or info.get("tmdb")),
                "imdb_id": as_ext_id(info.get("imdb_id") or info.get("imdb")),
                "thumb": as_str(info.get("movie_image")),
                "url": self._url("series", episode_id, row.get("container_extension")),
                "stream_id": episode_id,
            }
        )


class _SeriesCache:
    """Each series' last ``get_series_info`` answer, one file per series named by a hash of
    the ``get_series`` row it was fetched under; reused while that row is unchanged and the
    file is younger than ``max_age`` seconds."""

    def __init__(self, folder: Path, max_age: float) -> None:
        self.folder = folder
        self.max_age = max_age
        self.hits = 0
        self._files: dict[str, list[str]] | None = None

    def _path(self, series_id: str, row: str) -> Path:
        stamp = hashlib.blake2b(row.encode(), digest_size=10).hexdigest()
        return self.folder / f"{quote(series_id, safe='')}.{stamp}.json"

    def _by_series(self) -> dict[str, list[str]]:
        if self._files is None:  # one listing for the whole read, not one per series
            self._files = {}
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(self.folder):
                    self._files.setdefault(name.split(".", 1)[0], []).append(name)
        return self._files

    def get(self, series_id: str, row: str) -> bytes | None:
        path = self._path(series_id, row)
        if path.name not in self._by_series().get(path.name.split(".", 1)[0], ()):
            return None
        try:
            if time.time() - path.stat().st_mtime > self.max_age:
                return None
            body = path.read_bytes()
        except OSError:
            return None
        self.hits += 1
        return body

    def put(self, series_id: str, row: str, body: bytes) -> None:
        path = self._path(series_id, row)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, body)
            key = path.name.split(".", 1)[0]
            for old in self._by_series().get(key, ()):
                if old != path.name:
                    with contextlib.suppress(OSError):
                        (self.folder / old).unlink()
            self._by_series()[key] = [path.name]
        except OSError as exc:  # a cache that cannot be written only costs requests
            log.warning("cannot keep the answer of series %s in %s: %s", series_id, path, exc)


def _show_details(info: Any) -> dict[str, Any]:
    """The show fields of a ``get_series_info`` answer's ``info`` (often richer than the
    ``get_series`` row: its TMDB id, cast). Name and year are left to the row, which names
    the show's folder and decides which shows share a name."""
    if not isinstance(info, dict):
        return {}
    return compact(
        {
            "show_plot": first_text(info, "plot", "description"),
            "show_genre": as_str(info.get("genre")),
            "show_rating": as_rating(info.get("rating"), info.get("rating_5based")),
            "show_thumb": as_str(info.get("cover")),
            "show_tmdb_id": as_ext_id(info.get("tmdb") or info.get("tmdb_id")),
            "show_imdb_id": as_ext_id(info.get("imdb") or info.get("imdb_id")),
            "show_cast": first_text(info, "cast", "actors"),
        }
    )


def _meta_id(meta: Mapping[str, Any]) -> str:
    return str(meta["id"])


def _first_byte(body: IO[bytes]) -> bytes:
    """The first byte of ``body`` that is not JSON whitespace (``b""`` if none); rewinds."""
    start = b""
    while chunk := body.read(256):
        start = chunk.lstrip(b" \t\r\n")[:1]
        if start:
            break
    body.seek(0)
    return start


def _parse_error(exc: Exception) -> str:
    """The first line of an ijson error (the rest quotes the answer around the error)."""
    reason = exc.args[0] if exc.args else ""
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", errors="replace")
    return str(reason).replace("\\n", "\n").split("\n", 1)[0].strip() or type(exc).__name__


def _episode_rows(
    episodes: Any, source: str, series_id: Any
) -> Iterator[tuple[int | None, Mapping[str, Any]]]:
    """``(season hint, episode row)`` from any of the shapes providers use."""
    if episodes is None or episodes == "":
        return
    if isinstance(episodes, dict):
        for season_key, rows in episodes.items():
            hint = as_int(season_key)
            season_rows = list(rows.values()) if isinstance(rows, dict) else rows
            if not isinstance(season_rows, list):
                raise SourceError(f"{source}: series {series_id} has a malformed season")
            yield from ((hint, row) for row in season_rows if isinstance(row, dict))
    elif isinstance(episodes, list):
        # PHP encodes the seasons as a list when their keys run 0, 1, 2...: the index is
        # the season (what Dispatcharr's importer takes too)
        for index, item in enumerate(episodes):
            if isinstance(item, list):
                yield from ((index, row) for row in item if isinstance(row, dict))
            elif isinstance(item, dict):
                yield None, item
    else:
        raise SourceError(f"{source}: series {series_id} has malformed episodes")
