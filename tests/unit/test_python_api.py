"""`import mediamill` gives the same operations as the CLI."""

from __future__ import annotations

from pathlib import Path

import mediamill
from tests.conftest import make_files


def test_run_from_python_scans_processes_and_returns_the_job(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin", "b.bin", "fail.bin"])
    db = f"sqlite:///{tmp_path / 'c.db'}"
    job = mediamill.run(
        "tests.helpers.processors:Echo", str(root), db=db, options={"executor": "serial"}
    )
    assert (job["status"], job["succeeded"], job["failed"]) == ("completed", 2, 1)
    catalog = mediamill.Catalog.open(db)
    library = catalog.library_by_root(root)
    assert library is not None
    assert {
        path for path, *_ in catalog.iter_export(library.id, "tests.helpers.processors:Echo")
    } == {"a.bin", "b.bin", "fail.bin"}
    catalog.close()
