"""A stand-in VOD provider on loopback: Xtream ``player_api.php``, Dispatcharr, an M3U list.

``make_catalog`` describes a generated catalog; every movie, series and episode is computed
from its index and the seed when asked for, so 100,000 movies cost nothing until served.
:class:`VodServer` is a real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, port 0, in a
background thread) with switchable faults: HTTP 500 on the first N requests, slow answers,
malformed JSON, wrong credentials (answered like Xtream panels do: ``{"user_info":
{"auth": 0}}``). It also records media-server refresh calls (Jellyfin/Emby/Plex)::

    with VodServer(make_catalog(movies=50, series=3, episodes_per_series=4, seed=1)) as srv:
        source = open_source(srv.xtream_spec)
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mediamill.testing import dispatcharr as dispatcharr_api
from mediamill.testing.dispatcharr import DispatcharrAuth

_WORDS = (
    *("Amber", "Blade", "Castle", "Dawn", "Echo", "Falcon", "Garden", "Harbor", "Island"),
    *("Jungle", "Kingdom", "Lantern", "Meadow", "Night", "Ocean", "Phantom", "Quest", "River"),
    *("Shadow", "Thunder", "Umbra", "Valley", "Winter", "Xenon", "Yonder", "Zephyr", "Crimson"),
    *("Silent", "Golden", "Broken", "Hidden", "Last", "Lost", "Secret", "Wild", "Iron", "Glass"),
)
_MASK = (1 << 64) - 1
_PREFIXES = ("EN - ", "4K | ", "|FR| ", "", "", "")
_GENRES = ("Drama", "Action, Thriller", "Comedy", "Sci-Fi / Fantasy", "Documentary")
#: names that exercise path cleaning, used when ``nasty_names`` is on (movie index -> name)
NASTY_MOVIE_NAMES = {
    2: "../../etc/passwd",
    3: "CON",
    4: "Ünïcödé " + "長い題名" * 30,
    5: 'What? <Yes>: "No" | * \\ / end.',
    6: "Bell\x07 and\ttab\x1f",
}


@dataclass(frozen=True)
class RawJson:
    """An answer sent as these exact bytes, for answers ``json.dumps`` cannot make (a
    truncated list, say): return one from a replaced ``VodServer.xtream``."""

    body: bytes


@dataclass
class VodCatalog:
    """A generated catalog; rows are computed per index (see module docstring).

    ``renamed`` (movie index -> name) and ``removed`` (movie indexes) change it between
    scans, as a provider would; ``new_episodes`` (series index -> how many) adds episodes to a
    series and moves its ``last_modified``, unless ``frozen_last_modified`` (panels that
    never update it).

    ``seasons_shape="php"`` encodes ``episodes`` as PHP's ``json_encode`` does: a list when
    the season keys run 0, 1, 2... (specials first), else an object; ``season_field=False``
    leaves ``season`` out of the episode rows and ``plain_titles`` titles episodes "Part 3"
    rather than "Show - S01E03 - Part 3". ``xtream_extras`` (on by default) adds what real
    panels send that Dispatcharr's importer drops: a TMDB id and cast only in
    ``get_series_info.info``, ratings only as ``rating_5based``, ``releaseDate`` air dates.
    """

    movies: int
    series: int
    episodes_per_series: int
    seed: int = 0
    messy: bool = True
    specials: bool = True
    missing_fields: bool = True
    duplicates: int = 0
    nasty_names: bool = False
    seasons_shape: str = "dict"
    season_field: bool = True
    plain_titles: bool = False
    xtream_extras: bool = True
    renamed: dict[int, str] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    new_episodes: dict[int, int] = field(default_factory=dict)
    frozen_last_modified: bool = False

    def _hash(self, *parts: int) -> int:
        """A well-mixed 64-bit number from the seed and ``parts`` (cheaper than a Random)."""
        value = self.seed & _MASK
        for part in parts:
            value = (value ^ (part + 0x9E3779B97F4A7C15)) & _MASK
            value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
            value ^= value >> 31
        return value

    def _title(self, bits: int) -> str:
        count = 1 + bits % 3
        return " ".join(_WORDS[(bits >> (8 + 8 * k)) % len(_WORDS)] for k in range(count))

    # -- movies ----------------------------------------------------------------------------

    def movie_indexes(self) -> Sequence[int]:
        """Indexes of the movies present (a ``range`` unless some were removed)."""
        if not self.removed:
            return range(self.movies)
        return [i for i in range(self.movies) if i not in self.removed]

    def movie_title(self, index: int) -> tuple[str, int | None]:
        """The clean title and year of a movie (what a good export shows)."""
        if index in self.renamed:
            return self.renamed[index], 2000 + index % 25
        if self.nasty_names and index in NASTY_MOVIE_NAMES:
            return NASTY_MOVIE_NAMES[index], None
        if self.duplicates and index % self.duplicates == 1:
            index -= 1
        bits = self._hash(1, index)
        title = f"{self._title(bits)} {index}"
        year = None if self.missing_fields and index % 7 == 3 else 1950 + (bits >> 48) % 75
        return title, year

    def movie(self, index: int) -> dict[str, Any]:
        """The ``get_vod_streams`` row of a movie."""
        rating = 1 + (self._hash(2, index) % 900) / 100
        title, year = self.movie_title(index)
        name = title
        row: dict[str, Any] = {"num": index + 1, "stream_type": "movie"}
        if self.messy and index not in self.renamed:
            name = _PREFIXES[index % len(_PREFIXES)] + title
            if year and index % 2 == 0:
                name += f" ({year})"
            elif year:
                row["year"] = str(year)
        elif year:
            row["year"] = year
        stream_id = index + 1
        row.update(
            {
                "name": name,
                "stream_id": str(stream_id) if self.messy and index % 3 == 0 else stream_id,
                "stream_icon": f"http://img.invalid/m/{stream_id}.jpg",
                "rating": f"{rating:.1f}" if self.messy else round(rating, 1),
                "category_id": str(1 + index % 3),
                "container_extension": ("mkv", "mp4", "avi")[index % 3],
                "added": str(1_600_000_000 + index),
            }
        )
        if not (self.missing_fields and index % 5 == 4):
            row["plot"] = f"A story about {title} & <friends>."
            row["genre"] = _GENRES[index % len(_GENRES)]
        if index % 4 == 0:
            row["tmdb"] = str(10_000 + index)
        elif self.messy and index % 4 == 2:
            row["tmdb"] = 0 if index % 8 == 2 else "0"  # panels' "no id"
        if self.xtream_extras and self.messy and index % 6 == 5:
            row["rating_5based"] = round(rating / 2, 2)
            row["rating"] = ""
        return row

    def vod_info(self, stream_id: int) -> dict[str, Any]:
        index = stream_id - 1
        title, year = self.movie_title(index)
        return {
            "info": {
                "name": title,
                "o_name": f"Original {title}",
                "plot": f"Full plot of {title}.",
                "genre": _GENRES[index % len(_GENRES)],
                "releasedate": f"{year or 2001}-05-01",
                "tmdb_id": str(10_000 + index),
                "rating": "8.1",
                "movie_image": f"http://img.invalid/m/{stream_id}-big.jpg",
            },
            "movie_data": {"stream_id": stream_id, "name": title, "container_extension": "mkv"},
        }

    # -- series ----------------------------------------------------------------------------

    def series_title(self, index: int) -> tuple[str, int | None]:
        if self.nasty_names and index == 1:
            return "../../x", 2001
        if self.duplicates and index % self.duplicates == 1:
            index -= 1
        bits = self._hash(3, index)
        year = None if self.missing_fields and index % 5 == 2 else 1990 + (bits >> 48) % 35
        return f"Show {self._title(bits)} {index}", year

    def series_row(self, index: int) -> dict[str, Any]:
        """The ``get_series`` row of a series."""
        title, year = self.series_title(index)
        name = (_PREFIXES[index % len(_PREFIXES)] + title) if self.messy else title
        row: dict[str, Any] = {
            "num": index + 1,
            "name": name,
            "series_id": str(index + 1) if self.messy else index + 1,
            "cover": f"http://img.invalid/s/{index + 1}.jpg",
            "plot": f"The saga of {title}.",
            "genre": _GENRES[index % len(_GENRES)],
            "rating": "7.2",
            "category_id": str(10 + index % 2),
            "last_modified": str(1_700_000_000 + index),
        }
        if self.new_episodes.get(index) and not self.frozen_last_modified:
            row["last_modified"] = str(1_800_000_000 + index + self.new_episodes[index])
        if year:
            row["releaseDate" if self.messy else "year"] = f"{year}-01-01"
        if not (self.xtream_extras and index % 2 == 1):  # else only the detail answer has it
            row["tmdb"] = str(20_000 + index)
            row["cast"] = f"Actor {index}, Actress {index}"
        elif self.messy:
            row["tmdb"] = "0"
        return row

    def episode_numbers(self, index: int) -> Iterator[tuple[int, int, int]]:
        """``(episode id, season, episode)`` of a series; a special is season 0."""
        per_season = 10
        for k in range(self.episodes_per_series):
            episode_id = index * self.episodes_per_series + k + 1
            if self.specials and k == self.episodes_per_series - 1 and k > 0:
                yield episode_id, 0, 1
            else:
                yield episode_id, 1 + k // per_season, 1 + k % per_season
        for k in range(self.new_episodes.get(index, 0)):  # a season added later
            yield 10_000_000 + index * 1000 + k, 50, 1 + k

    def episode_title(self, index: int, season: int, number: int) -> str:
        """An episode's raw title as the panel sends it (and Dispatcharr keeps it)."""
        show, _year = self.series_title(index)
        if self.missing_fields and number == 2:
            return show  # an untitled episode: panels send the show's name
        if self.plain_titles:
            return f"Part {number}"
        return f"{show} - S{season:02d}E{number:02d} - Part {number}"

    def episode_info(self, episode_id: int, number: int) -> dict[str, Any]:
        """An episode row's ``info``; its air date under each spelling panels use."""
        dates = ("releasedate", "release_date", "air_date", "releaseDate")
        date_key = dates[episode_id % (4 if self.xtream_extras else 3)]
        info: dict[str, Any] = {
            date_key: f"2020-01-{number:02d}",
            "plot": f"Episode {number}.",
            "rating": "6.5",
            "movie_image": f"http://img.invalid/e/{episode_id}.jpg",
            "tmdb_id": 0 if episode_id % 3 == 0 else 30_000 + episode_id,
        }
        if episode_id % 2 == 0:
            info["imdb_id"] = f"tt{1_000_000 + episode_id}"
        return info

    def show_info(self, index: int) -> dict[str, Any]:
        """``get_series_info.info``: the show's details (with a TMDB id the row may lack)."""
        title, year = self.series_title(index)
        return {
            "name": title,
            "cover": f"http://img.invalid/s/{index + 1}-big.jpg",
            "plot": f"The saga of {title}.",
            "cast": f"Actor {index}, Actress {index}",
            "genre": _GENRES[index % len(_GENRES)],
            "releaseDate": f"{year}-01-01" if year else "",
            "rating": "7.2",
            "rating_5based": 3.6,
            "tmdb": str(20_000 + index),
            "backdrop_path": [],
        }

    def series_info(self, index: int) -> dict[str, Any]:
        """The ``get_series_info`` answer, with ``episodes`` in the configured shape."""
        seasons: dict[int, list[dict[str, Any]]] = {}
        for episode_id, season, number in self.episode_numbers(index):
            row: dict[str, Any] = {
                "id": str(episode_id),
                "episode_num": str(number) if self.messy else number,
                "title": self.episode_title(index, season, number),
                "container_extension": "mkv",
                "info": self.episode_info(episode_id, number),
            }
            if self.season_field:
                row["season"] = season if not self.messy else str(season)
            seasons.setdefault(season, []).append(row)
        episodes: Any = {str(k): rows for k, rows in seasons.items()}
        if self.seasons_shape == "php":
            ordered = sorted(seasons)
            if ordered == list(range(len(ordered))):
                episodes = [seasons[k] for k in ordered]
            else:
                episodes = {str(k): seasons[k] for k in ordered}
        elif self.seasons_shape == "list":
            episodes = list(seasons.values())
        elif self.seasons_shape == "flat":
            episodes = [row for rows in seasons.values() for row in rows]
        elif self.seasons_shape == "mixed":
            episodes = episodes if index % 2 == 0 else list(seasons.values())
        return {
            "seasons": [{"season_number": s} for s in seasons],
            "info": self.show_info(index),
            "episodes": episodes,
        }


