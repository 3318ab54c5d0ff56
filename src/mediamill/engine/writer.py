"""The single writer: the only code that writes a running job's results to the catalog.

Outcomes are buffered and written in one transaction with the job's counters and heartbeat
(every ``FLUSH_EVERY`` seconds or ``FLUSH_ITEMS`` outcomes), together with the item updates
they carry, so a job stopped in any way (Ctrl-C, kill -9, power loss) resumes exactly where
the catalog says it was. A dry run writes the counters only: a stored dry-run result would
make its item "fresh".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import utcnow
from mediamill.core import ItemRef, Outcome, Status

FLUSH_EVERY = 0.5  # seconds between catalog writes
FLUSH_ITEMS = 1000  # ... or this many outcomes, whichever first


@dataclass(slots=True)
class Counters:
    """A job's counters as the writer keeps them (and stores with every write)."""

    processed: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0

    def count(self, status: Status) -> None:
        self.processed += 1
        if status is Status.OK:
            self.ok += 1
        elif status is Status.FAILED:
            self.failed += 1
        else:
            self.skipped += 1

    def as_job_values(self) -> dict[str, int]:
        return {
            "processed_items": self.processed,
            "succeeded": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
        }


class Writer:
    """Buffers a job's outcomes and writes them with its counters, in batched transactions.

    ``extra_values`` gives what else goes into the job row with each write (rate, ETA).
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        job_id: str,
        processor: str,
        version: str,
        dry_run: bool,
        counters: Counters,
        extra_values: Callable[[], dict[str, Any]] = dict,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog, self.job_id = catalog, job_id
        self.processor, self.version, self.dry_run = processor, version, dry_run
        self.counters = counters
        self.extra_values, self.clock = extra_values, clock
        self._buffer: list[Outcome] = []
        self._fingerprints: dict[int, str] = {}
        self._last = clock()

    def add(self, item: ItemRef, outcome: Outcome) -> None:
        """Count one item's outcome, to be written with the next flush."""
        self.counters.count(outcome.status)
        if not self.dry_run:
            self._buffer.append(outcome)
            self._fingerprints[outcome.item_id] = item.fingerprint

    def due(self) -> bool:
        return len(self._buffer) >= FLUSH_ITEMS or self.clock() - self._last >= FLUSH_EVERY

    def flush(self) -> None:
        """Write the buffered outcomes (if any), the counters and a heartbeat."""
        values: dict[str, Any] = {
            **self.counters.as_job_values(),
            **self.extra_values(),
            "heartbeat_at": utcnow(),
        }
        refused = self.catalog.write_outcomes(
            self._buffer,
            processor=self.processor,
            version=self.version,
            job_id=self.job_id,
            fingerprints=self._fingerprints,
            job_values=values,
        )
        # an item update the catalog refused turned that outcome into a failure
        self.counters.ok -= len(refused)
        self.counters.failed += len(refused)
        self._buffer.clear()
        self._fingerprints.clear()
        self._last = self.clock()

    @property
    def pending(self) -> int:
        """Outcomes buffered and not written yet."""
        return len(self._buffer)
