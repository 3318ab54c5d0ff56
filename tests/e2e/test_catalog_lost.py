"""A SQLite catalog deleted or replaced under a running job: the job fails loudly, where it
used to go on writing into the deleted file and report success with every result gone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

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
