"""What a command loads before it can work: a re-run that finds nothing to do is mostly
start-up, so the command line never imports what it does not use. Checked in fresh
interpreters (this test process has imported everything already), with Python's own
import report (``PYTHONPROFILEIMPORTTIME``), not with timings."""

from __future__ import annotations

from pathlib import Path

from mediamill.testing.media import write_png
from tests.helpers.cli import mediamill

#: the ORM (0.06 s of every command's start-up: the catalog uses SQLAlchemy Core only) and
#: Alembic (loaded only to migrate an outdated catalog)
NEVER_AT_START = ("sqlalchemy.orm", "alembic")


def _imported(stderr: str) -> set[str]:
    """The modules an ``import time:`` report names (one line per module imported)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def _unwanted(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == n or m.startswith(f"{n}.") for n in NEVER_AT_START)
    )


def test_a_run_on_an_up_to_date_catalog_loads_neither_the_orm_nor_alembic(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    write_png(root / "a.png")
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    report = {"PYTHONPROFILEIMPORTTIME": "1"}

    first = mediamill("run", "probe", str(root), db=db, env=report)  # makes the catalog
    again = mediamill("run", "probe", str(root), db=db, env=report)
    listed = mediamill("jobs", "list", db=db, env=report)

    assert "1 already up to date" in again.stdout
    for proc in (first, again, listed):
        modules = _imported(proc.stderr)
        assert "mediamill.cli" in modules, "the report lists what the command imported"
        assert "sqlalchemy" in modules
        assert _unwanted(modules) == [], proc.args
