"""The Executor contract: where batches of items run. Every backend gives the same outcomes.

The runner hands an executor batches (lists of :class:`ItemRef`) and polls it for per-item
:class:`Outcome`\\ s. An executor owns its workers: it runs each worker's ``setup`` once,
enforces the per-item time limit, replaces workers that hang or die (recording the item
they were on as failed), and runs ``teardown`` when it stops.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from mediamill.core import ItemRef, Outcome, Work

log = logging.getLogger(__name__)

NAMES = ("auto", "serial", "threads", "processes")


class ExecutorError(RuntimeError):
    """The executor cannot go on (every worker fails its set-up, the pool cannot start)."""


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


def create(
    name: str,
    processor: str,
    options: Mapping[str, Any],
    *,
    work: Work,
    workers: int,
    item_timeout: float,
    broker_url: str = "",
) -> Executor:
    """An executor by name; ``auto`` picks threads for io work and processes for cpu work,
    falling back to serial (with a logged reason) when a pool cannot start."""
    from mediamill.executors.local import ProcessPool, ThreadPool
    from mediamill.executors.serial import SerialExecutor

    if name not in NAMES:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(NAMES)}")
    if name == "serial":
        return SerialExecutor(processor, options)
    if name == "threads":
        return ThreadPool(processor, options, workers=workers, item_timeout=item_timeout)
    if name == "processes":
        return ProcessPool(processor, options, workers=workers, item_timeout=item_timeout)
    pool_cls = ProcessPool if work is Work.CPU else ThreadPool
    pool = pool_cls(processor, options, workers=workers, item_timeout=item_timeout)
    return _Fallback(pool, SerialExecutor(processor, options))


class _Fallback:
    """``auto``: the chosen pool, or serial when the pool cannot start (the reason is logged)."""

    def __init__(self, pool: Executor, serial: Executor) -> None:
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
            self.active = self._serial
            self.name, self.workers = "auto:serial", 1
            self._serial.start()

    def submit(self, batch: list[ItemRef]) -> None:
        self.active.submit(batch)

    def poll(self, timeout: float) -> list[Outcome]:
        return self.active.poll(timeout)

    def pending_items(self) -> int:
        return self.active.pending_items()

    def abandon(self) -> list[int]:
        return self.active.abandon()

    def stop(self) -> None:
        self.active.stop()
