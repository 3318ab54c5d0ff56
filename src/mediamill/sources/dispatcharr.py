"""Dispatcharr server (REST ``/api/vod/...``): its VOD movies and series episodes as entries.

Lists are paginated DRF-style (``{"count", "next", "results"}``) or plain lists. Episodes
come from each series' ``provider-info/?include_episodes=true`` endpoint, grouped by season.
Stream URLs go through Dispatcharr's proxy (``/proxy/vod/movie/<uuid>``) unless
``url_mode="direct"`` asks for the provider's own URLs, built the way Dispatcharr builds them
(``M3UMovieRelation.get_stream_url``): the account's ``server_url`` without an API endpoint
or query, then ``/movie|series/<user>/<password>/<stream id>.<ext>``, for Xtream Codes
accounts only. Dispatcharr shows account passwords to admin users only.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from mediamill import credentials
from mediamill.sources._dispatcharr_auth import ApiKeyAuth, JwtLoginAuth
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
from mediamill.sources.m3u import CredentialHider

log = logging.getLogger(__name__)

_MAX_PAGES = 100_000
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,8}$")


def display_name(base_url: str) -> str:
    parts = urlsplit(base_url)
    port = f":{parts.port}" if parts.port else ""
    return f"dispatcharr+{parts.scheme}://{parts.hostname or ''}{port}{parts.path.rstrip('/')}"


def normalize_server_url(url: str) -> str:
    """An account's ``server_url`` as Dispatcharr uses it in stream URLs
    (``core.xtream_codes.normalize_server_url``): a trailing ``.php`` endpoint
    (``/player_api.php``), the query and the fragment are dropped, a base path is kept."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    if last.endswith(".php"):
        path = path[: -(len(last) + 1)] if "/" in path else ""
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass
class _Account:
    """A provider account as direct URLs need it: its server, the marker that stands for
    its username and password (:mod:`mediamill.credentials`: the account stays out
    of the catalog), or ``why_not``: why it cannot give any."""

    server: str = ""
    auth: str = ""
    why_not: str | None = None


@dataclass
class _DirectUrls:
    """The provider accounts of a direct-mode read, and the entries that kept a proxy URL
    (by reason), for the read's summary."""

    accounts: dict[str, _Account]
    #: hides credentials in a panel's own URLs, the accounts' wherever they are spelled
    hider: CredentialHider
    fallbacks: Counter[str] = field(default_factory=Counter)

    def url(self, account: Any, kind: str, stream_id: Any, extension: Any) -> str | None:
        """``<server>/<kind>/<user>/<password>/<stream id>.<ext>``, or ``None`` (the reason
        counted) when the entry's account cannot give one."""
        ident = as_id(account.get("id")) if isinstance(account, dict) else None
        found = self.accounts.get(ident or "")
        why_not = "its account is not listed" if found is None else found.why_not
        stream = as_id(stream_id)
        if why_not is None and not stream:
            why_not = "Dispatcharr gave no stream id for it"
        if why_not is not None or found is None or not stream:
            self.fallbacks[why_not or "no stream id"] += 1
            return None
        ext = as_str(extension) or "mp4"
        ext = ext if _EXTENSION.match(ext) else "mp4"
        return f"{found.server}/{kind}/{found.auth}/{quote(stream, safe='')}.{ext}"

    def notes(self, name: str) -> list[str]:
        return [
            f"{name}: url_mode=direct: {count} entries kept their proxy URL: {reason}"
            for reason, count in sorted(self.fallbacks.items())
        ]


