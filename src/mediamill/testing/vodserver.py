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

    def series_info(self, index: int) -> dict[str, Any]:
        """The ``get_series_info`` answer, with ``episodes`` in the configured shape."""
        show, _year = self.series_title(index)
        seasons: dict[str, list[dict[str, Any]]] = {}
        for episode_id, season, number in self.episode_numbers(index):
            untitled = self.missing_fields and number == 2
            label = f"{show} - S{season:02d}E{number:02d} - Part {number}"
            row: dict[str, Any] = {
                "id": str(episode_id),
                "episode_num": str(number) if self.messy else number,
                "title": show if untitled else label,
                "container_extension": "mkv",
                "info": {
                    "releasedate": f"2020-01-{number:02d}",
                    "plot": f"Episode {number} of {show}.",
                    "rating": "6.5",
                    "movie_image": f"http://img.invalid/e/{episode_id}.jpg",
                },
                "season": season if not self.messy else str(season),
            }
            seasons.setdefault(str(season), []).append(row)
        episodes: Any = seasons
        if self.seasons_shape == "list":
            episodes = list(seasons.values())
        elif self.seasons_shape == "flat":
            episodes = [row for rows in seasons.values() for row in rows]
        elif self.seasons_shape == "mixed":
            episodes = seasons if index % 2 == 0 else list(seasons.values())
        return {
            "seasons": [{"season_number": int(s)} for s in seasons],
            "info": {"name": show},
            "episodes": episodes,
        }

    def episode_count(self) -> int:
        return self.series * self.episodes_per_series


def make_catalog(
    movies: int, series: int, episodes_per_series: int, seed: int = 0, **options: Any
) -> VodCatalog:
    """A generated catalog (options: messy, specials, missing_fields, duplicates, nasty_names,
    seasons_shape "dict"|"list"|"mixed"|"flat")."""
    return VodCatalog(movies, series, episodes_per_series, seed, **options)


class VodServer:
    """The stand-in provider; a context manager that serves ``catalog`` on 127.0.0.1.

    Faults: ``fail_first`` requests answer HTTP 500; ``delay`` seconds before each answer;
    ``malformed`` holds Xtream actions or Dispatcharr paths that answer non-JSON;
    ``dispatcharr_lists`` serves plain lists instead of pages. Counters: ``requests``,
    ``refreshes`` (media-server refresh calls received).
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

    def dispatcharr_movie(self, index: int) -> dict[str, Any]:
        title, year = self.catalog.movie_title(index)
        row = self.catalog.movie(index)
        return {
            "id": index + 1,
            "uuid": f"00000000-0000-4000-8000-{index + 1:012d}",
            "name": title,
            "year": year,
            "description": row.get("plot"),
            "rating": row.get("rating"),
            "genre": row.get("genre"),
            "tmdb_id": row.get("tmdb"),
            "imdb_id": None,
            "logo": {"id": index + 1, "url": row["stream_icon"]},
        }

    def dispatcharr_series(self, index: int) -> dict[str, Any]:
        title, year = self.catalog.series_title(index)
        return {
            "id": index + 1,
            "uuid": f"00000000-0000-4000-9000-{index + 1:012d}",
            "name": title,
            "year": year,
            "description": f"The saga of {title}.",
            "genre": _GENRES[index % len(_GENRES)],
            "rating": "7.2",
            "logo": None,
        }

    def dispatcharr_provider_info(self, index: int) -> dict[str, Any]:
        info = self.catalog.series_info(index)
        seasons: dict[str, list[dict[str, Any]]] = {}
        for episode_id, season, number in self.catalog.episode_numbers(index):
            seasons.setdefault(str(season), []).append(
                {
                    "id": episode_id,
                    "uuid": f"00000000-0000-4000-a000-{episode_id:012d}",
                    "stream_id": episode_id,
                    "name": f"Part {number}",
                    "title": f"Part {number}",
                    "season_number": season,
                    "episode_number": number,
                    "air_date": f"2020-01-{number:02d}",
                    "plot": f"Episode {number}.",
                    "container_extension": "mkv",
                }
            )
        return {
            "id": index + 1,
            "name": info["info"]["name"],
            "episodes": seasons,
            "m3u_account": {"id": 1, "name": "stand-in", "account_type": "XC"},
        }

    def dispatcharr(self, path: str, query: dict[str, str]) -> Any:
        catalog = self.catalog
        if path == "/api/m3u/accounts/":
            return [
                {
                    "id": 1,
                    "name": "stand-in",
                    "server_url": self.url,
                    "username": self.username,
                    "password": self.password,
                }
            ]
        if path in ("/api/vod/movies/", "/api/vod/series/"):
            if path == "/api/vod/movies/":
                indexes: Sequence[int] = catalog.movie_indexes()
                build = self.dispatcharr_movie
            else:
                indexes = range(catalog.series)
                build = self.dispatcharr_series
            if self.dispatcharr_lists:
                return [build(i) for i in indexes]
            size = min(int(query.get("page_size", "20")), self.page_size_max)
            page = int(query.get("page", "1"))
            chunk = indexes[(page - 1) * size : page * size]
            more = page * size < len(indexes)
            return {
                "count": len(indexes),
                "next": f"{self.url}{path}?page={page + 1}&page_size={size}" if more else None,
                "previous": None,
                "results": [build(i) for i in chunk],
            }
        parts = path.strip("/").split("/")
        detail = len(parts) == 5 and parts[:2] == ["api", "vod"] and parts[4] == "provider-info"
        if detail and parts[2] == "series":
            return self.dispatcharr_provider_info(int(parts[3]) - 1)
        if detail and parts[2] == "movies":
            stream_id = int(parts[3])
            return {
                "id": stream_id,
                "stream_id": stream_id,
                "container_extension": "mkv",
                "m3u_account": {"id": 1, "name": "stand-in"},
            }
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
        if urlsplit(self.path).path == "/Library/Refresh":
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
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {vod.token}" and self.headers.get("X-API-Key") != vod.token:
                self._send(401, b'{"detail": "Authentication credentials were not provided."}')
                return
            if parts.path in vod.malformed:
                self._send(200, b"not json at all", "text/plain")
                return
            data = vod.dispatcharr(parts.path, query)
            if data is None:
                self._send(404, b'{"detail": "Not found."}')
            else:
                self._json(data)
            return
        self._send(404, b"")
