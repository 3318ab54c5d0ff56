"""The runner: drives one job from the catalog to an executor and back.

It joins the stages of ``stages.py`` (read pending → batch → throttle → dispatch → gather)
to the single writer (``writer.py``), and obeys pause, cancel and a server's shutdown. See
docs/architecture.md for the picture.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mediamill.catalog.db import Catalog, LibraryRef, Selection
from mediamill.catalog.models import utcnow
from mediamill.core import ItemRef, describe_error
from mediamill.engine.plan import EngineOptions, RunPlan, engine_defaults, resolve
from mediamill.engine.progress import Hook, Hooks, Progress
from mediamill.engine.stages import (
    POLL_WAIT,
    POLL_WAIT_RATED,
    Dispatcher,
    Meter,
    batch_size_for,
    batched,
)
from mediamill.engine.throttle import AdaptiveWindow, RateLimit
from mediamill.engine.writer import Counters, Writer
from mediamill.executors import base as executors
from mediamill.jobs import manager
from mediamill.jobs.status import JobStatus, transition
from mediamill.processors import base as registry
from mediamill.processors.base import FinishContext, Processor

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.2
CONTROL_EVERY = 0.25
#: how often the lease is renewed in the background, through the phases that do not loop
#: (counting a big library, executors starting up, a processor's ``finish``); well inside
#: the lease (30 s by default), so a live runner's job is never taken over
LEASE_EVERY = 5.0
#: what a stop request turns a running job into; "requeue" is a server shutting down: the
#: job goes back to the queue for the next coordinator
STOP_STATES = {
    "cancel": JobStatus.CANCELLED,
    "pause": JobStatus.PAUSED,
    "requeue": JobStatus.QUEUED,
}


@dataclass(slots=True)
class _Job:
    """One job's settled parts: its plan, its items and where it stands."""

    plan: RunPlan
    library: LibraryRef
    batch_size: int
    counters: Counters
    summary: dict[str, Any]
    to_do: int
    total: int

    @property
    def opts(self) -> EngineOptions:
        return self.plan.engine

    @property
    def processor(self) -> type[Processor]:
        return self.plan.processor

    @property
    def processor_options(self) -> dict[str, Any]:
        return self.plan.processor_options


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
        secrets: Any = None,
        flags: Collection[str] = (),
    ) -> None:
        self.catalog = catalog
        self.job_id = job_id
        self.hooks = Hooks(hooks)
        self.defaults = defaults or EngineOptions()
        self.should_stop = should_stop or (lambda: None)
        #: ``{executor name: its settings}`` (``[executors.NAME]`` of mediamill.toml)
        self.executor_settings = dict(executor_settings or {})
        #: the secret options this process was given for the job (never stored with it)
        self.secrets = secrets
        #: who runs the job (``host:pid``, as its row says): the lease is renewed in its name
        self.owner = manager.this_owner()
        self.lease: _Lease | None = None
        #: the options this process was given on its command line (their origin is "flag")
        self.flags = frozenset(flags)

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
        # who the row names as its runner: this process when it just took the job, else the
        # coordinator that claimed it for us
        claimed = job["owner"] if status is JobStatus.RUNNING else None
        owner = claimed or manager.this_owner()
        try:
            with _Lease(self.catalog, self.job_id, owner) as lease:
                self.owner, self.lease = owner, lease
                status = self._run(job)
            if lease.lost:
                log.warning("job %s: another process took it over; this one stopped", self.job_id)
            return status
        except Exception as exc:
            log.exception("job %s failed", self.job_id)
            transition(self.catalog, self.job_id, JobStatus.FAILED, error=describe_error(exc))
            progress = Progress(
                self.job_id, job["processor"], job["total_items"], status=str(JobStatus.FAILED)
            )
            self.hooks.call("on_finish", progress)
            return JobStatus.FAILED

    # ------------------------------------------------------------------ the job
    def _run(self, record: dict[str, Any]) -> JobStatus:
        job = self._settle(record)
        progress = Progress(
            self.job_id,
            job.processor.name,
            job.total,
            job.counters.processed,
            job.counters.ok,
            job.counters.failed,
            job.counters.skipped,
            batch_size=job.opts.batch_size,
        )
        self.hooks.call("on_start", progress)
        items = itertools.islice(self._read_pending(job), job.to_do)
        if job.opts.dry_run and not job.processor.dry_run_processes:
            return self._list_only(job, items, progress)
        meter = Meter(progress)
        stop_reason, actions = self._execute(job, items, meter)
        meter.update(job.counters)
        if job.opts.dry_run:
            job.summary.update(dry_run=True, actions=dict(actions))
        if stop_reason == manager.LOST:  # its new owner ends it: its state is not ours
            return JobStatus.RUNNING
        if stop_reason in STOP_STATES:
            return self._end(STOP_STATES[stop_reason], job, progress, summary=job.summary)
        return self._complete(job, progress, meter)

    def _settle(self, record: dict[str, Any]) -> _Job:
        """The job's plan (its options resolved once), and its counters: counted afresh on
        its first start (items already fresh count as skipped), else as stored."""
        library = self.catalog.library(record["library_id"]) if record["library_id"] else None
        if library is None:
            raise RuntimeError("the job's library no longer exists")
        plan = resolve(
            record, library, defaults=self.defaults, secrets=self.secrets, flags=self.flags
        )
        opts = plan.engine
        pending = self.catalog.count_pending(
            plan.selection, plan.processor.name, plan.version, force=opts.force, job_id=self.job_id
        )
        counters, summary, to_do = self._count(record, opts, plan.selection, pending)
        summary["options_from"] = plan.origins
        return _Job(
            plan=plan,
            library=library,
            batch_size=batch_size_for(
                asked=opts.batch_size, to_do=to_do, workers=opts.workers, rate=opts.rate
            ),
            counters=counters,
            summary=summary,
            to_do=to_do,
            total=counters.processed + to_do,
        )

    def _count(
        self, record: dict[str, Any], opts: EngineOptions, selection: Selection, pending: int
    ) -> tuple[Counters, dict[str, Any], int]:
        summary = dict(record["summary"] or {})
        if record["started_at"] is None:
            in_selection = self.catalog.count_selection(selection)
            fresh = max(0, in_selection - pending) if selection.only is None else 0
            to_do = pending if opts.limit is None else min(pending, opts.limit)
            summary["fresh_skipped"] = fresh
            counters = Counters(processed=fresh, skipped=fresh)
            self._save(
                started_at=utcnow(),
                total_items=fresh + to_do,
                processed_items=fresh,
                skipped=fresh,
                summary=summary,
            )
            return counters, summary, to_do
        counters = Counters(
            record["processed_items"], record["succeeded"], record["failed"], record["skipped"]
        )
        done_here = counters.processed - summary.get("fresh_skipped", 0)
        to_do = pending if opts.limit is None else max(0, min(pending, opts.limit - done_here))
        self._save(total_items=counters.processed + to_do)
        return counters, summary, to_do

    def _read_pending(self, job: _Job) -> Iterator[ItemRef]:
        """Stage 1: the items that still need the processor, a catalog page at a time."""
        return self.catalog.iter_pending(
            job.plan.selection,
            job.processor.name,
            job.plan.version,
            root=job.library.root,
            force=job.opts.force,
            job_id=self.job_id,
            with_previous=job.processor.wants_previous,
        )

    def _list_only(self, job: _Job, items: Iterator[ItemRef], progress: Progress) -> JobStatus:
        """A dry run of a processor that cannot describe its changes: list what it would
        process."""
        would = [item.path for item in items]
        job.summary.update(dry_run=True, would_process=len(would), sample=would[:50])
        return self._end(
            JobStatus.COMPLETED,
            job,
            progress,
            summary=job.summary,
            total_items=job.counters.processed + len(would),
        )

    def _execute(
        self, job: _Job, items: Iterator[ItemRef], meter: Meter
    ) -> tuple[str | None, Counter[str]]:
        """Stages 2-6 until the items run out or a stop is asked for; returns the stop
        reason and, in a dry run, the actions the processor reported."""
        opts = job.opts
        spec = executors.ExecutorJob(
            job.processor.name,
            job.processor_options,
            work=job.processor.work,
            workers=opts.workers,
            item_timeout=opts.item_timeout,
            job_id=self.job_id,
        )
        dispatcher = Dispatcher(
            lambda: executors.create(opts.executor, spec, self.executor_settings),
            batched(items, job.batch_size),
            batch_size=job.batch_size,
            window=AdaptiveWindow(opts.workers * opts.window_per_worker, opts.adaptive_latency),
            rate_limit=RateLimit(opts.rate),
            per_worker=opts.window_per_worker,
        )
        writer = Writer(
            self.catalog,
            job_id=self.job_id,
            processor=job.processor.name,
            version=job.plan.version,
            dry_run=opts.dry_run,
            counters=job.counters,
            extra_values=lambda: dict(meter.job_values()),
        )
        actions: Counter[str] = Counter()
        stop_reason: str | None = None
        try:
            stop_reason = self._loop(job, dispatcher, writer, meter, actions)
        finally:
            try:
                if writer.pending:  # what was done is kept, even when the job fails
                    writer.flush()
            finally:
                dispatcher.stop()  # never left running, even when the catalog fails
        if stop_reason is not None:
            writer.flush()
        return stop_reason, actions

    def _loop(
        self,
        job: _Job,
        dispatcher: Dispatcher,
        writer: Writer,
        meter: Meter,
        actions: Counter[str],
    ) -> str | None:
        wait = POLL_WAIT_RATED if job.opts.rate else POLL_WAIT
        stop_reason: str | None = None
        last_control = last_progress = time.monotonic()
        while True:
            now = time.monotonic()
            if stop_reason is None and now - last_control >= CONTROL_EVERY:
                last_control = now
                stop_reason = self.should_stop() or manager.heartbeat(
                    self.catalog, self.job_id, self.owner
                )
                if stop_reason:
                    dispatcher.abandon()
            if stop_reason is None:
                dispatcher.fill()
            if dispatcher.pending() == 0 and (dispatcher.exhausted or stop_reason):
                return stop_reason
            done, delay = dispatcher.gather(wait)
            for item, outcome in done:
                writer.add(item, outcome)
                meter.observe(outcome)
                if job.opts.dry_run and outcome.data and "action" in outcome.data:
                    actions[str(outcome.data["action"])] += 1
                self.hooks.call("on_outcome", item, outcome)
            if delay > 0 and not job.opts.rate:  # a rate limit needs the runner back in time
                time.sleep(delay)
            if time.monotonic() - last_progress >= PROGRESS_EVERY:
                last_progress = time.monotonic()
                progress = meter.update(job.counters)
                progress.in_flight = dispatcher.pending()
                self.hooks.call("on_progress", progress)
            if writer.due():
                writer.flush()

    def _complete(self, job: _Job, progress: Progress, meter: Meter) -> JobStatus:
        """The processor's ``finish`` (once per job, here), then the job completes."""
        ctx = FinishContext(
            library_root=job.library.root,
            job_id=self.job_id,
            options=job.processor_options,
            dry_run=job.opts.dry_run,
            counters={
                "processed": job.counters.processed,
                "ok": job.counters.ok,
                "failed": job.counters.failed,
                "skipped": job.counters.skipped,
            },
            catalog=self.catalog,
            library_id=job.library.id,
        )
        finished = registry.create(job.processor.name, job.processor_options).finish(ctx)
        if finished:
            job.summary["finish"] = finished
        job.summary["elapsed"] = round(progress.elapsed, 3)
        if job.counters.failed:  # which of them the next run tries again
            job.summary["failures"] = self.catalog.failure_classes(self.job_id)
        return self._end(
            JobStatus.COMPLETED,
            job,
            progress,
            summary=job.summary,
            **job.counters.as_job_values(),
            rate=progress.rate,
            eta_seconds=0.0,
        )

    def _end(self, status: JobStatus, job: _Job, progress: Progress, **values: Any) -> JobStatus:
        if self.lease is not None and self.lease.lost:
            return JobStatus.RUNNING  # its new owner ends it
        transition(self.catalog, self.job_id, status, **values)
        progress.status = str(status)
        self.hooks.call("on_finish", progress)
        return status

    def _save(self, **values: Any) -> None:
        self.catalog.update_job(self.job_id, **values)


