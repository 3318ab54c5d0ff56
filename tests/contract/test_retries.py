"""Transient failures on every database: tried again by the next run, then after a doubling
backoff, up to a cap; a failure of the file itself only by ``--failed``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from mediamill.catalog.db import MAX_ATTEMPTS, RETRY_BACKOFF, Catalog
from mediamill.catalog.models import Result, utcnow
from tests.conftest import make_files
from tests.helpers.run import run_folder

ECHO = "tests.helpers.processors:Echo"


def _retry(catalog: Catalog) -> tuple[int, object]:
    with catalog.engine.connect() as conn:
        attempts, retry_at = conn.execute(select(Result.c.attempts, Result.c.retry_at)).one()
    return attempts, retry_at


def test_a_transient_failure_backs_off_and_stops_at_the_cap(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    full = tmp_path / "disk-is-full"
    full.touch()

    def run() -> dict[str, object]:
        return run_folder(catalog, root, ECHO, executor="serial", full_disk_flag=str(full))

    assert run()["failed"] == 1
    assert _retry(catalog)[0] == 1
    assert run()["failed"] == 1, "the first transient failure is tried by the very next run"
    attempts, retry_at = _retry(catalog)
    assert attempts == 2
    assert isinstance(retry_at, type(utcnow()))
    wait = (retry_at - utcnow()).total_seconds()
    assert RETRY_BACKOFF - 5 < wait <= RETRY_BACKOFF
    job = run()
    assert (job["failed"], job["skipped"]) == (0, 1), "not due yet: passed over"
    for expected in range(3, MAX_ATTEMPTS + 1):
        with catalog.engine.begin() as conn:  # time passes
            conn.execute(update(Result).values(retry_at=utcnow() - timedelta(seconds=1)))
        assert run()["failed"] == 1
        assert _retry(catalog)[0] == expected
    assert _retry(catalog)[1] is None, "after the cap, only --failed tries it again"
    full.unlink()
    assert run()["skipped"] == 1
    assert (
        run_folder(catalog, root, ECHO, executor="serial", full_disk_flag=str(full))["skipped"] == 1
    )
