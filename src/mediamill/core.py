"""The types every layer shares: what a worker sees of an item and what it reports back.

This module sits below the catalog, the processors, the executors and the engine, and imports
none of them, so each of those can use these types without importing the others. Everything
here is plain data: an :class:`Outcome` crosses process boundaries (pickled by the local
pools) and machine boundaries (as JSON, :meth:`Outcome.as_dict` / :meth:`Outcome.from_dict`: the
celery executor's wire format).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Work(StrEnum):
    """What bounds a processor: ``io`` work runs on threads, ``cpu`` work on processes."""

    IO = "io"
    CPU = "cpu"


class Status(StrEnum):
    """What happened to one item."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class ErrorClass(StrEnum):
    """Why an item failed: ``transient`` (the disk was full, an I/O error, a time-out, the
    network, a permission: the next run tries it again) or ``permanent`` (the item itself:
    corrupt or unsupported media; only ``--failed`` tries it again)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


#: errno values of conditions that pass: a full disk or quota, I/O and network trouble,
#: permissions (fixed by the user), resources that run out for a while
TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC", "EDQUOT", "EIO", "EAGAIN", "EBUSY", "EINTR", "ETIMEDOUT", "ECONNRESET",
        "ECONNREFUSED", "ECONNABORTED", "ENETDOWN", "ENETUNREACH", "EHOSTDOWN",
        "EHOSTUNREACH", "EPIPE", "ESTALE", "EACCES", "EPERM", "EROFS", "ENOMEM", "EMFILE",
        "ENFILE",
    )
    if hasattr(errno, name)
)  # fmt: skip


def classify_error(exc: BaseException) -> ErrorClass:
    """Transient when the exception, or one it was raised from, is a time-out, a connection
    error or an OS error of :data:`TRANSIENT_ERRNOS`; permanent otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (TimeoutError, ConnectionError)):
            return ErrorClass.TRANSIENT
        if isinstance(current, OSError) and current.errno in TRANSIENT_ERRNOS:
            return ErrorClass.TRANSIENT
        if type(current).__module__.startswith("httpx") and type(current).__name__.endswith(
            ("TimeoutException", "Timeout", "NetworkError", "ConnectError", "ReadError",
             "WriteError", "RemoteProtocolError")
        ):  # fmt: skip
            return ErrorClass.TRANSIENT
        current = current.__cause__ or current.__context__
    return ErrorClass.PERMANENT


class Skip(Exception):
    """Raised by ``process`` to record the item as skipped, with the message as reason."""


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Everything a worker needs to process one item; picklable, no catalog access.

    ``path`` is the item's key in its library: a POSIX path relative to the library root for
    files, or a stable key such as ``movie/123`` for VOD entries. ``abspath`` is the file on
    this machine (``None`` for items that are not files). ``meta`` carries source metadata
    (VOD entries: title, year, stream URL, ...).
    """

    id: int
    path: str
    kind: str
    abspath: str | None = None
    size: int = 0
    mtime_ns: int = 0
    fingerprint: str = ""
    meta: Mapping[str, Any] | None = None
    #: the data of this processor's last result for the item, for processors that ask for
    #: it (``wants_previous``): e.g. strm moves the files of a renamed title
    previous: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """A processor's own change to its item's file, written with the result in one transaction."""

    path: str | None = None  # new path relative to the library root; None = unchanged
    size: int | None = None
    mtime_ns: int | None = None
    #: None: the writer derives it the way the folder scan does (size:mtime_ns)
    fingerprint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Processed:
    """What process() may return instead of a plain dict: the data plus an item update."""

    data: dict[str, Any]
    item_update: ItemUpdate | None = None


@dataclass(slots=True)
class Outcome:
    """One item's result as a worker reports it; the runner writes it to the catalog."""

    item_id: int
    status: Status
    data: dict[str, Any] | None = None
    error: str | None = None
    duration: float = 0.0
    worker: str = ""
    #: the processor changed the item's file (rewrote or renamed it): the writer records the
    #: new path/size/mtime/fingerprint with the result, so the next scan sees no change
    item_update: ItemUpdate | None = None
    #: a failure's :class:`ErrorClass` (``None``: permanent)
    error_class: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON-able values (for transports that do not pickle)."""
        return {
            "item_id": self.item_id,
            "status": str(self.status),
            "data": self.data,
            "error": self.error,
            "duration": self.duration,
            "worker": self.worker,
            "item_update": None if self.item_update is None else self.item_update.as_dict(),
            "error_class": self.error_class,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Outcome:
        """The outcome :meth:`as_dict` gave."""
        update = raw.get("item_update")
        return cls(
            item_id=int(raw["item_id"]),
            status=Status(raw["status"]),
            data=raw.get("data"),
            error=raw.get("error"),
            duration=float(raw.get("duration", 0.0)),
            worker=str(raw.get("worker", "")),
            item_update=None if update is None else ItemUpdate(**update),
            error_class=raw.get("error_class"),
        )


def describe_error(exc: BaseException) -> str:
    """A one-line cause: the message, or the exception type when there is no message."""
    message = str(exc).strip()
    return message if message else type(exc).__name__
