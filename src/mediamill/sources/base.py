"""What every source of items gives the catalog: a stream of entries with stable keys."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


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
