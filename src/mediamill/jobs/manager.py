"""Persistent jobs: create, read, list, ask to pause/cancel/resume, delete, and take over the
jobs of dead processes. Every state change goes through :func:`jobs.status.transition`."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, delete, func, insert, select, update

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Job, Library, Result, utcnow
from mediamill.jobs.status import FINISHED, JobStatus, transition
from mediamill.redact import job_secret_names, strip_secrets


class JobNotFound(LookupError):
    pass


class InvalidRequest(ValueError):
    pass


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``host:pid`` lives (only knowable on this host)."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def create_job(
    catalog: Catalog,
    processor: str,
    library_id: int | None,
    *,
    selection: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    priority: int = 0,
    status: JobStatus = JobStatus.QUEUED,
    summary: Mapping[str, Any] | None = None,
) -> str:
    """A new job. Created ``running`` (owned by this process) when the caller runs it now, so
    no coordinator sharing the catalog can claim it first; ``queued`` otherwise. Secret
    options are not stored (``mediamill.redact``). ``summary`` starts its summary (e.g.
    who queued it)."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    owned = {"owner": this_owner(), "heartbeat_at": now} if status is JobStatus.RUNNING else {}
    with catalog.engine.begin() as conn:
        conn.execute(
            insert(Job).values(
                id=job_id,
                processor=processor,
                library_id=library_id,
                selection=dict(selection or {}),
                options=strip_secrets(dict(options or {}), job_secret_names(processor)),
                priority=priority,
                status=str(status),
                created_at=now,
                summary=dict(summary) if summary else None,
                **owned,
            )
        )
    return job_id


