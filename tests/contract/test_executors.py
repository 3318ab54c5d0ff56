"""One contract, every executor on every database: the same job gives the same results on every
registered executor (serial, threads, processes, and any other the registry lists) on SQLite
and PostgreSQL, and every pool survives the item that fails, hangs or crashes its worker."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediamill.catalog.db import Catalog
from mediamill.executors import base as executors
from tests.conftest import make_files, reset_postgres
from tests.helpers.celery import Cluster, cluster, require_broker
from tests.helpers.run import results, run_folder

ECHO = "tests.helpers.processors:Echo"
#: every executor the registry knows (``auto`` is a choice among them, tested below)
EXECUTORS = [name for name in executors.available() if name != executors.AUTO]
#: those that run workers apart from the runner's thread and enforce the time limit
POOLS = [name for name in EXECUTORS if name != "serial"]
# every test takes ``catalog`` or ``db_url``: it runs on SQLite and on PostgreSQL


@pytest.fixture(scope="module")
def celery_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two real `mediamill worker` processes on Redis, for the celery executor's turn."""
    broker = require_broker("redis")
    with cluster(broker, tmp_path_factory.mktemp("celery"), [], [], hosts=True) as found:
        yield found


@pytest.fixture(autouse=True)
def _celery_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the celery executor runs (every executor in one test, or celery's own turn),
    the runner's settings point at the live workers' broker and queues."""
    params = getattr(request.node, "callspec", None)
    executor = params.params.get("executor") if params is not None else None
    uses_all = "executor" not in request.fixturenames
    if "celery" in EXECUTORS and (executor == "celery" or (uses_all and executor is None)):
        found: Cluster = request.getfixturevalue("celery_workers")
        for key, value in found.env.items():
            monkeypatch.setenv(key, value)


def test_probe_gives_identical_results_on_every_executor(
    media_library: Path, tmp_path: Path, db_url: str
) -> None:
    """Given a real media library, when probed with each executor, every result is the same."""
    seen = {}
    for executor in EXECUTORS:
        if db_url.startswith("postgresql"):
            reset_postgres()
            catalog = Catalog.open(db_url)
        else:
            catalog = Catalog.open(f"sqlite:///{tmp_path / executor}.db")
        job = run_folder(
            catalog, media_library, "probe", executor=executor, workers=2, batch_size=3
        )
        assert job["status"] == "completed", job
        seen[executor] = results(catalog, media_library, "probe")
        catalog.close()
    assert seen["serial"], "the library has probe-able items"
    for executor in EXECUTORS:
        assert seen[executor] == seen["serial"], executor
    statuses = {status for status, _data, _error in seen["serial"].values()}
    assert statuses == {"ok", "failed"}, "the library holds good and broken media"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failures_and_skips_are_recorded_and_the_job_completes(
    executor: str, tmp_path: Path, catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"ok{i}.bin" for i in range(20)] + ["a/fail1.bin", "b/skip1.bin"])
    job = run_folder(catalog, root, ECHO, executor=executor, workers=2, batch_size=4)
    assert job["status"] == "completed"
    assert (job["total_items"], job["succeeded"], job["failed"], job["skipped"]) == (22, 20, 1, 1)
    found = results(catalog, root, ECHO)
    assert found["a/fail1.bin"][0] == "failed"
    assert found["a/fail1.bin"][2] == "cannot read fail1.bin: it is broken on purpose"
    assert found["b/skip1.bin"][0:3:2] == ("skipped", "not for this processor")
    assert found["ok3.bin"] == ("ok", {"size": 64, "name": "ok3.bin"}, None)


@pytest.mark.parametrize("executor", POOLS)
def test_an_item_that_hangs_costs_one_item_and_the_worker_is_replaced(
    executor: str, tmp_path: Path, catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"ok{i}.bin" for i in range(12)] + ["hang.bin"])
    job = run_folder(
        catalog, root, ECHO, executor=executor, workers=2, batch_size=3, item_timeout=1.0
    )
    assert job["status"] == "completed"
    assert (job["succeeded"], job["failed"]) == (12, 1)
    status, _data, error = results(catalog, root, ECHO)["hang.bin"]
    assert status == "failed"
    assert "timed out after 1 s" in error


@pytest.mark.parametrize("executor", POOLS)
def test_every_item_is_processed_once_even_when_a_worker_overruns_and_comes_back(
    executor: str, tmp_path: Path, catalog: Catalog
) -> None:
    """A worker holds its next batch while it works; when it overruns the time limit its
    items go to a fresh worker. The overrunning one (a thread cannot be killed) comes back
    later and must not process them a second time."""
    root = tmp_path / "lib"
    names = ["a-slow.bin"] + [f"ok{i:02d}.bin" for i in range(14)]
    make_files(root, names)
    log = tmp_path / "processed.log"
    job = run_folder(
        catalog,
        root,
        ECHO,
        executor=executor,
        workers=2,
        batch_size=3,
        item_timeout=0.5,
        process_log=str(log),
        slow_seconds=1.0,
    )
    time.sleep(1.0)  # the overrunning worker's item returns meanwhile
    assert job["status"] == "completed"
    assert (job["succeeded"], job["failed"]) == (14, 1)
    processed = Counter(log.read_text().splitlines())
    assert {p: n for p, n in processed.items() if n > 1} == {}
    assert set(processed) == set(names), "every item was processed"


def test_a_worker_crash_costs_one_item_and_the_job_completes(
    tmp_path: Path, catalog: Catalog
) -> None:
    """os.abort() in a worker process (as a crashing decoder would) fails that item only."""
    root = tmp_path / "lib"
    make_files(root, [f"ok{i}.bin" for i in range(16)] + ["x/crash1.bin", "y/crash2.bin"])
    job = run_folder(catalog, root, ECHO, executor="processes", workers=2, batch_size=4)
    assert job["status"] == "completed"
    assert (job["succeeded"], job["failed"]) == (16, 2)
    for name in ("x/crash1.bin", "y/crash2.bin"):
        status, _data, error = results(catalog, root, ECHO)[name]
        assert status == "failed"
        assert "killed by SIGABRT" in error


@pytest.mark.parametrize("executor", EXECUTORS)
def test_setup_runs_once_per_worker(executor: str, tmp_path: Path, catalog: Catalog) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(40)])
    setup_log = tmp_path / "setups.log"
    job = run_folder(
        catalog,
        root,
        ECHO,
        executor=executor,
        workers=2,
        batch_size=2,
        setup_log=str(setup_log),
    )
    assert job["succeeded"] == 40
    setups = setup_log.read_text().split()
    assert len(setups) == (1 if executor == "serial" else 2)
    if executor == "processes":
        assert len(set(setups)) == 2, "each worker process set itself up"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_processor_whose_setup_fails_fails_the_job_with_the_cause(
    executor: str, tmp_path: Path, catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    job = run_folder(
        catalog, root, "tests.helpers.processors:BrokenSetup", executor=executor, workers=2
    )
    assert job["status"] == "failed"
    assert "model file /nonexistent/model.pb not found" in job["error"]


def test_auto_picks_threads_for_io_work_and_processes_for_cpu_work(
    tmp_path: Path, catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(6)])
    log_io, log_cpu = tmp_path / "io.log", tmp_path / "cpu.log"
    run_folder(catalog, root, ECHO, workers=2, setup_log=str(log_io))
    run_folder(catalog, root, "tests.helpers.processors:CpuEcho", workers=2, setup_log=str(log_cpu))
    import os

    assert set(log_io.read_text().split()) == {str(os.getpid())}, "threads run in this process"
    cpu_pids = set(log_cpu.read_text().split())
    assert len(cpu_pids) == 2
    assert str(os.getpid()) not in cpu_pids, "cpu work runs in worker processes"


def test_an_executor_named_module_class_runs_the_job_with_its_own_settings(
    tmp_path: Path, catalog: Catalog
) -> None:
    """An executor outside the registry is found by ``module:Class``, and gets its own
    ``[executors.NAME]`` settings, not another executor's."""
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(5)])
    log = tmp_path / "built.json"
    name = "tests.helpers.executors:Recording"
    job = run_folder(
        catalog,
        root,
        ECHO,
        executor=name,
        workers=3,
        settings={"executors": {name: {"log": str(log)}, "threads": {"unrelated": 1}}},
    )
    assert (job["status"], job["succeeded"]) == ("completed", 5)
    assert json.loads(log.read_text()) == {
        "processor": ECHO,
        "workers": 3,
        "settings": {"log": str(log)},
    }


def test_an_unknown_executor_fails_the_job_naming_the_choices(
    tmp_path: Path, catalog: Catalog
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    job = run_folder(catalog, root, ECHO, executor="warp")
    assert job["status"] == "failed"
    assert job["error"] == (
        f"unknown executor 'warp'; choose one of {', '.join(executors.available())}"
    )


def test_an_unchanged_rerun_builds_no_executor(tmp_path: Path, catalog: Catalog) -> None:
    """Nothing to do: no pool is started (and no executor built) for it."""
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    name = "tests.helpers.executors:Recording"
    log = tmp_path / "built.json"
    settings = {"executors": {name: {"log": str(log)}}}
    run_folder(catalog, root, ECHO, executor=name, settings=settings)
    log.unlink()
    again = run_folder(catalog, root, ECHO, executor=name, settings=settings)
    assert (again["status"], again["succeeded"]) == ("completed", 0)
    assert not log.exists()
