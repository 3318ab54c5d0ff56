"""The Dispatcharr half of the stand-in provider, as strict as Dispatcharr itself.

Read from Dispatcharr's code: authentication (``apps/accounts/authentication.py``, DRF's
``JWTAuthentication`` first, then ``ApiKeyAuthentication``), the VOD views and serializers
(``apps/vod/api_views.py``, ``serializers.py``), the account serializer (the password only for
admin users) and the importer (``apps/vod/tasks.py``: raw panel titles kept as episode
names, the ``episodes`` list index taken as the season, ``0`` TMDB ids dropped, no
``rating_5based``; a show's TMDB id only from the ``get_series`` row).

* ``Authorization: Bearer <x>`` is always read as a JWT: an API key sent that way, or an
  expired access token, is refused with ``token_not_valid``, even next to a good
  ``X-API-Key``. API keys go in ``X-API-Key`` or ``Authorization: ApiKey``.
* Access tokens from ``POST /api/accounts/token/`` expire after ``jwt_uses`` API requests
  (the stand-in's 30 minutes); ``/api/accounts/token/refresh/`` gives a new one until the
  refresh token is expired (:meth:`DispatcharrAuth.expire`).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mediamill.testing.vodserver import VodServer

_NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
_TOKEN_NOT_VALID = {
    "detail": "Given token not valid for any token type",
    "code": "token_not_valid",
    "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "invalid"}],
}
#: Dispatcharr's own episode ids are not the panel's stream ids: this apart
EPISODE_ID_OFFSET = 500_000


@dataclass
class DispatcharrAuth:
    """Users of the stand-in: API keys and logins, each admin or not, and issued JWTs."""

    api_keys: dict[str, bool] = field(default_factory=dict)  # key -> admin?
    logins: dict[str, tuple[str, bool]] = field(default_factory=dict)  # user -> (pass, admin)
    jwt_uses: int = 1000
    issued_logins: int = 0
    issued_refreshes: int = 0
    _access: dict[str, list[Any]] = field(default_factory=dict)  # token -> [admin, uses left]
    _refresh: dict[str, bool] = field(default_factory=dict)  # token -> admin
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expire(self, *, refresh: bool = False) -> None:
        """Every access token issued so far expires (and every refresh token, if asked)."""
        with self._lock:
            self._access.clear()
            if refresh:
                self._refresh.clear()

    def check(self, headers: Any) -> tuple[int, dict[str, Any]] | bool:
        """``admin?`` of the caller, or the ``(status, body)`` refusal, as DRF decides."""
        words = (headers.get("Authorization") or "").split()
        if words and words[0] == "Bearer":  # JWTAuthentication: it either accepts or raises
            with self._lock:
                access = self._access.get(words[1]) if len(words) == 2 else None
                if access is None or access[1] <= 0:
                    return 401, _TOKEN_NOT_VALID
                access[1] -= 1
                return bool(access[0])
        key = headers.get("X-API-Key")
        if not key and len(words) == 2 and words[0].lower() == "apikey":
            key = words[1]
        if not key:
            return 401, _NOT_PROVIDED
        if key not in self.api_keys:
            return 401, {"detail": "Invalid API key"}
        return self.api_keys[key]

    def login(self, body: Any) -> tuple[int, dict[str, Any]]:
        user = body.get("username") if isinstance(body, dict) else None
        known = self.logins.get(str(user))
        if known is None or known[0] != body.get("password"):
            return 401, {"detail": "No active account found with the given credentials"}
        with self._lock:
            self.issued_logins += 1
            refresh = f"r.{secrets.token_urlsafe(24)}"
            self._refresh[refresh] = known[1]
            return 200, {"refresh": refresh, "access": self._issue(known[1])}

    def refresh(self, body: Any) -> tuple[int, dict[str, Any]]:
        token = body.get("refresh") if isinstance(body, dict) else None
        with self._lock:
            if token not in self._refresh:
                return 401, {"detail": "Token is invalid or expired", "code": "token_not_valid"}
            self.issued_refreshes += 1
            return 200, {"access": self._issue(self._refresh[str(token)])}

    def _issue(self, admin: bool) -> str:
        token = f"eyJ.{secrets.token_urlsafe(24)}"
        self._access[token] = [admin, self.jwt_uses]
        return token


def _logo(vod: VodServer, ident: int, url: str) -> dict[str, Any]:
    digest = hashlib.md5(url.encode()).hexdigest()[:8]  # noqa: S324 - a cache buster, as theirs
    cache = f"{vod.url}/api/vod/vodlogos/{ident}/cache/?v={digest}"
    return {"id": ident, "name": url.rsplit("/", 1)[-1], "url": url, "cache_url": cache}


def _rating(value: Any) -> str | None:
    """``normalize_rating``: a float as text, nothing for an empty value."""
    try:
        return str(float(str(value).replace(",", "."))) if value not in (None, "") else None
    except ValueError:
        return None


def _no_zero(value: Any) -> Any:
    return None if value in ("", 0, "0") else value


def movie_row(vod: VodServer, index: int) -> dict[str, Any]:
    """A ``/api/vod/movies/`` row (``MovieSerializer``): the panel's raw name, its year."""
    catalog = vod.catalog
    _title, year = catalog.movie_title(index)
    row = catalog.movie(index)
    return {
        "id": index + 1,
        "uuid": f"00000000-0000-4000-8000-{index + 1:012d}",
        "name": row["name"],
        "description": row.get("plot") or "",
        "year": year,
        "rating": _rating(row.get("rating")),
        "genre": row.get("genre") or "",
        "duration_secs": None,
        "logo": _logo(vod, index + 1, row["stream_icon"]),
        "tmdb_id": _no_zero(row.get("tmdb")),
        "imdb_id": None,
        "custom_properties": None,
        "is_adult": False,
    }


