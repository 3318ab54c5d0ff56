"""The runner: drives one job from the catalog to an executor and back.

Pending items are streamed from the catalog page by page (never the whole selection), cut
into batches, and kept in a bounded window on the executor. Outcomes are written back by this
one thread in batched transactions, together with the job's counters, so a job stopped in
any way (Ctrl-C, kill -9, power loss) resumes exactly where the catalog says it was.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mediamill.catalog.db import Catalog, Selection
from mediamill.catalog.models import utcnow
from mediamill.engine.progress import Hook, Hooks, Progress
from mediamill.engine.throttle import AdaptiveWindow, RateLimit
from mediamill.executors import base as executors
from mediamill.jobs import manager
from mediamill.jobs.status import JobStatus, transition
from mediamill.processors import base as registry
from mediamill.processors.base import FinishContext, ItemRef, Outcome, Status, describe_error

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.5  # seconds between catalog writes
FLUSH_ITEMS = 1000  # ... or this many outcomes, whichever first
PROGRESS_EVERY = 0.2
CONTROL_EVERY = 0.25
#: what a stop request turns a running job into; "requeue" is a server shutting down: the
#: job goes back to the queue for the next coordinator
STOP_STATES = {
    "cancel": JobStatus.CANCELLED,
    "pause": JobStatus.PAUSED,
    "requeue": JobStatus.QUEUED,
}


@dataclass(slots=True)
class EngineOptions:
    executor: str = "auto"
    workers: int = 2
    batch_size: int = 32
    rate: float | None = None
    limit: int | None = None
    force: bool = False
    dry_run: bool = False
    item_timeout: float = 120.0
    #: seconds: keep per-item latency near this by adapting concurrency (None: off)
    adaptive_latency: float | None = None
    #: batches in flight per worker
    window_per_worker: int = 2

    @classmethod
    def from_job(cls, options: dict[str, Any], defaults: EngineOptions) -> EngineOptions:
        values = {k: options[k] for k in manager.ENGINE_OPTIONS if options.get(k) is not None}
        merged = {f: getattr(defaults, f) for f in cls.__slots__}
        merged.update(values)
        return cls(**merged)


class Runner:
    """Runs one job to an end state: completed, failed, paused or cancelled."""

    def __init__(
        self,
        catalog: Catalog,
        job_id: str,
        *,
        defaults: EngineOptions | None = None,
        hooks: Sequence[Hook] = (),
        should_stop: Callable[[], str | None] | None = None,
        executor_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.job_id = job_id
        self.hooks = Hooks(hooks)
        self.defaults = defaults or EngineOptions()
        self.should_stop = should_stop or (lambda: None)
        #: ``{executor name: its settings}`` (``[executors.NAME]`` of mediamill.toml)
        self.executor_settings = dict(executor_settings or {})

    def run(self) -> JobStatus:
        job = manager.get_job(self.catalog, self.job_id)
        status = JobStatus(job["status"])
        if status in (JobStatus.QUEUED, JobStatus.PAUSED):
            if not transition(
                self.catalog,
                self.job_id,
                JobStatus.RUNNING,
                expect=status,
                owner=manager.this_owner(),
            ):
                return JobStatus(manager.get_job(self.catalog, self.job_id)["status"])
        elif status is not JobStatus.RUNNING:
            return status
        try:
            return self._run(job)
        except Exception as exc:
            log.exception("job %s failed", self.job_id)
            transition(self.catalog, self.job_id, JobStatus.FAILED, error=describe_error(exc))
            progress = Progress(
                self.job_id, job["processor"], job["total_items"], status=str(JobStatus.FAILED)
            )
            self.hooks.call("on_finish", progress)
            return JobStatus.FAILED

    # ------------------------------------------------------------------ the job
    def _run(self, job: dict[str, Any]) -> JobStatus:
        opts = EngineOptions.from_job(job["options"], self.defaults)
        processor_options = {
            k: v for k, v in job["options"].items() if k not in manager.ENGINE_OPTIONS
        }
        processor_options["dry_run"] = opts.dry_run
        proc_cls = registry.get(job["processor"])
        if job["options"].get("workers") is None and proc_cls.default_workers:
            opts.workers = proc_cls.default_workers
        library = self.catalog.library(job["library_id"]) if job["library_id"] else None
        if library is None:
            raise RuntimeError("the job's library no longer exists")
        sel = job["selection"] or {}
        selection = Selection(
            library_id=library.id,
            kinds=proc_cls.kinds,
            paths=tuple(sel["paths"]) if sel.get("paths") is not None else None,
            only=sel.get("only"),
        )
        first_start = job["started_at"] is None
        version = registry.create(proc_cls.name, processor_options).result_version()
        pending = self.catalog.count_pending(
            selection, proc_cls.name, version, force=opts.force, job_id=self.job_id
        )
        summary = dict(job["summary"] or {})
        if first_start:
            in_selection = self.catalog.count_selection(selection)
            fresh = max(0, in_selection - pending) if selection.only is None else 0
            to_do = pending if opts.limit is None else min(pending, opts.limit)
            summary["fresh_skipped"] = fresh
            counters = {"processed": fresh, "ok": 0, "failed": 0, "skipped": fresh}
            total = fresh + to_do
            self._save(
                started_at=utcnow(),
                total_items=total,
                processed_items=fresh,
                skipped=fresh,
                summary=summary,
            )
        else:
            counters = {
                "processed": job["processed_items"],
                "ok": job["succeeded"],
                "failed": job["failed"],
                "skipped": job["skipped"],
            }
            done_here = counters["processed"] - summary.get("fresh_skipped", 0)
            to_do = pending if opts.limit is None else max(0, min(pending, opts.limit - done_here))
            total = counters["processed"] + to_do
            self._save(total_items=total)

        progress = Progress(
            self.job_id,
            proc_cls.name,
            total,
            counters["processed"],
            counters["ok"],
            counters["failed"],
            counters["skipped"],
            batch_size=opts.batch_size,
        )
        self.hooks.call("on_start", progress)

        items: Iterator[ItemRef] = self.catalog.iter_pending(
            selection,
            proc_cls.name,
            version,
            root=library.root,
            force=opts.force,
            job_id=self.job_id,
            with_previous=proc_cls.wants_previous,
        )
        items = itertools.islice(items, to_do)
        actions: Counter[str] = Counter()

        if opts.dry_run and not proc_cls.dry_run_processes:
            would = [item.path for item in items]
            summary.update(dry_run=True, would_process=len(would), sample=would[:50])
            progress.status = str(JobStatus.COMPLETED)
            transition(
                self.catalog,
                self.job_id,
                JobStatus.COMPLETED,
                summary=summary,
                total_items=counters["processed"] + len(would),
            )
            self.hooks.call("on_finish", progress)
            return JobStatus.COMPLETED

        # made and started at the first batch: an unchanged re-run starts no pool
        executor: executors.Executor | None = None
        job_spec = executors.ExecutorJob(
            proc_cls.name,
            processor_options,
            work=proc_cls.work,
            workers=opts.workers,
            item_timeout=opts.item_timeout,
        )
        batch_size = opts.batch_size
        if job["options"].get("batch_size") is None and proc_cls.batch_size:
            batch_size = proc_cls.batch_size
        # at least ~4 batches per worker, so a short job still keeps every worker busy
        batch_size = max(1, min(batch_size, -(-to_do // (opts.workers * 4))))
        if opts.rate:
            batch_size = max(1, min(batch_size, int(opts.rate / max(1, opts.workers))))
        batches = _batched(items, batch_size)
        rate_limit = RateLimit(opts.rate)
        window = AdaptiveWindow(opts.workers * opts.window_per_worker, opts.adaptive_latency)
        in_flight: dict[int, ItemRef] = {}
        buffer: list[Outcome] = []
        busy: dict[str, float] = defaultdict(float)
        started = time.monotonic()
        last_flush = last_progress = last_control = started
        rate_window: list[tuple[float, int]] = [(started, counters["processed"])]
        stop_reason: str | None = None
        exhausted = False
        next_batch: list[ItemRef] | None = None

        def flush(force_write: bool = False) -> None:
            nonlocal last_flush
            if not buffer and not force_write:
                return
            values = {
                "processed_items": counters["processed"],
                "succeeded": counters["ok"],
                "failed": counters["failed"],
                "skipped": counters["skipped"],
                "rate": progress.rate,
                "eta_seconds": progress.eta_seconds,
                "heartbeat_at": utcnow(),
            }
            if opts.dry_run:
                self.catalog.write_outcomes(
                    [],
                    processor=proc_cls.name,
                    version=version,
                    job_id=self.job_id,
                    fingerprints={},
                    job_values=values,
                )
            else:
                fps = {o.item_id: in_flight[o.item_id].fingerprint for o in buffer}
                refused = self.catalog.write_outcomes(
                    buffer,
                    processor=proc_cls.name,
                    version=version,
                    job_id=self.job_id,
                    fingerprints=fps,
                    job_values=values,
                )
                # an item update the writer refused turned its outcome into a failure
                counters["ok"] -= len(refused)
                counters["failed"] += len(refused)
            for o in buffer:
                in_flight.pop(o.item_id, None)
            buffer.clear()
            last_flush = time.monotonic()

        try:
            while True:
                now = time.monotonic()
                if now - last_control >= CONTROL_EVERY and stop_reason is None:
                    last_control = now
                    stop_reason = self.should_stop() or manager.heartbeat(self.catalog, self.job_id)
                    if stop_reason and executor is not None:
                        for item_id in executor.abandon():
                            in_flight.pop(item_id, None)
                # fill the window
                while stop_reason is None and not exhausted:
                    outstanding = 0 if executor is None else executor.pending_items()
                    if outstanding >= window.size * batch_size:
                        break
                    if next_batch is None:
                        next_batch = next(batches, None)
                        if next_batch is None:
                            exhausted = True
                            break
                    if rate_limit.delay(len(next_batch)) > 0:
                        break
                    for item in next_batch:
                        in_flight[item.id] = item
                    if executor is None:
                        executor = executors.create(opts.executor, job_spec, self.executor_settings)
                        executor.start()
                    executor.submit(next_batch)
                    next_batch = None
                if executor is None:  # nothing submitted yet: done, or held by --rate
                    if exhausted or stop_reason:
                        break
                    time.sleep(0.05)
                    continue
                if executor.pending_items() == 0 and (exhausted or stop_reason):
                    break
                wait = 0.05 if opts.rate else 0.1
                polled = time.monotonic()
                outcomes = executor.poll(wait)
                polled = time.monotonic() - polled
                for outcome in outcomes:
                    done_item = in_flight.get(outcome.item_id)
                    if done_item is None:
                        continue
                    counters["processed"] += 1
                    key = {"ok": "ok", "failed": "failed", "skipped": "skipped"}[outcome.status]
                    counters[key] += 1
                    busy[outcome.worker] += outcome.duration
                    window.observe(outcome.duration)
                    if opts.dry_run:
                        in_flight.pop(outcome.item_id, None)
                        if outcome.data and "action" in outcome.data:
                            actions[str(outcome.data["action"])] += 1
                    else:
                        buffer.append(outcome)
                    self.hooks.call("on_outcome", done_item, outcome)
                # the executor's own cadence; a rate limit needs the runner back in time
                delay = 0.0 if opts.rate else executor.gather_delay(outcomes, polled)
                if delay > 0:
                    time.sleep(delay)
                now = time.monotonic()
                if now - last_progress >= PROGRESS_EVERY:
                    last_progress = now
                    self._update_progress(
                        progress, counters, total, started, now, busy, rate_window
                    )
                    progress.in_flight = executor.pending_items()
                    self.hooks.call("on_progress", progress)
                if len(buffer) >= FLUSH_ITEMS or now - last_flush >= FLUSH_EVERY:
                    flush(force_write=True)
        finally:
            flush()
            if executor is not None:
                executor.stop()

        now = time.monotonic()
        self._update_progress(progress, counters, total, started, now, busy, rate_window)
        if opts.dry_run:
            summary.update(dry_run=True, actions=dict(actions))
        if stop_reason in STOP_STATES:
            end = STOP_STATES[stop_reason]
            flush(force_write=True)
            transition(self.catalog, self.job_id, end, summary=summary)
            progress.status = str(end)
            self.hooks.call("on_finish", progress)
            return end

        processor = registry.create(proc_cls.name, processor_options)
        ctx = FinishContext(
            library_root=library.root,
            job_id=self.job_id,
            options=processor_options,
            dry_run=opts.dry_run,
            counters=dict(counters),
            catalog=self.catalog,
            library_id=library.id,
        )
        finished = processor.finish(ctx)
        if finished:
            summary["finish"] = finished
        summary["elapsed"] = round(now - started, 3)
        transition(
            self.catalog,
            self.job_id,
            JobStatus.COMPLETED,
            summary=summary,
            processed_items=counters["processed"],
            succeeded=counters["ok"],
            failed=counters["failed"],
            skipped=counters["skipped"],
            rate=progress.rate,
            eta_seconds=0.0,
        )
        progress.status = str(JobStatus.COMPLETED)
        self.hooks.call("on_finish", progress)
        return JobStatus.COMPLETED

    def _save(self, **values: Any) -> None:
        self.catalog.update_job(self.job_id, **values)

    @staticmethod
    def _update_progress(
        progress: Progress,
        counters: dict[str, int],
        total: int,
        started: float,
        now: float,
        busy: dict[str, float],
        rate_window: list[tuple[float, int]],
    ) -> None:
        progress.processed, progress.ok = counters["processed"], counters["ok"]
        progress.failed, progress.skipped = counters["failed"], counters["skipped"]
        progress.elapsed = now - started
        # rate over the last ~10 s, so the ETA follows the current speed
        rate_window.append((now, counters["processed"]))
        while len(rate_window) > 2 and now - rate_window[0][0] > 10:
            rate_window.pop(0)
        t0, n0 = rate_window[0]
        progress.rate = (counters["processed"] - n0) / (now - t0) if now > t0 else 0.0
        left = max(0, total - counters["processed"])
        progress.eta_seconds = left / progress.rate if progress.rate > 0 else None
        elapsed = max(progress.elapsed, 1e-9)
        progress.busy = {w: round(min(1.0, s / elapsed), 3) for w, s in sorted(busy.items())}


def _batched(items: Iterator[ItemRef], size: int) -> Iterator[list[ItemRef]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


__all__ = ["EngineOptions", "Runner", "Status"]
