"""Concurrent first use: processes that start at the same moment on a new data dir, a new
library or a fresh PostgreSQL catalog all succeed, and the catalog ends as one would leave it.

Real processes (the commands a user would start twice, or what two servers do at start-up),
started together and waited for with a deadline; no sleep races the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediamill.catalog.db import HEAD_REVISION, Catalog
from tests.conftest import PG_URL, _pg_reachable, make_files, require_server, reset_postgres
from tests.helpers.cli import cli_env

TOGETHER = 4  # processes started at once


def _together(
    argvs: list[list[str]], env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Start every command, then wait for each: they overlap on the catalog's first use."""
    procs = [
        subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    done = []
    for argv, proc in zip(argvs, procs, strict=True):
        out, err = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done


@pytest.mark.parametrize("round_", range(3))
def test_scans_started_together_on_a_new_data_dir_and_library_all_succeed(
    tmp_path: Path, round_: int
) -> None:
    library = tmp_path / "lib"
    make_files(library, [f"d{i % 3}/{i:03}.mp3" for i in range(40)])
    home = tmp_path / "new-home"  # does not exist yet: the first command makes it
    db = f"sqlite:///{home}/catalog.db"
    env = cli_env(db, MEDIAMILL_HOME=str(home))
    results = _together([["-m", "mediamill", "scan", str(library)]] * TOGETHER, env)
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    catalog = Catalog.open(db)
    try:
        libraries = catalog.libraries()
        assert [lib.root for lib in libraries] == [str(library)]
        assert sum(catalog.library_counts(libraries[0].id).values()) == 40
    finally:
        catalog.close()


OPEN = "import sys; from mediamill.catalog.db import Catalog; Catalog.open(sys.argv[1]).close()"


@pytest.mark.postgres
def test_servers_starting_together_on_a_fresh_postgresql_catalog_all_open_it() -> None:
    """What two `mediamill serve` do first: open (create and migrate) the catalog."""
    require_server("PostgreSQL", _pg_reachable())
    for _ in range(3):
        reset_postgres()
        env = cli_env(PG_URL)
        results = _together([["-c", OPEN, PG_URL]] * TOGETHER, env)
        for result in results:
            assert result.returncode == 0, result.stderr[-2000:]
    catalog = Catalog.open(PG_URL)
    try:
        with catalog.engine.connect() as conn:
            from sqlalchemy import text

            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v[0] for v in versions] == [HEAD_REVISION]
    finally:
        catalog.close()
