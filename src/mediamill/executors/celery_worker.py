"""``mediamill worker``: a Celery worker that runs mediamill batches through the local pools.

Celery's pool is ``threads`` (its consumer stays free to answer ``mediamill_state`` and stop
broadcasts while batches run); each of its threads runs one batch at a time through a local
process pool of one worker process, kept from batch to batch, so per-item time limits, crash
isolation and the processor's ``setup`` (once per worker process) are mediamill's own. A batch
checks its run's stop flag between items and ends after ``batch_seconds``, handing back the
items it did not begin. The worker needs the media (through its path map), never the catalog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediamill.executors.base import ExecutorError, ExecutorJob
from mediamill.executors.celery import (
    BEAT_EVERY,
    TASK,
    CeleryConfig,
    PathMap,
    decode_item,
    make_app,
    reply_exchange,
)
from mediamill.processors import base as registry

if TYPE_CHECKING:
    from celery import Celery

    from mediamill.core import ItemRef
    from mediamill.executors.local import ProcessPool

log = logging.getLogger(__name__)

#: outcomes are sent together at most this often (seconds)
SEND_EVERY = 0.1
#: a local pool not used for this long is stopped (its processor's teardown runs)
IDLE_POOL_SECONDS = 600.0
#: items handed to the local pool at once are about this many seconds of work: small enough
#: that a stop is seen within a fraction of a second, large enough to amortise the pipe
CHUNK_SECONDS = 0.1


class WorkerError(RuntimeError):
    """The worker cannot start (bad path map, broker unreachable)."""


@dataclass
class _State:
    """This worker, as ``mediamill_state`` describes it and its tasks use it."""

    config: CeleryConfig
    path_map: PathMap
    concurrency: int
    queues: list[str]
    processors: list[str]
    app: Any = None
    name: str = ""
    started_at: float = field(default_factory=time.time)
    items_done: int = 0
    last_heartbeat: float = field(default_factory=time.time)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopped_runs: dict[str, float] = field(default_factory=dict)
    #: idle local pools by (processor, options, item time limit), with when they were last used
    pools: dict[str, list[tuple[ProcessPool, float]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self, processor: str | None) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.concurrency,
            "queues": self.queues,
            "processors": self.processors,
            "can_run": _can_run(processor) if processor else None,
            "batches": list(self.batches.values()),
            "items_done": self.items_done,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat,
            "path_map": dict(self.path_map.pairs),
        }

    def stopped(self, run: str) -> bool:
        return run in self.stopped_runs

    def stop_run(self, run: str) -> None:
        now = time.time()
        with self.lock:
            self.stopped_runs[run] = now
            for old in [r for r, at in self.stopped_runs.items() if now - at > 86400]:
                del self.stopped_runs[old]

    def publish(self, reply: str, body: dict[str, Any]) -> None:
        body["worker"] = self.name
        exchange = reply_exchange()
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=reply,
                serializer="json",
                declare=[exchange],
                retry=True,
                retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5},
            )
        self.last_heartbeat = time.time()

    def idle_pool(self, payload: dict[str, Any]) -> tuple[str, ProcessPool | None]:
        """The key of the local pool this batch needs, and an idle one of them if any (pools
        idle for IDLE_POOL_SECONDS are stopped on the way)."""
        import json

        key = json.dumps(
            [payload["processor"], payload["options"], payload["item_timeout"]], sort_keys=True
        )
        now = time.monotonic()
        with self.lock:
            stale = [
                (k, pool)
                for k, idle in self.pools.items()
                for pool, used in idle
                if now - used > IDLE_POOL_SECONDS
            ]
            for k, _pool in stale:
                self.pools[k] = [(p, u) for p, u in self.pools[k] if now - u <= IDLE_POOL_SECONDS]
            idle = self.pools.get(key)
            pool = idle.pop()[0] if idle else None
        for _k, old in stale:
            old.stop()
        return key, pool

    @staticmethod
    def new_pool(payload: dict[str, Any]) -> ProcessPool:
        """A local pool of one worker process for this batch's processor and options; runs
        the processor's ``setup`` (ExecutorError when it fails)."""
        from mediamill.executors.local import ProcessPool

        job = ExecutorJob(
            payload["processor"],
            payload["options"],
            workers=1,
            item_timeout=float(payload["item_timeout"]),
        )
        pool = ProcessPool(job)
        pool.start()
        return pool

    def give_back(self, key: str, pool: ProcessPool) -> None:
        with self.lock:
            self.pools.setdefault(key, []).append((pool, time.monotonic()))

    def stop_pools(self) -> None:
        with self.lock:
            pools = [pool for idle in self.pools.values() for pool, _used in idle]
            self.pools.clear()
        for pool in pools:
            pool.stop()


