"""Live job events over Server-Sent Events.

Jobs may run in any process that shares the catalog (this server's coordinator, another API
process, a `mediamill run` in a terminal), so the source of truth is the catalog: one poller
per API process reads the jobs that changed, a few times a second, and fans the changes out
to every connected client. Browsers get pushed events; nobody polls over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select

from mediamill.api.schemas import shown_selection
from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Job, utcnow
from mediamill.jobs import manager

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 256


class EventBroker:
    def __init__(self, catalog: Catalog, interval: float = 0.25) -> None:
        self.catalog = catalog
        self.interval = interval
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._primed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    async def _poll_forever(self) -> None:
        while True:
            try:
                changed = await asyncio.to_thread(self._changed_jobs)
                for job in changed:
                    self._publish(job)
            except Exception:
                log.exception("event poll failed; retrying")
            await asyncio.sleep(self.interval)

    def _publish(self, job: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a slow client loses the oldest event, never blocks the rest
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(job)

    def _changed_jobs(self) -> list[dict[str, Any]]:
        """Jobs that are live, or finished in the last minute, whose state differs from last
        time (the first poll only learns the state), and ``{"job_id", "deleted": True}`` for
        each job seen before that no longer exists."""
        recent = utcnow() - timedelta(minutes=1)
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(
                manager.with_library(select(Job)).where(
                    or_(
                        Job.c.status.in_(["queued", "running", "paused"]),
                        Job.c.completed_at > recent,
                        Job.c.created_at > recent,
                    )
                )
            ).all()
            jobs: list[dict[str, Any]] = [manager.as_dict(row, row.library) for row in rows]
            # jobs seen before and gone from this list: deleted, or finished long enough ago
            gone = self._seen.keys() - {job["job_id"] for job in jobs}
            if gone:
                kept = set(conn.scalars(select(Job.c.id).where(Job.c.id.in_(sorted(gone)))))
                for job_id in gone:
                    del self._seen[job_id]
                    if job_id not in kept:
                        jobs.append({"job_id": job_id, "deleted": True})
        first, self._primed = not self._primed, True
        out = []
        for job in jobs:
            if job.get("deleted"):
                out.append(job)
                continue
            key = (
                job["status"],
                job["processed_items"],
                job["total_items"],
                job["failed"],
                job["requested"],
                job["error"],
            )
            if self._seen.get(job["job_id"]) != key:
                self._seen[job["job_id"]] = key
                if not first:
                    out.append(job)
        return out


def format_event(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _job_event(job: dict[str, Any]) -> str:
    return format_event("job", {**job, "selection": shown_selection(job["selection"])})


async def stream(
    broker: EventBroker, initial: list[dict[str, Any]], job_id: str | None, is_disconnected: Any
) -> AsyncIterator[str]:
    """The SSE body: the current state first, then every change, with keep-alives."""
    queue = broker.subscribe()
    try:
        yield "retry: 2000\n\n"
        for job in initial:
            yield _job_event(job)
        while True:
            try:
                job = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if await is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if job_id is None or job["job_id"] == job_id:
                if job.get("deleted"):
                    yield format_event("job_deleted", {"job_id": job["job_id"]})
                else:
                    yield _job_event(job)
    finally:
        broker.unsubscribe(queue)
