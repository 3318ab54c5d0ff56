"""A SQLite catalog deleted or replaced under a running job: the job fails loudly, where it
used to go on writing into the deleted file and report success with every result gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.settings import load
from tests.conftest import make_files
from tests.helpers.cli import cli_env

ECHO = "tests.helpers.processors:Echo"


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_catalog_lost_while_a_job_runs_fails_the_job_loudly(tmp_path: Path, how: str) -> None:
    library = tmp_path / "lib"
    make_files(library, [f"{i:03}.bin" for i in range(200)])
    catalog = tmp_path / "c.db"
    log = tmp_path / "process.log"
    argv = ["run", ECHO, str(library), "-w", "1", "--batch-size", "1", "-q"]
    argv += ["--set", "delay=0.05", "--set", f"process_log={log}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamill", *argv],
        env=cli_env(f"sqlite:///{catalog}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (log.exists() and len(log.read_text().splitlines()) >= 5):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    for part in tmp_path.glob("c.db*"):
        part.unlink()
    if how == "replaced":
        catalog.write_bytes(b"")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert f"{catalog}" in out + err
    assert f"was {how}" in out + err
    done = len(log.read_text().splitlines())
    assert done < 200, "the job stopped rather than run to its end"


def _descendants() -> set[int]:
    """The live processes below this one but for its forkserver and resource tracker (which
    live as long as it does): the worker processes the forkserver started."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    children = {pid for pid, parent in parents.items() if parent == os.getpid()}
    return {pid for pid, parent in parents.items() if parent in children}


def test_a_job_failed_by_its_lost_catalog_leaves_no_worker_behind(tmp_path: Path) -> None:
    """In a server the process lives on after a job fails: its worker processes must not."""
    library = tmp_path / "lib"
    make_files(library, [f"{i:03}.bin" for i in range(200)])
    log = tmp_path / "process.log"
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}")
    lib = ops.resolve_library(catalog, str(library))
    ops.refresh_library(catalog, lib)
    options = {"delay": 0.05, "process_log": str(log)}
    job_id, _ = ops.prepare_job(catalog, ECHO, lib, options=options)
    settings = load(db=catalog.url, executor="processes", workers=1, batch_size=1)
    before = _descendants()
    ended: list[BaseException | dict[str, object]] = []

    def run() -> None:
        try:
            ended.append(ops.run_job(catalog, job_id, settings=settings))
        except Exception as exc:  # noqa: BLE001 - what it ends with is checked below
            ended.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not (log.exists() and len(log.read_text().splitlines()) >= 5):
        assert thread.is_alive(), ended
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    for part in tmp_path.glob("c.db*"):
        part.unlink()
    thread.join(60)
    assert not thread.is_alive()
    assert ended
    deadline = time.monotonic() + 10
    while _descendants() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _descendants() - before, "the job's worker processes still run"
    catalog.close()
