"""Open a VOD source from a spec string such as ``xtream+http://user:pass@host:8080``.

Specs: ``xtream+http(s)://[USER:PASS@]HOST[:PORT][/path]``,
``dispatcharr+http(s)://HOST[:PORT][/path]``, ``m3u+file:///abs/path.m3u``,
``m3u+http(s)://host/path?query``. Xtream credentials come from the URL, else from options
``username``/``password``, else from ``MEDIAMILL_XTREAM_USER``/``MEDIAMILL_XTREAM_PASS``;
Dispatcharr's API key from option ``token``, else ``MEDIAMILL_DISPATCHARR_TOKEN``; without
one, a Dispatcharr login from options ``username``/``password``, else
``MEDIAMILL_DISPATCHARR_USER``/``MEDIAMILL_DISPATCHARR_PASS``. Other
options are passed to the source class (see each class for its options), but for
``request_rate``, the provider's requests per second, which the classes call ``rate``: a
run's own ``rate`` is the engine's ceiling on items per second and never reaches a source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from mediamill.sources.base import Source, SourceEntry, SourceError

__all__ = ["Source", "SourceEntry", "SourceError", "is_source_spec", "open_source"]

_SCHEMES = {
    "xtream+http",
    "xtream+https",
    "dispatcharr+http",
    "dispatcharr+https",
    "m3u+file",
    "m3u+http",
    "m3u+https",
}
_XTREAM_OPTIONS = {
    "vod_info", "movies", "series", "request_rate", "retries", "backoff", "timeout",
    "on_series_error",
    "series_refresh", "series_max_age",
}  # fmt: skip
_DISPATCHARR_OPTIONS = {
    "auth", "url_mode", "public_url", "movies", "series", "page_size", "request_rate", "retries",
    "backoff", "timeout", "on_series_error",
}  # fmt: skip
_M3U_OPTIONS = {"default_kind", "request_rate", "retries", "backoff", "timeout"}
#: each family's options that hold secrets: read by the source, never stored with a job nor
#: shown by the API (``mediamill.redact``)
SECRET_OPTIONS: dict[str, tuple[str, ...]] = {
    "xtream": ("username", "password"),
    "dispatcharr": ("token",),
    "m3u": (),
}
_SECRET_NAMES = frozenset(name for names in SECRET_OPTIONS.values() for name in names)
_FAMILY_OPTIONS = {
    "xtream": _XTREAM_OPTIONS,
    "dispatcharr": _DISPATCHARR_OPTIONS,
    "m3u": _M3U_OPTIONS,
}


def source_options(spec: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run's options that the source of ``spec`` understands (the rest belongs
    to the engine or the processor)."""
    allowed = source_option_names(spec)
    return {k: v for k, v in options.items() if k in allowed}


def source_option_names(spec: str) -> frozenset[str]:
    """Every option the source of ``spec`` reads (its credentials included)."""
    family = spec.split("+", 1)[0].lower()
    return frozenset(_FAMILY_OPTIONS.get(family, set()) | _SECRET_NAMES)


def is_source_spec(spec: str) -> bool:
    """Whether ``spec`` names a VOD source (rather than, say, a folder path)."""
    scheme, sep, rest = spec.partition("://")
    return bool(sep) and scheme.lower() in _SCHEMES and bool(rest)


def _pick(options: Mapping[str, Any], allowed: set[str], kind: str) -> dict[str, Any]:
    unknown = set(options) - allowed - _SECRET_NAMES
    if unknown:
        raise ValueError(f"unknown {kind} source options: {', '.join(sorted(unknown))}")
    picked = {k: v for k, v in options.items() if k in allowed}
    if "request_rate" in picked:  # the classes call it rate; the engine's rate is items/s
        picked["rate"] = picked.pop("request_rate")
    return picked


def _cache_dir(family: str, *identity: str) -> str:
    """A folder in the data dir for one account's cached answers."""
    import hashlib

    from mediamill.settings import private_data_dir

    key = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]
    return str(private_data_dir() / "cache" / family / key)


def open_source(spec: str, *, options: Mapping[str, Any] | None = None) -> Source:
    """The :class:`Source` a spec names; ``ValueError`` for a bad spec (no secrets in it)."""
    options = dict(options or {})
    if not is_source_spec(spec):
        raise ValueError(
            "not a source spec: expected xtream+http(s)://, dispatcharr+http(s)://, "
            "m3u+file:// or m3u+http(s)://"
        )
    scheme, _, _rest = spec.partition("://")
    family, _, transport = scheme.lower().partition("+")
    url = transport + spec[len(scheme) :]
    parts = urlsplit(url)

    if family == "xtream":
        from mediamill.sources.xtream import XtreamSource

        username = unquote(parts.username or "") or str(
            options.get("username") or os.environ.get("MEDIAMILL_XTREAM_USER", "")
        )
        password = unquote(parts.password or "") or str(
            options.get("password") or os.environ.get("MEDIAMILL_XTREAM_PASS", "")
        )
        if not username or not password:
            raise ValueError(
                "Xtream needs credentials: in the URL, in options username/password, or in "
                "MEDIAMILL_XTREAM_USER/MEDIAMILL_XTREAM_PASS"
            )
        host = parts.netloc.rsplit("@", 1)[-1]
        server = f"{parts.scheme}://{host}{parts.path}"
        picked = _pick(options, _XTREAM_OPTIONS, family)
        if picked.get("series_refresh") == "modified":
            picked["cache_dir"] = _cache_dir("xtream", server, username)
        return XtreamSource(server, username, password, **picked)

    if family == "dispatcharr":
        from mediamill.sources.dispatcharr import DispatcharrSource

        token = str(options.get("token") or os.environ.get("MEDIAMILL_DISPATCHARR_TOKEN", ""))
        username = str(options.get("username") or os.environ.get("MEDIAMILL_DISPATCHARR_USER", ""))
        password = str(options.get("password") or os.environ.get("MEDIAMILL_DISPATCHARR_PASS", ""))
        if not token and not (username and password):
            raise ValueError(
                "Dispatcharr needs an API key (option token or MEDIAMILL_DISPATCHARR_TOKEN) "
                "or a login (options username/password or "
                "MEDIAMILL_DISPATCHARR_USER/MEDIAMILL_DISPATCHARR_PASS)"
            )
        if parts.username or parts.password:
            raise ValueError(
                "put the Dispatcharr API key or login in options or the environment, not the URL"
            )
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        return DispatcharrSource(
            base,
            token or None,
            username=username or None,
            password=password or None,
            **_pick(options, _DISPATCHARR_OPTIONS, family),
        )

    from mediamill.sources.m3u import M3USource

    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("m3u+file:// takes an absolute local path: m3u+file:///path.m3u")
        location = unquote(parts.path)
    else:
        location = url
    return M3USource(location, **_pick(options, _M3U_OPTIONS, family))
