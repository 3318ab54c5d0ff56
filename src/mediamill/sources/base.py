"""What every source of items gives the catalog: a stream of entries with stable keys."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One item as a source sees it.

    ``key`` is stable across runs and unique within the source (``movie/123``,
    ``episode/456``); ``kind`` is ``movie`` or ``episode`` for VOD; ``meta`` is JSON-able
    metadata (title, year, plot, stream URL, ...). The catalog fingerprints ``meta``, so an
    entry whose metadata did not change is fresh for every processor that already saw it.
    """

    key: str
    kind: str
    meta: Mapping[str, Any]


class Source(Protocol):
    """A non-folder library: an Xtream Codes provider, a Dispatcharr server, an M3U list."""

    #: a display name without credentials, e.g. ``xtream+http://host:8080``
    name: str

    def iter_entries(self) -> Iterator[SourceEntry]:
        """Stream every entry; raise ``SourceError`` with a clear cause when the source fails."""
        ...


class SourceError(RuntimeError):
    """The source as a whole failed: bad credentials, unreachable, malformed response."""


@dataclass(slots=True)
class SourceRead:
    """A source read in two steps: its answers are fetched (and digested) first, parsed only
    if needed.

    ``digest`` covers every answer that shapes the entries plus what else does (the
    server, the credentials that go into stream URLs, the options, mediamill's version);
    ``None`` when the source cannot give one. ``entries`` is ``None`` when the digest is the
    one the read was given (``since``): the provider answered byte for byte what the
    catalog already holds, so there is nothing to parse or compare.
    """

    digest: str | None
    entries: Iterator[SourceEntry] | None


class AnswerDigest:
    """A running digest of a source's answers, seeded with what else shapes its entries."""

    def __init__(self, *identity: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            mediamill_version = version("mediamill")
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            mediamill_version = "unknown"
        self._hash = hashlib.blake2b(digest_size=32)
        self.add(repr((mediamill_version, *identity)).encode())

    def add(self, answer: bytes) -> None:
        # each answer's length goes first: two answers never read as one
        self._hash.update(len(answer).to_bytes(8, "little"))
        self._hash.update(answer)

    def add_file(self, body: IO[bytes]) -> None:
        """A downloaded answer (rewound afterwards)."""
        body.seek(0, 2)
        self._hash.update(body.tell().to_bytes(8, "little"))
        body.seek(0)
        while chunk := body.read(1 << 20):
            self._hash.update(chunk)
        body.seek(0)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def secret_digest(*secrets: str) -> str:
    """A one-way stand-in for credentials in a digest's identity (they shape stream URLs)."""
    return hashlib.sha256("\0".join(secrets).encode()).hexdigest()


def read_source(source: Source, since: str | None = None) -> SourceRead:
    """``source.read(since)`` for sources that can tell an unchanged answer, else every entry."""
    reader = getattr(source, "read", None)
    if reader is None:
        return SourceRead(None, source.iter_entries())
    result: SourceRead = reader(since)
    return result
