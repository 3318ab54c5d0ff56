"""The celery executor: a job's batches run on ``mediamill worker`` processes on other machines.

The runner stays the coordinator and the only writer of results. Each batch is one thin Celery
task (JSON: item refs, processor name and options, where to reply); the broker holds only the
in-flight window, a few batches per worker process. Workers reply on a queue of this run's own
(start, outcomes every 0.1 s or a beat every 2 s, items handed back, done with the last
outcomes), so the runner knows which batch is alive: a batch silent for ``celery_lost_after``
seconds, or running past its budget, is given to another worker by the runner itself (Redis's
visibility timeout plays no part), and the first outcome of an item wins (a batch delivered
twice never counts twice).
Cancel and pause broadcast a stop for this run (workers check it between items) and revoke the
batches not yet started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediamill.core import ItemRef, Outcome, Work
from mediamill.executors.base import ExecutorError, ExecutorJob

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Connection, Consumer, Message, Queue

    from mediamill.settings import Settings

log = logging.getLogger(__name__)

TASK = "mediamill.run_batch"
#: the direct exchange workers reply on; each run binds a queue of its own to it
REPLY_EXCHANGE = "mediamill.replies"
#: a worker says something about each batch it runs at least this often (seconds)
BEAT_EVERY = 2.0
#: how long a batch not known to have started is waited for after the job was asked to stop:
#: a worker may have taken it just before, and what it did before seeing the stop (a file
#: renamed) must be recorded, not dropped
START_GRACE = 2.0
#: the runner asks the broker which workers are alive this often (seconds)
DISCOVER_EVERY = 5.0
#: batches in the broker per live worker process (the one it runs and the next)
PER_WORKER = 2


@dataclass(frozen=True, slots=True)
class CeleryConfig:
    """What the runner and the workers must agree on (from Settings / mediamill.toml / env)."""

    broker_url: str
    queue_prefix: str = "mediamill"
    routes: Mapping[str, str] = field(default_factory=dict)
    batch_seconds: float = 60.0
    lost_after: float = 20.0
    worker_wait: float = 30.0
    visibility_timeout: float = 7200.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryConfig:
        """The ``[executors.celery]`` section (which Settings fills from the top-level
        ``broker_url`` and ``celery_*`` settings where it says nothing)."""
        return cls.from_mapping(settings.executors.get("celery", {}))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> CeleryConfig:
        """From the executor's own settings: ``broker_url``, ``queue_prefix``, ``routes``,
        ``batch_seconds``, ``lost_after``, ``worker_wait``, ``visibility_timeout``."""
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ExecutorError(
                f"unknown [executors.celery] setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**section)

    def queue_for(self, processor: str, work: Work) -> str:
        return self.routes.get(processor) or f"{self.queue_prefix}.{work}"

    def default_queues(self) -> list[str]:
        return [f"{self.queue_prefix}.{Work.IO}", f"{self.queue_prefix}.{Work.CPU}"]

    @property
    def safe_broker(self) -> str:
        """The broker URL without its password, for logs and the API."""
        from kombu.utils.url import maybe_sanitize_url

        return str(maybe_sanitize_url(self.broker_url))


#: apps made by make_app and not closed yet, by broker URL (they share kombu's pools)
_open_apps: Counter[str] = Counter()
_apps_lock = threading.Lock()


def make_app(config: CeleryConfig) -> Celery:
    """A Celery app for either end: JSON only, late acks, no prefetch beyond the task at hand.
    Close it with :func:`close_app`."""
    from celery import Celery

    app = Celery("mediamill", broker=config.broker_url, set_as_current=False)
    with _apps_lock:
        _open_apps[config.broker_url] += 1
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # a batch is acknowledged when it ends; one lost with its worker is delivered again
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # one reserved batch per worker thread: no worker hoards batches while others idle
        worker_prefetch_multiplier=1,
        # batches are bounded in time (celery_batch_seconds + item_timeout), far below this
        broker_transport_options={"visibility_timeout": int(config.visibility_timeout)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=f"{config.queue_prefix}.{Work.IO}",
    )
    return app


def close_app(app: Celery) -> None:
    """Close an app of :func:`make_app`. Its broker connections come from kombu's pools for
    the URL, which every app of the process shares and Celery never closes: the last app of
    a broker closes them, so no broker socket outlives its use."""
    from kombu import pools
    from kombu.utils.collections import eqhash

    url = str(app.conf.broker_url)
    key = eqhash(app.connection_for_write())  # the pools' key: the URL's parts
    app.close()
    with _apps_lock:
        _open_apps[url] -= 1
        if _open_apps[url] > 0:
            return
        del _open_apps[url]
        # producers first: they hold connections of the connection pool
        idle = [dict.pop(group, key, None) for group in (pools.producers, pools.connections)]
    for pool in idle:
        if pool is not None:
            pool.force_close_all()


def reply_exchange() -> Any:
    from kombu import Exchange

    return Exchange(REPLY_EXCHANGE, type="direct", durable=False, auto_delete=False)


# ------------------------------------------------------------------------------ payload
def encode_item(item: ItemRef) -> list[Any]:
    return [
        item.id,
        item.path,
        item.kind,
        item.abspath,
        item.size,
        item.mtime_ns,
        item.fingerprint,
        dict(item.meta) if item.meta is not None else None,
        dict(item.previous) if item.previous is not None else None,
    ]


def decode_item(row: list[Any], path_map: PathMap) -> ItemRef:
    item_id, path, kind, abspath, size, mtime_ns, fingerprint, meta, previous = row
    return ItemRef(
        item_id,
        path,
        kind,
        path_map.apply(abspath) if abspath is not None else None,
        size,
        mtime_ns,
        fingerprint,
        meta,
        previous,
    )


class PathMap:
    """The runner's paths to this worker's: ``/srv/media=/mnt/nas/media``; longest prefix wins,
    and a prefix matches whole path components only (``/srv/media`` is not ``/srv/media2``)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        pairs = [(_norm(src), _norm(dst)) for src, dst in mapping.items()]
        self.pairs = sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)

    @staticmethod
    def parse(specs: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for spec in specs:
            src, sep, dst = spec.partition("=")
            if not sep or not src.startswith("/") or not dst.startswith("/"):
                raise ValueError(f"--path-map takes /SRC=/DST (absolute paths), got {spec!r}")
            out[src] = dst
        return out

    def apply(self, path: str) -> str:
        for src, dst in self.pairs:
            if path == src or path.startswith(src if src == "/" else src + "/"):
                rest = path[len(src) :].lstrip("/")
                return f"{dst.rstrip('/')}/{rest}" if rest else dst
        return path

    def problems(self) -> list[str]:
        """Why a mapped root cannot serve: missing, not a folder, not readable."""
        out = []
        for src, dst in self.pairs:
            if not os.path.exists(dst):
                out.append(f"path map {src}={dst}: {dst} does not exist on this machine")
            elif not os.path.isdir(dst):
                out.append(f"path map {src}={dst}: {dst} is not a folder")
            elif not os.access(dst, os.R_OK | os.X_OK):
                out.append(f"path map {src}={dst}: {dst} is not readable by this user")
            else:
                try:
                    with os.scandir(dst) as entries:
                        next(entries, None)
                except OSError as exc:
                    out.append(f"path map {src}={dst}: {dst} cannot be listed ({exc.strerror})")
        return out


def _norm(path: str) -> str:
    return path.rstrip("/") or "/"


# ------------------------------------------------------------------------------ workers
@dataclass(slots=True)
class WorkerInfo:
    """One live worker as it describes itself (``mediamill_state``)."""

    name: str
    host: str
    pid: int
    concurrency: int
    queues: list[str]
    processors: list[str]
    can_run: bool | None
    batches: list[dict[str, Any]]
    items_done: int
    started_at: float
    last_heartbeat: float
    path_map: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "queues": self.queues,
            "processors": self.processors,
            "current_batches": self.batches,
            "items_done": self.items_done,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat,
            "path_map": self.path_map,
        }


