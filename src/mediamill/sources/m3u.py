"""M3U/M3U8 playlist (a file or an http(s) URL) of VOD entries: movies and episodes.

An entry is an ``#EXTINF:-1 tvg-id=".." tvg-name=".." tvg-logo=".." group-title="..",Name``
line followed by its URL. Episodes are told from movies by the URL path (``/series/`` vs
``/movie/``), a ``Show S01E02`` name, or a series-like group title; live channels
(``/live/``, no video file extension) are skipped.

An entry's URL often carries the account (``/movie/USER/PASS/1.mp4``, ``?username=…&password=…``,
``http://user:pass@host/…``, or the playlist URL's own credentials anywhere in it): the
catalog gets it with a marker in each credential's place (:func:`hide_credentials`, the
credential kept in the data dir by :mod:`mediamill.credentials`), and the strm export puts
it back.

The playlist is read line by line (a remote one from a temp file it is downloaded to), and
entries wait in temp files until duplicates are known, so a big list is never in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from mediamill import credentials
from mediamill.sources._http import HttpFetcher
from mediamill.sources._vod import (
    Duplicates,
    MetaSpool,
    as_str,
    compact,
    movie_group,
    title_and_year,
)
from mediamill.sources.base import AnswerDigest, SourceEntry, SourceError, SourceRead
from mediamill.strm.names import split_episode, split_year, title_key

log = logging.getLogger(__name__)

_ATTR = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"')
_XTREAM_PATH = re.compile(r"/(movie|series)/[^/]+/[^/]+/([^/.]+)\.[A-Za-z0-9]+$")
_VIDEO_EXT = re.compile(r"\.(mp4|mkv|avi|mov|m4v|wmv|flv|webm|mpe?g|divx|ogv|3gp)$", re.I)
_SERIES_GROUP = re.compile(r"series|tv ?shows?|s[ée]ries|serien|serie\b", re.I)
#: how entries' URLs are kept, part of the playlist's digest: catalogs whose entries carried
#: credentials in their URLs are parsed again, and their metadata rewritten without them
URLS = "urls with credential markers"
#: ``/movie/USER/PASS/…``: the account in an Xtream-style stream URL's path
_ACCOUNT_PATH = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/(?:movie|series|live|timeshift)/([^/?#]+)/([^/?#]+)/"
)
_QUERY_PARAM = re.compile(r"[?&]([^=&#]+)=([^&#]*)")
#: query parameters whose value is a credential
SECRET_PARAMS = frozenset(
    {"username", "user", "password", "pass", "passwd", "pwd", "token", "access_token",
     "api_key", "apikey", "auth", "key"}
)  # fmt: skip


def credential_spans(url: str, known: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Where ``url`` holds credentials, as sorted ``(start, end)`` spans that do not
    overlap: its user info, the account of an Xtream-style path, the values of query
    parameters named like :data:`SECRET_PARAMS`, and every occurrence of ``known``."""
    spans = []
    _scheme, sep, rest = url.partition("://")
    if sep:
        start = len(url) - len(rest)
        host_end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
        at = url.rfind("@", start, host_end)
        if at > start:
            spans.append((start, at))
    path = _ACCOUNT_PATH.match(url)
    if path:
        spans += [path.span(1), path.span(2)]
    query = url.find("?")
    if query >= 0:
        for param in _QUERY_PARAM.finditer(url, query):
            if param.group(2) and unquote(param.group(1)).lower() in SECRET_PARAMS:
                spans.append(param.span(2))
    for text in known:
        at = url.find(text)
        while text and at >= 0:
            spans.append((at, at + len(text)))
            at = url.find(text, at + len(text))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def hide_credentials(url: str, spans: list[tuple[int, int]], stand_in: Callable[[str], str]) -> str:
    """``url`` with the text of each span replaced by ``stand_in(text)``."""
    for start, end in reversed(spans):
        url = url[:start] + stand_in(url[start:end]) + url[end:]
    return url


