"""The Processor contract and the registry that finds processors.

The item a worker sees and what it reports back (``ItemRef``, ``Outcome``, ``Status``, ...)
live in :mod:`mediamill.core`, below the catalog and the processors; they are re-exported
here so processors need one import.

Lifecycle of a processor, per job:

* ``__init__(options)`` runs wherever the processor is needed; it must be cheap and only
  validate/keep options (the runner also builds one to read ``name``/``version``/``work``).
* ``setup()`` runs once per worker (thread or process) before its first item: load models,
  open handles.
* ``process(item)`` runs once per item and returns the item's ``data`` (a JSON-able dict),
  or :class:`Processed` (the data plus an :class:`ItemUpdate`) when it changed the item's
  file itself (rewrote or renamed it): the new path, size and mtime are then written with
  the result, so the next scan does not take the processor's own change for a user's.
  Raise any exception to mark the item ``failed`` (the message is the recorded cause), or
  raise :class:`Skip` to mark it ``skipped`` with a reason.
* ``teardown()`` always runs when a worker stops, even after errors.
* ``finish(ctx)`` runs once per job, in the runner's process, after the last item (remove
  orphans, write playlists); it returns a JSON-able summary or ``None``.

A processor instance must be picklable from its options alone: process workers rebuild it
from ``(name, options)`` through the registry.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mediamill.core import (
    ItemRef,
    ItemUpdate,
    Outcome,
    Processed,
    Skip,
    Status,
    Work,
    classify_error,
    describe_error,
)

__all__ = [
    "FinishContext",
    "ItemRef",
    "ItemUpdate",
    "Outcome",
    "Processed",
    "Processor",
    "Skip",
    "Status",
    "UnknownProcessor",
    "Work",
    "available",
    "create",
    "describe_error",
    "get",
    "register",
    "run_one",
]


@dataclass(slots=True)
class FinishContext:
    """What ``finish`` gets: the library, the job's options and counters, and dry-run."""

    library_root: str | None
    job_id: str
    options: Mapping[str, Any]
    dry_run: bool
    counters: Mapping[str, int]
    catalog: Any = None  # mediamill.catalog.db.Catalog; Any keeps processors import-light
    library_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Processor:
    """Base class of every processor; see the module docstring for the lifecycle."""

    name: ClassVar[str]
    version: ClassVar[str]
    work: ClassVar[Work] = Work.IO
    #: item kinds this processor accepts; ``None`` accepts every kind
    kinds: ClassVar[frozenset[str] | None] = None
    #: in a dry run, whether the engine still calls ``process`` (with option ``dry_run`` true,
    #: the processor then changes nothing and reports what it would do) or only lists the
    #: pending items. Dry-run outcomes are never stored as results.
    dry_run_processes: ClassVar[bool] = False
    #: items per batch unless the user says otherwise: small for slow items (so workers
    #: share the work evenly), larger for fast ones (less dispatch overhead)
    batch_size: ClassVar[int | None] = None
    #: workers unless the user says otherwise (``None``: one per core). Work that is bound by
    #: the file system's metadata (creating files) gains nothing from more: it contends
    default_workers: ClassVar[int | None] = None
    #: options that change what ``process`` produces: a result made with other values of
    #: these is not fresh (e.g. strm's ``output``), so the item is processed again
    result_options: ClassVar[tuple[str, ...]] = ()
    #: hand each item the data of its last result (``ItemRef.previous``)
    wants_previous: ClassVar[bool] = False
    #: every option ``process``/``finish`` read: a job given an option that neither the
    #: engine, the processor nor the source reads is refused, so a typo is never silently
    #: ignored. Every built-in declares its own; ``None`` (not declared: a plug-in) passes
    #: every option on unchecked, with a warning naming those nothing else reads
    option_names: ClassVar[frozenset[str] | None] = None
    #: options that hold secrets, as dotted paths (``refresh.token``): never stored with a
    #: job nor shown by the API (``mediamill.redact``); a key of that name is removed at any
    #: depth of the options
    secret_options: ClassVar[tuple[str, ...]] = ()

    def result_version(self) -> str:
        """The version stored with results: ``version``, plus a digest of the
        ``result_options`` in force when any differ from their defaults."""
        import hashlib
        import json

        chosen = {k: self.options[k] for k in self.result_options if k in self.options}
        if not chosen:
            return self.version
        raw = json.dumps(chosen, sort_keys=True, default=str).encode()
        return f"{self.version}+{hashlib.blake2b(raw, digest_size=6).hexdigest()}"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    def setup(self) -> None:
        """Prepare per-worker state. Default: nothing."""

    def process(self, item: ItemRef) -> dict[str, Any] | Processed:
        raise NotImplementedError

    def teardown(self) -> None:
        """Release per-worker state. Default: nothing."""

    def finish(self, ctx: FinishContext) -> dict[str, Any] | None:
        """Run once after the last item of a job. Default: nothing."""
        return None


_BUILTINS = {
    "probe": "mediamill.processors.probe:ProbeProcessor",
    "audio": "mediamill.processors.audio:AudioProcessor",
    "strm": "mediamill.processors.strm:StrmProcessor",
    "comic": "mediamill.processors.comic:ComicProcessor",
}
ENTRY_POINT_GROUP = "mediamill.processors"
_extra: dict[str, type[Processor]] = {}


class UnknownProcessor(LookupError):
    pass


def register(cls: type[Processor]) -> type[Processor]:
    """Register a processor class at run time (tests, plug-ins loaded by hand)."""
    _extra[cls.name] = cls
    return cls


def _load(target: str) -> type[Processor]:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise TypeError(f"{target} is not a Processor subclass")
    return cls


def available() -> list[str]:
    """Names of every processor: built-ins, run-time registrations and entry points."""
    names = set(_BUILTINS) | set(_extra)
    names |= {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get(name: str) -> type[Processor]:
    """The processor class called ``name``; raises :class:`UnknownProcessor`."""
    if name in _extra:
        return _extra[name]
    if ":" in name:  # "package.module:Class", for processors outside any registry
        return _load(name)
    if name in _BUILTINS:
        return _load(_BUILTINS[name])
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        return _load(ep.value)
    raise UnknownProcessor(f"unknown processor {name!r}; available: {', '.join(available())}")


def create(name: str, options: Mapping[str, Any] | None = None) -> Processor:
    return get(name)(options)


def run_one(processor: Processor, item: ItemRef, worker: str = "") -> Outcome:
    """Process one item, turning every exception into a recorded outcome (error isolation)."""
    start = time.perf_counter()
    try:
        returned = processor.process(item)
    except Skip as skip:
        return Outcome(
            item.id,
            Status.SKIPPED,
            None,
            str(skip) or "skipped",
            time.perf_counter() - start,
            worker,
        )
    except Exception as exc:  # noqa: BLE001 - one item's failure must never stop the job
        duration = time.perf_counter() - start
        return Outcome(
            item.id,
            Status.FAILED,
            None,
            describe_error(exc),
            duration,
            worker,
            error_class=str(classify_error(exc)),
        )
    duration = time.perf_counter() - start
    if isinstance(returned, Processed):
        return Outcome(
            item.id, Status.OK, returned.data, None, duration, worker, returned.item_update
        )
    return Outcome(item.id, Status.OK, returned, None, duration, worker)