def make_catalog(
    movies: int, series: int, episodes_per_series: int, seed: int = 0, **options: Any
) -> VodCatalog:
    """A generated catalog (options: messy, specials, missing_fields, duplicates, nasty_names,
    seasons_shape "dict"|"list"|"mixed"|"flat"|"php", season_field, plain_titles,
    xtream_extras)."""
    return VodCatalog(movies, series, episodes_per_series, seed, **options)


class VodServer:
    """The stand-in provider; a context manager that serves ``catalog`` on 127.0.0.1.

    Faults: ``fail_first`` requests answer HTTP 500; ``delay`` seconds before each answer;
    ``malformed`` holds Xtream actions or Dispatcharr paths that answer non-JSON;
    ``dispatcharr_lists`` serves plain lists instead of pages. Counters: ``requests``,
    ``refreshes`` (media-server refresh calls received).

    Dispatcharr (see :mod:`mediamill.testing.dispatcharr`): ``token`` is an admin's API key;
    ``dispatcharr_auth`` holds the other keys and logins (``dispatcharr_login`` is an admin
    login); ``account_type`` and ``account_server_url`` describe the provider account.
    """

    def __init__(
        self,
        catalog: VodCatalog,
        *,
        username: str = "alice",
        password: str = "s3cret-pass",  # noqa: S107 - the stand-in's own test credential
        token: str = "tok-123456",  # noqa: S107 - the stand-in's own test credential
        fail_first: int = 0,
        delay: float = 0.0,
        malformed: set[str] | None = None,
        dispatcharr_lists: bool = False,
        page_size_max: int = 100,
    ) -> None:
        self.catalog = catalog
        self.username = username
        self.password = password
        self.token = token
        self.fail_first = fail_first
        self.delay = delay
        self.malformed = set(malformed or ())
        self.dispatcharr_lists = dispatcharr_lists
        self.page_size_max = page_size_max
        self.dispatcharr_login = ("admin", "d-admin-pass")
        self.dispatcharr_auth = DispatcharrAuth(
            api_keys={token: True}, logins={"admin": ("d-admin-pass", True)}
        )
        self.account_type = "XC"
        self.account_server_url: str | None = None
        #: a movie's ``direct_source`` in Dispatcharr's provider-info, by movie id (a panel
        #: fills it with the stream's upstream URL, credentials included; most leave it "")
        self.direct_sources: dict[int, str] = {}
        self.requests = 0
        #: Xtream requests by action ("" for the account check)
        self.actions: Counter[str] = Counter()
        self.refreshes: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> VodServer:
        handler = type("_Handler", (_Handler,), {"vod": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "use VodServer as a context manager"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def xtream_spec(self) -> str:
        return f"xtream+http://{self.username}:{self.password}@127.0.0.1:{self.port}"

    @property
    def dispatcharr_spec(self) -> str:
        return f"dispatcharr+http://127.0.0.1:{self.port}"

    @property
    def m3u_spec(self) -> str:
        return (
            f"m3u+http://127.0.0.1:{self.port}/get.php?username={self.username}"
            f"&password={self.password}&type=m3u_plus"
        )

    def _count(self) -> int:
        with self._lock:
            self.requests += 1
            return self.requests

    # -- payloads --------------------------------------------------------------------------

    def xtream(self, query: dict[str, str]) -> Any:
        catalog = self.catalog
        if query.get("username") != self.username or query.get("password") != self.password:
            return {"user_info": {"auth": 0}}
        action = query.get("action", "")
        with self._lock:
            self.actions[action] += 1
        if action == "":
            return {
                "user_info": {"auth": 1, "status": "Active", "username": self.username},
                "server_info": {"url": "127.0.0.1", "port": str(self.port)},
            }
        if action == "get_vod_categories":
            return [{"category_id": str(i), "category_name": f"Movies {i}"} for i in (1, 2, 3)]
        if action == "get_series_categories":
            return [{"category_id": str(i), "category_name": f"Series {i}"} for i in (10, 11)]
        if action == "get_vod_streams":
            return [catalog.movie(i) for i in catalog.movie_indexes()]
        if action == "get_vod_info":
            return catalog.vod_info(int(query.get("vod_id", "0")))
        if action == "get_series":
            return [catalog.series_row(j) for j in range(catalog.series)]
        if action == "get_series_info":
            index = int(query.get("series_id", "0")) - 1
            return catalog.series_info(index) if 0 <= index < catalog.series else []
        return []

    def dispatcharr(self, path: str, query: dict[str, str], admin: bool = True) -> Any:
        """A Dispatcharr GET answer (``None``: 404) for a caller who is admin or not."""
        catalog = self.catalog
        if path == "/api/m3u/accounts/":
            return dispatcharr_api.account_rows(self, admin)
        if path in ("/api/vod/movies/", "/api/vod/series/"):
            if path == "/api/vod/movies/":
                indexes: Sequence[int] = catalog.movie_indexes()
                build = dispatcharr_api.movie_row
            else:
                indexes = range(catalog.series)
                build = dispatcharr_api.series_row
            if self.dispatcharr_lists:
                return [build(self, i) for i in indexes]
            size = min(int(query.get("page_size", "20")), self.page_size_max)
            page = int(query.get("page", "1"))
            chunk = indexes[(page - 1) * size : page * size]
            more = page * size < len(indexes)
            return {
                "count": len(indexes),
                "next": f"{self.url}{path}?page={page + 1}&page_size={size}" if more else None,
                "previous": None,
                "results": [build(self, i) for i in chunk],
            }
        parts = path.strip("/").split("/")
        if len(parts) != 5 or parts[:2] != ["api", "vod"] or not parts[3].isdigit():
            return None
        ident = int(parts[3])
        if parts[2] == "series" and 0 < ident <= catalog.series:
            if parts[4] == "provider-info":
                return dispatcharr_api.series_provider_info(self, ident - 1)
            if parts[4] == "episodes":
                return dispatcharr_api.series_episodes(self, ident - 1)
        if parts[2] == "movies" and parts[4] == "provider-info" and 0 < ident <= catalog.movies:
            return dispatcharr_api.movie_provider_info(self, ident)
        return None

    def m3u_text(self) -> str:
        """The catalog as an ``m3u_plus`` playlist (Xtream-style URLs)."""
        catalog = self.catalog
        lines = ["#EXTM3U"]
        base = f"{self.url}"
        for i in catalog.movie_indexes():
            row = catalog.movie(i)
            lines.append(
                f'#EXTINF:-1 tvg-id="" tvg-name="{row["name"]}" tvg-logo="{row["stream_icon"]}" '
                f'group-title="Movies {row["category_id"]}",{row["name"]}'
            )
            lines.append(
                f"{base}/movie/{self.username}/{self.password}/{row['stream_id']}."
                f"{row['container_extension']}"
            )
        for j in range(catalog.series):
            show, year = catalog.series_title(j)
            label = f"{show} ({year})" if year else show
            for episode_id, season, number in catalog.episode_numbers(j):
                name = f"{label} S{season:02d}E{number:02d} Part {number}"
                lines.append(f'#EXTINF:-1 tvg-name="{name}" group-title="Series",{name}')
                lines.append(f"{base}/series/{self.username}/{self.password}/{episode_id}.mkv")
        lines.append('#EXTINF:-1 tvg-name="News 24" group-title="Live",News 24')
        lines.append(f"{base}/live/{self.username}/{self.password}/999.ts")
        return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    vod: VodServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any) -> None:
        self._send(200, data.body if isinstance(data, RawJson) else json.dumps(data).encode())

    def _prelude(self) -> bool:
        number = self.vod._count()
        if self.vod.delay:
            time.sleep(self.vod.delay)
        if number <= self.vod.fail_first:
            self._send(500, b'{"error": "transient"}')
            return False
        return True

    def do_POST(self) -> None:
        if not self._prelude():
            return
        path = urlsplit(self.path).path
        if path in ("/api/accounts/token/", "/api/accounts/token/refresh/"):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, b'{"detail": "JSON parse error"}')
                return
            auth = self.vod.dispatcharr_auth
            status, answer = auth.login(body) if path.endswith("/token/") else auth.refresh(body)
            self._send(status, json.dumps(answer).encode())
            return
        if path == "/Library/Refresh":
            if self.headers.get("X-Emby-Token") == self.vod.token:
                self.vod.refreshes.append("jellyfin")
                self._send(204, b"")
            else:
                self._send(401, b"{}")
            return
        self._send(404, b"{}")

    def do_GET(self) -> None:
        if not self._prelude():
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        vod = self.vod
        if parts.path == "/player_api.php":
            if query.get("action", "") in vod.malformed:
                self._send(200, b"<html>Service Unavailable</html>", "text/html")
                return
            self._json(vod.xtream(query))
            return
        if parts.path == "/get.php":
            if query.get("username") != vod.username or query.get("password") != vod.password:
                self._send(401, b"")
                return
            self._send(200, vod.m3u_text().encode(), "audio/x-mpegurl")
            return
        if parts.path == "/library/sections/all/refresh":
            token = self.headers.get("X-Plex-Token") or query.get("X-Plex-Token")
            if token == vod.token:
                vod.refreshes.append("plex")
                self._send(200, b"")
            else:
                self._send(401, b"")
            return
        if parts.path.startswith("/api/"):
            caller = vod.dispatcharr_auth.check(self.headers)
            if not isinstance(caller, bool):
                self._send(caller[0], json.dumps(caller[1]).encode())
                return
            if parts.path in vod.malformed:
                self._send(200, b"not json at all", "text/plain")
                return
            data = vod.dispatcharr(parts.path, query, admin=caller)
            if data is None:
                self._send(404, b'{"detail": "Not found."}')
            else:
                self._json(data)
            return
        self._send(404, b"")