def series_row(vod: VodServer, index: int) -> dict[str, Any]:
    """A ``/api/vod/series/`` row: the ``get_series`` row as imported, its empty fields filled
    from ``get_series_info.info`` (plot, rating, genre, year; never the TMDB id)."""
    catalog = vod.catalog
    row, info = catalog.series_row(index), catalog.show_info(index)
    _title, year = catalog.series_title(index)
    cast = row.get("cast")
    return {
        "id": index + 1,
        "uuid": f"00000000-0000-4000-9000-{index + 1:012d}",
        "name": row["name"],
        "description": row.get("plot") or info["plot"],
        "year": year,
        "rating": _rating(row.get("rating") or info["rating"]),
        "genre": row.get("genre") or info["genre"],
        "logo": _logo(vod, 100_000 + index, row["cover"]),
        "tmdb_id": _no_zero(row.get("tmdb")),
        "imdb_id": None,
        "custom_properties": {"cast": cast} if cast else None,
        "episode_count": catalog.episodes_per_series,
    }


def _account_ref(vod: VodServer) -> dict[str, Any]:
    return {"id": 1, "name": "stand-in", "account_type": vod.account_type}


def account_rows(vod: VodServer, admin: bool) -> list[dict[str, Any]]:
    """``/api/m3u/accounts/``: ``password`` is write-only, shown again to admins only."""
    row: dict[str, Any] = {
        "id": 1,
        "name": "stand-in",
        # as users paste it: the panel's API endpoint (Dispatcharr strips it in stream URLs)
        "server_url": vod.account_server_url or f"{vod.url}/player_api.php",
        "is_active": True,
        "account_type": vod.account_type,
        "username": vod.username,
    }
    if admin:
        row["password"] = vod.password
    return [row]


def movie_provider_info(vod: VodServer, movie_id: int) -> dict[str, Any]:
    row = movie_row(vod, movie_id - 1)
    return {
        **{k: row[k] for k in ("id", "uuid", "name", "year", "genre", "tmdb_id", "imdb_id")},
        "stream_id": str(movie_id),
        "description": row["description"],
        "plot": row["description"],
        "rating": row["rating"],
        "movie_image": row["logo"]["cache_url"],
        "container_extension": vod.catalog.movie(movie_id - 1)["container_extension"],
        "direct_source": vod.direct_sources.get(movie_id, ""),
        "m3u_account": _account_ref(vod),
    }


def _episode(vod: VodServer, index: int, episode_id: int, season: int, number: int) -> Any:
    """An ``Episode`` as imported: the raw title as its name, the date as a date."""
    info = vod.catalog.episode_info(episode_id, number)
    aired = next((info[k] for k in ("air_date", "releasedate", "release_date") if k in info), None)
    ident = EPISODE_ID_OFFSET + episode_id
    return {
        "id": ident,
        "uuid": f"00000000-0000-4000-a000-{ident:012d}",
        "name": vod.catalog.episode_title(index, season, number),
        "episode_number": number,
        "season_number": season,
        "description": info["plot"],
        "air_date": aired,
        "rating": _rating(info.get("rating")),
        "tmdb_id": info.get("tmdb_id"),
        "imdb_id": info.get("imdb_id"),
        "duration_secs": None,
    }


def series_provider_info(vod: VodServer, index: int) -> dict[str, Any]:
    """``/api/vod/series/<id>/provider-info/``: episodes by season, with no stream ids."""
    seasons: dict[str, list[dict[str, Any]]] = {}
    for episode_id, season, number in vod.catalog.episode_numbers(index):
        episode = _episode(vod, index, episode_id, season, number)
        seasons.setdefault(str(season), []).append(
            {
                **episode,
                "title": episode["name"],
                "plot": episode["description"],
                "movie_image": f"{vod.url}/api/vod/episodes/{episode['id']}/image/",
                "container_extension": "mkv",
                "type": "episode",
                "series": {"id": index + 1, "name": series_row(vod, index)["name"]},
            }
        )
    row = series_row(vod, index)
    return {
        **{k: row[k] for k in ("id", "name", "description", "year", "genre", "rating")},
        **{k: row[k] for k in ("tmdb_id", "imdb_id")},
        "series_id": str(index + 1),
        "cover": row["logo"],
        "m3u_account": _account_ref(vod),
        "episodes_fetched": True,
        "episodes": seasons,
    }


def series_episodes(vod: VodServer, index: int) -> list[dict[str, Any]]:
    """``/api/vod/series/<id>/episodes/``: each episode with its provider relations (their
    ``stream_id``), serialized without a request, so without any password."""
    account = account_rows(vod, admin=False)[0]
    rows = []
    for episode_id, season, number in vod.catalog.episode_numbers(index):
        episode = _episode(vod, index, episode_id, season, number)
        relation = {
            "id": episode["id"],
            "stream_id": str(episode_id),
            "container_extension": "mkv",
            "m3u_account": account,
            "custom_properties": {"season_number": season},
        }
        rows.append({**episode, "providers": [relation]})
    return rows
