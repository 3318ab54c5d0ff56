"""FastAPI dependencies as ``Annotated`` aliases: the catalog, the settings, the token check."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import stat
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from mediamill.catalog.db import Catalog
from mediamill.settings import Settings, private_data_dir


def load_or_create_token(settings: Settings) -> tuple[str, bool]:
    """The API token: ``MEDIAMILL_API_TOKEN``, or one generated once and kept in the data dir
    with 0600 permissions. Returns (token, created_now)."""
    if settings.api_token:
        return settings.api_token, False
    path = private_data_dir() / "api-token"
    kept = path.read_text().strip() if path.exists() else ""
    if kept:
        return kept, False
    # written whole before it takes the name (a crash leaves no empty token), and linked, not
    # renamed, into place: of two servers starting at once, the second reads the first's
    token = secrets.token_urlsafe(32)
    temp = path.with_name(f".api-token.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        if path.exists():
            kept = path.read_text().strip()
            if kept:  # another server made it meanwhile
                return kept, False
            path.unlink()  # an empty token (an older version's crash) is no token
        os.link(temp, path)
    except FileExistsError:
        return path.read_text().strip(), False
    finally:
        temp.unlink()
    return token, True


def is_loopback(host: str) -> bool:
    """Whether every address a server listening on ``host`` binds is a loopback one. An empty
    host or a wildcard (``0.0.0.0``, ``::``) binds every interface; a name counts by what it
    resolves to; a name that does not resolve is not taken for loopback."""
    try:
        infos = socket.getaddrinfo(
            host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).partition("%")[0] for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except ValueError:
        return False


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _presented_token(request: Request, *, from_query: bool) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if from_query:
        return request.query_params.get("access_token")
    return None


def check_token(request: Request, *, from_query: bool = False) -> None:
    token: str = request.app.state.token
    presented = _presented_token(request, from_query=from_query)
    if presented is None or not secrets.compare_digest(presented.encode(), token.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_token(request: Request) -> None:
    """For requests that change state."""
    check_token(request)


def read_access(request: Request) -> None:
    """Reads are open on loopback; beyond loopback every request needs the token."""
    if not request.app.state.loopback_only:
        check_token(request)


def stream_access(request: Request) -> None:
    """Like :func:`read_access`, for the event streams only: a browser's EventSource cannot
    send a header, so these read-only routes also take ``?access_token=``. No other route
    does: a token in a URL ends up in proxy logs and browser history."""
    if not request.app.state.loopback_only:
        check_token(request, from_query=True)


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WriteAuth = Depends(require_token)
ReadAuth = Depends(read_access)
StreamAuth = Depends(stream_access)

__all__ = ["CatalogDep", "ReadAuth", "SettingsDep", "StreamAuth", "WriteAuth"]