class CredentialHider:
    """Puts a marker (:func:`mediamill.credentials.secret`) in the place of each credential
    of a URL (:func:`credential_spans`), the ``secrets`` given too wherever a URL spells them
    (as they are or percent-encoded; 3 characters or more)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.known = sorted(
            {
                text
                for value in secrets
                if len(value) >= 3
                for text in (value, quote(value, safe=""))
            },
            key=len,
            reverse=True,
        )
        self._markers: dict[str, str] = {}  # a credential's text -> its marker

    def spans(self, url: str) -> list[tuple[int, int]]:
        return credential_spans(url, self.known)

    def marker(self, text: str) -> str:
        """The marker of one credential (kept in the data dir)."""
        found = self._markers.get(text)
        if found is None:
            found = self._markers[text] = credentials.secret(text)
        return found

    def hide(self, url: str) -> str:
        return hide_credentials(url, self.spans(url), self.marker)


def display_name(location: str) -> str:
    """``m3u+file:///path`` or ``m3u+https://host/path`` (no credentials, no query)."""
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        port = f":{parts.port}" if parts.port else ""
        return f"m3u+{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    return f"m3u+file://{Path(location).as_posix()}"


class M3USource:
    """Entries of one playlist; ``default_kind`` (``"skip"`` or ``"movie"``) decides entries
    that look like neither a movie nor an episode."""

    def __init__(
        self,
        location: str,
        *,
        default_kind: str = "skip",
        rate: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 120.0,
    ) -> None:
        if default_kind not in ("skip", "movie"):
            raise ValueError("default_kind must be 'skip' or 'movie'")
        parts = urlsplit(location)
        self.is_remote = parts.scheme in ("http", "https")
        if not self.is_remote and not Path(location).is_absolute():
            raise ValueError("an M3U file path must be absolute")
        self.location = location
        self.name = display_name(location)
        self.default_kind = default_kind
        secrets = [parts.username or "", parts.password or ""]
        secrets += [value for _key, value in parse_qsl(parts.query) if len(value) >= 3]
        self._secrets = secrets
        #: the playlist URL's credentials, wherever an entry's URL spells them
        self._hider = CredentialHider(secrets)
        self._http_options: dict[str, Any] = {
            "rate": rate, "retries": retries, "backoff": backoff, "timeout": timeout,
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"M3USource({self.name!r})"

    @contextlib.contextmanager
    def _body(self) -> Iterator[IO[bytes]]:
        """The playlist's bytes: the local file, or the download in a temp file."""
        if self.is_remote:
            http = HttpFetcher(self.name, secrets=self._secrets, **self._http_options)
            try:
                body = http.download(self.location, "the playlist")
            finally:
                http.close()
            with body:
                yield body
            return
        try:
            handle = open(self.location, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read the playlist ({exc.strerror})") from None
        with handle:
            yield handle

    def _lines(self, body: IO[bytes]) -> Iterator[str]:
        """The playlist's lines, as ``str.splitlines`` of the whole text would give them;
        a :class:`SourceError` at the end when it is no M3U playlist."""
        marked = False
        text = io.TextIOWrapper(body, encoding="utf-8-sig", errors="replace")
        try:
            for raw in text:
                if not marked and ("#EXTINF" in raw or "#EXTM3U" in raw):
                    marked = True
                yield from raw.splitlines()
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read the playlist ({exc.strerror})") from None
        finally:
            text.detach()
        if not marked:
            raise SourceError(f"{self.name}: this is not an M3U playlist (no #EXTM3U/#EXTINF)")

    def read(self, since: str | None = None) -> SourceRead:
        """The playlist is read (downloaded) and digested first, and parsed only when its
        digest is not ``since``."""
        stack = contextlib.ExitStack()
        body = stack.enter_context(self._body())
        try:
            digest = AnswerDigest("m3u", self.location, self.default_kind, URLS)
            try:
                digest.add_file(body)
            except OSError as exc:
                raise SourceError(
                    f"{self.name}: cannot read the playlist ({exc.strerror})"
                ) from None
            answers = digest.hexdigest()
        except BaseException:
            stack.close()
            raise
        if answers == since:
            stack.close()
            return SourceRead(answers, None)

        def entries() -> Iterator[SourceEntry]:
            with stack:
                yield from self._entries(body)

        return SourceRead(answers, entries())

    def iter_entries(self) -> Iterator[SourceEntry]:
        with self._body() as body:
            yield from self._entries(body)

    def _entries(self, body: IO[bytes]) -> Iterator[SourceEntry]:
        movies, episodes = MetaSpool(), MetaSpool()
        try:
            movie_duplicates, episode_duplicates = Duplicates(), Duplicates()
            #: show key -> the first thumb seen for the show (one tvshow.nfo per show)
            thumbs: dict[str, str] = {}
            skipped = 0
            for attrs, name, url in _parse(self._lines(body)):
                entry = self._classify(attrs, name, url)
                if entry is None:
                    skipped += 1
                    continue
                kind, meta = entry
                if kind == "movie":
                    group = movie_group(meta)
                    movie_duplicates.add(group, str(meta["id"]))
                    movies.add((group, meta))
                    continue
                show = title_key(meta["show"], meta.get("show_year"))
                show_hash = hashlib.sha1(show.encode(), usedforsecurity=False)
                meta["show_id"] = show_hash.hexdigest()[:10]
                if "thumb" in meta:
                    thumbs.setdefault(show, meta["thumb"])
                group = f"{meta['show_id']}/{meta['season']}x{meta['episode']}"
                episode_duplicates.add(group, str(meta["id"]))
                episodes.add((show, group, meta))
            if skipped:
                log.info(
                    "%s: %d playlist entries are neither movies nor episodes", self.name, skipped
                )
            movie_duplicates.done()
            episode_duplicates.done()
            for group, meta in movies:
                if group in movie_duplicates:
                    meta["ambiguous"] = True
                yield SourceEntry(key=f"movie/{meta['id']}", kind="movie", meta=meta)
            for show, group, meta in episodes:
                thumb = thumbs.get(show)
                if thumb:
                    meta["show_thumb"] = thumb
                if group in episode_duplicates:
                    meta["ambiguous"] = True
                yield SourceEntry(key=f"episode/{meta['id']}", kind="episode", meta=meta)
        finally:
            movies.close()
            episodes.close()

    def _logo(self, attrs: dict[str, str]) -> str | None:
        """The entry's ``tvg-logo``, its credentials (if any) as markers."""
        logo = as_str(attrs.get("tvg-logo"))
        return self._hider.hide(logo) if logo else None

    def _classify(
        self, attrs: dict[str, str], name: str, url: str
    ) -> tuple[str, dict[str, Any]] | None:
        path = urlsplit(url).path
        xtream = _XTREAM_PATH.search(path)
        if "/live/" in path:
            return None
        display = name or attrs.get("tvg-name", "")
        group = attrs.get("group-title", "")
        parsed = split_episode(display) or split_episode(attrs.get("tvg-name", ""))
        is_episode = (xtream is not None and xtream.group(1) == "series") or (
            parsed is not None and (xtream is None or xtream.group(1) != "movie")
        )
        if not is_episode and _SERIES_GROUP.search(group) and parsed is not None:
            is_episode = True
        spans = self._hider.spans(url)
        # the id of an entry without one is a hash of its URL, credentials left out: a
        # short hash of a URL with a password in it would let a weak password be guessed
        ident = (
            xtream.group(2)
            if xtream
            else hashlib.sha1(
                hide_credentials(url, spans, lambda _text: "{credentials}").encode(),
                usedforsecurity=False,
            ).hexdigest()[:16]
        )
        url = hide_credentials(url, spans, self._hider.marker)
        if is_episode:
            if parsed is None:
                return None
            show_name, season, episode, title = parsed
            show, show_year = split_year(show_name)
            return "episode", compact(
                {
                    "id": ident,
                    "show": show or "Unknown show",
                    "show_year": show_year,
                    "season": season,
                    "episode": episode,
                    "title": title,
                    "thumb": self._logo(attrs),
                    "category": as_str(group),
                    "url": url,
                }
            )
        looks_like_movie = (xtream is not None) or bool(_VIDEO_EXT.search(path))
        if not looks_like_movie and self.default_kind == "skip":
            return None
        title, year = title_and_year(display)
        return "movie", compact(
            {
                "id": ident,
                "name": display,
                "title": title,
                "year": year,
                "thumb": self._logo(attrs),
                "category": as_str(group),
                "url": url,
            }
        )


def _parse(lines: Iterable[str]) -> Iterator[tuple[dict[str, str], str, str]]:
    """``(attributes, name, url)`` per ``#EXTINF`` entry."""
    pending: tuple[dict[str, str], str] | None = None
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXTINF"):
            header, _, name = _split_extinf(line)
            pending = (dict(_ATTR.findall(header)), name.strip())
        elif line.startswith("#"):
            continue
        elif pending is not None:
            yield pending[0], pending[1], line
            pending = None


def _split_extinf(line: str) -> tuple[str, str, str]:
    """Split ``#EXTINF:-1 a="x,y",Name`` at the first comma outside quotes."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return line[:index], ",", line[index + 1 :]
    return line, "", ""
