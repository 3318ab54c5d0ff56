"""Dispatcharr server (REST ``/api/vod/...``): its VOD movies and series episodes as entries.

Lists are paginated DRF-style (``{"count", "next", "results"}``) or plain lists. Episodes
come from each series' ``provider-info/?include_episodes=true`` endpoint, grouped by season.
Stream URLs go through Dispatcharr's proxy (``/proxy/vod/movie/<uuid>``) unless
``url_mode="direct"`` asks for the provider's own URLs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from mediamill.sources._http import HttpFetcher
from mediamill.sources._vod import (
    AnswerSpool,
    as_float,
    as_id,
    as_int,
    as_str,
    as_year,
    compact,
    episode_entries,
    fetch_series_answers,
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

log = logging.getLogger(__name__)

_MAX_PAGES = 100_000
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,8}$")


def display_name(base_url: str) -> str:
    parts = urlsplit(base_url)
    port = f":{parts.port}" if parts.port else ""
    return f"dispatcharr+{parts.scheme}://{parts.hostname or ''}{port}{parts.path.rstrip('/')}"


class DispatcharrSource:
    """Movies then episodes of a Dispatcharr server.

    Options: ``auth`` is ``"bearer"`` (``Authorization: Bearer``) or ``"api-key"``
    (``X-API-Key``); ``url_mode`` is ``"proxy"`` (default, URLs through Dispatcharr) or
    ``"direct"`` (provider URLs; costs one ``provider-info`` request per movie);
    ``public_url`` is the Dispatcharr address written into proxy URLs when players reach it
    at another address than the API; ``page_size``, ``rate``, ``retries``, ``backoff``,
    ``timeout``, ``movies``, ``series``, ``on_series_error`` as for Xtream.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        auth: str = "bearer",
        url_mode: str = "proxy",
        public_url: str | None = None,
        movies: bool = True,
        series: bool = True,
        page_size: int = 100,
        rate: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
        on_series_error: str = "fail",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("Dispatcharr URL must be an http(s) URL with a host")
        if not token:
            raise ValueError("Dispatcharr needs an API token")
        if auth not in ("bearer", "api-key"):
            raise ValueError("auth must be 'bearer' or 'api-key'")
        if url_mode not in ("proxy", "direct"):
            raise ValueError("url_mode must be 'proxy' or 'direct'")
        if on_series_error not in ("fail", "skip"):
            raise ValueError("on_series_error must be 'fail' or 'skip'")
        self.base = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}".rstrip("/")
        self.public_url = (public_url or self.base).rstrip("/")
        self.name = display_name(base_url)
        self._token = token
        self.auth = auth
        self.url_mode = url_mode
        self.movies = movies
        self.series = series
        self.page_size = max(1, page_size)
        self.on_series_error = on_series_error
        self._http_options: dict[str, Any] = {
            "rate": rate, "retries": retries, "backoff": backoff, "timeout": timeout,
        }  # fmt: skip
        self.requests = 0

    def __repr__(self) -> str:
        return f"DispatcharrSource({self.name!r})"

    def _fetcher(self) -> HttpFetcher:
        if self.auth == "bearer":
            headers = {"Authorization": f"Bearer {self._token}"}
        else:
            headers = {"X-API-Key": self._token}
        return HttpFetcher(self.name, secrets=(self._token,), headers=headers, **self._http_options)

    def _pages(self, http: HttpFetcher, path: str, what: str) -> Iterator[dict[str, Any]]:
        """The rows of a list, page after page, as they are fetched."""
        for _url, body in self._page_answers(http, path, what):
            yield from self._page_rows(http, body, what)

    def _page_answers(self, http: HttpFetcher, path: str, what: str) -> Iterator[tuple[str, bytes]]:
        """``(url, raw answer)`` of every page of a list (DRF pages, or one plain list)."""
        url: str | None = f"{self.base}{path}"
        params: dict[str, str] | None = {"page_size": str(self.page_size)}
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            body = http.get_bytes(url, what, params)
            data = http.decode_json(body, what)
            yield url, body
            if isinstance(data, list):
                return
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise SourceError(f"{self.name}: {what} answered neither a page nor a list")
            url, params = self._next(data.get("next"), seen), None
        raise SourceError(f"{self.name}: {what} has more than {_MAX_PAGES} pages")

    def _page_rows(self, http: HttpFetcher, body: bytes, what: str) -> Iterator[dict[str, Any]]:
        data = http.decode_json(body, what)
        rows = data if isinstance(data, list) else data.get("results", [])
        yield from (row for row in rows if isinstance(row, dict))

    def _next(self, link: Any, seen: set[str]) -> str | None:
        """The next page on *our* base URL (the token never goes to another host)."""
        text = as_str(link)
        if not text:
            return None
        parts = urlsplit(text)
        following = f"{parts.path}?{parts.query}" if parts.query else parts.path
        if following in seen:
            return None
        seen.add(following)
        base_path = urlsplit(self.base).path
        if base_path and following.startswith(base_path):
            following = following[len(base_path) :]
        return f"{self.base}{following}"

    # -- entries ---------------------------------------------------------------------------

    def iter_entries(self) -> Iterator[SourceEntry]:
        entries = self.read().entries
        assert entries is not None  # without ``since`` every entry is parsed
        yield from entries

    def read(self, since: str | None = None) -> SourceRead:
        """Fetch every list page and every series' provider-info first (spooled), digest
        them, and parse them only when the digest is not ``since``. With
        ``url_mode="direct"`` (one request per movie, made while parsing) there is no
        digest."""
        http = self._fetcher()
        spool = AnswerSpool()
        try:
            accounts = self._accounts(http) if self.url_mode == "direct" else {}
            digest = AnswerDigest(
                "dispatcharr", self.base, self.public_url, secret_digest(self._token),
                self.auth, self.movies, self.series, self.page_size, self.on_series_error,
            )  # fmt: skip
            movie_pages = []
            if self.movies:
                what = "the movie list"
                movie_pages = self._fetch(http, "/api/vod/movies/", what, digest, spool)
            shows: list[dict[str, Any]] = []
            if self.series:
                what = "the series list"
                for key in self._fetch(http, "/api/vod/series/", what, digest, spool):
                    shows.extend(self._shows(self._page_rows(http, spool.get(key), what)))
                mark_ambiguous(
                    shows, show_group, lambda m: str(m["show_id"]), flag="show_ambiguous"
                )
                shows = fetch_series_answers(
                    self.name,
                    shows,
                    lambda show: http.get_bytes(
                        f"{self.base}/api/vod/series/{show['show_id']}/provider-info/",
                        "series provider-info",
                        {"include_episodes": "true"},
                    ),
                    self.on_series_error,
                    digest,
                    spool,
                )
            answers = None if self.url_mode == "direct" else digest.hexdigest()
            if answers is not None and answers == since:
                self._close(http, spool)
                return SourceRead(answers, None)
            return SourceRead(answers, self._entries(http, accounts, movie_pages, shows, spool))
        except BaseException:
            self._close(http, spool)
            raise

    def _close(self, http: HttpFetcher, spool: AnswerSpool) -> None:
        spool.close()
        self.requests += http.requests
        http.close()

    def _fetch(
        self, http: HttpFetcher, path: str, what: str, digest: AnswerDigest, spool: AnswerSpool
    ) -> list[str]:
        """Every page of a list into the spool (and the digest); their keys, in order."""
        keys: list[str] = []
        for url, body in self._page_answers(http, path, what):
            digest.add(url.encode())
            digest.add(body)
            spool.add(f"{path}#{len(keys)}", body)
            keys.append(f"{path}#{len(keys)}")
        return keys

    def _entries(
        self,
        http: HttpFetcher,
        accounts: Mapping[str, Mapping[str, str]],
        movie_pages: list[str],
        shows: list[dict[str, Any]],
        spool: AnswerSpool,
    ) -> Iterator[SourceEntry]:
        try:
            if movie_pages:
                rows = (
                    row
                    for key in movie_pages
                    for row in self._page_rows(http, spool.get(key), "the movie list")
                )
                yield from self._movies(http, accounts, rows)
            if shows:
                yield from episode_entries(
                    self.name,
                    shows,
                    lambda show: self._series_episodes(
                        http, show, accounts, spool.get(str(show["show_id"]))
                    ),
                    self.on_series_error,
                )
        finally:
            self._close(http, spool)

    def _accounts(self, http: HttpFetcher) -> dict[str, dict[str, str]]:
        """Provider accounts (server, user, password) by id, for direct URLs."""
        accounts: dict[str, dict[str, str]] = {}
        for row in self._pages(http, "/api/m3u/accounts/", "the account list"):
            ident = as_id(row.get("id"))
            server = as_str(row.get("server_url"))
            if ident and server:
                account = {
                    "server": server.rstrip("/"),
                    "username": as_str(row.get("username")) or "",
                    "password": as_str(row.get("password")) or "",
                }
                http.add_secrets(account["username"], account["password"])
                accounts[ident] = account
        return accounts

    def _direct_url(
        self,
        accounts: Mapping[str, Mapping[str, str]],
        account: Any,
        kind: str,
        info: Mapping[str, Any],
    ) -> str | None:
        direct = as_str(info.get("direct_source"))
        if direct:
            return direct
        ident = as_id(account.get("id")) if isinstance(account, dict) else None
        found = accounts.get(ident or "")
        stream_id = as_id(info.get("stream_id"))
        if not found or not stream_id:
            return None
        ext = as_str(info.get("container_extension")) or "mp4"
        ext = ext if _EXTENSION.match(ext) else "mp4"
        user, password = quote(found["username"], safe=""), quote(found["password"], safe="")
        return f"{found['server']}/{kind}/{user}/{password}/{stream_id}.{ext}"

    def _movies(
        self,
        http: HttpFetcher,
        accounts: Mapping[str, Mapping[str, str]],
        rows: Iterator[dict[str, Any]],
    ) -> Iterator[SourceEntry]:
        # every page is read (to find duplicate titles) before the first entry comes out,
        # but only one id per title stays in memory: the metas wait in a temp file
        for meta in flag_duplicates(self._movie_metas(rows), movie_group, _meta_id):
            if self.url_mode == "direct":
                info = http.get_json(
                    f"{self.base}/api/vod/movies/{meta['id']}/provider-info/", "movie provider-info"
                )
                if isinstance(info, dict):
                    url = self._direct_url(accounts, info.get("m3u_account"), "movie", info)
                    if url:
                        meta["url"] = url
                        meta["stream_id"] = as_id(info.get("stream_id")) or ""
            yield SourceEntry(key=f"movie/{meta['id']}", kind="movie", meta=meta)

    def _movie_metas(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            ident, uuid = as_id(row.get("id")), as_str(row.get("uuid"))
            if not ident or not uuid:
                continue
            name = as_str(row.get("name")) or ""
            title, year = title_and_year(name, row.get("year"))
            yield compact(
                {
                    "id": ident,
                    "uuid": uuid,
                    "name": name,
                    "title": title,
                    "year": year,
                    "plot": as_str(row.get("description")),
                    "rating": as_float(row.get("rating")),
                    "genre": as_str(row.get("genre")),
                    "tmdb_id": as_id(row.get("tmdb_id")),
                    "imdb_id": as_str(row.get("imdb_id")),
                    "thumb": _logo(row.get("logo")),
                    "url": f"{self.public_url}/proxy/vod/movie/{quote(uuid, safe='')}",
                }
            )

    def _shows(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            ident = as_id(row.get("id"))
            if not ident:
                continue
            title, year = title_and_year(as_str(row.get("name")) or "", row.get("year"))
            yield compact(
                {
                    "show": title or f"Series {ident}",
                    "show_year": year,
                    "show_id": ident,
                    "show_plot": as_str(row.get("description")),
                    "show_genre": as_str(row.get("genre")),
                    "show_rating": as_float(row.get("rating")),
                    "show_thumb": _logo(row.get("logo")),
                    "show_tmdb_id": as_id(row.get("tmdb_id")),
                    "show_imdb_id": as_str(row.get("imdb_id")),
                }
            )

    def _series_episodes(
        self,
        http: HttpFetcher,
        show: dict[str, Any],
        accounts: Mapping[str, Mapping[str, str]],
        body: bytes,
    ) -> list[dict[str, Any]]:
        data = http.decode_json(body, "series provider-info")
        if not isinstance(data, dict):
            raise SourceError(
                f"{self.name}: provider-info of series {show['show_id']} is malformed"
            )
        seasons = data.get("episodes") or {}
        if isinstance(seasons, list):
            seasons = {"": seasons}
        if not isinstance(seasons, dict):
            raise SourceError(f"{self.name}: episodes of series {show['show_id']} are malformed")
        episodes: list[dict[str, Any]] = []
        for season_key, rows in seasons.items():
            for row in rows if isinstance(rows, list) else []:
                if not isinstance(row, dict):
                    continue
                ident, uuid = as_id(row.get("id")), as_str(row.get("uuid"))
                if not ident or not uuid:
                    continue
                season = as_int(row.get("season_number"))
                if season is None:
                    season = as_int(season_key) or 0
                url: str | None = f"{self.public_url}/proxy/vod/episode/{quote(uuid, safe='')}"
                if self.url_mode == "direct":
                    url = self._direct_url(accounts, data.get("m3u_account"), "series", row) or url
                episodes.append(
                    compact(
                        {
                            **show,
                            "id": ident,
                            "uuid": uuid,
                            "title": as_str(row.get("title") or row.get("name")),
                            "season": season,
                            "episode": as_int(row.get("episode_number")) or 0,
                            "plot": as_str(row.get("plot") or row.get("description")),
                            "aired": as_str(row.get("air_date")),
                            "rating": as_float(row.get("rating")),
                            "tmdb_id": as_id(row.get("tmdb_id")),
                            "imdb_id": as_str(row.get("imdb_id")),
                            "thumb": as_str(row.get("movie_image")),
                            "url": url,
                        }
                    )
                )
        if as_year(data.get("year")) and "show_year" not in show:
            for meta in episodes:
                meta["show_year"] = as_year(data.get("year"))
        mark_ambiguous(episodes, lambda m: f"{m['season']}x{m['episode']}", lambda m: str(m["id"]))
        return episodes


def _meta_id(meta: Mapping[str, Any]) -> str:
    return str(meta["id"])


def _logo(value: Any) -> str | None:
    if isinstance(value, dict):
        return as_str(value.get("url")) or as_str(value.get("cache_url"))
    return as_str(value)
