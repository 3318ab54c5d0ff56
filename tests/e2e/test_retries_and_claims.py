"""Failures that pass (a full disk) are tried again by the next run, those of the file itself
are not; two runs of one processor on one library split the work instead of doing it twice.
Real `mediamill run` processes on a real SQLite catalog."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mediamill.catalog.db import Catalog
from tests.conftest import make_files
from tests.helpers.cli import cli_env, mediamill

ECHO = "tests.helpers.processors:Echo"


def test_items_that_failed_for_a_full_disk_are_tried_again_by_the_next_run(
    tmp_path: Path,
) -> None:
    library = tmp_path / "lib"
    make_files(library, [f"ok/{i:02}.bin" for i in range(10)] + ["bad/fail1.bin"])
    db = f"sqlite:///{tmp_path / 'c.db'}"
    full = tmp_path / "disk-is-full"
    full.touch()
    run = ["run", ECHO, str(library), "-q", "--set", f"full_disk_flag={full}"]

    first = mediamill(*run, db=db)
    assert "0 ok, 11 failed" in first.stdout, first.stdout
    assert "10 failed for a passing cause" in first.stdout
    assert "1 for the file itself" in first.stdout
    catalog = Catalog.open(db)
    try:
        lib = catalog.libraries()[0]
        failed, _ = catalog.search_items(lib.id, ECHO, status="failed", limit=20)
    finally:
        catalog.close()
    classes = {item["path"]: item["error_class"] for item in failed}
    assert classes.pop("bad/fail1.bin") == "permanent"
    assert list(classes.values()) == ["transient"] * 10

    full.unlink()  # space was freed
    second = mediamill(*run, db=db)
    assert "10 ok, 0 failed" in second.stdout, second.stdout
    assert "(1 already up to date)" in second.stdout, "the corrupt file is not retried"
    third = mediamill(*run, db=db)
    assert "(11 already up to date)" in third.stdout, third.stdout


def test_two_runs_of_one_processor_on_one_library_split_the_work(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    count = 3000  # three pages of pending items: the second run finds some unclaimed
    make_files(library, [f"d{i % 10}/{i:05}.bin" for i in range(count)])
    db = f"sqlite:///{tmp_path / 'c.db'}"
    mediamill("scan", str(library), db=db)
    log = tmp_path / "process.log"
    argv = [sys.executable, "-m", "mediamill", "run", ECHO, str(library), "-q", "-w", "1"]
    argv += ["--batch-size", "10", "--set", "delay=0.002", "--set", f"process_log={log}"]
    env = cli_env(db)
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text()):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run did not start"
        time.sleep(0.02)
    second = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for proc in (first, second):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (out + err).decode()
    processed = log.read_text().splitlines()
    assert len(processed) == count, f"{len(processed) - len(set(processed))} done twice"
    assert len(set(processed)) == count
    catalog = Catalog.open(db)
    try:
        lib = catalog.libraries()[0]
        assert catalog.count_results(ECHO, lib.id).get("ok") == count
        with catalog.engine.connect() as conn:
            from sqlalchemy import func, select

            from mediamill.catalog.models import Claim

            assert conn.execute(select(func.count()).select_from(Claim)).scalar() == 0
    finally:
        catalog.close()