class _Current:
    """The one worker of this process (its tasks and control commands reach it here)."""

    state: _State | None = None


def _can_run(processor: str) -> bool:
    try:
        registry.get(processor)
    except Exception:  # noqa: BLE001 - not importable here: this worker cannot run it
        return False
    return True


def runnable_processors() -> list[str]:
    """The processors this machine can load (an audio processor needs essentia, ...)."""
    return [name for name in registry.available() if _can_run(name)]


# ------------------------------------------------------------------------------ the task
def run_batch(payload: dict[str, Any]) -> None:
    """One batch: the thin task. Item refs in, outcomes out on the run's reply queue.

    A batch says it started once its first items are on their way to a worker process that
    is already up (the publish then overlaps their processing), or before a new worker
    process sets up (which may take a while); its last outcomes travel with "done"."""
    state = _Current.state
    assert state is not None, "run_batch runs in `mediamill worker` only"
    began = time.monotonic()
    reply, batch_id, run = payload["reply"], payload["batch"], payload["run"]
    items = [decode_item(row, state.path_map) for row in payload["items"]]
    if state.stopped(run):
        state.publish(reply, _returned(batch_id, items, "stopped"))
        return
    key, pool = state.idle_pool(payload)
    fresh = pool is None
    if pool is None:
        state.publish(reply, {"kind": "start", "batch": batch_id})
        try:
            with _beating(state, reply, batch_id):
                pool = state.new_pool(payload)
        except ExecutorError as exc:
            state.publish(reply, {"kind": "setup_failed", "batch": batch_id, "error": str(exc)})
            return
    pool_ready = time.monotonic()
    info = {
        "batch": batch_id,
        "job": payload.get("job", ""),
        "processor": payload["processor"],
        "items": len(items),
        "done": 0,
        "started_at": time.time(),
    }
    if fresh:  # said it started: shown as running (mediamill_state) from now on
        state.batches[batch_id] = info
    try:
        busy, last = _run_through(state, pool, payload, items, info, announce=not fresh)
    except BaseException:
        pool.stop()  # its state is unknown: not given back
        raise
    else:
        state.give_back(key, pool)
    finally:
        state.batches.pop(batch_id, None)
    state.publish(reply, {"kind": "done", "batch": batch_id, "outcomes": last})
    info["done"] += len(last)
    state.items_done += len(last)
    log.info(
        "batch %s: %d item(s) in %.3f s: %.3f s waiting for a worker process, %.3f s in items",
        batch_id[:8],
        len(items),
        time.monotonic() - began,
        pool_ready - began,
        busy,
    )


def _run_through(
    state: _State,
    pool: ProcessPool,
    payload: dict[str, Any],
    items: list[ItemRef],
    info: dict[str, Any],
    *,
    announce: bool,
) -> tuple[float, list[dict[str, Any]]]:
    """Feed the local pool a chunk at a time; send outcomes as they come, a beat when quiet;
    stop feeding when the run is stopped or the batch's time is up (the rest goes back).
    ``announce``: say the batch started once its first items are submitted (and only then
    list it among this worker's batches). Returns the seconds its items took and the
    outcomes not sent yet (the last ones)."""
    reply, batch_id, run = payload["reply"], payload["batch"], payload["run"]
    ends_at = time.monotonic() + float(payload["batch_seconds"])
    todo: deque[ItemRef] = deque(items)
    pending: list[dict[str, Any]] = []
    last_sent = time.monotonic()
    chunk, item_seconds, busy = 1, 0.0, 0.0
    while todo or pool.pending_items():
        if todo and (state.stopped(run) or time.monotonic() >= ends_at):
            why = "stopped" if state.stopped(run) else "time"
            state.publish(reply, _returned(batch_id, list(todo), why))
            todo.clear()
        # two chunks keep the pool busy; near the batch's end only one, so that at its end
        # only the chunk being run is left (the runner's budget counts one item past it)
        near_end = time.monotonic() + 2 * chunk * item_seconds >= ends_at
        while todo and pool.pending_items() < (chunk if near_end else 2 * chunk):
            pool.submit([todo.popleft() for _ in range(min(chunk, len(todo)))])
        if announce:  # before it shows as running: the runner must know it started first
            state.publish(reply, {"kind": "start", "batch": batch_id})
            state.batches[batch_id] = info
            announce, last_sent = False, time.monotonic()
        for outcome in pool.poll(0.2):
            pending.append(outcome.as_dict())
            busy += outcome.duration
            weight = 0.2 if item_seconds else 1.0
            item_seconds += weight * (outcome.duration - item_seconds)
        if pending:
            chunk = max(1, min(64, int(CHUNK_SECONDS / max(item_seconds, 1e-4))))
        now = time.monotonic()
        if not todo and not pool.pending_items():
            break  # the last outcomes go with "done"
        if (pending and now - last_sent >= SEND_EVERY) or now - last_sent >= BEAT_EVERY:
            state.publish(reply, {"kind": "outcomes", "batch": batch_id, "outcomes": pending})
            info["done"] += len(pending)
            state.items_done += len(pending)
            pending, last_sent = [], now
    return busy, pending


