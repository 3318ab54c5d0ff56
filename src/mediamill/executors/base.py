"""The Executor contract and the registry that finds executors, like the processors' one.

The runner hands an executor batches (lists of :class:`ItemRef`) and polls it for per-item
:class:`Outcome`\\ s. An executor owns its workers: it runs each worker's ``setup`` once,
enforces the per-item time limit, replaces workers that hang or die (recording the item
they were on as failed), and runs ``teardown`` when it stops.

Executors are found by name: the built-ins below, the ``mediamill.executors`` entry-point
group, or ``package.module:Class``. Each is built as ``cls(job, settings)``: the
:class:`ExecutorJob` it runs and its own settings (the ``[executors.NAME]`` table of
``mediamill.toml``). Adding an executor is one module and one line in ``_BUILTINS`` (or an
entry point). ``auto`` is not an executor but a choice: the pool for the processor's work
(threads for io, processes for cpu), run serially when that pool cannot start.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from mediamill.core import ItemRef, Outcome, Work

log = logging.getLogger(__name__)

_BUILTINS = {
    "serial": "mediamill.executors.serial:SerialExecutor",
    "threads": "mediamill.executors.local:ThreadPool",
    "processes": "mediamill.executors.local:ProcessPool",
    "celery": "mediamill.executors.celery:CeleryExecutor",
}
ENTRY_POINT_GROUP = "mediamill.executors"
AUTO = "auto"
#: what ``auto`` runs, by the processor's work
AUTO_POOLS = {Work.IO: "threads", Work.CPU: "processes"}


class ExecutorError(RuntimeError):
    """The executor cannot go on (every worker fails its set-up, the pool cannot start)."""


class UnknownExecutor(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ExecutorJob:
    """What an executor runs: one processor (rebuilt from its name and options in each
    worker), on how many workers, with what time limit per item."""

    processor: str
    options: Mapping[str, Any]
    work: Work = Work.IO
    workers: int = 1
    item_timeout: float = 120.0
    #: the job's id, for executors that show it (celery: the workers list)
    job_id: str = ""


class Executor(Protocol):
    name: str
    workers: int

    def start(self) -> None:
        """Start the workers (each runs the processor's ``setup``)."""
        ...

    def submit(self, batch: list[ItemRef]) -> None:
        """Queue a batch; never blocks. The runner bounds how many are in flight."""
        ...

    def poll(self, timeout: float) -> list[Outcome]:
        """Outcomes that arrived, waiting up to ``timeout`` seconds for the first one."""
        ...

    def gather_delay(self, outcomes: Sequence[Outcome], waited: float) -> float:
        """Seconds the runner should let outcomes pile up before it polls again, given what
        the last poll returned and how long it waited for it: the executor's own cadence
        (0: poll again at once)."""
        ...

    def pending_items(self) -> int:
        """Items submitted whose outcome has not been returned by ``poll`` yet."""
        ...

    def abandon(self) -> list[int]:
        """Drop every queued batch and ask workers to stop after their current item.

        Returns the ids of the items that were dropped (they stay pending in the catalog).
        """
        ...

    def stop(self) -> None:
        """Stop every worker (running ``teardown``), waiting briefly, then forcing."""
        ...


class ExecutorClass(Protocol):
    def __call__(self, job: ExecutorJob, settings: Mapping[str, Any]) -> Executor: ...


def _load(target: str) -> ExecutorClass:
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr, None)
    if not isinstance(cls, type):
        raise UnknownExecutor(f"{target} is not a class")
    return cast("ExecutorClass", cls)


def available() -> list[str]:
    """Names of every executor: ``auto``, the built-ins and entry points."""
    names = {AUTO, *_BUILTINS}
    names |= {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get(name: str) -> ExecutorClass:
    """The executor class called ``name``; raises :class:`UnknownExecutor`."""
    if name in _BUILTINS:
        return _load(_BUILTINS[name])
    if ":" in name:  # "package.module:Class", for executors outside any registry
        return _load(name)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        return _load(ep.value)
    raise UnknownExecutor(f"unknown executor {name!r}; choose one of {', '.join(available())}")


def create(
    name: str, job: ExecutorJob, settings: Mapping[str, Mapping[str, Any]] | None = None
) -> Executor:
    """The executor called ``name`` for ``job``, handed its own section of ``settings``
    (``{executor name: its settings}``). ``auto`` picks the pool for the processor's work and
    falls back to serial (with a logged reason) when the pool cannot start."""
    settings = settings or {}
    if name == AUTO:
        pool = AUTO_POOLS[job.work]
        return _Fallback(
            get(pool)(job, settings.get(pool, {})),
            lambda: get("serial")(job, settings.get("serial", {})),
        )
    return get(name)(job, settings.get(name, {}))


class _Fallback:
    """``auto``: the chosen pool, or serial when the pool cannot start (the reason is logged)."""

    def __init__(self, pool: Executor, serial: Any) -> None:
        self._pool, self._serial = pool, serial
        self.active: Executor = pool
        self.name = f"auto:{pool.name}"
        self.workers = pool.workers

    def start(self) -> None:
        try:
            self._pool.start()
        except ExecutorError:
            raise
        except Exception as exc:  # noqa: BLE001 - any start failure means: run serially
            log.warning("%s pool cannot start (%s); running serially", self._pool.name, exc)
            self.active = self._serial()
            self.name, self.workers = "auto:serial", self.active.workers
            self.active.start()

    def submit(self, batch: list[ItemRef]) -> None:
        self.active.submit(batch)

    def poll(self, timeout: float) -> list[Outcome]:
        return self.active.poll(timeout)

    def gather_delay(self, outcomes: Sequence[Outcome], waited: float) -> float:
        return self.active.gather_delay(outcomes, waited)

    def pending_items(self) -> int:
        return self.active.pending_items()

    def abandon(self) -> list[int]:
        return self.active.abandon()

    def stop(self) -> None:
        self.active.stop()
