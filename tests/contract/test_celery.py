"""The celery executor against real brokers (Redis and RabbitMQ) and real `mediamill worker`
processes: the same results as the local executors, nothing lost and nothing twice when
workers die, cancel and pause within 5 s, and clear errors for a bad path map or a job no
worker can run."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Result
from mediamill.jobs import manager
from mediamill.settings import load
from tests.conftest import make_files
from tests.helpers.celery import Cluster, cluster, require_broker
from tests.helpers.cli import cli_env, mediamill
from tests.helpers.netns import netns_problem
from tests.helpers.run import results
from tests.helpers.server import Server

ECHO = "tests.helpers.processors:Echo"
BROKER_KINDS = ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
pytestmark = pytest.mark.redis


@pytest.fixture(scope="module", params=BROKER_KINDS)
def two_workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two single-process workers on one broker, shared by the tests that kill nothing."""
    broker = require_broker(request.param)
    with cluster(broker, tmp_path_factory.mktemp("cluster"), [], [], hosts=True) as found:
        yield found


@pytest.fixture
def sqlite_catalog(sqlite_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(sqlite_url)
    yield cat
    cat.close()


def test_probe_gives_the_same_results_on_celery_as_on_the_local_executors(
    two_workers: Cluster, media_library: Path, tmp_path: Path
) -> None:
    """Given real media (good and broken), celery workers record exactly what serial and
    processes record."""
    seen = {}
    for executor in ("serial", "processes", "celery"):
        catalog = Catalog.open(f"sqlite:///{tmp_path / executor}.db")
        job = two_workers.run(
            catalog, media_library, "probe", executor=executor, workers=2, batch_size=3
        )
        assert job["status"] == "completed", job
        seen[executor] = results(catalog, media_library, "probe")
        catalog.close()
    assert seen["serial"], "the library has probe-able items"
    assert seen["processes"] == seen["serial"]
    assert seen["celery"] == seen["serial"]
    assert {status for status, _data, _error in seen["celery"].values()} == {"ok", "failed"}


def test_failures_and_skips_are_recorded_and_the_job_completes(
    two_workers: Cluster, tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"ok{i}.bin" for i in range(20)] + ["a/fail1.bin", "b/skip1.bin"])
    job = two_workers.run(sqlite_catalog, root, ECHO, workers=2, batch_size=4)
    assert job["status"] == "completed", job
    assert (job["total_items"], job["succeeded"], job["failed"], job["skipped"]) == (22, 20, 1, 1)
    found = results(sqlite_catalog, root, ECHO)
    cause = "cannot read fail1.bin: it is broken on purpose"
    assert found["a/fail1.bin"] == ("failed", None, cause)
    assert found["b/skip1.bin"][0:3:2] == ("skipped", "not for this processor")
    assert found["ok3.bin"] == ("ok", {"size": 64, "name": "ok3.bin"}, None)


