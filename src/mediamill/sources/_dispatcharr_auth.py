"""The two ways Dispatcharr lets a program in (its ``apps/accounts/authentication.py``).

* An **API key** (a user's long-lived key, made in the user's settings): sent as
  ``X-API-Key: <key>``. Dispatcharr also takes ``Authorization: ApiKey <key>``, but never
  ``Bearer <key>``: ``Bearer`` is read as a JWT and refused.
* A **login**: username and password posted to ``/api/accounts/token/`` give a SimpleJWT
  pair; the access token (``Authorization: Bearer``) lives 30 minutes by default and is
  renewed at ``/api/accounts/token/refresh/`` with the refresh token (1 day), or by a new
  login once that is refused too. Logins are throttled (3 a minute), so one is made per
  source object and the tokens are reused. Tokens stay in this object's memory only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mediamill.sources._http import HttpFetcher
from mediamill.sources._vod import as_str
from mediamill.sources.base import SourceError

log = logging.getLogger(__name__)


class ApiKeyAuth:
    """A Dispatcharr API key, sent as ``X-API-Key``; nothing to renew when it is refused."""

    scheme = "auth=api-key: the API key sent as X-API-Key"

    def __init__(self, key: str) -> None:
        self._key = key

    def secrets(self) -> tuple[str, ...]:
        return (self._key,)

    def headers(self, http: HttpFetcher) -> Mapping[str, str]:
        return {"X-API-Key": self._key}

    def renew(self, http: HttpFetcher) -> bool:
        return False


class JwtLoginAuth:
    """A username and password exchanged for SimpleJWT tokens, renewed when refused."""

    scheme = "auth=login: a JWT from /api/accounts/token/ sent as Authorization: Bearer"

    def __init__(self, base: str, username: str, password: str) -> None:
        self._base = base
        self._username = username
        self._password = password
        self._access: str | None = None
        self._refresh: str | None = None
        self.logins = 0
        self.refreshes = 0

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._password, self._access, self._refresh) if s)

    def headers(self, http: HttpFetcher) -> Mapping[str, str]:
        if self._access is None:
            self._login(http)
        return {"Authorization": f"Bearer {self._access}"}

    def renew(self, http: HttpFetcher) -> bool:
        """A refused access token has expired: a new one from the refresh token, else from a
        new login (which raises when the username or password is refused)."""
        if self._refresh:
            try:
                data = http.post_json(
                    f"{self._base}/api/accounts/token/refresh/",
                    "the token refresh (/api/accounts/token/refresh/)",
                    {"refresh": self._refresh},
                )
            except SourceError as exc:  # the refresh token expired too: log in again
                log.info("%s: %s", http.name, exc)
            else:
                access = as_str(data.get("access")) if isinstance(data, dict) else None
                if access:
                    self.refreshes += 1
                    refresh = as_str(data.get("refresh")) if isinstance(data, dict) else None
                    self._keep(http, access, refresh or self._refresh)
                    return True
        self._login(http)
        return True

    def _login(self, http: HttpFetcher) -> None:
        data = http.post_json(
            f"{self._base}/api/accounts/token/",
            "the login (username and password posted to /api/accounts/token/)",
            {"username": self._username, "password": self._password},
        )
        access = as_str(data.get("access")) if isinstance(data, dict) else None
        if not access:
            raise SourceError(f"{http.name}: the login answered no access token")
        self.logins += 1
        self._keep(http, access, as_str(data.get("refresh")) if isinstance(data, dict) else None)

    def _keep(self, http: HttpFetcher, access: str, refresh: str | None) -> None:
        self._access, self._refresh = access, refresh
        http.add_secrets(access, refresh or "")
