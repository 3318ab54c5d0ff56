"""A dry run on every database: the catalog is read, never written (every row of every table
is the same afterwards), and the scratch copy it runs on decides as the catalog would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select, table, text

from mediamill import ops
from mediamill.catalog.db import Catalog
from tests.conftest import make_files
from tests.helpers.run import run_folder

RENAMER = "tests.helpers.processors:Renamer"


def all_rows(catalog: Catalog) -> dict[str, list[Any]]:
    with catalog.engine.connect() as conn:
        names = inspect(conn).get_table_names()
        return {
            name: sorted(map(repr, conn.execute(select(text("*")).select_from(table(name)))))
            for name in names
        }


def test_a_dry_run_decides_on_a_copy_and_leaves_every_row(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin", "b.bin", "sub/c.bin"])
    run_folder(catalog, root, RENAMER, executor="serial", renames={"a.bin": "a2.bin"})
    make_files(root, ["new.bin"])
    before = all_rows(catalog)
    plan = ops.plan(catalog, RENAMER, str(root), options={"renames": {"new.bin": "n.bin"}})
    assert plan["dry_run"] is True
    assert plan["new_library"] is False
    assert plan["scan"]["new"] == 1
    assert plan["actions"] == {"rename": 1}, "only the new file is due: the others are fresh"
    assert plan["plans"] == ["new.bin: rename"]
    assert all_rows(catalog) == before
    assert sum(len(rows) for rows in before.values()) > 0