def as_dict(job: Row[Any], library: str | None, rate_fallback: float = 0.0) -> dict[str, Any]:
    """A job's row (every column of ``jobs``) as the API and the CLI show it."""
    done = job.processed_items
    total = job.total_items
    return {
        "job_id": job.id,
        "status": job.status,
        "processor": job.processor,
        "library": library,
        "library_id": job.library_id,
        "selection": job.selection,
        "options": strip_secrets(job.options or {}, job_secret_names(job.processor)),
        "priority": job.priority,
        "total_items": total,
        "processed_items": done,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "skipped": job.skipped,
        "progress": 1.0 if job.status == JobStatus.COMPLETED else (done / total if total else 0.0),
        "rate": job.rate or rate_fallback,
        "eta_seconds": job.eta_seconds,
        "error": job.error,
        "summary": job.summary,
        "requested": job.requested,
        "owner": job.owner,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
        "heartbeat_at": _iso(job.heartbeat_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def with_library(query: Select[Any]) -> Select[Any]:
    """``query`` on jobs, plus the name of each job's library as ``library`` (``None`` once
    the library is deleted)."""
    return query.add_columns(Library.c.name.label("library")).outerjoin(
        Library, Library.c.id == Job.c.library_id
    )


def get_job(catalog: Catalog, job_id: str) -> dict[str, Any]:
    with catalog.engine.connect() as conn:
        row = conn.execute(with_library(select(Job)).where(Job.c.id == job_id)).first()
    if row is None:
        raise JobNotFound(job_id)
    return as_dict(row, row.library)


def list_jobs(
    catalog: Catalog, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    q = with_library(select(Job))
    count = select(func.count()).select_from(Job)
    if status:
        q = q.where(Job.c.status == status)
        count = count.where(Job.c.status == status)
    with catalog.engine.connect() as conn:
        rows = conn.execute(q.order_by(Job.c.created_at.desc()).limit(limit).offset(offset)).all()
        total = int(conn.execute(count).scalar_one())
    return [as_dict(r, r.library) for r in rows], total


def request(catalog: Catalog, job_id: str, action: str) -> dict[str, Any]:
    """Ask for ``pause``, ``cancel`` or ``resume``; queued/paused jobs change at once. A running
    job's runner sees the request within a quarter of a second, stops handing out work and
    changes state once the items already in progress finish (each worker finishes the item it
    is on; queued batches are dropped and stay pending)."""
    job = get_job(catalog, job_id)
    status = JobStatus(job["status"])
    if action == "resume":
        if status is not JobStatus.PAUSED:
            raise InvalidRequest(f"job is {status}, only a paused job can be resumed")
        transition(catalog, job_id, JobStatus.QUEUED, expect=JobStatus.PAUSED)
    elif action in ("pause", "cancel"):
        if status in FINISHED:
            raise InvalidRequest(f"job is already {status}")
        target = JobStatus.PAUSED if action == "pause" else JobStatus.CANCELLED
        if status is JobStatus.RUNNING:
            with catalog.engine.begin() as conn:
                conn.execute(
                    update(Job)
                    .where(Job.c.id == job_id, Job.c.status == "running")
                    .values(requested=action)
                )
        elif status is JobStatus.PAUSED and action == "pause":
            pass
        elif not transition(catalog, job_id, target, expect=status):
            # it started in between: ask its runner instead
            with catalog.engine.begin() as conn:
                conn.execute(update(Job).where(Job.c.id == job_id).values(requested=action))
    else:
        raise InvalidRequest(f"unknown action {action!r}")
    return get_job(catalog, job_id)


def delete_job(catalog: Catalog, job_id: str) -> None:
    """Delete a finished or paused job's record (results stay in the catalog)."""
    job = get_job(catalog, job_id)
    if job["status"] in (JobStatus.RUNNING, JobStatus.QUEUED):
        raise InvalidRequest(f"job is {job['status']}: cancel it first")
    with catalog.engine.begin() as conn:
        conn.execute(update(Result).where(Result.c.job_id == job_id).values(job_id=None))
        conn.execute(delete(Job).where(Job.c.id == job_id))


#: what :func:`heartbeat` answers when another process owns the job now
LOST = "lost"


def renew_lease(catalog: Catalog, job_id: str, owner: str) -> bool:
    """Renew the lease of ``owner`` on a running job; ``False`` when it is no longer its own."""
    with catalog.engine.begin() as conn:
        renewed = conn.execute(
            update(Job)
            .where(Job.c.id == job_id, Job.c.owner == owner, Job.c.status == "running")
            .values(heartbeat_at=utcnow())
        ).rowcount
    return bool(renewed)


def heartbeat(catalog: Catalog, job_id: str, owner: str) -> str | None:
    """Renew ``owner``'s lease; return what a user requested (``pause``/``cancel``),
    :data:`LOST` when the job is no longer ``owner``'s to run, or ``None``.
    A SQLite catalog file deleted or replaced meanwhile raises ``CatalogError``."""
    catalog.check_file()
    if not renew_lease(catalog, job_id, owner):
        return LOST
    with catalog.engine.connect() as conn:
        return conn.execute(select(Job.c.requested).where(Job.c.id == job_id)).scalar()


def stale_running_jobs(catalog: Catalog, lease_seconds: float) -> list[str]:
    """Running jobs whose owner is dead (same host) or whose lease expired."""
    limit = utcnow() - timedelta(seconds=lease_seconds)
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(Job.c.id, Job.c.owner, Job.c.heartbeat_at).where(Job.c.status == "running")
        ).all()
    return [
        job_id
        for job_id, owner, beat in rows
        if owner != this_owner() and (not owner_alive(owner) or beat is None or beat < limit)
    ]


def take_over(catalog: Catalog, job_id: str, **values: Any) -> bool:
    """Make a paused or stale running job this process's (with ``values``), unless another
    process took it first: the update holds only while its owner is the one read here."""
    with catalog.engine.connect() as conn:
        old = conn.execute(select(Job.c.owner).where(Job.c.id == job_id)).scalar()
    with catalog.engine.begin() as conn:
        taken = conn.execute(
            update(Job)
            .where(
                Job.c.id == job_id,
                Job.c.status.in_(["running", "paused"]),
                Job.c.owner.is_(None) if old is None else Job.c.owner == old,
            )
            .values(owner=this_owner(), heartbeat_at=utcnow(), **values)
        ).rowcount
    return bool(taken)


def claim_next(catalog: Catalog, lease_seconds: float) -> str | None:
    """Claim one job for this process: a queued one (priority, then age) or a stale running
    one; the conditional update makes two coordinators never claim the same job."""
    owner = this_owner()
    for job_id in stale_running_jobs(catalog, lease_seconds):
        if take_over(catalog, job_id):
            return job_id
    with catalog.engine.connect() as conn:
        candidates: Sequence[str] = (
            conn.execute(
                select(Job.c.id)
                .where(Job.c.status == "queued")
                .order_by(Job.c.priority.desc(), Job.c.created_at)
                .limit(5)
            )
            .scalars()
            .all()
        )
    for job_id in candidates:
        if transition(catalog, job_id, JobStatus.RUNNING, expect=JobStatus.QUEUED, owner=owner):
            return job_id
    return None


def cleanup_old(catalog: Catalog, retention_days: float) -> int:
    """Delete finished job records older than ``retention_days`` (results stay)."""
    limit = utcnow() - timedelta(days=retention_days)
    with catalog.engine.begin() as conn:
        old = (
            conn.execute(
                select(Job.c.id).where(
                    Job.c.status.in_([str(s) for s in FINISHED]), Job.c.completed_at < limit
                )
            )
            .scalars()
            .all()
        )
        if old:
            conn.execute(update(Result).where(Result.c.job_id.in_(old)).values(job_id=None))
            conn.execute(delete(Job).where(Job.c.id.in_(old)))
    return len(old)
