"""Local pools: worker threads (io work) and worker processes (cpu work) on this machine.

Both share one dispatcher. Each worker holds at most ``AHEAD`` batches (the one it is on and
the next, so it never waits for the dispatcher between two) and reports one outcome per item,
in order, so the dispatcher always knows which item a worker is on and since when. A worker that
exceeds the per-item time limit, or dies (even by a segfault or ``os.abort`` in a C library),
costs exactly that item, recorded as failed with the cause; the rest of its batch goes back
to the queue and a fresh worker takes its place.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from mediamill.core import ErrorClass, ItemRef, Outcome, Status, describe_error
from mediamill.executors.base import ExecutorError, ExecutorJob
from mediamill.processors import base as registry
from mediamill.processors.base import run_one

log = logging.getLogger(__name__)

#: env vars that make BLAS/OpenMP libraries use one thread: N processes x M threads would
#: oversubscribe the cores
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}
#: a worker that dies before it is ready this many times in a row means the pool is broken
MAX_START_FAILURES = 3
#: batches a worker holds at once: with one, a worker that ends its batch while the runner
#: gathers outcomes (it wakes every 5 ms for short items) idles until it is handed the next;
#: probing 5,000 small files on 2 processes took 18 % longer
AHEAD = 2
#: ... but only for batches shorter than this (seconds, from the items done so far): a worker
#: holding a second long batch (audio: one track of seconds) can leave the other idle at the
#: end of a job, and the hand-off it saves is nothing next to such a batch
AHEAD_BELOW = 0.25
#: outcomes of items shorter than SHORT_ITEM are gathered every GATHER_EVERY seconds rather
#: than one wake-up of the runner per outcome: with worker threads each wake-up is a GIL
#: hand-off (futex calls, context switches) that costs more than such an item (strm: 40%
#: more CPU for the export, measured). Workers keep going meanwhile: their batches are queued.
SHORT_ITEM = 0.002
GATHER_EVERY = 0.005


@dataclass
class _Slot:
    index: int
    name: str
    generation: int = 0
    ready: bool = False
    #: the items handed to the worker and not yet reported on are ``batch[done:]``, in order
    batch: list[ItemRef] = field(default_factory=list)
    done: int = 0
    #: where each batch the worker holds ends in ``batch`` (at most ``AHEAD``)
    ends: deque[int] = field(default_factory=deque)
    current_since: float = 0.0
    handle: Any = None  # Thread or Process
    conn: Connection | None = None  # processes only
    inbox: queue.SimpleQueue[list[ItemRef] | None] | None = None  # threads only

    @property
    def busy(self) -> bool:
        return self.done < len(self.batch)


class _Pool:
    """The dispatcher shared by the thread and process pools."""

    name = "pool"

    def __init__(self, job: ExecutorJob, settings: Mapping[str, Any] | None = None) -> None:
        self.processor = job.processor
        self.options = dict(job.options)
        self.workers = max(1, job.workers)
        self.item_timeout = job.item_timeout
        self._queue: deque[list[ItemRef]] = deque()
        self._slots: list[_Slot] = []
        self._pending = 0
        self._start_failures = 0
        self._ready_outcomes: list[Outcome] = []
        self._item_seconds = 0.0  # moving average of the items done
        self._batch_size = 1  # of the last batch submitted

    # -- subclass hooks
    def _spawn(self, slot: _Slot) -> None:
        raise NotImplementedError

    def _send(self, slot: _Slot, batch: list[ItemRef] | None) -> None:
        raise NotImplementedError

    def _receive(self, timeout: float) -> list[tuple[_Slot, tuple[Any, ...]]]:
        raise NotImplementedError

    def _kill(self, slot: _Slot) -> None:
        raise NotImplementedError

    def _check_workers(self) -> None:
        """Replace workers that died or overran the item time limit."""
        raise NotImplementedError

    def _discard(self, slot: _Slot) -> None:
        """Release what the slot's old worker held. Default: nothing."""

    def _request_stop_after_item(self) -> None:
        raise NotImplementedError

    # -- Executor
    def start(self) -> None:
        self._slots = [_Slot(i, f"{self.name}-{i}") for i in range(self.workers)]
        for slot in self._slots:
            self._spawn(slot)
        deadline = time.monotonic() + max(60.0, self.item_timeout)
        while not all(s.ready for s in self._slots):
            if time.monotonic() > deadline:
                self.stop()
                raise ExecutorError(f"{self.name} workers did not start within 60 s")
            self._handle(self._receive(0.1))
            self._check_workers()

    def submit(self, batch: list[ItemRef]) -> None:
        self._queue.append(batch)
        self._pending += len(batch)
        self._batch_size = len(batch)
        self._dispatch()

    def gather_delay(self, outcomes: Sequence[Outcome], waited: float) -> float:
        """Let short items' outcomes pile up for GATHER_EVERY while every worker has a
        batch queued: they came one by one (the poll barely waited), each took less than
        SHORT_ITEM, and waking up per outcome would cost more than the items."""
        if (
            outcomes
            and waited < GATHER_EVERY
            and self._pending >= self._batch_size * self.workers
            and sum(o.duration for o in outcomes) < SHORT_ITEM * len(outcomes)
        ):
            return GATHER_EVERY
        return 0.0

    def pending_items(self) -> int:
        return self._pending

    def poll(self, timeout: float) -> list[Outcome]:
        self._dispatch()
        if not self._ready_outcomes:
            self._handle(self._receive(self._wait_time(timeout)))
        self._check_workers()
        self._dispatch()
        out, self._ready_outcomes = self._ready_outcomes, []
        self._pending -= len(out)
        return out

    def abandon(self) -> list[int]:
        dropped = [item.id for batch in self._queue for item in batch]
        self._queue.clear()
        self._request_stop_after_item()
        self._pending -= len(dropped)
        return dropped

    def stop(self) -> None:
        """Ask every worker to finish (running ``teardown``); wait up to 5 s in all."""
        for slot in self._slots:
            self._send(slot, None)
        deadline = time.monotonic() + 5
        for slot in self._slots:
            slot.handle.join(max(0.0, deadline - time.monotonic()))

    # -- internals
    def _wait_time(self, timeout: float) -> float:
        """Wake up in time to enforce the nearest item deadline."""
        now = time.monotonic()
        nearest = min(
            (s.current_since + self.item_timeout for s in self._slots if s.busy),
            default=now + timeout,
        )
        return max(0.0, min(timeout, nearest - now + 0.01))

    def _dispatch(self) -> None:
        # idle workers first, then a next batch for each busy one (if batches are short)
        for wanted in range(AHEAD):
            for slot in self._slots:
                if not self._queue:
                    return
                if wanted and self._item_seconds * len(self._queue[0]) >= AHEAD_BELOW:
                    return
                if slot.ready and len(slot.ends) == wanted:
                    batch = self._queue.popleft()
                    if not slot.busy:
                        slot.batch, slot.done = [], 0
                        slot.current_since = time.monotonic()
                    slot.batch.extend(batch)
                    slot.ends.append(len(slot.batch))
                    self._send(slot, batch)

    def _handle(self, messages: list[tuple[_Slot, tuple[Any, ...]]]) -> None:
        for slot, msg in messages:
            kind = msg[0]
            if kind == "ready":
                slot.ready = True
                self._start_failures = 0
            elif kind == "setup_failed":
                self.stop()
                raise ExecutorError(f"processor set-up failed in {slot.name}: {msg[1]}")
            elif kind == "outcome":
                outcome: Outcome = msg[1]
                outcome.worker = slot.name
                self._ready_outcomes.append(outcome)
                weight = 0.1 if self._item_seconds else 1.0  # the first item sets it
                self._item_seconds += weight * (outcome.duration - self._item_seconds)
                slot.done += 1
                if slot.ends and slot.ends[0] <= slot.done:
                    slot.ends.popleft()
                slot.current_since = time.monotonic()
            elif kind == "abandoned":  # the worker skips every batch it holds, one by one
                dropped = slot.batch[slot.done :]
                slot.done = len(slot.batch)
                slot.ends.clear()
                self._pending -= len(dropped)

    def _replace(self, slot: _Slot, cause: str, *, transient: bool = False) -> None:
        """Record the item the worker was on as failed (a time-out is ``transient``: tried
        again by the next run), requeue the rest, start a new worker."""
        now = time.monotonic()
        self._discard(slot)
        if not slot.ready:
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                raise ExecutorError(f"{slot.name} died while starting: {cause}")
        elif slot.busy:
            item = slot.batch[slot.done]
            log.warning("%s: %s on %s", slot.name, cause, item.path)
            error_class = ErrorClass.TRANSIENT if transient else ErrorClass.PERMANENT
            self._ready_outcomes.append(
                Outcome(
                    item.id,
                    Status.FAILED,
                    None,
                    cause,
                    now - slot.current_since,
                    slot.name,
                    error_class=str(error_class),
                )
            )
            rest = slot.batch[slot.done + 1 :]
            if rest:
                self._queue.appendleft(rest)
        slot.batch, slot.done, slot.ready = [], 0, False
        slot.ends.clear()
        slot.generation += 1
        self._spawn(slot)