@contextlib.contextmanager
def _beating(state: _State, reply: str, batch_id: str) -> Iterator[None]:
    """Say the batch is alive every BEAT_EVERY seconds while the body runs."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(BEAT_EVERY):
            with contextlib.suppress(Exception):
                state.publish(reply, {"kind": "beat", "batch": batch_id})

    thread = threading.Thread(target=beat, name="mediamill-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _returned(batch_id: str, items: list[ItemRef], why: str) -> dict[str, Any]:
    return {"kind": "returned", "batch": batch_id, "items": [i.id for i in items], "why": why}


# ------------------------------------------------------------------------------ start-up
def _register(app: Celery) -> None:
    from celery.worker.control import control_command, inspect_command

    app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(run_batch)

    @control_command(args=[("run", str)], signature="<run id>")  # type: ignore[untyped-decorator]
    def mediamill_stop(_panel: Any, run: str = "", **_kw: Any) -> dict[str, str]:
        """Stop every batch of a run after its current item (cancel, pause)."""
        if _Current.state is not None and run:
            _Current.state.stop_run(run)
        return {"ok": "stopping"}

    @inspect_command(args=[("processor", str)], signature="[processor]")  # type: ignore[untyped-decorator]
    def mediamill_state(_panel: Any, processor: str | None = None, **_kw: Any) -> dict[str, Any]:
        """This worker: host, pid, concurrency, queues, processors, batches, items done."""
        state = _Current.state
        return state.describe(processor) if state is not None else {}


def _keep_logging(loglevel: str) -> None:
    """Celery sets up no logging of its own (root level, handlers, stdout redirection) when
    something receives its ``setup_logging`` signal; its loggers log at ``loglevel``."""
    from celery import signals

    def keep(**_kw: Any) -> None:
        """mediamill's logs.setup already ran."""

    signals.setup_logging.connect(keep, weak=False, dispatch_uid="mediamill-logging")
    for name in ("celery", "kombu"):
        logging.getLogger(name).setLevel(loglevel)


def check_start(config: CeleryConfig, path_map: PathMap) -> None:
    """What must hold before the worker takes a batch: a readable path map, a broker."""
    problems = path_map.problems()
    if problems:
        raise WorkerError("; ".join(problems))
    from kombu import Connection

    try:
        with Connection(config.broker_url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=2, interval_start=0.5)
    except Exception as exc:
        raise WorkerError(f"cannot reach the broker at {config.safe_broker}: {exc}") from exc


def serve(
    config: CeleryConfig,
    *,
    concurrency: int,
    queues: list[str],
    path_map: PathMap,
    loglevel: str = "WARNING",
) -> int:
    """Run the worker until it is told to stop (SIGTERM, Ctrl-C); returns its exit code.

    mediamill's logging stays as the command set it up (stderr at ``-v``, the log file at
    ``log_level``, with each batch's timings at INFO); ``loglevel`` is Celery's own."""
    check_start(config, path_map)
    _keep_logging(loglevel)
    app = make_app(config)
    name = f"mediamill-{os.getpid()}@{socket.gethostname()}"
    state = _Current.state = _State(
        config=config,
        path_map=path_map,
        concurrency=concurrency,
        queues=queues,
        processors=runnable_processors(),
        app=app,
        name=name,
    )
    _register(app)
    log.warning(
        "mediamill worker %s: broker %s, queues %s, concurrency %d, processors %s",
        name,
        config.safe_broker,
        ",".join(queues),
        concurrency,
        ",".join(state.processors),
    )
    worker = app.Worker(
        hostname=name,
        pool_cls="threads",
        concurrency=concurrency,
        queues=queues,
        prefetch_multiplier=1,
        without_mingle=True,
        without_gossip=True,
        loglevel=loglevel,
        quiet=True,
    )
    try:
        worker.start()
    finally:
        with contextlib.suppress(Exception):
            state.stop_pools()
    return int(worker.exitcode or 0)
