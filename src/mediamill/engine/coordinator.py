"""The coordinator: claims queued jobs (priority, then age) and runs up to N at once, takes
over jobs whose owner died, and cleans up old job records. One per API process; any number
of them can share one catalog (claims are atomic compare-and-set updates)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from mediamill.catalog.db import Catalog
from mediamill.engine.progress import Hook
from mediamill.engine.runner import run_job
from mediamill.jobs import manager
from mediamill.settings import Settings

log = logging.getLogger(__name__)

CLEANUP_EVERY = 3600.0


class Coordinator:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        hooks: Callable[[], Sequence[Hook]] = tuple,
        poll_seconds: float = 0.5,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.hooks = hooks
        self.poll_seconds = poll_seconds
        self._running: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_cleanup = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="mediamill-coordinator", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; running jobs go back to the queue after their items in flight."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("coordinator tick failed; retrying")
            self._stopping.wait(self.poll_seconds)

    def _tick(self) -> None:
        for job_id, thread in list(self._running.items()):
            if not thread.is_alive():
                del self._running[job_id]
        now = time.monotonic()
        if now - self._last_cleanup > CLEANUP_EVERY:
            self._last_cleanup = now
            removed = manager.cleanup_old(self.catalog, self.settings.job_retention_days)
            if removed:
                log.info("removed %d old job record(s)", removed)
        while len(self._running) < self.settings.max_running_jobs:
            claimed = manager.claim_next(self.catalog, self.settings.lease_seconds)
            if claimed is None:
                return
            job_id = claimed
            log.info("running job %s", job_id)
            thread = threading.Thread(
                target=self._run, args=(job_id,), name=f"mediamill-job-{job_id[:8]}", daemon=True
            )
            self._running[job_id] = thread
            thread.start()

    def _run(self, job_id: str) -> None:
        run_job(
            self.catalog,
            job_id,
            settings=self.settings,
            hooks=self.hooks(),
            should_stop=lambda: "requeue" if self._stopping.is_set() else None,
        )