class _Lease:
    """Renews a running job's lease every :data:`LEASE_EVERY` seconds in a thread of its own
    while the job runs; ``lost`` turns true when another process owns the job now."""

    def __init__(self, catalog: Catalog, job_id: str, owner: str) -> None:
        self.catalog, self.job_id, self.owner = catalog, job_id, owner
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._done.wait(LEASE_EVERY):
            try:
                if not manager.renew_lease(self.catalog, self.job_id, self.owner):
                    self.lost = True
                    return
            except Exception:  # a busy catalog: the next renewal, or the runner's own, will do
                log.debug("renewing the lease of job %s failed", self.job_id, exc_info=True)


def run_job(
    catalog: Catalog,
    job_id: str,
    *,
    settings: Any,
    hooks: Sequence[Hook] = (),
    should_stop: Callable[[], str | None] | None = None,
    secrets: Any = None,
    flags: Collection[str] = (),
) -> JobStatus:
    """Run a job to an end state in this process under ``settings``: how every entry point
    runs a job (the CLI and Python through ``ops.run_job``, the server's coordinator).
    ``flags``: the options given on this process's command line."""
    return Runner(
        catalog,
        job_id,
        defaults=engine_defaults(settings),
        hooks=hooks,
        should_stop=should_stop,
        executor_settings=settings.executors,
        secrets=secrets,
        flags=flags,
    ).run()


__all__ = ["EngineOptions", "Runner", "run_job"]
