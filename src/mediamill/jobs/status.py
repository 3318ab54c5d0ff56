"""Job states and the one function that changes them (an atomic compare-and-set in the catalog)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from mediamill.catalog.models import Job, utcnow

if TYPE_CHECKING:
    from mediamill.catalog.db import Catalog


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

#: which states each state may be entered from
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    # resume of a paused job, or a running job whose owner died going back to the queue
    JobStatus.QUEUED: frozenset({JobStatus.PAUSED, JobStatus.RUNNING}),
    # a running job may be taken over (same state) when its owner's lease expired; a paused
    # one is resumed directly by the command that paused it
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}),
    JobStatus.PAUSED: frozenset({JobStatus.RUNNING, JobStatus.QUEUED}),
    JobStatus.COMPLETED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.PAUSED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}),
}


def transition(
    catalog: Catalog, job_id: str, to: JobStatus, *, expect: JobStatus | None = None, **values: Any
) -> bool:
    """Move a job to ``to`` if its current state allows it (and equals ``expect`` if given).

    Returns whether the change happened; a concurrent change by another process makes this
    return ``False`` instead of overwriting it. Timestamps follow the state.
    """
    allowed = ALLOWED_FROM[to] if expect is None else ALLOWED_FROM[to] & {expect}
    now = utcnow()
    if to is JobStatus.RUNNING:
        values.setdefault("heartbeat_at", now)
    if to.finished:
        values.setdefault("completed_at", now)
        values.setdefault("requested", None)
    if to in (JobStatus.PAUSED, JobStatus.QUEUED):
        values.setdefault("requested", None)
        values.setdefault("owner", None)
    with catalog.engine.begin() as conn:
        changed = conn.execute(
            update(Job)
            .where(Job.c.id == job_id, Job.c.status.in_([str(s) for s in allowed]))
            .values(status=str(to), **values)
        ).rowcount
        if changed and to is not JobStatus.RUNNING:
            catalog.release_claims(conn, job_id)  # the items it took are free again
    return bool(changed)