def test_a_transient_failure_on_a_worker_is_tried_again_by_the_next_run(
    two_workers: Cluster, tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    """A full disk on a worker is no verdict on the file: the next run tries it again, as
    after a failure on this machine (the outcome carries its error class across)."""
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    full = tmp_path / "disk-is-full"
    full.touch()
    job = two_workers.run(sqlite_catalog, root, ECHO, full_disk_flag=str(full))
    assert job["failed"] == 1, job
    with sqlite_catalog.engine.connect() as conn:
        error_class, attempts = conn.execute(select(Result.c.error_class, Result.c.attempts)).one()
    assert (error_class, attempts) == ("transient", 1)
    full.unlink()
    again = two_workers.run(sqlite_catalog, root, ECHO, full_disk_flag=str(full))
    assert (again["succeeded"], again["skipped"]) == (1, 0), again


def test_a_hanging_item_and_a_crashing_one_cost_one_item_each_on_a_worker(
    two_workers: Cluster, tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    """The worker runs batches through mediamill's own processes: the time limit and crash
    isolation (os.abort, as a crashing decoder) hold there as they do locally."""
    root = tmp_path / "lib"
    make_files(root, [f"ok{i}.bin" for i in range(12)] + ["hang.bin", "x/crash1.bin"])
    job = two_workers.run(sqlite_catalog, root, ECHO, workers=2, batch_size=3, item_timeout=1.0)
    assert job["status"] == "completed", job
    assert (job["succeeded"], job["failed"]) == (12, 2)
    found = results(sqlite_catalog, root, ECHO)
    assert found["hang.bin"][0] == "failed"
    assert "timed out after 1 s" in found["hang.bin"][2]
    assert found["x/crash1.bin"][0] == "failed"
    assert "killed by SIGABRT" in found["x/crash1.bin"][2]


def test_the_workers_are_separate_hosts_reaching_the_broker_over_a_veth(
    two_workers: Cluster,
) -> None:
    """Each worker runs in a network namespace of its own, with a host name of its own, and
    reaches the broker (which listens on loopback only) through its veth pair."""
    problem = netns_problem()
    if problem is not None:
        pytest.skip(f"the workers run as loopback processes: {problem}")
    live = two_workers.live()
    assert sorted(w.host for w in live) == sorted(h.name for h in two_workers.hosts)
    assert len({w.host for w in live}) == 2


def test_setup_runs_once_per_worker_process_across_batches(
    two_workers: Cluster, tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(40)])
    setup_log = tmp_path / "setups.log"
    job = two_workers.run(
        sqlite_catalog, root, ECHO, workers=2, batch_size=2, setup_log=str(setup_log)
    )
    assert job["succeeded"] == 40
    setups = setup_log.read_text().split()
    assert len(setups) == len(set(setups)), "no worker process set itself up twice"
    assert 1 <= len(setups) <= 2, "one set-up per worker process, not per batch"
    workers = {str(w.pid) for w in two_workers.workers}
    assert not set(setups) & workers, "items run in local worker processes, not in Celery's"


def test_a_processor_whose_setup_fails_fails_the_job_with_the_cause(
    two_workers: Cluster, tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    job = two_workers.run(sqlite_catalog, root, "tests.helpers.processors:BrokenSetup")
    assert job["status"] == "failed"
    assert "model file /nonexistent/model.pb not found" in job["error"]


def _run_in_thread(
    found: Cluster, db_url: str, root: Path, processor: str = ECHO, **options: Any
) -> tuple[str, threading.Thread]:
    """Start a job on the cluster in a thread (its own catalog connection); return its id."""
    catalog = Catalog.open(db_url)
    with found.settings_env():
        library = ops.resolve_library(catalog, str(root))
        ops.refresh_library(catalog, library)
        job_id, _ = ops.prepare_job(
            catalog, processor, library, options={"executor": "celery", **options}
        )

    def run() -> None:
        try:
            with found.settings_env():
                ops.run_job(catalog, job_id, settings=load(db=db_url))
        finally:
            catalog.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return job_id, thread


def _wait(check: Any, timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize("action", ["cancel", "pause"])
def test_cancel_and_pause_reach_running_batches_within_5_s_and_resume_finishes(
    action: str, two_workers: Cluster, tmp_path: Path, sqlite_url: str
) -> None:
    root = tmp_path / "lib"
    names = [f"f{i:03d}.bin" for i in range(300)]
    make_files(root, names)
    log = tmp_path / "processed.log"
    job_id, thread = _run_in_thread(
        two_workers, sqlite_url, root, batch_size=20, delay=0.05, process_log=str(log)
    )
    catalog = Catalog.open(sqlite_url)
    _wait(lambda: manager.get_job(catalog, job_id)["processed_items"] >= 20, 60, "first items")
    manager.request(catalog, job_id, action)
    took = _wait(
        lambda: manager.get_job(catalog, job_id)["status"] in ("cancelled", "paused"),
        10,
        f"{action} to take effect",
    )
    assert took < 5.0, f"{action} took {took:.1f} s"
    thread.join(10)
    lines = len(log.read_text().splitlines())
    time.sleep(1.5)  # nothing of the job goes on at the workers (queued batches revoked)
    assert len(log.read_text().splitlines()) == lines
    assert lines < len(names)
    job = manager.get_job(catalog, job_id)
    assert job["status"] == ("cancelled" if action == "cancel" else "paused")
    if action == "pause":
        manager.request(catalog, job_id, "resume")
        with two_workers.settings_env():
            done = ops.run_job(catalog, job_id, settings=load(db=sqlite_url))
        assert done["status"] == "completed", done
        assert (done["processed_items"], done["succeeded"]) == (300, 300)
        found = results(catalog, root, ECHO)
        assert sorted(found) == names
        assert {status for status, _d, _e in found.values()} == {"ok"}
    catalog.close()


def test_a_renaming_job_paused_on_workers_records_every_rename(
    two_workers: Cluster, tmp_path: Path, sqlite_url: str
) -> None:
    """What a worker did before it saw the pause (a file renamed), however early in its
    batch, is recorded: after the resume every file was renamed once, every item followed
    its file, and the next scan finds nothing changed."""
    root = tmp_path / "lib"
    names = [f"f{i:03d}.bin" for i in range(400)]
    make_files(root, names)
    # 40 ms a file: about 8 s of work on the two workers, so the pause lands mid-job (with
    # no delay the 400 renames could all be done before it, on a quiet machine)
    job_id, thread = _run_in_thread(
        two_workers, sqlite_url, root, "tests.helpers.processors:Renamer", batch_size=5, delay=0.04
    )
    catalog = Catalog.open(sqlite_url)
    _wait(lambda: manager.get_job(catalog, job_id)["processed_items"] >= 10, 60, "first items")
    manager.request(catalog, job_id, "pause")
    _wait(lambda: manager.get_job(catalog, job_id)["status"] == "paused", 10, "the pause")
    thread.join(10)
    manager.request(catalog, job_id, "resume")
    with two_workers.settings_env():
        done = ops.run_job(catalog, job_id, settings=load(db=sqlite_url))
    assert (done["status"], done["processed_items"], done["succeeded"]) == ("completed", 400, 400)
    renamed = sorted(f"renamed-{name}" for name in names)
    assert sorted(p.name for p in root.iterdir()) == renamed
    library = catalog.library_by_root(root)
    assert library is not None
    assert sorted(item.path for item in catalog.iter_items(library.id)) == renamed
    report = ops.refresh_library(catalog, library)
    assert (report["new"], report["changed"], report["missing"]) == (0, 0, 0)
    catalog.close()


@pytest.mark.parametrize("broker_kind", BROKER_KINDS)
@pytest.mark.parametrize("kill", ["main", "all"])
def test_a_worker_killed_mid_batch_costs_at_most_that_batch_and_every_item_has_one_result(
    broker_kind: str, kill: str, tmp_path: Path, sqlite_url: str
) -> None:
    """SIGKILL the Celery process of a worker (``main``) or every process of it (``all``, a
    machine gone) while it runs a batch: the runner gives the batch to the other worker
    within 60 s, the job completes, and every item is counted and recorded once."""
    broker = require_broker(broker_kind)
    root = tmp_path / "lib"
    names = [f"f{i:03d}.bin" for i in range(120)]
    make_files(root, names)
    log = tmp_path / "processed.log"
    with cluster(broker, tmp_path / "cluster", [], [], hosts=True) as found:
        job_id, thread = _run_in_thread(
            found, sqlite_url, root, batch_size=10, delay=0.05, process_log=str(log)
        )
        victim = found.workers[0]

        def victim_busy() -> bool:
            return any(w.pid == victim.pid and w.batches for w in found.live())

        _wait(victim_busy, 60, "the first worker runs a batch")
        if kill == "main":
            victim.kill_main()
        else:
            victim.kill_all()
        killed = time.monotonic()
        thread.join(120)
        recovered = time.monotonic() - killed
    catalog = Catalog.open(sqlite_url)
    job = manager.get_job(catalog, job_id)
    assert job["status"] == "completed", (job, found.logs())
    assert recovered < 60, f"the job took {recovered:.0f} s after the kill"
    assert (job["total_items"], job["processed_items"], job["succeeded"]) == (120, 120, 120)
    recorded = results(catalog, root, ECHO)
    assert sorted(recorded) == names, "every item has its result"
    processed = Counter(log.read_text().splitlines())
    assert set(processed) == set(names)
    catalog.close()


def test_a_worker_reads_the_media_through_its_path_map(
    tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    """The runner's library is /…/lib; the worker has the same files at /…/mirror (here with
    other content, so the results show which copy was read)."""
    broker = require_broker("redis")
    root, mirror = tmp_path / "lib", tmp_path / "mirror"
    names = ["a.bin", "sub/b.bin"]
    make_files(root, names)
    make_files(mirror, names, content=b"y" * 100)
    with cluster(broker, tmp_path / "cluster", ["--path-map", f"{root}={mirror}"]) as found:
        job = found.run(sqlite_catalog, root, ECHO)
    assert job["status"] == "completed", job
    found_results = results(sqlite_catalog, root, ECHO)
    assert found_results["sub/b.bin"] == ("ok", {"size": 100, "name": "b.bin"}, None)


def test_a_wrong_path_map_stops_the_worker_at_start_up_with_the_cause(tmp_path: Path) -> None:
    broker = require_broker("redis")
    missing = tmp_path / "not-mounted"
    proc = subprocess.run(
        [sys.executable, "-m", "mediamill", "worker", "--path-map", f"/srv/media={missing}"],
        env=cli_env("sqlite://", MEDIAMILL_BROKER_URL=broker),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert f"path map /srv/media={missing}: {missing} does not exist" in proc.stderr


def test_a_job_no_live_worker_can_run_says_so(tmp_path: Path, sqlite_catalog: Catalog) -> None:
    """A worker listens on other queues only: the job fails with a message that says which
    processor and queue wanted a worker, instead of waiting forever."""
    broker = require_broker("redis")
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    with cluster(broker, tmp_path / "cluster", ["--queues", "elsewhere"]) as found:
        found.env["MEDIAMILL_CELERY_WORKER_WAIT"] = "2"
        start = time.monotonic()
        job = found.run(sqlite_catalog, root, ECHO)
        waited = time.monotonic() - start
    assert job["status"] == "failed"
    assert (
        f"no live mediamill worker can run {ECHO!r} from queue '{found.prefix}.io'"
        in (job["error"])
    )
    assert waited < 30


def test_mediamill_run_with_executor_celery_from_the_command_line(
    two_workers: Cluster, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(10)] + ["fail1.bin"])
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {k: v for k, v in two_workers.env.items() if k != "MEDIAMILL_BROKER_URL"}
    args = ["--executor", "celery", "--broker", two_workers.broker]
    proc = mediamill("run", ECHO, str(root), *args, db=db, env=env)
    assert "completed: 11/11 items, 10 ok, 1 failed" in proc.stdout


def test_the_api_lists_the_workers_and_runs_an_executor_celery_job_on_them(
    two_workers: Cluster, tmp_path: Path
) -> None:
    """Through `mediamill serve`: a job with ``"executor": "celery"`` runs on the workers, and
    ``GET /api/workers`` shows them, with the batch each one is on."""
    root = tmp_path / "lib"
    make_files(root, [f"f{i:03d}.bin" for i in range(80)])
    server = Server(
        f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "home", extra_env=two_workers.env
    ).start()
    try:
        with server.client() as client:
            assert client.post("/api/libraries", json={"path": str(root)}).status_code == 201
            listed = client.get("/api/workers").json()
            assert listed["error"] is None
            assert "guest:guest" not in listed["broker"], "the password is not shown"
            pids = {w.pid for w in two_workers.workers}
            ours = [w for w in listed["workers"] if w["pid"] in pids]
            assert len(ours) == 2
            for worker in ours:
                assert worker["concurrency"] == 1
                assert worker["queues"] == [f"{two_workers.prefix}.io", f"{two_workers.prefix}.cpu"]
                assert {"probe", "strm"} <= set(worker["processors"])
                assert worker["last_heartbeat"] > time.time() - 3600
            options = {"executor": "celery", "batch_size": 5, "delay": 0.1}
            job = client.post(
                "/api/jobs", json={"processor": ECHO, "library": "lib", "options": options}
            ).json()

            def a_worker_shows_its_batch() -> bool:
                time.sleep(0.5)  # the answer is cached for 2 s
                for w in client.get("/api/workers").json()["workers"]:
                    for batch in w["current_batches"]:
                        if batch["processor"] == ECHO and batch["items"] == 5:
                            return True
                return False

            _wait(a_worker_shows_its_batch, 60, "a worker shows the batch it is on")
            done = server.wait_job(job["job_id"], {"completed", "failed"}, timeout=120)
            assert (done["status"], done["succeeded"]) == ("completed", 80), done
    finally:
        server.stop()


def test_a_renaming_processor_on_a_worker_keeps_items_and_results(
    two_workers: Cluster, tmp_path: Path, sqlite_catalog: Catalog
) -> None:
    """An outcome's item update (the worker renamed the file) travels back with it: the item
    keeps its id and every result, and the next scan sees no change."""
    root = tmp_path / "lib"
    names = ["a.bin", "sub/b.bin"]
    make_files(root, names)
    two_workers.run(sqlite_catalog, root, ECHO, executor="serial")
    library = sqlite_catalog.library_by_root(root)
    assert library is not None
    before = {item.path: item.id for item in sqlite_catalog.iter_items(library.id)}

    job = two_workers.run(sqlite_catalog, root, "tests.helpers.processors:Renamer", batch_size=1)

    assert (job["status"], job["succeeded"]) == ("completed", 2), job
    after = {item.path: item.id for item in sqlite_catalog.iter_items(library.id)}
    assert after == {"renamed-a.bin": before["a.bin"], "sub/renamed-b.bin": before["sub/b.bin"]}
    report = ops.refresh_library(sqlite_catalog, library)
    assert (report["new"], report["changed"], report["missing"]) == (0, 0, 0)
    echo = results(sqlite_catalog, root, ECHO)
    assert echo["renamed-a.bin"] == ("ok", {"size": 64, "name": "a.bin"}, None)
