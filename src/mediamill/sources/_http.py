"""Gentle JSON/text fetching for VOD sources: rate limit, retries with backoff, clear errors.

Requests go straight to an ``httpx.HTTPTransport`` rather than through ``httpx.Client``,
whose INFO log line carries the full URL: provider URLs hold credentials, so no URL is ever
logged or put in an error message here; errors name the source and the endpoint only.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, Protocol, TypeVar

import httpx

from mediamill.sources.base import SourceError

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
#: answers bigger than this go to a temp file while they download
SPOOL_IN_MEMORY = 4 << 20
T = TypeVar("T")


class RateLimiter:
    """At most ``rate`` requests per second across threads (``rate <= 0``: unlimited)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


class Authenticator(Protocol):
    """The credentials a fetcher sends with each request, and what it does when a server
    refuses them (a short-lived token is renewed; a fixed key cannot be)."""

    #: how the credentials are sent, named in the error when they are refused
    scheme: str

    def headers(self, http: HttpFetcher) -> Mapping[str, str]:
        """The headers that carry the credentials (may log in first)."""
        ...

    def renew(self, http: HttpFetcher) -> bool:
        """After a refusal: ``True`` when new credentials are worth one more try."""
        ...


class HttpFetcher:
    """GET with retries on 5xx/429/timeouts/connection errors and exponential backoff.

    ``name`` is the credential-free source name used in messages; ``secrets`` are strings
    scrubbed from any text that could reach a message (user names, passwords, tokens);
    ``auth`` adds the credentials to every request and is asked to renew them once when a
    request is refused with HTTP 401.
    """

    def __init__(
        self,
        name: str,
        *,
        secrets: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        auth: Authenticator | None = None,
        rate: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("retries and backoff must be >= 0 and timeout > 0")
        self.name = name
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._headers = {"Accept": "application/json", "User-Agent": "mediamill"}
        self._headers.update(headers or {})
        self._auth = auth
        self._limiter = RateLimiter(rate)
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._timeout = httpx.Timeout(timeout)
        self._transport = httpx.HTTPTransport(retries=0)
        self.requests = 0

    def close(self) -> None:
        self._transport.close()

    def add_secrets(self, *secrets: str) -> None:
        """More strings to scrub (credentials learnt while scanning)."""
        merged = set(self._secrets) | {s for s in secrets if s}
        self._secrets = sorted(merged, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def get_bytes(self, url: str, what: str, params: Mapping[str, str] | None = None) -> bytes:
        """The body of a 200 answer; ``what`` names the endpoint in messages."""
        return self._get(url, what, params, b"".join)

    def download(self, url: str, what: str, params: Mapping[str, str] | None = None) -> IO[bytes]:
        """The body of a 200 answer in a temp file (in memory while small), rewound, for
        answers too big to hold: the caller closes it. A connection lost halfway is retried
        like any other failure, from the start."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned

        def fill(chunks: Iterator[bytes]) -> IO[bytes]:
            spool.seek(0)
            spool.truncate()
            for chunk in chunks:
                spool.write(chunk)
            spool.seek(0)
            return spool

        try:
            return self._get(url, what, params, fill)
        except BaseException:
            spool.close()
            raise

    def post_json(self, url: str, what: str, payload: Mapping[str, str]) -> Any:
        """The decoded JSON answer to a JSON ``POST`` (a login), sent without ``auth``."""
        body = json.dumps(dict(payload)).encode()
        answer = self._get(url, what, None, b"".join, body=body)
        return self.decode_json(answer, what)

    def _get(
        self,
        url: str,
        what: str,
        params: Mapping[str, str] | None,
        consume: Callable[[Iterator[bytes]], T],
        *,
        body: bytes | None = None,
    ) -> T:
        """``consume(body chunks)`` of a 200 answer, with retries; ``body``: a JSON POST."""
        attempt = 0
        renewed = False
        auth = self._auth if body is None else None
        while True:
            headers = dict(self._headers)
            if auth is not None:
                headers.update(auth.headers(self))
            if body is not None:
                headers["Content-Type"] = "application/json"
            self._limiter.wait()
            self.requests += 1
            retry_after: float | None = None
            try:
                request = httpx.Request(
                    "GET" if body is None else "POST",
                    url,
                    params=dict(params) if params else None,
                    headers=headers,
                    content=body,
                    extensions={"timeout": self._timeout.as_dict()},
                )
                response = self._transport.handle_request(request)
                try:
                    status = response.status_code
                    if 200 <= status < 300:
                        return consume(response.iter_bytes())
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    response.read()  # read to the end: the connection stays usable
                finally:
                    response.close()
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                cause = self.redact(f"{type(exc).__name__}: {exc}".strip())
            else:
                if status == 401 and auth is not None and not renewed and auth.renew(self):
                    renewed = True  # an expired token: once more with a new one
                    continue
                if status in (401, 403):
                    scheme = f" ({auth.scheme})" if auth is not None else ""
                    raise SourceError(
                        f"{self.name}: {what} was refused with HTTP {status}{scheme}; "
                        "check the credentials or token"
                    )
                if status not in _RETRY_STATUS:
                    raise SourceError(f"{self.name}: {what} answered HTTP {status}")
                cause = f"HTTP {status}"
            if attempt >= self._retries:
                raise SourceError(
                    f"{self.name}: {what} failed after {attempt + 1} attempts ({cause})"
                )
            delay = retry_after
            if delay is None:
                delay = self._backoff * (2**attempt) * (0.5 + random.random() / 2)
            delay = min(delay, self._max_backoff)
            log.warning(
                "%s: %s failed (%s); retry %d/%d in %.2fs",
                self.name, what, cause, attempt + 1, self._retries, delay,
            )  # fmt: skip
            time.sleep(delay)
            attempt += 1

    def get_json(self, url: str, what: str, params: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON of a 200 answer, or a :class:`SourceError` saying it is not JSON."""
        return self.decode_json(self.get_bytes(url, what, params), what)

    def decode_json(self, body: bytes, what: str) -> Any:
        """``body`` as JSON, or a :class:`SourceError` saying it is not JSON."""
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason
            raise self.not_json(what, reason, body) from None

    def not_json(self, what: str, reason: str, body: bytes) -> SourceError:
        """The error for an answer that is not JSON: the reason and the (scrubbed) start."""
        preview = self.redact(body[:60].decode("utf-8", errors="replace"))
        return SourceError(
            f"{self.name}: {what} did not answer JSON ({reason}; starts with {preview!r})"
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