def live_workers(
    app: Celery, processor: str | None = None, timeout: float = 1.0
) -> list[WorkerInfo]:
    """Every mediamill worker that answers within ``timeout`` seconds."""
    replies = app.control.broadcast(
        "mediamill_state", arguments={"processor": processor}, reply=True, timeout=timeout
    )
    found = []
    for reply in replies or []:
        for name, state in reply.items():
            if isinstance(state, dict) and "pid" in state:
                found.append(WorkerInfo(name=name, **state))
    return sorted(found, key=lambda w: w.name)


def list_workers(config: CeleryConfig, timeout: float = 1.0) -> list[dict[str, Any]]:
    """The workers on ``config``'s broker, for the API and the web page."""
    app = make_app(config)
    try:
        return [w.as_dict() for w in live_workers(app, None, timeout)]
    finally:
        close_app(app)


# ------------------------------------------------------------------------------ the executor
@dataclass(slots=True)
class _Batch:
    id: str
    #: the items not reported on yet
    items: dict[int, ItemRef]
    sent_at: float
    started_at: float | None = None
    last_word: float = 0.0
    worker: str = ""
    #: when the job stopped while this batch was not known to have started (revoked then)
    abandoned_at: float | None = None


class CeleryExecutor:
    """The Executor contract over Celery; see the module docstring."""

    name = "celery"

    def __init__(self, job: ExecutorJob, settings: Mapping[str, Any] | None = None) -> None:
        config = CeleryConfig.from_mapping(settings or {})
        self.processor = job.processor
        self.options = dict(job.options)
        self.workers = max(1, job.workers)  # the live workers' concurrency once started
        self.item_timeout = item_timeout = job.item_timeout
        self.config = config
        self.job_id = job.job_id
        self.queue = config.queue_for(job.processor, job.work)
        self.run_id = uuid.uuid4().hex
        self.reply_key = f"{config.queue_prefix}.reply.{self.run_id}"
        # a batch runs at most batch_seconds, plus the item it is on, plus the time to say so
        self.budget = config.batch_seconds + item_timeout + config.lost_after
        self._waiting: deque[list[ItemRef]] = deque()
        self._batches: dict[str, _Batch] = {}
        self._inbox: list[dict[str, Any]] = []
        self._outcomes: list[Outcome] = []
        self._stopping = False
        self._app: Celery | None = None
        self._conn: Connection | None = None
        self._consumer: Consumer | None = None
        self._reply_queue: Queue | None = None
        self._capable: list[WorkerInfo] = []
        self._none_since: float | None = None
        self._discovery: threading.Thread | None = None
        self._discovery_stop = threading.Event()

    # -- Executor
    def start(self) -> None:
        if self.budget * 3 > self.config.visibility_timeout:
            raise ExecutorError(
                f"a batch may run {self.budget:g} s (celery_batch_seconds + item_timeout + "
                f"celery_lost_after): raise celery_visibility_timeout above {self.budget * 3:g}"
            )
        self._app = make_app(self.config)
        self._connect()
        self._capable = self._wait_for_capable()
        self.workers = max(1, sum(w.concurrency for w in self._capable))
        self._discovery = threading.Thread(
            target=self._discover_loop, name="mediamill-celery-discovery", daemon=True
        )
        self._discovery.start()

    def submit(self, batch: list[ItemRef]) -> None:
        self._waiting.append(batch)
        self._send_waiting()

    def poll(self, timeout: float) -> list[Outcome]:
        self._send_waiting()
        self._drain(0.0 if self._outcomes else timeout)
        self._handle_inbox()
        self._check_batches()
        self._check_capable()
        self._send_waiting()
        out, self._outcomes = self._outcomes, []
        return out

    def gather_delay(self, outcomes: Sequence[Outcome], waited: float) -> float:
        """Never: workers already send a batch's outcomes together (every 0.1 s)."""
        return 0.0

    def pending_items(self) -> int:
        waiting = sum(len(batch) for batch in self._waiting)
        return waiting + sum(len(b.items) for b in self._batches.values()) + len(self._outcomes)

    def abandon(self) -> list[int]:
        """Drop what waits here and in the broker (revoked); running batches are told to stop
        after their current item and hand the rest back."""
        self._stopping = True
        dropped = [item.id for batch in self._waiting for item in batch]
        self._waiting.clear()
        queued = [b for b in self._batches.values() if b.started_at is None]
        now = time.monotonic()
        for batch in queued:  # revoked; kept for START_GRACE in case a worker has it already
            batch.abandoned_at = now
        self._revoke([b.id for b in queued])
        self._broadcast_stop()
        return dropped

    def stop(self) -> None:
        self._discovery_stop.set()
        if self._batches and not self._stopping:  # the runner failed: nothing more is wanted
            self._revoke(list(self._batches))
            self._broadcast_stop()
        self._batches.clear()
        self._waiting.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                if self._consumer is not None:
                    self._consumer.cancel()
                if self._reply_queue is not None:
                    self._reply_queue.bind(self._conn.default_channel).delete()
            self._conn.release()
            self._conn = None
        if self._discovery is not None:
            self._discovery.join(2.0)
        if self._app is not None:
            close_app(self._app)

    # -- the broker
    def _connect(self) -> None:
        from kombu import Consumer, Queue

        assert self._app is not None
        conn = self._app.connection_for_read()
        try:
            conn.ensure_connection(max_retries=2, interval_start=0.2, interval_step=0.5)
        except Exception as exc:
            raise ExecutorError(
                f"cannot reach the Celery broker at {self.config.safe_broker}: {exc}"
            ) from exc
        self._reply_queue = Queue(
            self.reply_key,
            reply_exchange(),
            routing_key=self.reply_key,
            durable=False,
            auto_delete=True,
        )
        self._consumer = Consumer(
            conn,
            queues=[self._reply_queue],
            callbacks=[self._on_message],
            accept=["json"],
            no_ack=True,
        )
        self._consumer.consume()
        self._conn = conn

    def _on_message(self, body: Any, _message: Message) -> None:
        if isinstance(body, dict):
            self._inbox.append(body)

    def _drain(self, timeout: float) -> None:
        assert self._conn is not None
        deadline = time.monotonic() + timeout
        while True:
            # once something came, take only what is already there
            left = 0.0 if self._inbox else deadline - time.monotonic()
            try:
                self._conn.drain_events(timeout=max(0.001, left))
            except TimeoutError:
                return
            except self._conn.connection_errors as exc:
                log.warning("lost the broker (%s); reconnecting", exc)
                self._reconnect()
                return

    def _reconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.release()
        self._conn = None
        try:
            self._connect()
        except ExecutorError as exc:
            log.warning("%s; retrying", exc)

    def _send_waiting(self) -> None:
        if self._conn is None:
            self._reconnect()
            if self._conn is None:
                return
        limit = max(1, self.workers) * PER_WORKER
        while self._waiting and len(self._batches) < limit:
            self._send(self._waiting.popleft())

    def _send(self, items: list[ItemRef]) -> None:
        assert self._app is not None
        batch = _Batch(uuid.uuid4().hex, {item.id: item for item in items}, time.monotonic())
        payload = {
            "v": 1,
            "run": self.run_id,
            "job": self.job_id,
            "batch": batch.id,
            "reply": self.reply_key,
            "processor": self.processor,
            "options": self.options,
            "item_timeout": self.item_timeout,
            "batch_seconds": self.config.batch_seconds,
            "items": [encode_item(item) for item in items],
        }
        self._app.send_task(
            TASK,
            args=[payload],
            queue=self.queue,
            task_id=batch.id,
            # a copy the broker delivers again after we gave the batch to another worker
            # (Redis, after its visibility timeout) is dropped by the worker unopened
            expires=3 * self.budget,
            serializer="json",
        )
        self._batches[batch.id] = batch

    def _revoke(self, ids: list[str]) -> None:
        if ids and self._app is not None:
            try:
                self._app.control.revoke(ids)
            except Exception as exc:  # noqa: BLE001 - the batches also expire on their own
                log.warning("cannot revoke %d batch(es): %s", len(ids), exc)

    def _broadcast_stop(self) -> None:
        if self._app is not None:
            try:
                self._app.control.broadcast("mediamill_stop", arguments={"run": self.run_id})
            except Exception as exc:  # noqa: BLE001 - lost batches are given up on anyway
                log.warning("cannot tell the workers to stop: %s", exc)

    # -- what the workers say
    def _handle_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        now = time.monotonic()
        for msg in inbox:
            kind = msg.get("kind")
            if kind == "setup_failed":
                raise ExecutorError(
                    f"processor set-up failed on worker {msg.get('worker')}: {msg.get('error')}"
                )
            batch = self._batches.get(str(msg.get("batch")))
            if batch is None:
                continue  # a batch given up on, or done: its words no longer count
            batch.last_word = now
            batch.worker = str(msg.get("worker", ""))
            if kind == "start":  # again when the broker delivered it again: a fresh start
                batch.started_at = now
            elif kind in ("outcomes", "done"):  # "done" brings the batch's last ones
                for row in msg.get("outcomes", ()):
                    self._accept(batch, row)
            elif kind == "returned":
                handed = [batch.items.pop(i) for i in msg.get("items", ()) if i in batch.items]
                if handed and not self._stopping:
                    self._waiting.appendleft(handed)
            if kind == "done" or not batch.items:
                self._finish(batch)

    def _accept(self, batch: _Batch, row: dict[str, Any]) -> None:
        """An outcome as :meth:`Outcome.as_dict` sent it (its error class included, so a
        transient failure is retried by the next run as it is after a local one)."""
        if batch.items.pop(row["item_id"], None) is None:
            return  # already reported by another delivery of it
        self._outcomes.append(Outcome.from_dict({**row, "worker": batch.worker}))

    def _finish(self, batch: _Batch) -> None:
        del self._batches[batch.id]
        if batch.items and not self._stopping:  # it ended without a word on these
            self._waiting.appendleft(list(batch.items.values()))

    def _check_batches(self) -> None:
        now = time.monotonic()
        for batch in list(self._batches.values()):
            if batch.started_at is None and batch.abandoned_at is not None:
                late = now - batch.abandoned_at > START_GRACE
                why = "was revoked before it started"
            elif batch.started_at is None:
                late = now - batch.sent_at > 3 * self.budget  # expired in the broker
                why = "was not started before it expired"
            elif now - batch.last_word > self.config.lost_after:
                late, why = True, f"went silent on {batch.worker} (worker lost)"
            else:
                late = now - batch.started_at > self.budget
                why = f"overran its {self.budget:g} s on {batch.worker}"
            if late:
                revoked = batch.abandoned_at is not None and batch.started_at is None
                (log.info if revoked else log.warning)(
                    "batch %s %s: %s", batch.id[:8], why, _redo(self._stopping)
                )
                self._revoke([batch.id])
                self._finish(batch)

    # -- which workers can run this processor
    def _discover(self, timeout: float = 1.0) -> list[WorkerInfo]:
        assert self._app is not None
        return [
            w
            for w in live_workers(self._app, self.processor, timeout)
            if self.queue in w.queues and w.can_run
        ]

    def _wait_for_capable(self) -> list[WorkerInfo]:
        deadline = time.monotonic() + self.config.worker_wait
        # a broadcast waits its whole timeout for answers: ask briefly first (live workers
        # answer in milliseconds), then patiently
        timeout = 0.3
        while True:
            try:
                capable = self._discover(timeout)
            except Exception as exc:
                raise ExecutorError(
                    f"cannot ask the Celery broker at {self.config.safe_broker}: {exc}"
                ) from exc
            if capable or time.monotonic() >= deadline:
                break
            timeout = 1.0
        if not capable:
            raise ExecutorError(self._none_capable())
        return capable

    def _none_capable(self) -> str:
        return (
            f"no live mediamill worker can run {self.processor!r} from queue {self.queue!r} "
            f"(broker {self.config.safe_broker}; waited {self.config.worker_wait:g} s); "
            f"start one with: mediamill worker --queues {self.queue}"
        )

    def _discover_loop(self) -> None:
        while not self._discovery_stop.wait(DISCOVER_EVERY):
            try:
                self._capable = self._discover()
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("cannot list the Celery workers: %s", exc)

    def _check_capable(self) -> None:
        if self._capable:
            self._none_since = None
            self.workers = max(1, sum(w.concurrency for w in self._capable))
            return
        now = time.monotonic()
        if self._none_since is None:
            self._none_since = now
        elif now - self._none_since > self.config.worker_wait and self.pending_items():
            raise ExecutorError(self._none_capable())


def _redo(stopping: bool) -> str:
    return "dropped (the job is stopping)" if stopping else "its items go to another worker"
