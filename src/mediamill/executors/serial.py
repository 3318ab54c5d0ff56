"""The serial executor: every item in the calling thread. The always-available twin of the pools.

It gives the same outcomes as the pools and is what tests and debugging use; it cannot
enforce the per-item time limit or survive a crashing decoder (use ``processes`` for that).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from mediamill.core import ItemRef, Outcome, describe_error
from mediamill.executors.base import ExecutorError, ExecutorJob
from mediamill.processors import base as registry
from mediamill.processors.base import run_one


class SerialExecutor:
    name = "serial"
    workers = 1

    def __init__(self, job: ExecutorJob, settings: Mapping[str, Any] | None = None) -> None:
        self._processor_name = job.processor
        self._options = dict(job.options)
        self._queue: deque[ItemRef] = deque()
        self._processor: registry.Processor | None = None

    def start(self) -> None:
        """Nothing to start: the processor is set up with the first batch, so a run with
        nothing to do never loads what the processor needs (models, codecs)."""

    def _processor_ready(self) -> registry.Processor:
        if self._processor is None:
            processor = registry.create(self._processor_name, self._options)
            try:
                processor.setup()
            except Exception as exc:
                raise ExecutorError(f"processor set-up failed: {describe_error(exc)}") from exc
            self._processor = processor
        return self._processor

    def submit(self, batch: list[ItemRef]) -> None:
        self._processor_ready()
        self._queue.extend(batch)

    def poll(self, timeout: float) -> list[Outcome]:
        """Run queued items for up to about ``timeout`` seconds (at least one item)."""
        if not self._queue:
            return []
        processor = self._processor_ready()
        outcomes: list[Outcome] = []
        deadline = time.monotonic() + timeout
        while self._queue:
            outcomes.append(run_one(processor, self._queue.popleft(), "serial"))
            if time.monotonic() >= deadline:
                break
        return outcomes

    def gather_delay(self, outcomes: Sequence[Outcome], waited: float) -> float:
        """Never: the items run inside ``poll``, nothing arrives in between."""
        return 0.0

    def pending_items(self) -> int:
        return len(self._queue)

    def abandon(self) -> list[int]:
        dropped = [item.id for item in self._queue]
        self._queue.clear()
        return dropped

    def stop(self) -> None:
        if self._processor is not None:
            self._processor.teardown()
            self._processor = None
