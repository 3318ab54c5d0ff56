"""The job queue on every database: claim order, leases, takeover and record clean-up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Job, utcnow
from mediamill.jobs import manager
from mediamill.jobs.status import JobStatus, transition

ECHO = "tests.helpers.processors:Echo"


def test_jobs_are_claimed_by_priority_then_age_and_only_once(catalog: Catalog) -> None:
    low = manager.create_job(catalog, ECHO, None, priority=0)
    high = manager.create_job(catalog, ECHO, None, priority=5)
    low_later = manager.create_job(catalog, ECHO, None, priority=0)
    assert manager.claim_next(catalog, lease_seconds=30) == high
    assert manager.claim_next(catalog, lease_seconds=30) == low
    assert manager.claim_next(catalog, lease_seconds=30) == low_later
    assert manager.claim_next(catalog, lease_seconds=30) is None, "nothing is claimed twice"


def test_a_running_job_whose_owner_died_is_taken_over(catalog: Catalog) -> None:
    job_id = manager.create_job(catalog, ECHO, None)
    assert transition(catalog, job_id, JobStatus.RUNNING, owner="ghost-host:1")
    assert manager.claim_next(catalog, lease_seconds=30) is None, "its lease still runs"
    with catalog.engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=60))
        )
    assert manager.claim_next(catalog, lease_seconds=30) == job_id
    assert manager.get_job(catalog, job_id)["owner"] == manager.this_owner()


def test_a_dead_local_owner_is_taken_over_at_once(catalog: Catalog) -> None:
    import socket

    job_id = manager.create_job(catalog, ECHO, None)
    transition(catalog, job_id, JobStatus.RUNNING, owner=f"{socket.gethostname()}:999999999")
    assert manager.claim_next(catalog, lease_seconds=3600) == job_id


def test_old_finished_job_records_are_cleaned_up_and_recent_ones_kept(catalog: Catalog) -> None:
    old = manager.create_job(catalog, ECHO, None)
    recent = manager.create_job(catalog, ECHO, None)
    queued = manager.create_job(catalog, ECHO, None)
    for job_id in (old, recent):
        transition(catalog, job_id, JobStatus.RUNNING)
        transition(catalog, job_id, JobStatus.COMPLETED)
    with catalog.engine.begin() as conn:
        conn.execute(
            update(Job).where(Job.id == old).values(completed_at=utcnow() - timedelta(days=40))
        )
    assert manager.cleanup_old(catalog, retention_days=30) == 1
    remaining = {j["job_id"] for j in manager.list_jobs(catalog)[0]}
    assert remaining == {recent, queued}


def test_pause_resume_cancel_requests_follow_the_state(catalog: Catalog) -> None:
    job_id = manager.create_job(catalog, ECHO, None)
    assert manager.request(catalog, job_id, "pause")["status"] == "paused"
    assert manager.request(catalog, job_id, "resume")["status"] == "queued"
    transition(catalog, job_id, JobStatus.RUNNING)
    asked = manager.request(catalog, job_id, "cancel")
    assert (asked["status"], asked["requested"]) == ("running", "cancel")
    assert manager.heartbeat(catalog, job_id) == "cancel", "the runner sees the request"