# ------------------------------------------------------------------------------ threads
def _thread_worker(
    pool: ThreadPool, slot: _Slot, generation: int, inbox: queue.SimpleQueue[list[ItemRef] | None]
) -> None:
    post = pool._outbox.put
    try:
        processor = registry.create(pool.processor, pool.options)
        processor.setup()
    except Exception as exc:  # noqa: BLE001 - reported to the dispatcher
        post((slot, generation, ("setup_failed", describe_error(exc))))
        return
    post((slot, generation, ("ready",)))
    try:
        while (batch := inbox.get()) is not None:
            for item in batch:
                if slot.generation != generation:
                    return  # replaced (it overran): its items are another thread's now
                if pool._stop_after_item.is_set():
                    post((slot, generation, ("abandoned",)))
                    break
                post((slot, generation, ("outcome", run_one(processor, item))))
    finally:
        processor.teardown()


class ThreadPool(_Pool):
    """Worker threads: for io work and for C libraries that release the GIL (PyAV)."""

    name = "threads"

    def __init__(self, job: ExecutorJob, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(job, settings)
        self._outbox: queue.SimpleQueue[tuple[_Slot, int, tuple[Any, ...]]] = queue.SimpleQueue()
        self._stop_after_item = threading.Event()

    def _spawn(self, slot: _Slot) -> None:
        slot.inbox = queue.SimpleQueue()
        slot.handle = threading.Thread(
            target=_thread_worker,
            args=(self, slot, slot.generation, slot.inbox),
            name=f"mediamill-{slot.name}",
            daemon=True,
        )
        slot.handle.start()

    def _send(self, slot: _Slot, batch: list[ItemRef] | None) -> None:
        assert slot.inbox is not None
        slot.inbox.put(batch)

    def _receive(self, timeout: float) -> list[tuple[_Slot, tuple[Any, ...]]]:
        out: list[tuple[_Slot, tuple[Any, ...]]] = []
        try:
            first = self._outbox.get(timeout=timeout) if timeout > 0 else self._outbox.get_nowait()
        except queue.Empty:
            return out
        pending = [first]
        while True:
            try:
                pending.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        for slot, generation, msg in pending:
            if generation == slot.generation:  # drop late words from replaced threads
                out.append((slot, msg))
        return out

    def _kill(self, slot: _Slot) -> None:
        # A thread cannot be killed: it is abandoned (its late outcome is dropped, by
        # generation) and replaced; it ends when its item returns.
        if slot.inbox is not None:
            slot.inbox.put(None)

    def _check_workers(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.busy and now - slot.current_since > self.item_timeout:
                self._kill(slot)
                self._replace(
                    slot,
                    f"timed out after {self.item_timeout:g} s "
                    "(worker thread abandoned and replaced)",
                    transient=True,
                )
            elif slot.ready and not slot.handle.is_alive():
                self._replace(slot, "worker thread ended unexpectedly")

    def _request_stop_after_item(self) -> None:
        self._stop_after_item.set()


# ------------------------------------------------------------------------------ processes
def _process_worker(
    processor_name: str, options: dict[str, Any], conn: Connection, stop_after_item: Any
) -> None:
    """Body of a worker process: set up once, then one outcome per item until told to stop."""
    os.environ.update(SINGLE_THREAD_ENV)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    try:
        processor = registry.create(processor_name, options)
        processor.setup()
    except Exception as exc:  # noqa: BLE001 - reported to the dispatcher
        conn.send(("setup_failed", describe_error(exc)))
        return
    conn.send(("ready",))
    try:
        while (batch := conn.recv()) is not None:
            for item in batch:
                if stop_after_item.is_set():
                    conn.send(("abandoned",))
                    break
                conn.send(("outcome", run_one(processor, item)))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        processor.teardown()


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class ProcessPool(_Pool):
    """Worker processes: for cpu work, and for decoders that may crash or hang."""

    name = "processes"

    def __init__(self, job: ExecutorJob, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(job, settings)
        self._ctx = multiprocessing.get_context("forkserver")
        # workers fork from a server that already imported the processor's module (numpy,
        # essentia, PyAV...): each worker then starts in milliseconds, not a second
        self._ctx.set_forkserver_preload(
            ["mediamill.processors.base", registry.get(job.processor).__module__]
        )
        self._stop_after_item = self._ctx.Event()

    def start(self) -> None:
        # children inherit these; set before they start so numpy/BLAS read them at import
        os.environ.update({k: os.environ.get(k, v) for k, v in SINGLE_THREAD_ENV.items()})
        super().start()

    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_process_worker,
            args=(self.processor, self.options, child, self._stop_after_item),
            name=f"mediamill-{slot.name}",
            daemon=True,
        )
        proc.start()
        child.close()
        slot.handle, slot.conn = proc, parent

    def _send(self, slot: _Slot, batch: list[ItemRef] | None) -> None:
        assert slot.conn is not None
        # a dead worker cannot take it; _check_workers sees the death and records the item
        with contextlib.suppress(BrokenPipeError, OSError):
            slot.conn.send(batch)

    def _receive(self, timeout: float) -> list[tuple[_Slot, tuple[Any, ...]]]:
        by_conn: dict[Any, _Slot] = {s.conn: s for s in self._slots if s.conn is not None}
        out: list[tuple[_Slot, tuple[Any, ...]]] = []
        for ready in wait(list(by_conn), timeout):
            slot = by_conn[ready]
            conn: Connection = ready  # type: ignore[assignment]
            try:
                while conn.poll():
                    out.append((slot, conn.recv()))
            except (EOFError, OSError):
                slot.handle.join(1.0)
                if slot.conn is not None:
                    slot.conn.close()
                slot.conn = None
        return out

    def _kill(self, slot: _Slot) -> None:
        slot.handle.kill()
        slot.handle.join(5)

    def _dead(self, slot: _Slot) -> str | None:
        if slot.handle.is_alive() and slot.conn is not None:
            return None
        slot.handle.join(1.0)
        return f"worker process {_signal_name(slot.handle.exitcode)} while processing this item"

    def _request_stop_after_item(self) -> None:
        self._stop_after_item.set()

    def _check_workers(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if (
                slot.busy
                and slot.handle.is_alive()
                and now - slot.current_since > self.item_timeout
            ):
                self._kill(slot)
                self._replace(
                    slot,
                    f"timed out after {self.item_timeout:g} s (worker process killed and replaced)",
                    transient=True,
                )
            elif not slot.handle.is_alive() or slot.conn is None:
                # what the worker said before it died may still sit in the pipe: take it
                # first, or the item it finished last would be blamed for the crash
                self._handle(self._drain(slot))
                self._replace(slot, self._dead(slot) or "worker process lost")

    @staticmethod
    def _drain(slot: _Slot) -> list[tuple[_Slot, tuple[Any, ...]]]:
        out: list[tuple[_Slot, tuple[Any, ...]]] = []
        if slot.conn is None:
            return out
        with contextlib.suppress(EOFError, OSError):
            while slot.conn.poll():
                out.append((slot, slot.conn.recv()))
        return out

    def _discard(self, slot: _Slot) -> None:
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None

    def stop(self) -> None:
        for slot in self._slots:
            if slot.conn is not None:
                self._send(slot, None)
        deadline = time.monotonic() + 5
        for slot in self._slots:
            slot.handle.join(max(0.0, deadline - time.monotonic()))
            if slot.handle.is_alive():
                slot.handle.kill()
                slot.handle.join(1)
            if slot.conn is not None:
                slot.conn.close()
                slot.conn = None
