"""The job queue on every database: claim order, leases, takeover and record clean-up."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from sqlalchemy import update

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Job, utcnow
from mediamill.engine import runner
from mediamill.jobs import manager
from mediamill.jobs.status import JobStatus, transition
from mediamill.settings import load
from tests.conftest import make_files
from tests.helpers.processors import SlowFinish

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
            .where(Job.c.id == job_id)
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
            update(Job).where(Job.c.id == old).values(completed_at=utcnow() - timedelta(days=40))
        )
    assert manager.cleanup_old(catalog, retention_days=30) == 1
    remaining = {j["job_id"] for j in manager.list_jobs(catalog)[0]}
    assert remaining == {recent, queued}


def test_pause_resume_cancel_requests_follow_the_state(catalog: Catalog) -> None:
    job_id = manager.create_job(catalog, ECHO, None)
    assert manager.request(catalog, job_id, "pause")["status"] == "paused"
    assert manager.request(catalog, job_id, "resume")["status"] == "queued"
    transition(catalog, job_id, JobStatus.RUNNING, owner=manager.this_owner())
    asked = manager.request(catalog, job_id, "cancel")
    assert (asked["status"], asked["requested"]) == ("running", "cancel")
    assert manager.heartbeat(catalog, job_id, manager.this_owner()) == "cancel", "it is seen"
    assert manager.heartbeat(catalog, job_id, "elsewhere:1") == manager.LOST, "not its job"


def _start(catalog: Catalog, tmp_path: Path, processor: str, **options: Any) -> tuple[str, Thread]:
    """A job over a folder of 40 files, run by a runner in a thread of this process."""
    root = tmp_path / "lib"
    make_files(root, [f"f{n:02d}.bin" for n in range(40)])
    library = ops.resolve_library(catalog, str(root))
    ops.refresh_library(catalog, library)
    job_id, _ = ops.prepare_job(catalog, processor, library, options=options)
    settings = load(db=catalog.url, executor="serial", workers=1, batch_size=1)
    ended: list[str] = []
    thread = Thread(
        target=lambda: ended.append(ops.run_job(catalog, job_id, settings=settings)["status"])
    )
    thread.ended = ended  # type: ignore[attr-defined]
    thread.start()
    return job_id, thread


def test_a_runner_renews_its_lease_while_it_does_not_loop(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processor's long ``finish`` (or counting a big library, or workers starting up)
    sends no heartbeat from the loop: the lease is renewed anyway, so no other process
    takes a live job over."""
    monkeypatch.setattr(runner, "LEASE_EVERY", 0.1)
    SlowFinish.finishing.clear()
    job_id, thread = _start(catalog, tmp_path, "tests.helpers.processors:SlowFinish", linger=2.5)
    assert SlowFinish.finishing.wait(30)
    time.sleep(1.5)  # into the finish, far longer than the loop's heartbeats would leave
    beat = manager.get_job(catalog, job_id)["heartbeat_at"]
    age = (utcnow() - datetime.fromisoformat(beat)).total_seconds()
    thread.join(30)
    assert age < 1.0, f"the lease was last renewed {age:.1f} s ago"
    assert thread.ended == ["completed"]  # type: ignore[attr-defined]


def test_a_runner_whose_job_was_taken_over_stops_and_leaves_it_to_its_new_owner(
    catalog: Catalog, tmp_path: Path
) -> None:
    job_id, thread = _start(catalog, tmp_path, ECHO, delay=0.1)
    deadline = time.monotonic() + 30
    while manager.get_job(catalog, job_id)["processed_items"] < 2:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    with catalog.engine.begin() as conn:  # as a coordinator that took it over would
        conn.execute(update(Job).where(Job.c.id == job_id).values(owner="elsewhere:1"))
    thread.join(30)
    assert thread.ended == ["running"], "it stopped, the job not ended"  # type: ignore[attr-defined]
    job = manager.get_job(catalog, job_id)
    assert (job["status"], job["owner"]) == ("running", "elsewhere:1")
    assert job["processed_items"] < 40