class DispatcharrSource:
    """Movies then episodes of a Dispatcharr server.

    Options: ``auth`` is ``"api-key"`` (``token`` is a Dispatcharr API key, sent as
    ``X-API-Key``) or ``"login"`` (``username``/``password``, exchanged for JWTs that are
    renewed as they expire); by default ``"api-key"`` when a token is given, else
    ``"login"``. ``url_mode`` is ``"proxy"`` (default, URLs through Dispatcharr) or
    ``"direct"`` (provider URLs; costs one ``provider-info`` request per movie and one
    ``episodes`` request per series, and needs an admin user, the only ones Dispatcharr
    shows account passwords to);
    ``public_url`` is the Dispatcharr address written into proxy URLs when players reach it
    at another address than the API; ``page_size``, ``rate``, ``retries``, ``backoff``,
    ``timeout``, ``movies``, ``series``, ``on_series_error`` as for Xtream.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: str | None = None,
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
        auth = auth or ("login" if username and password and not token else "api-key")
        if auth == "bearer":
            raise ValueError(
                "auth='bearer' is not an API key scheme: Dispatcharr reads a Bearer token as a "
                "JWT that expires after 30 minutes; use auth='api-key' with an API key, or "
                "auth='login' with a username and password"
            )
        if auth not in ("api-key", "login"):
            raise ValueError("auth must be 'api-key' or 'login'")
        if auth == "api-key" and not token:
            raise ValueError("Dispatcharr auth=api-key needs an API key (option token)")
        if auth == "login" and not (username and password):
            raise ValueError("Dispatcharr auth=login needs a username and a password")
        if url_mode not in ("proxy", "direct"):
            raise ValueError("url_mode must be 'proxy' or 'direct'")
        if on_series_error not in ("fail", "skip"):
            raise ValueError("on_series_error must be 'fail' or 'skip'")
        self.base = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}".rstrip("/")
        self.public_url = (public_url or self.base).rstrip("/")
        self.name = display_name(base_url)
        self.auth = auth
        # the login's tokens live here, in memory, for every read of this source
        self._auth: ApiKeyAuth | JwtLoginAuth = (
            ApiKeyAuth(token or "")
            if auth == "api-key"
            else JwtLoginAuth(self.base, username or "", password or "")
        )
        self._who = secret_digest(token or "", username or "")  # what the user may see
        self.notes: list[str] = []
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
        return HttpFetcher(
            self.name, secrets=self._auth.secrets(), auth=self._auth, **self._http_options
        )

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
        self.notes = []
        try:
            direct = self._direct(http) if self.url_mode == "direct" else None
            digest = AnswerDigest(
                "dispatcharr", self.base, self.public_url, self._who,
                self.movies, self.series, self.page_size, self.on_series_error,
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
            return SourceRead(answers, self._entries(http, direct, movie_pages, shows, spool))
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
        direct: _DirectUrls | None,
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
                yield from self._movies(http, direct, rows)
            if shows:
                yield from episode_entries(
                    self.name,
                    shows,
                    lambda show: self._series_episodes(
                        http, show, direct, spool.get(str(show["show_id"]))
                    ),
                    self.on_series_error,
                )
            if direct is not None and direct.fallbacks:
                self.notes = direct.notes(self.name)
                for note in self.notes:
                    log.warning("%s", note)
        finally:
            self._close(http, spool)

    def _direct(self, http: HttpFetcher) -> _DirectUrls:
        """The active provider accounts, for direct URLs. Refuses (``SourceError``) when an
        Xtream Codes account's password is not shown: Dispatcharr shows it to admin users
        only, and a URL without it (``/movie/alice//1.mkv``) plays nothing."""
        accounts: dict[str, _Account] = {}
        secrets: set[str] = set()
        for row in self._pages(http, "/api/m3u/accounts/", "the account list"):
            ident = as_id(row.get("id"))
            if not ident or row.get("is_active") is False:
                continue
            kind = as_str(row.get("account_type")) or "STD"
            server = normalize_server_url(as_str(row.get("server_url")) or "")
            username = as_str(row.get("username")) or ""
            password = as_str(row.get("password")) or ""
            account = _Account(server)
            parts = urlsplit(server)
            if kind.upper() != "XC":
                account.why_not = f"its account is not Xtream Codes (account_type {kind})"
            elif parts.scheme not in ("http", "https") or not parts.hostname:
                account.why_not = "its account's server_url is not an http(s) URL"
            elif not username or not password:
                label = as_str(row.get("name")) or ident
                raise SourceError(
                    f"{self.name}: url_mode=direct needs the provider username and password "
                    f"of account {label!r}, which Dispatcharr shows to admin users only "
                    f"({self._auth.scheme}); use an admin user's credentials, or url_mode=proxy"
                )
            else:
                account.auth = credentials.marker(server, username, password)
            http.add_secrets(username, password)
            secrets.update((username, password))
            accounts[ident] = account
        return _DirectUrls(accounts, CredentialHider(secrets))

    def _movies(
        self, http: HttpFetcher, direct: _DirectUrls | None, rows: Iterator[dict[str, Any]]
    ) -> Iterator[SourceEntry]:
        # every page is read (to find duplicate titles) before the first entry comes out,
        # but only one id per title stays in memory: the metas wait in a temp file
        for meta in flag_duplicates(self._movie_metas(rows), movie_group, _meta_id):
            if direct is not None:
                info = http.get_json(
                    f"{self.base}/api/vod/movies/{meta['id']}/provider-info/", "movie provider-info"
                )
                info = info if isinstance(info, dict) else {}
                # a panel's own URL for the stream (its upstream), often with an account in it
                upstream = as_str(info.get("direct_source"))
                url = (
                    direct.hider.hide(upstream)
                    if upstream
                    else direct.url(
                        info.get("m3u_account"),
                        "movie",
                        info.get("stream_id"),
                        info.get("container_extension"),
                    )
                )
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
                    "rating": as_rating(row.get("rating")),
                    "genre": as_str(row.get("genre")),
                    "tmdb_id": as_ext_id(row.get("tmdb_id")),
                    "imdb_id": as_ext_id(row.get("imdb_id")),
                    "cast": first_text(row.get("custom_properties"), "actors", "cast"),
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
                    "show_rating": as_rating(row.get("rating")),
                    "show_thumb": _logo(row.get("logo")),
                    "show_tmdb_id": as_ext_id(row.get("tmdb_id")),
                    "show_imdb_id": as_ext_id(row.get("imdb_id")),
                    "show_cast": first_text(row.get("custom_properties"), "cast", "actors"),
                }
            )

    def _series_episodes(
        self, http: HttpFetcher, show: dict[str, Any], direct: _DirectUrls | None, body: bytes
    ) -> list[dict[str, Any]]:
        data = http.decode_json(body, "series provider-info")
        if not isinstance(data, dict):
            raise SourceError(
                f"{self.name}: provider-info of series {show['show_id']} is malformed"
            )
        seasons = data.get("episodes") or {}
        if isinstance(seasons, list):  # as Dispatcharr's importer reads a list: index = season
            seasons = {str(index): rows for index, rows in enumerate(seasons)}
        if not isinstance(seasons, dict):
            raise SourceError(f"{self.name}: episodes of series {show['show_id']} are malformed")
        streams = self._episode_streams(http, show, data) if direct is not None else {}
        episodes: list[dict[str, Any]] = []
        for season_key, rows in seasons.items():
            for row in rows if isinstance(rows, list) else []:
                meta = self._episode_meta(row, as_int(season_key), show) if row else None
                if meta is None:
                    continue
                if direct is not None:
                    stream = streams.get(meta["id"], {})
                    url = direct.url(
                        data.get("m3u_account"),
                        "series",
                        stream.get("stream_id"),
                        stream.get("container_extension") or row.get("container_extension"),
                    )
                    meta["url"] = url or meta["url"]
                episodes.append(meta)
        if as_year(data.get("year")) and "show_year" not in show:
            for meta in episodes:
                meta["show_year"] = as_year(data.get("year"))
        mark_ambiguous(episodes, lambda m: f"{m['season']}x{m['episode']}", lambda m: str(m["id"]))
        return episodes

    def _episode_meta(
        self, row: Any, season_key: int | None, show: dict[str, Any]
    ) -> dict[str, Any] | None:
        """One provider-info episode row. Dispatcharr keeps the panel's raw title ("Show -
        S01E01 - Pilot") as the episode's name: it is cleaned as Xtream titles are."""
        if not isinstance(row, dict):
            return None
        ident, uuid = as_id(row.get("id")), as_str(row.get("uuid"))
        if not ident or not uuid:
            return None
        raw = first_text(row, "title", "name") or ""
        title, title_season, title_number = episode_title(raw, str(show.get("show", "")))
        season = as_int(row.get("season_number"))
        if season is None:
            season = season_key if season_key is not None else (title_season or 0)
        number = as_int(row.get("episode_number"))
        return compact(
            {
                **show,
                "id": ident,
                "uuid": uuid,
                "title": title,
                "season": season,
                "episode": number if number is not None else (title_number or 0),
                "plot": first_text(row, "plot", "description"),
                "aired": first_text(row, "air_date", "release_date", "releasedate"),
                "rating": as_rating(row.get("rating")),
                "tmdb_id": as_ext_id(row.get("tmdb_id")),
                "imdb_id": as_ext_id(row.get("imdb_id")),
                "thumb": as_str(row.get("movie_image")),
                "url": f"{self.public_url}/proxy/vod/episode/{quote(uuid, safe='')}",
            }
        )

    def _episode_streams(
        self, http: HttpFetcher, show: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Episode id -> its stream on the series' account (``stream_id``,
        ``container_extension``), from ``/api/vod/series/<id>/episodes/``: provider-info's
        episode rows carry no stream id, the episodes' provider relations do."""
        account = data.get("m3u_account")
        wanted = as_id(account.get("id")) if isinstance(account, dict) else None
        answer = http.get_json(
            f"{self.base}/api/vod/series/{show['show_id']}/episodes/", "series episodes"
        )
        streams: dict[str, dict[str, Any]] = {}
        for episode in answer if isinstance(answer, list) else []:
            ident = as_id(episode.get("id")) if isinstance(episode, dict) else None
            providers = episode.get("providers") if isinstance(episode, dict) else None
            for relation in providers if ident and isinstance(providers, list) else []:
                owner = relation.get("m3u_account") if isinstance(relation, dict) else None
                owner_id = as_id(owner.get("id")) if isinstance(owner, dict) else None
                if owner_id == wanted and ident:
                    streams.setdefault(ident, relation)
        return streams


def _meta_id(meta: Mapping[str, Any]) -> str:
    return str(meta["id"])


def _logo(value: Any) -> str | None:
    """A logo's URL: Dispatcharr's cached copy (``cache_url``, reachable wherever
    Dispatcharr is) before the provider's own, which often dies or blocks hotlinking."""
    if isinstance(value, dict):
        return as_str(value.get("cache_url")) or as_str(value.get("url"))
    return as_str(value)
