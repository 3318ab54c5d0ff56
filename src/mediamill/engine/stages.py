"""The runner's stages, each small enough to test alone.

    read pending ──▶ batch ──▶ throttle ──▶ dispatch ──▶ gather ──▶ write
    (catalog pages)  (sized    (--rate,     (bounded     (executor's  (writer.py: one
                     per job)  adaptive)    window)      cadence)     transaction a flush)

Items stream from the catalog a page at a time and are cut into batches lazily; the
dispatcher keeps at most ``window x batch size`` items on the executor, so memory holds the
window, never the selection. The runner (runner.py) joins them and obeys pause and cancel.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mediamill.core import ItemRef, Outcome
from mediamill.engine.progress import Progress
from mediamill.engine.throttle import AdaptiveWindow, RateLimit
from mediamill.executors import base as executors

#: seconds the runner waits for outcomes per poll (shorter under --rate, to start batches on
#: time)
POLL_WAIT = 0.1
POLL_WAIT_RATED = 0.05


def batched(items: Iterator[ItemRef], size: int) -> Iterator[list[ItemRef]]:
    """Lists of ``size`` items (the last one shorter), taken lazily."""
    while batch := list(itertools.islice(items, size)):
        yield batch


def batch_size_for(*, asked: int, to_do: int, workers: int, rate: float | None = None) -> int:
    """The batch size for a job: ``asked``, but small enough that every worker gets about
    four batches (a short job still keeps every worker busy), and under ``--rate`` no
    bigger than one worker's share of a second."""
    size = max(1, min(asked, -(-to_do // (workers * 4))))
    if rate:
        size = max(1, min(size, int(rate / max(1, workers))))
    return size


class Dispatcher:
    """Dispatch and gather: keeps a bounded window of batches on the executor and maps the
    outcomes that come back to the items they are for.

    The executor is built and started with the first batch, so a job with nothing to do
    starts no pool. An outcome for an item not in flight (dropped on stop, or reported
    twice) is ignored.
    """

    def __init__(
        self,
        make_executor: Callable[[], executors.Executor],
        batches: Iterator[list[ItemRef]],
        *,
        batch_size: int,
        window: AdaptiveWindow,
        rate_limit: RateLimit,
        per_worker: int = 2,
    ) -> None:
        self._make_executor = make_executor
        self._batches = batches
        self.batch_size = batch_size
        self.window, self.rate_limit = window, rate_limit
        self.per_worker = per_worker  # batches in flight per worker
        self.executor: executors.Executor | None = None
        self.in_flight: dict[int, ItemRef] = {}
        self.exhausted = False
        self._next: list[ItemRef] | None = None

    def fill(self) -> None:
        """Submit batches until the window is full, the rate limit holds the next one
        back, or there are no more."""
        while not self.exhausted and self.pending() < self.window.size * self.batch_size:
            if self._next is None:
                self._next = next(self._batches, None)
                if self._next is None:
                    self.exhausted = True
                    return
            if self.rate_limit.delay(len(self._next)) > 0:
                return
            for item in self._next:
                self.in_flight[item.id] = item
            if self.executor is None:
                self.executor = self._make_executor()
                self.executor.start()
                # the celery executor counts its live workers' processes only once started
                self.window.grow_to(self.executor.workers * self.per_worker)
            self.executor.submit(self._next)
            self._next = None

    def pending(self) -> int:
        """Items on the executor whose outcome has not been gathered."""
        return 0 if self.executor is None else self.executor.pending_items()

    def gather(self, wait: float) -> tuple[list[tuple[ItemRef, Outcome]], float]:
        """The outcomes that arrived within ``wait`` seconds, with their items, and the
        seconds the executor asks to let the next ones pile up (its gathering cadence)."""
        if self.executor is None:  # nothing submitted yet: held back by --rate
            time.sleep(wait / 2)
            return [], 0.0
        started = time.monotonic()
        outcomes = self.executor.poll(wait)
        waited = time.monotonic() - started
        done = []
        for outcome in outcomes:
            item = self.in_flight.pop(outcome.item_id, None)
            if item is not None:
                done.append((item, outcome))
                self.window.observe(outcome.duration)
        return done, self.executor.gather_delay(outcomes, waited)

    def abandon(self) -> None:
        """Drop what the executor has queued (it stays pending in the catalog) and submit
        nothing more; items being processed still report."""
        self.exhausted = True
        if self.executor is not None:
            for item_id in self.executor.abandon():
                self.in_flight.pop(item_id, None)

    def finished(self) -> bool:
        return self.exhausted and self.pending() == 0

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.stop()


class Meter:
    """Rate (over the last ~10 s, so the ETA follows the current speed), ETA and each
    worker's busy share, into a :class:`Progress`."""

    def __init__(self, progress: Progress, clock: Callable[[], float] = time.monotonic) -> None:
        self.progress, self.clock = progress, clock
        self.started = clock()
        self._samples: list[tuple[float, int]] = [(self.started, progress.processed)]
        self._busy: dict[str, float] = defaultdict(float)

    def observe(self, outcome: Outcome) -> None:
        self._busy[outcome.worker] += outcome.duration

    def update(self, counters: Any) -> Progress:
        """``progress`` brought up to date with ``counters`` (a :class:`writer.Counters`)."""
        p, now = self.progress, self.clock()
        p.processed, p.ok = counters.processed, counters.ok
        p.failed, p.skipped = counters.failed, counters.skipped
        p.elapsed = now - self.started
        self._samples.append((now, counters.processed))
        while len(self._samples) > 2 and now - self._samples[0][0] > 10:
            self._samples.pop(0)
        t0, n0 = self._samples[0]
        p.rate = (counters.processed - n0) / (now - t0) if now > t0 else 0.0
        left = max(0, p.total - counters.processed)
        p.eta_seconds = left / p.rate if p.rate > 0 else None
        elapsed = max(p.elapsed, 1e-9)
        p.busy = {w: round(min(1.0, s / elapsed), 3) for w, s in sorted(self._busy.items())}
        return p

    def job_values(self) -> Mapping[str, Any]:
        return {"rate": self.progress.rate, "eta_seconds": self.progress.eta_seconds}
